"""Generate the student notebooks in exercises/ from the complete ones in solutions/.

One source of truth (nbgrader's convention): a solution notebook marks the code a student writes
with

    ### BEGIN SOLUTION
    ...the reference code...
    ### END SOLUTION

and, in markdown cells, written answers with ``<!-- BEGIN ANSWER -->`` ... ``<!-- END ANSWER -->``.
The exercise keeps everything else, replaces each code region with a stub that raises
``NotImplementedError`` (indented like the region, so a stub inside a function stays inside it),
replaces each answer with a prompt, and carries no outputs.

``gradviz exercises`` writes exercises/; ``gradviz exercises --check`` only reports stale files
(the test suite runs it, so a forgotten regeneration fails CI).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_ANSWER = "<!-- BEGIN ANSWER -->"
END_ANSWER = "<!-- END ANSWER -->"
ANSWER_PROMPT = "_Your answer here._"

ROOT = Path(__file__).resolve().parents[1]


def stub(indent: str) -> list[str]:
    return [
        f"{indent}# YOUR CODE HERE",
        f'{indent}raise NotImplementedError("write your code here, then run this cell again")',
    ]


def strip_code(source: str, where: str = "cell") -> str:
    """Replace every BEGIN/END SOLUTION region of a code cell by an indented stub."""
    lines, out, inside, indent = source.split("\n"), [], False, ""
    for number, line in enumerate(lines, 1):
        marker = line.strip()
        if marker == BEGIN_SOLUTION:
            if inside:
                raise ValueError(f"{where}, line {number}: nested {BEGIN_SOLUTION}")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
        elif marker == END_SOLUTION:
            if not inside:
                raise ValueError(f"{where}, line {number}: {END_SOLUTION} without {BEGIN_SOLUTION}")
            inside = False
            out.extend(stub(indent))
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN_SOLUTION} is never closed by {END_SOLUTION}")
    return "\n".join(out)


def strip_answers(source: str, where: str = "cell") -> str:
    """Replace every BEGIN/END ANSWER region of a markdown cell by a prompt."""
    pattern = re.compile(re.escape(BEGIN_ANSWER) + r".*?" + re.escape(END_ANSWER), re.DOTALL)
    stripped = pattern.sub(ANSWER_PROMPT, source)
    if BEGIN_ANSWER in stripped or END_ANSWER in stripped:
        raise ValueError(f"{where}: unbalanced {BEGIN_ANSWER} / {END_ANSWER}")
    return stripped


def exercise_from_solution(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student version of a solution notebook: regions stubbed, outputs cleared."""
    exercise = nbformat.from_dict(solution)
    # Only what says how to run it: saved widget state (rendered dashboards) would be outputs.
    exercise.metadata = nbformat.from_dict(
        {key: value for key, value in solution.metadata.items() if key in ("kernelspec", "language_info")}
    )
    for index, cell in enumerate(exercise.cells):
        where = f"{name}, cell {index}"
        if cell.cell_type == "code":
            cell.source = strip_code(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
        elif cell.cell_type == "markdown":
            cell.source = strip_answers(cell.source, where)
    return exercise


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def expected_exercises(solutions_dir: Path) -> dict[str, str]:
    """File name -> text of every exercise notebook that solutions_dir implies."""
    expected = {}
    for path in sorted(solutions_dir.glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        expected[path.name] = render(exercise_from_solution(solution, path.name))
    return expected


def stale_exercises(solutions_dir: Path, exercises_dir: Path) -> list[str]:
    """Names of exercise notebooks that are missing, outdated or left over."""
    expected = expected_exercises(solutions_dir)
    present = {p.name for p in exercises_dir.glob("*.ipynb")}
    stale = [name for name, text in expected.items()
             if name not in present or (exercises_dir / name).read_text() != text]
    return sorted(stale + [name for name in present - set(expected)])


def write_exercises(solutions_dir: Path, exercises_dir: Path) -> list[str]:
    """Write exercises_dir from solutions_dir; return the names written or removed."""
    exercises_dir.mkdir(parents=True, exist_ok=True)
    changed = stale_exercises(solutions_dir, exercises_dir)
    expected = expected_exercises(solutions_dir)
    for name in changed:
        if name in expected:
            (exercises_dir / name).write_text(expected[name])
        else:
            (exercises_dir / name).unlink()
    return changed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="only report stale exercise notebooks; exit 1 if any")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--exercises", type=Path, default=ROOT / "exercises")


def run(args: argparse.Namespace) -> int:
    if args.check:
        stale = stale_exercises(args.solutions, args.exercises)
        for name in stale:
            print(f"stale: exercises/{name} (run `gradviz exercises`)")
        return 1 if stale else 0
    changed = write_exercises(args.solutions, args.exercises)
    print(f"exercises: {len(changed)} notebook(s) updated" + (": " + ", ".join(changed) if changed else ""))
    return 0
