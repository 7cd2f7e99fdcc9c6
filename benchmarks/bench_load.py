"""How long does a lesson wait before it can explain something? Time to load each lab model
together with its data, from a cold start of the files (goal: well under 1 s each).

Run standalone: ``python benchmarks/bench_load.py [--repeats N]``. Each line is the median of N
runs in fresh caches; the first import of torch is not counted (a notebook pays it once).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from gradviz_lab import data, models

GOAL_SECONDS = 1.0


def _fresh() -> None:
    """Forget the in-process caches so every run reads the files again."""
    data._digits_arrays.cache_clear()
    data._texture_images.cache_clear()


def digits() -> None:
    models.load_lab_model("digits")
    data.load_digits("test")


def shapes() -> None:
    models.load_lab_model("shapes")
    data.make_shapes(64, seed=0)


def shapes_tagged() -> None:
    models.load_lab_model("shapes-tagged")
    data.make_shapes(64, seed=0, tag_prob=1.0)


def photos() -> None:
    for name in data.PHOTOS:
        data.load_photo(name)


def digits_train_split() -> None:
    data.load_digits("train")


CASES: dict[str, Callable[[], None]] = {
    "digits model + 1,000 test digits": digits,
    "shapes model + 64 fresh shapes": shapes,
    "shapes-tagged model + 64 tagged shapes": shapes_tagged,
    "all 5 photos": photos,
    "4,000 training digits": digits_train_split,
}


def median_seconds(case: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _fresh()
        start = time.perf_counter()
        case()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    digits()  # warm-up: imports, first allocations
    width = max(map(len, CASES))
    print(f"load time, median of {args.repeats} cold runs (goal < {GOAL_SECONDS:.1f} s)")
    for name, case in CASES.items():
        seconds = median_seconds(case, args.repeats)
        verdict = "ok" if seconds < GOAL_SECONDS else "SLOWER THAN THE GOAL"
        print(f"  {name:<{width}}  {1000 * seconds:7.1f} ms  = {seconds / GOAL_SECONDS:5.2f} x goal  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
