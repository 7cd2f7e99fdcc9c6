"""How fast does the lesson 10 ViT dashboard answer? Median time from a change to the new figure.

The goals (issue 20): a control change of a single-pass method (raw attention, attention rollout,
gradient rollout, Grad-CAM on the tokens, saliency) answers within 150 ms on the shapes-vit lab
model; integrated gradients, 32 forward and backward passes of the path, has its own goal of 1 s
(as the issue gives Score-CAM and Ablation-CAM). Each control is moved to a value not shown yet
with the result cache emptied first, so every timed change computes its map and draws the PNG:
the worst case. Going back to a setting shown (the cache's answer) is timed last.

Usage: python benchmarks/bench_vit_dashboard.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402
from dashboard_timing import print_table, timed_changes, values_for  # noqa: E402

from gradviz_lab.widgets.vit import MEAN_OVER_HEADS, vit_dashboard  # noqa: E402

SINGLE_PASS = 0.150  # seconds, from the issue
INTEGRATED_GRADIENTS = 1.0  # 32 path points: this dashboard's own goal
SINGLE_PASS_METHODS = ["attention", "attention-rollout", "gradient-rollout", "gradcam", "saliency"]

# label -> (the control moved, the values cycled through, the other settings, the goal)
SCENARIOS = {
    "method (the single-pass ones)": ("method", SINGLE_PASS_METHODS, {}, SINGLE_PASS),
    "head (attention)": ("head", [MEAN_OVER_HEADS, 0, 1, 2, 3], {"method": "attention"}, SINGLE_PASS),
    "block (attention)": ("block", [0, 1, 2, 3], {"method": "attention"}, SINGLE_PASS),
    "block (Grad-CAM on tokens)": ("block", [0, 1, 2, 3], {"method": "gradcam"}, SINGLE_PASS),
    "target class (gradient rollout)": ("target", "classes", {"method": "gradient-rollout"},
                                        SINGLE_PASS),
    "image (attention rollout)": ("image", "images", {"method": "attention-rollout", "target": -1},
                                  SINGLE_PASS),
    "image (saliency)": ("image", "images", {"method": "saliency"}, SINGLE_PASS),
    "image (integrated gradients, 32 steps)": ("image", "images",
                                               {"method": "integrated-gradients"},
                                               INTEGRATED_GRADIENTS),
}


def run(repeats: int) -> list[tuple[str, list[float], float]]:
    dash = vit_dashboard()  # shapes-vit and the shapes gallery
    results = []
    for label, (control, values, settings, goal) in SCENARIOS.items():
        dash.set(**settings)
        times = timed_changes(dash, control, values_for(dash, values), repeats)
        results.append((f"shapes-vit {label}", times, goal))
    dash.set(method="gradient-rollout", image=0)
    values = [0, 1]
    timed_changes(dash, "image", values, 1, clear=False)  # both in the cache
    results.append(("shapes-vit image back (from the cache)",
                    timed_changes(dash, "image", values, repeats, clear=False), SINGLE_PASS))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"bench_vit_dashboard: torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f}; "
          f"median of {args.repeats} changes, cache emptied before each")
    failures = print_table("model      change", run(args.repeats))
    print("all goals met" if not failures else f"{failures} goal(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
