"""How long the whole course takes to execute: every notebook in notebooks/ and solutions/.

Goal: <= 180 s on 2 CPU cores for everything (the developers' guide), 2 minutes as the aim. Each notebook is
run top to bottom in a fresh kernel, as nbval does; the time includes kernel start-up.

    .venv/bin/python benchmarks/bench_course.py [--load] [--threads N] [NOTEBOOK ...]

--load runs them on a busy machine: one CPU-burning process per core, started and stopped here
(cpu_load.py). --threads N starts each kernel with OMP_NUM_THREADS=N (torch's thread count; by
default one per core). The goals apply to the quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from cpu_load import cpu_load

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from execute_notebooks import execute  # noqa: E402

GOAL_SECONDS, AIM_SECONDS = 180.0, 120.0


def run_notebook(path: Path) -> float:
    return execute(path, save=False)  # the same run as the authors' scripts/execute_notebooks.py


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every lesson and solution")
    parser.add_argument("--load", action="store_true", help="one CPU-burning process per core meanwhile")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the kernels")
    args = parser.parse_args()
    notebooks = [path.resolve() for path in args.notebooks] or (
        sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb")))
    if not notebooks:
        print("no notebooks yet")
        return 0
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the kernels inherit it
    threads = os.environ.get("OMP_NUM_THREADS", "torch's default")
    total = 0.0
    with cpu_load() if args.load else contextlib.nullcontext(0) as burners:
        print(f"executing {len(notebooks)} notebooks on {os.cpu_count()} CPU cores, "
              f"{burners} CPU-burning processes, kernel threads: {threads}")
        for path in notebooks:
            seconds = run_notebook(path)
            total += seconds
            print(f"  {path.relative_to(ROOT)!s:<60} {seconds:6.1f} s")
    print(f"whole course: {total:.1f} s  (goal <= {GOAL_SECONDS:.0f} s: "
          f"{'met' if total <= GOAL_SECONDS else 'MISSED'}; aim {AIM_SECONDS:.0f} s: "
          f"{'met' if total <= AIM_SECONDS else 'not met'}; ratio to goal {total / GOAL_SECONDS:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
