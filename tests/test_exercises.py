"""exercises/ is generated from solutions/: the stripping rules, staleness, and running to the first stub."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from gradviz_lab.exercises import (
    exercise_from_solution,
    stale_exercises,
    strip_answers,
    strip_code,
    write_exercises,
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
        '    raise NotImplementedError("write your code here, then run this cell again")',
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


def test_write_then_check_round_trip(tmp_path):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    nb = new_notebook(cells=[new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")])
    nbformat.write(nb, solutions / "01_demo.ipynb")
    (exercises).mkdir()
    (exercises / "99_orphan.ipynb").write_text("{}")
    assert stale_exercises(solutions, exercises) == ["01_demo.ipynb", "99_orphan.ipynb"]
    assert write_exercises(solutions, exercises) == ["01_demo.ipynb", "99_orphan.ipynb"]
    assert stale_exercises(solutions, exercises) == []
    assert not (exercises / "99_orphan.ipynb").exists()
    # editing the solution makes the exercise stale again
    nb.cells.append(new_code_cell("y = 2"))
    nbformat.write(nb, solutions / "01_demo.ipynb")
    assert stale_exercises(solutions, exercises) == ["01_demo.ipynb"]


def test_shipped_exercises_are_up_to_date():
    stale = stale_exercises(ROOT / "solutions", ROOT / "exercises")
    assert not stale, f"exercises/ is stale for {stale}: run `make exercises` and commit"


EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))


@pytest.mark.parametrize("path", EXERCISES, ids=[p.name for p in EXERCISES])
def test_exercise_runs_up_to_its_first_stub(path):
    """Every cell before the first stub runs; the first error, if any, is that stub's."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    # A stub inside a function (a def the checker calls) does not stop the run; the first stub
    # whose raise stands at the top level of its cell does.
    first_stub = next(i for i, c in enumerate(code)
                      if "# YOUR CODE HERE" in c.source and "\nraise NotImplementedError" in "\n" + c.source)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with pytest.raises(CellExecutionError) as info:  # an exercise that runs to the end is wrong too
        client.execute()
    error = info.value
    assert error.ename == "NotImplementedError", f"{path.name}: {error.ename}: {error.evalue}"
    failed = [i for i, c in enumerate(code)
              if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    # the cell that stopped the run is the first stub (the stub is called in its own cell)
    assert failed == [first_stub], f"{path.name}: failed cells {failed}, first stub {first_stub}"
    # the function stubs before it were handed to a checker, which greeted them with one line
    printed = "".join(o.get("text", "") for c in code[:first_stub] for o in c.get("outputs", []))
    assert "not implemented yet" in printed, path.name


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "solutions").glob("*.ipynb")),
                         ids=lambda p: p.stem)
def test_every_model_answer_is_written(path):
    """Each BEGIN/END ANSWER region of a solution holds a real answer, not a placeholder."""
    import re

    solution = nbformat.read(path, as_version=4)
    answers = [
        match.group(1).strip()
        for cell in solution.cells if cell.cell_type == "markdown"
        for match in re.finditer(r"<!-- BEGIN ANSWER -->(.*?)<!-- END ANSWER -->", cell.source, re.DOTALL)
    ]
    placeholders = [a for a in answers if re.fullmatch(r"(ANSWER_\w*|TODO.*|_Your answer here\._|)", a)]
    assert placeholders == [], f"{path.name}: unwritten answers {placeholders}"
