"""How long the whole course takes to execute: every notebook in notebooks/ and solutions/.

Goal: <= 180 s on 2 CPU cores for everything (the developers' guide), 2 minutes as the aim. Each notebook is
run top to bottom in a fresh kernel, as nbval does; the time includes kernel start-up.

    .venv/bin/python benchmarks/bench_course.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from execute_notebooks import execute  # noqa: E402

GOAL_SECONDS, AIM_SECONDS = 180.0, 120.0


def run_notebook(path: Path) -> float:
    return execute(path, save=False)  # the same run as the authors' scripts/execute_notebooks.py


def main() -> int:
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))
    if not notebooks:
        print("no notebooks yet")
        return 0
    print(f"executing {len(notebooks)} notebooks on {os.cpu_count()} CPU cores")
    total = 0.0
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
