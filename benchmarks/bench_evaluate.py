"""How long the evaluation of lesson 07 takes, and what batching buys.

    .venv/bin/python benchmarks/bench_evaluate.py [N] [THREADS]

On the shapes lab model (untrained weights if data/models/shapes.pt is missing), N = 16 images:

1. deletion + insertion curves, batched (the default: a cache-sized batch) against one image per
   forward pass: the same curves, the time ratio printed; deletion with imputed pixels
   (``baseline="impute"``) against black, the time ratio printed;
2. ``randomised_copy`` of the whole model (what a cascade slider calls) against one forward pass;
3. ``evaluate_methods`` with its defaults, whole and per method: the goal is a notebook cell of
   at most ~20 s on 2 CPU cores;
4. in float64 (how the lessons compute the numbers they print): integrated gradients and the
   deletion curves with the cache-sized default batch (``cache_sized_batch``) against the old
   fixed defaults (32 path points, 64 perturbed copies): CPU time (steady on a busy machine) and
   wall time side by side, and whether the results are the same bit for bit.
"""

from __future__ import annotations

import os
import sys
import time

import torch

from gradviz_lab.attribution import integrated_gradients
from gradviz_lab.attribution._common import cache_sized_batch
from gradviz_lab.data import make_shapes
from gradviz_lab.evaluate import (
    as_pixel_map,
    default_methods,
    deletion_curve,
    evaluate_methods,
    insertion_curve,
    randomisable_layers,
    randomised_copy,
)
from gradviz_lab.models import build_lab_model, lab_weights_path, load_lab_model

GOAL_SECONDS = 20.0


def timed(f, repeat: int = 1):
    start = time.perf_counter()
    for _ in range(repeat):
        result = f()
    return result, (time.perf_counter() - start) / repeat


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    # 2 threads by default (the course's laptop); 1 thread is steadier on a busy machine, where
    # threads waiting for each other can slow a run several times over.
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    trained = lab_weights_path("shapes").is_file()
    model = load_lab_model("shapes") if trained else build_lab_model("shapes").eval()
    shapes = make_shapes(n, seed=2024)
    x, labels, masks = shapes.images, shapes.labels, shapes.masks[:, :1]
    print(f"shapes model ({'trained' if trained else 'UNTRAINED: no data/models/shapes.pt'}), {n} images, "
          f"{torch.get_num_threads()} threads")

    saliency_map = as_pixel_map(default_methods()["saliency"](model, x, labels))

    def curves(batch_size: int):
        return (deletion_curve(model, x, saliency_map, labels, steps=10, batch_size=batch_size).scores,
                insertion_curve(model, x, saliency_map, labels, steps=10, batch_size=batch_size).scores)

    batched, t_batched = timed(lambda: curves(None))
    single, t_single = timed(lambda: curves(1))
    same = all(torch.allclose(a, b, atol=1e-5) for a, b in zip(batched, single))
    print(f"1. deletion + insertion (10 steps): batched {t_batched:.2f} s, one image per pass {t_single:.2f} s, "
          f"speed-up x{t_single / t_batched:.1f} (same curves: {same})")

    def deletion(fill):
        return deletion_curve(model, x, saliency_map, labels, steps=10, baseline=fill)

    _, t_black = timed(lambda: deletion(0.0), repeat=3)
    _, t_imputed = timed(lambda: deletion("impute"), repeat=3)
    print(f"1b. deletion (10 steps) with imputed pixels {t_imputed:.2f} s against black {t_black:.2f} s: "
          f"x{t_imputed / t_black:.2f} the time (pull-push on every perturbed image; goal <= x1.5)")

    depth = len(randomisable_layers(model))
    _, t_copy = timed(lambda: randomised_copy(model, depth), repeat=5)
    with torch.no_grad():
        _, t_forward = timed(lambda: model(x[:1]), repeat=5)
    print(f"2. randomised_copy (all {depth} layers) {1e3 * t_copy:.1f} ms = {t_copy / t_forward:.1f} x one forward pass "
          f"of one image ({1e3 * t_forward:.1f} ms)")

    cpu_start = time.process_time()
    table, t_table = timed(lambda: evaluate_methods(model, x, labels, masks))
    cpu = time.process_time() - cpu_start  # all threads' CPU time: steady on a busy machine
    verdict = "met" if t_table <= GOAL_SECONDS else "MISSED"
    print(f"3. evaluate_methods, {len(table)} methods: {t_table:.1f} s wall, {cpu:.1f} s CPU "
          f"(goal <= {GOAL_SECONDS:.0f} s wall: {verdict}; ratio to goal {t_table / GOAL_SECONDS:.2f}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    random_model = randomised_copy(model, depth)
    for name, method in default_methods().items():
        maps, t_map = timed(lambda: as_pixel_map(method(model, x, labels)))
        _, t_curves = timed(lambda: (deletion_curve(model, x, maps, labels, steps=10),
                                     insertion_curve(model, x, maps, labels, steps=10)))
        _, t_random = timed(lambda: method(random_model, x, labels))
        print(f"   {name:<22} map {t_map:5.2f} s   curves {t_curves:5.2f} s   map of the random model {t_random:5.2f} s")
    print(table)

    model64, x64 = model.double(), x.double()
    auto = cache_sized_batch(x64, largest=64)
    runs = {
        "integrated gradients, 32 steps": lambda bs: integrated_gradients(
            model64, x64, labels, steps=32, baseline="blur", batch_size=bs),
        "deletion curves, 10 steps": lambda bs: deletion_curve(
            model64, x64, saliency_map.double(), labels, steps=10, batch_size=bs).scores,
    }
    print(f"4. float64, the default batch ({auto} images, cache_sized_batch) against the old default:")
    for (name, run), old in zip(runs.items(), (32, 64)):
        times = {}
        for batch_size in (old, None, old, None):  # interleaved: the machine's load hits both alike
            cpu_start = time.process_time()
            result, wall = timed(lambda: run(batch_size))
            cpu = time.process_time() - cpu_start
            best = times.get(batch_size, (float("inf"), float("inf"), None))
            times[batch_size] = (min(best[0], cpu), min(best[1], wall), result)
        (cpu_old, wall_old, r_old), (cpu_new, wall_new, r_new) = times[old], times[None]
        print(f"   {name:<32} batch {old}: {cpu_old:5.2f} s CPU {wall_old:5.2f} s wall;  default: "
              f"{cpu_new:5.2f} s CPU {wall_new:5.2f} s wall (x{cpu_old / cpu_new:.2f} CPU); "
              f"same bits: {torch.equal(r_old, r_new)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
