"""exercises/ is generated from solutions/: the stripping rules, staleness, running to the first stub,
and what a student meets after a stub (Run All going on past it, tasks solved out of order)."""

from __future__ import annotations

import configparser
import functools
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from gradviz_lab import cli
from gradviz_lab.course import copy_course
from gradviz_lab.exercises import (
    BEGIN_SOLUTION,
    END_SOLUTION,
    NotGeneratedError,
    exercise_from_solution,
    stale_exercises,
    strip_answers,
    strip_code,
    write_exercises,
    written_by_generator,
)

ROOT = Path(__file__).resolve().parents[1]


def test_strip_code_keeps_indentation_and_surrounding_code():
    source = "\n".join([
        "def saliency(model, x, target):",
        "    x = x.clone()",
        "    ### BEGIN SOLUTION",
        "    grad = compute(x)",
        "    return grad.abs()",
        "    ### END SOLUTION",
        "",
        "answer = 1",
    ])
    assert strip_code(source).split("\n") == [
        "def saliency(model, x, target):",
        "    x = x.clone()",
        "    # YOUR CODE HERE",
        '    raise NotImplementedError("write your code at # YOUR CODE HERE, where this traceback ends, then rerun that cell and this one")',
        "",
        "answer = 1",
    ]


def test_strip_code_handles_several_regions_and_leaves_plain_cells_alone():
    source = "### BEGIN SOLUTION\na = 1\n### END SOLUTION\nb = 2\n### BEGIN SOLUTION\nc = 3\n### END SOLUTION"
    stripped = strip_code(source)
    assert stripped.count("raise NotImplementedError") == 2
    assert "a = 1" not in stripped and "c = 3" not in stripped and "b = 2" in stripped
    assert strip_code("print('hello')") == "print('hello')"


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
])
def test_strip_code_rejects_unbalanced_markers(source, problem):
    with pytest.raises(ValueError, match=problem):
        strip_code(source, "lesson.ipynb, cell 3")


def test_strip_answers():
    source = "Why?\n\n<!-- BEGIN ANSWER -->\nBecause the ReLU\nkills it.\n<!-- END ANSWER -->\nNext."
    assert strip_answers(source) == "Why?\n\n_Your answer here._\nNext."
    with pytest.raises(ValueError, match="unbalanced"):
        strip_answers("<!-- BEGIN ANSWER --> forgot to close")


def test_exercise_has_no_outputs_and_keeps_the_solution_untouched():
    cell = new_code_cell("### BEGIN SOLUTION\nprint(42)\n### END SOLUTION", execution_count=3,
                         outputs=[new_output("stream", name="stdout", text="42\n")])
    solution = new_notebook(cells=[new_markdown_cell("# Title"), cell])
    exercise = exercise_from_solution(solution)
    assert exercise.cells[1].outputs == [] and exercise.cells[1].execution_count is None
    assert "print(42)" not in exercise.cells[1].source
    assert solution.cells[1].outputs and "print(42)" in solution.cells[1].source  # not mutated


def test_exercise_drops_saved_widget_state_and_other_notebook_metadata():
    solution = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Task")])
    solution.metadata.update(
        kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
        language_info={"name": "python"},
        widgets={"application/vnd.jupyter.widget-state+json": {"state": {"a": "rendered dashboard"}}},
    )
    exercise = exercise_from_solution(solution)
    assert set(exercise.metadata) == {"kernelspec", "language_info"}
    assert "widgets" in solution.metadata  # the solution itself is untouched


def _demo_solutions(tmp_path: Path) -> tuple[Path, Path, nbformat.NotebookNode]:
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    nb = new_notebook(cells=[new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")])
    nbformat.write(nb, solutions / "01_demo.ipynb")
    return solutions, exercises, nb


def test_write_then_check_round_trip(tmp_path):
    solutions, exercises, nb = _demo_solutions(tmp_path)
    nbformat.write(nb, solutions / "99_dropped.ipynb")
    assert write_exercises(solutions, exercises) == ["01_demo.ipynb", "99_dropped.ipynb"]
    assert stale_exercises(solutions, exercises) == []
    assert written_by_generator(exercises / "01_demo.ipynb")
    # a solution removed: its exercise, written by the generator, is left over and removed
    (solutions / "99_dropped.ipynb").unlink()
    assert stale_exercises(solutions, exercises) == ["99_dropped.ipynb"]
    assert write_exercises(solutions, exercises) == ["99_dropped.ipynb"]
    assert not (exercises / "99_dropped.ipynb").exists()
    # editing the solution makes the exercise stale again
    nb.cells.append(new_code_cell("y = 2"))
    nbformat.write(nb, solutions / "01_demo.ipynb")
    assert stale_exercises(solutions, exercises) == ["01_demo.ipynb"]
    assert write_exercises(solutions, exercises) == ["01_demo.ipynb"]
    assert "y = 2" in (exercises / "01_demo.ipynb").read_text()


def test_generator_refuses_to_replace_an_edited_exercise_and_names_it(tmp_path):
    solutions, exercises, nb = _demo_solutions(tmp_path)
    write_exercises(solutions, exercises)
    exercise = nbformat.read(exercises / "01_demo.ipynb", as_version=4)
    exercise.cells[0].source = "x = 'my answer'"
    nbformat.write(exercise, exercises / "01_demo.ipynb")
    answer = (exercises / "01_demo.ipynb").read_bytes()
    nb.cells.append(new_code_cell("y = 2"))  # the solution moves on: the exercise is stale
    nbformat.write(nb, solutions / "01_demo.ipynb")
    with pytest.raises(NotGeneratedError, match=r"01_demo\.ipynb.*--force"):
        write_exercises(solutions, exercises)
    assert (exercises / "01_demo.ipynb").read_bytes() == answer
    with pytest.raises(SystemExit, match="not written by the generator"):
        cli.main(["exercises", "--solutions", str(solutions), "--exercises", str(exercises)])
    assert (exercises / "01_demo.ipynb").read_bytes() == answer
    # forced: the answer is kept beside, under a name no tool collects, then the exercise is regenerated
    assert write_exercises(solutions, exercises, force=True) == ["01_demo.ipynb"]
    assert (exercises / "01_demo.ipynb.backup-1").read_bytes() == answer
    assert written_by_generator(exercises / "01_demo.ipynb")


def test_a_jupyterlab_save_without_edits_counts_as_the_users(tmp_path):
    """Saving rewrites the notebook's metadata (kernelspec, language_info): not the generator's file."""
    solutions, exercises, nb = _demo_solutions(tmp_path)
    write_exercises(solutions, exercises)
    saved = nbformat.read(exercises / "01_demo.ipynb", as_version=4)
    saved.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(saved, exercises / "01_demo.ipynb")
    assert not written_by_generator(exercises / "01_demo.ipynb")
    assert stale_exercises(solutions, exercises) == ["01_demo.ipynb"]
    with pytest.raises(NotGeneratedError):
        write_exercises(solutions, exercises)


def test_generator_never_deletes_a_students_copy(tmp_path):
    """JupyterLab's "Duplicate" gives 01_demo-Copy1.ipynb with the same bytes: still not the generator's."""
    solutions, exercises, _ = _demo_solutions(tmp_path)
    write_exercises(solutions, exercises)
    copy = exercises / "01_demo-Copy1.ipynb"
    copy.write_bytes((exercises / "01_demo.ipynb").read_bytes())
    assert not written_by_generator(copy)
    with pytest.raises(NotGeneratedError, match="01_demo-Copy1.ipynb"):
        write_exercises(solutions, exercises)
    assert copy.exists()
    write_exercises(solutions, exercises, force=True)
    assert not copy.exists() and (exercises / "01_demo-Copy1.ipynb.backup-1").is_file()


def test_an_exercise_saved_in_the_students_copy_leaves_the_sources_fresh(tmp_path):
    """In a clone: the student's workspace (made by `gradviz course`) is not what the staleness test,
    nbval or the generator read; saving there changes nothing for them, and regenerating never
    touches it."""
    clone = tmp_path / "clone"
    for folder in ("solutions", "exercises"):
        shutil.copytree(ROOT / folder, clone / folder)
    copy_course(clone / "workspace")
    saved = clone / "workspace" / "exercises" / "01_occlusion.ipynb"
    notebook = nbformat.read(saved, as_version=4)
    notebook.metadata["kernelspec"]["display_name"] = "Python 3 (ipykernel)"
    notebook.cells[-1].source += "\n# my answer"
    nbformat.write(notebook, saved)
    answer = saved.read_bytes()
    assert stale_exercises(clone / "solutions", clone / "exercises") == []
    solution = nbformat.read(clone / "solutions" / "01_occlusion.ipynb", as_version=4)
    solution.cells.append(new_code_cell("print('one more step')"))
    nbformat.write(solution, clone / "solutions" / "01_occlusion.ipynb")
    assert write_exercises(clone / "solutions", clone / "exercises") == ["01_occlusion.ipynb"]
    assert saved.read_bytes() == answer


def test_cli_outside_a_clone_says_where_to_run_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="no folder solutions: run it from the root of a clone"):
        cli.main(["exercises", "--check"])


def test_shipped_exercises_are_up_to_date():
    stale = stale_exercises(ROOT / "solutions", ROOT / "exercises")
    assert not stale, f"exercises/ is stale for {stale}: run `make exercises` and commit"


EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))

# What a student meets after a stub: "Run All" goes on past failing cells (as here, allow_errors),
# and a student who skips a task goes on to the next. A cell that cannot run yet must fail with the
# stub's own NotImplementedError (raised where the unsolved code is called), or print one of the
# course's one-line messages saying what to finish first; never a NameError, KeyError or checker
# verdict that comes only from an earlier unsolved task.
WAIT_MESSAGE = re.compile(r"not implemented yet|\bfirst\b|\bonce\b.+\bpass")


def _run_whole(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Execute every cell from exercises/ (as a student's Run All does), going on after errors."""
    from nbclient import NotebookClient

    client = NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(ROOT / "exercises")}})
    client.execute()
    return notebook


@functools.lru_cache(maxsize=None)
def _untouched_run(path: Path) -> nbformat.NotebookNode:
    """The exercise as shipped, run whole (shared by the tests that read it)."""
    return _run_whole(nbformat.read(path, as_version=4))


def _code(notebook: nbformat.NotebookNode) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _failures(notebook: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    """(code cell number, exception name, message) of every cell that failed."""
    return [(number, output.ename, output.evalue) for number, cell in enumerate(_code(notebook))
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def _printed(cell) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", [])
                   if output.get("output_type") == "stream")


@functools.lru_cache(maxsize=None)
def _sanitize_rules() -> tuple[tuple[str, str], ...]:
    """(regex, replacement) of each section of nbval_sanitize.cfg, read once."""
    config = configparser.ConfigParser()
    config.read(ROOT / "nbval_sanitize.cfg")
    return tuple((config[section]["regex"], config[section]["replace"]) for section in config.sections())


def _sanitised(text: str) -> str:
    """text with nbval_sanitize.cfg's volatile parts (timings, addresses) replaced, as nbval does."""
    for regex, replacement in _sanitize_rules():
        text = re.sub(regex, replacement, text)
    return text


def _partly_solved(solution: nbformat.NotebookNode, solved: set[int]) -> nbformat.NotebookNode:
    """The exercise of a student who has written the SOLUTION regions numbered in ``solved``
    (0 = the notebook's first region) and no other: those keep the solution's code, the rest are
    stubs."""
    notebook = nbformat.from_dict(solution)
    region, keep = 0, False
    for cell in _code(notebook):
        lines = []
        for line in cell.source.split("\n"):
            marker = line.strip()
            if marker == BEGIN_SOLUTION:
                keep, region = region in solved, region + 1
                if keep:
                    continue
            elif marker == END_SOLUTION and keep:
                keep = False
                continue
            lines.append(line)
        cell.source = "\n".join(lines)
    return exercise_from_solution(notebook)


def _regions(solution: nbformat.NotebookNode) -> int:
    return sum(cell.source.count(BEGIN_SOLUTION) for cell in _code(solution))


def test_partly_solved_keeps_exactly_the_regions_asked_for():
    solution = new_notebook(cells=[
        new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
        new_code_cell("### BEGIN SOLUTION\na = f()\n### END SOLUTION\nb = 2\n### BEGIN SOLUTION\nc = 3\n### END SOLUTION"),
    ])
    assert _regions(solution) == 3
    none = _partly_solved(solution, set())
    assert [c.source for c in none.cells] == [c.source for c in exercise_from_solution(solution).cells]
    middle = _partly_solved(solution, {1})
    assert middle.cells[0].source.count("raise NotImplementedError") == 1
    assert middle.cells[1].source.split("\n")[:2] == ["a = f()", "b = 2"]
    assert "c = 3" not in middle.cells[1].source and "raise NotImplementedError" in middle.cells[1].source
    every = _partly_solved(solution, {0, 1, 2})
    assert not any("NotImplementedError" in c.source or "SOLUTION" in c.source for c in every.cells)


@pytest.mark.parametrize("path", EXERCISES, ids=[p.name for p in EXERCISES])
def test_exercise_runs_up_to_its_first_stub(path):
    """Every cell before the first stub runs; the first error is that stub's."""
    notebook = _untouched_run(path)
    code = _code(notebook)
    # A stub inside a function (a def the checker calls) does not stop the run; the first stub
    # whose raise stands at the top level of its cell does.
    first_stub = next(i for i, c in enumerate(code)
                      if "# YOUR CODE HERE" in c.source and "\nraise NotImplementedError" in "\n" + c.source)
    failures = _failures(notebook)
    assert failures, f"{path.name} runs to the end without a single stub failing"
    cell, name, message = failures[0]
    assert name == "NotImplementedError", f"{path.name}: {name}: {message}"
    # the cell that stops the run is the first stub (the stub is called in its own cell)
    assert cell == first_stub, f"{path.name}: first failure in cell {cell}, first stub {first_stub}"
    # the function stubs before it were handed to a checker, which greeted them with one line
    printed = "".join(_printed(c) for c in code[:first_stub])
    assert "not implemented yet" in printed, path.name


@pytest.mark.parametrize("path", EXERCISES, ids=[p.name for p in EXERCISES])
def test_an_untouched_exercise_run_whole_fails_only_at_stubs_and_says_what_to_finish(path):
    """Run All on the exercise as shipped: each failing cell fails with NotImplementedError; each
    line a cell prints is the solution's own line there (the cell does not depend on the student)
    or a one-line 'not implemented yet' / '... first' / 'once ... passes' message."""
    notebook = _untouched_run(path)
    failures = _failures(notebook)
    assert [f for f in failures if f[1] != "NotImplementedError"] == [], path.name
    solution = nbformat.read(ROOT / "solutions" / path.name, as_version=4)
    unexpected = []
    for number, (ran, stored) in enumerate(zip(_code(notebook), _code(solution))):
        expected = set(_sanitised(_printed(stored)).splitlines())
        unexpected += [(number, line) for line in _printed(ran).splitlines()
                       if _sanitised(line) not in expected and not WAIT_MESSAGE.search(line)]
    assert unexpected == [], f"{path.name}: lines that only an unsolved task explains: {unexpected}"


SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_task_solved_but_the_first_fails_only_with_that_stub(path):
    """A student stuck on task 1 who goes on and solves the rest: the cells that need task 1 fail
    with its NotImplementedError (or wait for it), not with a name task 1 would have defined."""
    solution = nbformat.read(path, as_version=4)
    notebook = _run_whole(_partly_solved(solution, set(range(1, _regions(solution)))))
    assert [f for f in _failures(notebook) if f[1] != "NotImplementedError"] == [], path.name


def _sweep() -> list[tuple[Path, str, frozenset]]:
    """Every 'one region solved alone' and 'all regions but one solved' of every exercise ('all
    but the first' is left to test_every_task_solved_but_the_first_fails_only_with_that_stub)."""
    variants = []
    for path in SOLUTIONS:
        count = _regions(nbformat.read(path, as_version=4))
        variants += [(path, f"only {k}", frozenset({k})) for k in range(count)]
        variants += [(path, f"all but {k}", frozenset(range(count)) - {k}) for k in range(1, count)]
    return variants


@pytest.mark.slow
@pytest.mark.skipif(not (os.environ.get("CI") or os.environ.get("GRADVIZ_EXERCISE_SWEEP")),
                    reason="about 4 minutes on 2 cores: CI runs it (CI=true); here, set "
                           "GRADVIZ_EXERCISE_SWEEP=1 to run it")
@pytest.mark.parametrize("path, label, solved", _sweep(), ids=[f"{p.stem}-{l}" for p, l, _ in _sweep()])
def test_exercises_solved_out_of_order_fail_only_with_stubs(path, label, solved):
    """Every order a student may take: each SOLUTION region solved alone, and every region but
    one solved; whatever fails, fails with a stub's NotImplementedError."""
    notebook = _run_whole(_partly_solved(nbformat.read(path, as_version=4), set(solved)))
    assert [f for f in _failures(notebook) if f[1] != "NotImplementedError"] == [], f"{path.name} ({label})"


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "solutions").glob("*.ipynb")),
                         ids=lambda p: p.stem)
def test_every_model_answer_is_written(path):
    """Each BEGIN/END ANSWER region of a solution holds a real answer, not a placeholder."""
    solution = nbformat.read(path, as_version=4)
    answers = [
        match.group(1).strip()
        for cell in solution.cells if cell.cell_type == "markdown"
        for match in re.finditer(r"<!-- BEGIN ANSWER -->(.*?)<!-- END ANSWER -->", cell.source, re.DOTALL)
    ]
    placeholders = [a for a in answers if re.fullmatch(r"(ANSWER_\w*|TODO.*|_Your answer here\._|)", a)]
    assert placeholders == [], f"{path.name}: unwritten answers {placeholders}"
