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
(the test suite runs it, so a forgotten regeneration fails CI). Both work on the folders of the
current directory (a clone's root) unless ``--solutions`` and ``--exercises`` say otherwise.

The generator never overwrites or deletes a file it did not write itself. Each exercise records
where it came from and the sha256 of its own content (``metadata.gradviz_generated``); a file
without that record, or whose content no longer matches it (edited, or saved by JupyterLab), or
named differently from its source (a ``-Copy1``), is someone's work: the generator refuses and names
it, or with ``--force`` first keeps it as ``NAME.backup-N``. Students work in their own copy of
the course (``gradviz course``), so this only guards the sources.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

import nbformat

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_ANSWER = "<!-- BEGIN ANSWER -->"
END_ANSWER = "<!-- END ANSWER -->"
ANSWER_PROMPT = "_Your answer here._"

PROVENANCE = "gradviz_generated"  # the notebook metadata key of the generator's record


def stub(indent: str) -> list[str]:
    # The error may surface in a later cell that calls the student's function: say where to write.
    return [
        f"{indent}# YOUR CODE HERE",
        f'{indent}raise NotImplementedError("write your code at # YOUR CODE HERE, where this traceback ends, then rerun that cell and this one")',
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


def _content_sha256(notebook: nbformat.NotebookNode) -> str:
    """sha256 of the notebook as rendered without the generator's record."""
    bare = nbformat.from_dict(notebook)
    bare.metadata.pop(PROVENANCE, None)
    return hashlib.sha256(render(bare).encode()).hexdigest()


def generated_exercise(solution: nbformat.NotebookNode, name: str) -> str:
    """The text of exercise ``name``, carrying the generator's record of what it wrote."""
    exercise = exercise_from_solution(solution, name)
    exercise.metadata[PROVENANCE] = {"from": f"solutions/{name}", "sha256": _content_sha256(exercise)}
    return render(exercise)


def written_by_generator(path: Path) -> bool:
    """True if ``path`` is exactly what the generator wrote there (so it may be replaced)."""
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception:  # not a notebook at all: certainly not ours
        return False
    record = notebook.metadata.get(PROVENANCE)
    return (
        isinstance(record, dict)
        and record.get("from") == f"solutions/{path.name}"  # a copy under another name is not ours
        and record.get("sha256") == _content_sha256(notebook)
    )


def replaceable(path: Path, expected_text: str | None) -> bool:
    """True if replacing ``path`` loses nothing: the generator wrote it, or its content is already
    what the generator would write (e.g. an exercise from before the generator kept its record)."""
    if written_by_generator(path):
        return True
    if expected_text is None:
        return False
    try:
        current = nbformat.read(path, as_version=4)
    except Exception:
        return False
    return _content_sha256(current) == _content_sha256(nbformat.reads(expected_text, as_version=4))


def expected_exercises(solutions_dir: Path) -> dict[str, str]:
    """File name -> text of every exercise notebook that solutions_dir implies."""
    expected = {}
    for path in sorted(solutions_dir.glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        expected[path.name] = generated_exercise(solution, path.name)
    return expected


def stale_exercises(solutions_dir: Path, exercises_dir: Path) -> list[str]:
    """Names of exercise notebooks that are missing, outdated or left over."""
    expected = expected_exercises(solutions_dir)
    present = {p.name for p in exercises_dir.glob("*.ipynb")}
    stale = [name for name, text in expected.items()
             if name not in present or (exercises_dir / name).read_text() != text]
    return sorted(stale + [name for name in present - set(expected)])


class NotGeneratedError(RuntimeError):
    """exercises/ holds files the generator did not write; it will not replace or delete them."""


def _backup_name(path: Path) -> Path:
    number = 1
    while (candidate := path.with_name(f"{path.name}.backup-{number}")).exists():
        number += 1
    return candidate


def write_exercises(solutions_dir: Path, exercises_dir: Path, force: bool = False) -> list[str]:
    """Write exercises_dir from solutions_dir; return the names written or removed.

    A stale file the generator did not write is refused (``NotGeneratedError``, nothing written),
    or with ``force`` first renamed to ``NAME.backup-N``: never overwritten, never deleted.
    """
    exercises_dir.mkdir(parents=True, exist_ok=True)
    changed = stale_exercises(solutions_dir, exercises_dir)
    expected = expected_exercises(solutions_dir)
    foreign = [name for name in changed
               if (exercises_dir / name).exists() and not replaceable(exercises_dir / name, expected.get(name))]
    if foreign and not force:
        raise NotGeneratedError(
            f"not written by the generator (edited, saved by JupyterLab, or a copy): "
            f"{', '.join(f'{exercises_dir / name}' for name in foreign)}. exercises/ is generated: move "
            f"your work out of it (students work in a copy made by `gradviz course`), or run "
            f"`gradviz exercises --force` to keep each as NAME.backup-N and regenerate"
        )
    for name in changed:
        path = exercises_dir / name
        if name in foreign:
            backup = _backup_name(path)
            path.rename(backup)
            print(f"kept {path}, which the generator did not write, as {backup}")
        if name in expected:
            path.write_text(expected[name])
        elif path.exists():  # a left-over exercise the generator wrote, whose solution is gone
            path.unlink()
    return changed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="only report stale exercise notebooks; exit 1 if any")
    parser.add_argument("--force", action="store_true",
                        help="keep files the generator did not write as NAME.backup-N, then regenerate")
    parser.add_argument("--solutions", type=Path, default=Path("solutions"), help="default ./solutions")
    parser.add_argument("--exercises", type=Path, default=Path("exercises"), help="default ./exercises")


def run(args: argparse.Namespace) -> int:
    if not args.solutions.is_dir():
        raise SystemExit(f"gradviz exercises: no folder {args.solutions}: run it from the root of a clone, "
                         f"or give --solutions and --exercises")
    if args.check:
        stale = stale_exercises(args.solutions, args.exercises)
        expected = expected_exercises(args.solutions)
        for name in stale:
            path = args.exercises / name
            if path.exists() and not replaceable(path, expected.get(name)):
                print(f"stale: {path} was not written by `gradviz exercises` (edited or copied by hand?); "
                      f"move it out of the generated folder")
            else:
                print(f"stale: {path} (run `gradviz exercises`)")
        return 1 if stale else 0
    try:
        changed = write_exercises(args.solutions, args.exercises, force=args.force)
    except NotGeneratedError as error:
        raise SystemExit(f"gradviz exercises: {error}") from None
    print(f"exercises: {len(changed)} notebook(s) updated" + (": " + ", ".join(changed) if changed else ""))
    return 0
