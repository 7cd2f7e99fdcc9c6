"""How much does batching buy the attacks? PGD on a batch of images against a loop over them.

The images of a batch do not interact (the models are in eval mode), so one forward and one
backward pass per PGD step serve the whole batch; a loop pays them once per image. Both run in
the same process, one after the other, on the lab models (CPU, one thread); the ratio is what
to read, the seconds depend on the machine.

Usage: python benchmarks/bench_attacks.py [--images 64] [--steps 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gradviz_lab import attacks, data, models


def lab_images(name: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    if name.startswith("digits"):
        images, labels = data.load_digits("test")
        index = torch.arange(count) * len(images) // count
        return images[index], labels[index]
    shapes = data.make_shapes(count, seed=2024)
    return shapes.images, shapes.labels


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in ("digits", "shapes"):
        model = models.load_lab_model(name)
        x, labels = lab_images(name, args.images)
        knobs = dict(epsilon=0.1, steps=args.steps, random_start=False)
        batched = median_seconds(lambda: attacks.pgd(model, x, labels=labels, **knobs), args.repeats)
        looped = median_seconds(
            lambda: [attacks.pgd(model, x[i : i + 1], labels=labels[i : i + 1], **knobs) for i in range(len(x))],
            args.repeats,
        )
        print(f"{name:7s} PGD, {args.images} images x {args.steps} steps: batched {batched:.3f} s, "
              f"per-image loop {looped:.3f} s, ratio {looped / batched:.1f}x")


if __name__ == "__main__":
    main()
