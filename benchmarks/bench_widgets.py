"""How fast do the dashboards answer? Median time from a slider change to the new figure.

For each dashboard a control is moved to a value it has not shown yet, with the result cache
emptied first, so every timed change recomputes the maps and redraws the PNG: the worst case a
lecturer meets. A change that only redraws (Grad-CAM's overlay alpha) is timed separately.
Runs on the lab models on CPU; prints one line per dashboard with the goal from the issue:

    <= 150 ms  gradient methods and Grad-CAM
    <= 1 s     occlusion at stride >= 4, SmoothGrad with N <= 25 (and the other long methods)

Each scenario runs on a quiet machine, then with ``--load`` also on a busy one: one CPU-burning
process per core, started and stopped by the benchmark (``cpu_load.py``). ``--compare-threads``
adds torch's default thread count next to the kit's one thread (``gradviz_lab.threads``), the
numbers behind that choice. The goals apply to the quiet machine.

A second table splits the Grad-CAM dashboard's work on a change of class into computing the maps
and drawing them (figure, PNG, caption), on the lab models and on a torchvision ResNet-18 at
224 x 224 with random weights (nothing downloaded); the goal for drawing is <= 40 ms on the lab
models. ``--redraw`` prints only that table.

Usage: python benchmarks/bench_widgets.py [--repeats 7] [--gallery shapes] [--load] [--compare-threads]
       python benchmarks/bench_widgets.py --redraw [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import sys
import time

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402
from cpu_load import cpu_load  # noqa: E402

from gradviz_lab import threads  # noqa: E402
from gradviz_lab.widgets import DASHBOARDS, recipes  # noqa: E402

FAST, SLOW = 0.150, 1.0
DRAW = 0.040  # drawing one redraw of the Grad-CAM dashboard on a lab model

# dashboard -> (the control moved, values cycled through, other settings, goal in seconds)
SCENARIOS = {
    "image_picker": ("image", None, {}, FAST),
    "saliency": ("target", "classes", {}, FAST),
    "relu_rules": ("target", "classes", {}, FAST),
    "relu_rules (feature)": ("channel", range(0, 64), {"explain": "feature response"}, FAST),
    "gradcam": ("target", "classes", {}, FAST),
    "smoothgrad (N=25)": ("sigma", [0.05 + 0.01 * k for k in range(40)], {"n_samples": 25}, SLOW),
    "occlusion (window 16, stride 4)": ("stride", None, {"window": 16, "stride": 4}, SLOW),
    "integrated_gradients (32 steps)": (
        "baseline",
        ["black", "grey", "mean", "blur"],
        {"steps": 32},
        SLOW,
    ),
    "compare": ("target", "classes", {}, SLOW),
    "deletion (fraction, impute)": ("fraction", [k / 16 for k in range(17)], {"fill": "impute"}, FAST),
    "deletion (fill)": ("fill", ["black", "blur", "impute"], {}, FAST),
}


def timed_changes(
    dash, control: str, values, repeats: int, clear_cache: bool = True
) -> list[tuple[float, float]]:
    """(wall, CPU) seconds from ``control.value = v`` to the new PNG, each change a fresh
    computation (the cache is emptied first) unless ``clear_cache`` is False."""
    times = []
    for value in itertools.islice(itertools.cycle(values), repeats + 2):
        if dash.controls[control].value == value:
            continue
        if clear_cache:
            dash.cache.clear()
        renders = dash.renders
        wall, cpu = time.perf_counter(), time.process_time()
        dash.controls[control].value = value
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if dash.last_error is not None:
            raise RuntimeError(f"{type(dash).__name__}: {dash.last_error!r}")
        assert dash.renders == renders + 1, "the change did not redraw"
        times.append((wall, cpu))
    return times[1 : repeats + 1]  # the first change warms up torch and matplotlib


def values_for(dash, control: str, values):
    if values == "classes":
        return list(range(len(dash.class_names)))
    if values is None and control == "image":
        return list(range(len(dash.images)))
    if values is None and control == "stride":  # alternate between two strides >= 4
        return [5, 4]
    return list(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gallery", default="shapes", choices=recipes.LAB_MODELS)
    parser.add_argument(
        "--threads", type=int, default=None,
        help=f"threads the dashboards use for a lab model (default: the kit's {threads.LAB_THREADS})",
    )
    parser.add_argument("--load", action="store_true", help="also time a machine with every core busy")
    parser.add_argument("--compare-threads", action="store_true",
                        help="also time torch's default thread count (one per core)")
    parser.add_argument("--redraw", action="store_true",
                        help="only the compute / draw split of the Grad-CAM dashboard")
    args = parser.parse_args()
    if args.redraw:
        return redraw_split(args.repeats)
    kit_threads = args.threads or threads.LAB_THREADS
    default_threads = torch.get_num_threads()

    try:
        examples = recipes.gallery(args.gallery)
    except FileNotFoundError as error:  # weights not trained yet: the same network, same timings
        from gradviz_lab import models

        print(f"note: {error}; timing the same architecture with untrained weights")
        models.load_lab_model = lambda name, **_: models.build_lab_model(name).eval()
        examples = recipes.gallery(args.gallery)
    print(
        f"bench_widgets: {args.gallery} lab model, images {tuple(examples.images.shape[1:])}, "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs (torch's default: {default_threads} "
        f"threads), load average {os.getloadavg()[0]:.1f}; median of {args.repeats} changes"
    )
    print(
        "wall: what the user waits; cpu: this process's CPU time (all threads),\n"
        "which a machine busy with other work does not inflate"
    )
    settings = [kit_threads] + ([default_threads] if args.compare_threads and default_threads != kit_threads else [])
    conditions = ["quiet"] + (["loaded"] if args.load else [])
    failures = 0
    medians: dict[tuple[str, str, int], float] = {}
    for condition in conditions:
        load = cpu_load() if condition == "loaded" else contextlib.nullcontext(0)
        with load as burners:
            for count in settings:
                threads.LAB_THREADS = count  # what the dashboards' lab_threads() sets
                print(f"\n== {condition} machine"
                      + (f" ({burners} CPU-burning processes)" if burners else "")
                      + f", {count} thread(s)")
                print(f"{'dashboard [control]':44s} {'wall':>7s} {'min':>7s} {'max':>7s} "
                      f"{'cpu':>7s} {'goal':>7s}")
                for label, times, goal in run_scenarios(examples, args.repeats):
                    checked = condition == "quiet" and count == kit_threads  # the goals' setting
                    failures += _report(label, times, goal, checked)
                    medians[(condition, label, count)] = statistics.median(w for w, _ in times)
    threads.LAB_THREADS = kit_threads
    if len(conditions) * len(settings) > 1:
        _summary(medians, conditions, settings)
    print("all goals met (quiet machine, the kit's threads)" if not failures
          else f"{failures} goal(s) missed (wall time)")
    return 0


def run_scenarios(examples, repeats: int) -> list[tuple[str, list[tuple[float, float]], float]]:
    """(label with its control, (wall, cpu) times, goal) for every scenario, then the redraw."""
    results = []
    for label, (control, values, settings, goal) in SCENARIOS.items():
        factory = DASHBOARDS[label.split(" ")[0]]
        dash = factory(
            examples.model, examples.images, examples.class_names, image_names=examples.image_names
        )
        dash.set(image=len(dash.images) - 1, **settings)  # a two-object image where there is one
        times = timed_changes(dash, control, values_for(dash, control, values), repeats)
        results.append((f"{label} [{control}]", times, goal))
    dash = DASHBOARDS["gradcam"](examples.model, examples.images, examples.class_names)
    alphas = [round(0.3 + 0.05 * k, 2) for k in range(repeats + 2)]
    times = timed_changes(dash, "alpha", alphas, repeats, clear_cache=False)  # maps cached
    results.append(("gradcam (redraw only) [alpha]", times, FAST))
    return results


def compute_and_draw(dash, repeats: int) -> tuple[list[float], list[float]]:
    """CPU seconds of this process to compute the maps (the cache emptied first) and to draw
    them, for ``repeats`` changes of class, as one refresh does them (under the kit's thread
    setting). CPU time, not wall time: other work on the machine does not inflate it."""
    compute, draw = [], []
    classes = min(len(dash.class_names), 5)
    for k in range(repeats + 1):
        dash.cache.clear()
        with dash.quietly():
            dash.controls["target"].value = k % classes
        index = int(dash.image.value)
        with threads.lab_threads(dash.model):
            start = time.process_time()
            explanations = dash.explanations(index, dash.target_class(index))
            middle = time.process_time()
            dash.draw(index, explanations)
            end = time.process_time()
        if k:  # the first change warms up torch and matplotlib
            compute.append(middle - start)
            draw.append(end - middle)
    return compute, draw


def redraw_split(repeats: int) -> int:
    """The Grad-CAM dashboard: compute and draw, separately, on the lab models and ResNet-18."""
    import torchvision

    print(f"bench_widgets --redraw: Grad-CAM dashboard, median CPU time of {repeats} changes of class, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'model':34s} {'compute':>8s} {'draw':>8s} {'goal':>6s}")
    failures = 0
    cases = [(name, None) for name in ("shapes", "digits")] + [("resnet18 224 (random weights)", 0)]
    for label, seed in cases:
        if seed is None:
            examples = recipes.gallery(label)
            dash = DASHBOARDS["gradcam"](examples.model, examples.images, examples.class_names)
        else:
            torch.manual_seed(seed)
            model = torchvision.models.resnet18(weights=None).eval()  # no download
            images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
            dash = DASHBOARDS["gradcam"](model, images, None)
        compute, draw = compute_and_draw(dash, repeats)
        median = statistics.median(draw)
        goal = "" if seed is not None else ("ok" if median <= DRAW else "SLOW")
        failures += goal == "SLOW"
        print(f"{label:34s} {1000 * statistics.median(compute):6.0f}ms {1000 * median:6.0f}ms "
              f"{goal:>6s}")
    print("drawing goal met on the lab models" if not failures else "drawing goal missed")
    return 0


def _report(label: str, times: list[tuple[float, float]], goal: float, checked: bool) -> int:
    wall = [w for w, _ in times]
    median, cpu = statistics.median(wall), statistics.median(c for _, c in times)
    verdict = ("ok" if median <= goal else "SLOW") if checked else ""
    print(
        f"{label:44s} {1000 * median:5.0f}ms {1000 * min(wall):5.0f}ms "
        f"{1000 * max(wall):5.0f}ms {1000 * cpu:5.0f}ms {1000 * goal:5.0f}ms {verdict}"
    )
    return int(checked and median > goal)


def _summary(medians: dict, conditions: list[str], settings: list[int]) -> None:
    """One line per scenario: the median wall time of every (machine, threads) pair."""
    columns = [(c, t) for c in conditions for t in settings]
    print("\nmedian wall time (ms), by machine and torch threads")
    print(f"{'dashboard':44s} " + " ".join(f"{c + ' ' + str(t) + 't':>11s}" for c, t in columns))
    for label in dict.fromkeys(label for _, label, _ in medians):
        print(f"{label:44s} " + " ".join(f"{1000 * medians[(c, label, t)]:11.0f}" for c, t in columns))


if __name__ == "__main__":
    sys.exit(main())
