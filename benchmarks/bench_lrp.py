"""What LRP and DeepLIFT cost, as a multiple of one plain gradient (issue 22).

Goal: LRP at most about 2 forward-plus-backward passes. A plain input gradient is one forward
and one backward pass; LRP's forward pass is the same (plus a copy of each layer's output), and
each layer's backward recomputes the layer once with the rule's weights (z = rho(layer)(a)) and
takes its gradient: about one more forward of every affine layer. The z-box rule adds two of the
first layer; alpha2-beta1 two per layer whose input is a ReLU's output (a >= 0), four
where the input has negative values. DeepLIFT runs the image and its baseline as one batch.

Printed per model and method: the best wall time of a few rounds (methods take turns) and its
ratio to the plain gradient's. VGG16 with random weights at 224x224, batch 1 (no download), and
the lab models at their sizes, batch 16.

    .venv/bin/python benchmarks/bench_lrp.py             # CPU: about a minute
    .venv/bin/python benchmarks/bench_lrp.py --quick     # VGG16 at 112, fewer rounds
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torchvision

from gradviz_lab import models
from gradviz_lab.attribution import deeplift, input_gradient, input_x_gradient, lrp

METHODS = {
    "gradient": lambda m, x: input_gradient(m, x, 1),
    "input x gradient": lambda m, x: input_x_gradient(m, x, 1),
    "lrp epsilon-plus": lambda m, x: lrp(m, x, 1, composite="epsilon-plus"),
    "lrp epsilon-gamma-box": lambda m, x: lrp(m, x, 1, composite="epsilon-gamma-box"),
    "lrp alpha2-beta1": lambda m, x: lrp(m, x, 1, composite="alpha2-beta1"),
    "deeplift (blur)": lambda m, x: deeplift(m, x, 1, baseline="blur"),
}


def best_times(model, x, rounds: int) -> dict[str, float]:
    best = {name: float("inf") for name in METHODS}
    for name, method in METHODS.items():  # warm-up
        method(model, x)
    for _ in range(rounds):
        for name, method in METHODS.items():
            start = time.perf_counter()
            method(model, x)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    side, rounds = (112, 2) if args.quick else (224, 3)
    torch.manual_seed(0)
    cases = {
        f"vgg16 {side}x{side}, batch 1": (torchvision.models.vgg16(weights=None).eval(),
                                          torch.rand(1, 3, side, side)),
        "shapes 64x64, batch 16": (models.load_lab_model("shapes"), torch.rand(16, 3, 64, 64)),
        "digits 28x28, batch 16": (models.load_lab_model("digits"), torch.rand(16, 1, 28, 28)),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f}")
    for case, (model, x) in cases.items():
        times = best_times(model, x, rounds)
        print(f"\n{case}")
        for name, seconds in times.items():
            print(f"  {name:24s} {seconds * 1000:9.1f} ms   {seconds / times['gradient']:5.2f}x "
                  "the gradient")


if __name__ == "__main__":
    main()
