"""Count how the package answers the bad-input table of tests/test_bad_inputs.py.

    PYTHONPATH=. python benchmarks/sweep_bad_inputs.py                 # this checkout
    PYTHONPATH=/path/to/other/checkout python benchmarks/sweep_bad_inputs.py --package-root /path/to/other/checkout

Each case is "clear" (the expected error type with a message naming the problem, or the right
result), "unclear" (another error, or a message that does not name the problem) or "silent" (a
result where an error was due, or a wrong result). The resource cases run in a subprocess whose
memory is capped 2 GB above its warm baseline (``guarded_run``), so an unbounded allocation
shows as an unclear MemoryError instead of stopping the machine. --list prints every case that
is not clear.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

import test_bad_inputs as table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-root", type=Path, default=ROOT, help="where gradviz_lab is imported from")
    parser.add_argument("--list", action="store_true", help="print the cases that are not clear")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import gradviz_lab

    print(f"gradviz_lab from {Path(gradviz_lab.__file__).parent}")
    verdicts: dict[str, tuple[str, str]] = {}
    folder = Path(tempfile.mkdtemp())
    os.chdir(folder)  # the command line writes explanation.png by default
    for case in table.bad_input_cases(folder):
        if not case.resource:
            verdicts[case.name] = table.outcome(case)
    run = table.guarded_run(control=False, package_root=args.package_root)
    for line in run.stdout.strip().splitlines():
        verdict, name, said = (line.split("\t") + ["", ""])[:3]
        verdicts[name] = (verdict, said)
    for case in table.bad_input_cases(folder):  # a resource case the guarded run never reported
        if case.name not in verdicts:
            verdicts[case.name] = ("unclear", f"the guarded subprocess ended early: {run.stderr[-300:]}")
    counts = Counter(verdict for verdict, _ in verdicts.values())
    print(f"{len(verdicts)} cases: {counts['clear']} clear, {counts['unclear']} unclear, {counts['silent']} silent")
    if args.list:
        for name, (verdict, said) in verdicts.items():
            if verdict != "clear":
                print(f"  {verdict:8s} {name}: {said[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
