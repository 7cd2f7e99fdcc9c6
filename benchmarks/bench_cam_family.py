"""Speed of Grad-CAM's family (issue 20), side by side in one run.

1. Score-CAM and Ablation-CAM batched (``batch_size`` pairs of (channel, image) per forward pass,
   default 64) against the per-channel loop (``batch_size=len(x)``: one forward pass per
   channel), on the lab models at their default layer and, with ``--imagenet``, on ResNet-18 at
   224 x 224 with random weights (512 channels; nothing downloaded). Printed: the best time of
   each, the ratio (> 1: batched faster) and the largest difference of the two maps (they must
   agree to round-off: the weights do not depend on batch_size).
2. Each variant's latency on one image of each lab model through ``recipes.explain``, the call
   the dashboards and ``gradviz explain`` make, against the goals: 150 ms for the single-pass
   methods, 1 s for Score-CAM and Ablation-CAM.
3. The Grad-CAM dashboard (lesson 5, shapes gallery): the time from a change of its variant menu
   to the new figure (maps, guided map, PNG), the result cache emptied first, against the same goals.

    python benchmarks/bench_cam_family.py [--repeats 5] [--threads 1] [--imagenet]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torchvision

from gradviz_lab import attribution, data, methods, models
from gradviz_lab.widgets import recipes

FAST, SLOW = 0.150, 1.0
PERTURBATION = {"scorecam": attribution.scorecam, "ablationcam": attribution.ablationcam}


def best_time(call, repeats: int) -> tuple[float, object]:
    result, best = None, float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    return best, result


def lab_inputs() -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    digits, _ = data.load_digits("test")
    return {
        "shapes": (models.load_lab_model("shapes"), data.make_shapes(1, seed=3).images),
        "digits": (models.load_lab_model("digits"), digits[:1]),
    }


def batched_vs_loop(cases, repeats: int) -> None:
    print(f"\n{'model':<22}{'method':<13}{'channels':>9}{'batched':>11}{'loop':>11}"
          f"{'loop/batched':>14}{'max |diff|':>12}")
    for name, (model, x) in cases.items():
        layer = attribution.default_cam_layer(model, x)
        channels = attribution.layer_gradients(model, x, layer)[0].shape[1]
        for method, function in PERTURBATION.items():
            batched, a = best_time(lambda: function(model, x, layer=layer), repeats)
            loop, b = best_time(lambda: function(model, x, layer=layer, batch_size=len(x)), repeats)
            diff = float((a - b).abs().max() / a.abs().max().clamp(min=1e-30))
            print(f"{name:<22}{method:<13}{channels:>9}{batched * 1e3:>9.0f}ms{loop * 1e3:>9.0f}ms"
                  f"{loop / batched:>13.2f}x{diff:>12.1e}")


def latencies(cases, repeats: int) -> None:
    family = methods.CAM_FAMILY
    print(f"\n{'latency, one image':<22}" + "".join(f"{m[:11]:>12}" for m in family))
    for name, (model, x) in cases.items():
        cells = []
        for method in family:
            goal = SLOW if method in PERTURBATION else FAST
            try:
                seconds, _ = best_time(lambda: recipes.explain(model, x[0], method), repeats)
            except ValueError:  # CAM on a model without a pooled linear head
                cells.append(f"{'n/a':>12}")
                continue
            mark = "" if seconds <= goal else "!"
            cells.append(f"{seconds * 1e3:>9.0f}ms{mark:<1}".rjust(12))
        print(f"{name:<22}" + "".join(cells))
    print(f"goals: {FAST * 1e3:.0f} ms single-pass, {SLOW:.0f} s Score-/Ablation-CAM ('!' = over); "
          "n/a: CAM needs global average pooling + one linear layer")


def dashboard_changes(repeats: int) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    from gradviz_lab.widgets import gradcam_dashboard

    dash = gradcam_dashboard(gallery_name="shapes")
    print(f"\n{'Grad-CAM dashboard':<22}" + "".join(f"{m[:11]:>12}" for m in methods.CAM_FAMILY))
    cells = []
    for method in methods.CAM_FAMILY:
        goal = SLOW if method in PERTURBATION else FAST

        def change() -> None:
            dash.controls["variant"].value = "gradcam" if method != "gradcam" else "cam"
            dash.cache.clear()
            start = time.perf_counter()
            dash.controls["variant"].value = method
            times.append(time.perf_counter() - start)
            assert dash.last_error is None, dash.last_error

        times: list[float] = []
        for _ in range(repeats):
            change()
        cells.append(f"{min(times) * 1e3:>9.0f}ms{'' if min(times) <= goal else '!':<1}".rjust(12))
    print(f"{'variant change, shapes':<22}" + "".join(cells))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--imagenet", action="store_true", help="add ResNet-18 at 224x224")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, best of {args.repeats}")
    cases = lab_inputs()
    batched_vs_loop(cases, args.repeats)
    if args.imagenet:
        resnet = torchvision.models.resnet18(weights=None).eval()
        x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        batched_vs_loop({"resnet18 224 (random)": (resnet, x)}, max(1, args.repeats // 5))
    latencies(cases, args.repeats)
    dashboard_changes(args.repeats)


if __name__ == "__main__":
    sys.exit(main())
