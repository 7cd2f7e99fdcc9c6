"""How fast does the lesson 09 attack dashboard answer? Median time from a change to the new figure.

The issue's goal: the dashboard answers a change within 1 s on the lab models. For each lab model
(digits, digits-robust, shapes; the other shapes models have the shapes network) and each
scenario, a control is moved to a value not shown yet with the result cache emptied first, so
every timed change runs the attack, both saliency maps and the PNG: the worst case. The heaviest
settings are timed too (PGD at the slider's 100 steps, a fooling image of up to 100 steps).
Switching the model (weights and gallery loaded, then an attack) is timed last.

Usage: python benchmarks/bench_attack_dashboard.py [--repeats 5] [--load]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import sys
import time

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402
from cpu_load import cpu_load  # noqa: E402
from dashboard_timing import print_table, timed_changes, values_for  # noqa: E402

from gradviz_lab.widgets.attack import attack_dashboard  # noqa: E402

GOAL = 1.0  # seconds, from the issue
MODELS = ("digits", "digits-robust", "shapes")

# label -> (the control moved, the values cycled through, the other settings)
SCENARIOS = {
    "PGD L-inf, 10 steps": ("epsilon", [0.05 + 0.01 * k for k in range(20)], {"attack": "pgd-linf"}),
    "PGD L-inf, 100 steps (the most)": ("epsilon", [0.05 + 0.01 * k for k in range(20)], {"steps": 100}),
    "PGD L2, 10 steps": ("epsilon", [1.0 + 0.1 * k for k in range(20)], {"attack": "pgd-l2", "steps": 10}),
    "FGSM": ("epsilon", [0.05 + 0.01 * k for k in range(20)], {"attack": "fgsm"}),
    "targeted PGD, 10 steps [class]": ("target", "classes", {"attack": "pgd-linf", "steps": 10}),
    "fooling image, <= 100 steps [class]": ("target", "classes", {"attack": "fooling-image", "steps": 100}),
    "image (PGD L-inf, 10 steps)": ("image", "images", {"attack": "pgd-linf", "steps": 10, "target": -1}),
}


def run(repeats: int) -> list[tuple[str, list[float]]]:
    results = []
    for name in MODELS:
        dash = attack_dashboard(gallery_name=name)
        for label, (control, values, settings) in SCENARIOS.items():
            first = 1 if control == "target" else 0  # a fooling image needs a class
            dash.set(**settings, **({"target": first} if control == "target" else {}))
            times = timed_changes(dash, control, values_for(dash, values), repeats,
                                  skip=lambda error: "already predicts" in str(error))
            results.append((f"{name:14s} {label}", times))
    dash = attack_dashboard(gallery_name="digits")
    times = []
    for name in itertools.islice(itertools.cycle(["digits-robust", "shapes", "digits"]), repeats + 1):
        start = time.perf_counter()
        dash.controls["model"].value = name
        times.append(time.perf_counter() - start)
        if dash.last_error is not None:
            raise RuntimeError(f"model={name}: {dash.last_error!r}")
    results.append(("switch model (load + PGD)", times[1:]))
    return results


def main() -> int:
    # a refused value (toward the predicted class) is logged by the dashboard: not news here
    logging.getLogger("gradviz_lab.widgets").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--load", action="store_true", help="also time a machine with every core busy")
    args = parser.parse_args()
    print(f"bench_attack_dashboard: torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; median of {args.repeats} changes, cache emptied before each")
    failures = 0
    for condition in ["quiet"] + (["loaded"] if args.load else []):
        load = cpu_load() if condition == "loaded" else contextlib.nullcontext(0)
        with load as burners:
            print(f"\n== {condition} machine" + (f" ({burners} CPU-burning processes)" if burners else "")
                  + f", load average {os.getloadavg()[0]:.1f} (other work counts too)")
            failures += print_table("model          change",
                                    ((label, times, GOAL) for label, times in run(args.repeats)),
                                    judge=condition == "quiet")
    print("all goals met (quiet machine)" if not failures else f"{failures} goal(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
