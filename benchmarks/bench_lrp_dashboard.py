"""How fast does the lesson 11 LRP dashboard answer? Median time from a change to the new figure.

The goal (issue 22): a knob change of a single-pass method answers within 150 ms on the lab
models. For each lab model LRP covers (digits, digits-robust, shapes, shapes-tagged,
shapes-softplus; shapes-vit has attention, which LRP refuses) and each knob, the knob is moved to a
value not shown yet with the result cache emptied first, so every timed change runs one relevance
pass and draws the PNG: the worst case. Going back to a setting shown (the cache's answer) is timed
last.

Usage: python benchmarks/bench_lrp_dashboard.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402
from dashboard_timing import print_table, timed_changes, values_for  # noqa: E402

from gradviz_lab.widgets.lrp import PER_GROUP, lrp_dashboard  # noqa: E402

GOAL = 0.150  # seconds, from the issue
MODELS = ("digits", "digits-robust", "shapes", "shapes-tagged", "shapes-softplus")

# label -> (the control moved, the values cycled through, the other settings)
SCENARIOS = {
    "gamma (epsilon-gamma-box)": ("gamma", [0.1 * k for k in range(1, 20)],
                                  {"composite": "epsilon-gamma-box"}),
    "epsilon (epsilon)": ("epsilon", [10.0 ** (-k / 2) for k in range(12)], {"composite": "epsilon"}),
    "composite": ("composite", ["epsilon-plus", "epsilon-gamma-box", "lrp-0", "z-plus",
                                "alpha2-beta1", "epsilon-plus-flat"], {}),
    "rule of the convolutions [per group]": ("conv", ["gamma", "z-plus", "epsilon", "lrp-0"],
                                             {"composite": PER_GROUP}),
    "max pool": ("maxpool", ["winner", "average"], {"composite": "epsilon-plus"}),
    "target class": ("target", "classes", {}),
    "image": ("image", "images", {"target": -1}),
}


def run(repeats: int) -> list[tuple[str, list[float]]]:
    results = []
    for name in MODELS:
        dash = lrp_dashboard(gallery_name=name)
        for label, (control, values, settings) in SCENARIOS.items():
            dash.set(**settings)
            times = timed_changes(dash, control, values_for(dash, values), repeats)
            results.append((f"{name:16s} {label}", times))
        dash.set(composite="epsilon-gamma-box")
        values = [0.25, 0.5]
        timed_changes(dash, "gamma", values, 1, clear=False)  # both in the cache
        results.append((f"{name:16s} gamma back (from the cache)",
                        timed_changes(dash, "gamma", values, repeats, clear=False)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"bench_lrp_dashboard: torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; median of {args.repeats} changes, cache emptied before each")
    failures = print_table("model            change",
                           ((label, times, GOAL) for label, times in run(args.repeats)))
    print("all goals met" if not failures else f"{failures} goal(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
