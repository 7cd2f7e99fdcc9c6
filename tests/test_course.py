"""`gradviz course`: a student's copy that is refreshed when untouched and never overwritten when
changed; and the first cell of every notebook, in its three cases (installed, Colab, missing)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from gradviz_lab import cli, course
from gradviz_lab.course import MANIFEST, SETUP_CELL, copy_course, shipped_course_files

ROOT = Path(__file__).resolve().parents[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def shipped() -> dict[str, bytes]:
    return shipped_course_files()


def test_the_copy_is_every_lesson_exercise_and_solution_byte_for_byte(tmp_path, shipped):
    expected = sorted(f"{folder}/{path.name}" for folder in ("notebooks", "exercises", "solutions")
                      for path in (ROOT / folder).glob("*.ipynb"))
    assert sorted(shipped) == expected
    report = copy_course(tmp_path / "mine")
    assert sorted(report.copied) == expected and not report.kept
    for relative in expected:
        assert (tmp_path / "mine" / relative).read_bytes() == (ROOT / relative).read_bytes()
    recorded = json.loads((tmp_path / "mine" / MANIFEST).read_text())["files"]
    assert recorded == {relative: _sha(ROOT / relative) for relative in expected}


def test_second_copy_keeps_an_edited_exercise_and_names_it(tmp_path, capsys):
    mine = tmp_path / "mine"
    assert cli.main(["course", str(mine)]) == 0
    exercise = mine / "exercises" / "01_occlusion.ipynb"
    notebook = nbformat.read(exercise, as_version=4)
    notebook.cells[-1].source += "\n# my answer"
    nbformat.write(notebook, exercise)  # what a save from JupyterLab does
    edited = exercise.read_bytes()
    (mine / "exercises" / "01_occlusion-Copy1.ipynb").write_bytes(edited)  # a student's own file
    capsys.readouterr()
    assert cli.main(["course", str(mine)]) == 0
    printed = capsys.readouterr().out
    assert exercise.read_bytes() == edited
    assert "kept your changed exercises/01_occlusion.ipynb" in printed
    assert (mine / "exercises" / "01_occlusion-Copy1.ipynb").read_bytes() == edited
    assert "Copy1" not in printed  # files the kit does not ship are not its business
    # and a third run still keeps it: the manifest did not adopt the student's version
    assert copy_course(mine).kept == ["exercises/01_occlusion.ipynb"]


def test_an_unchanged_file_from_an_older_kit_is_refreshed(tmp_path, shipped):
    mine = tmp_path / "mine"
    copy_course(mine)
    lesson = mine / "notebooks" / "01_occlusion.ipynb"
    older = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'
    lesson.write_bytes(older)  # as an older kit wrote it, and recorded it:
    manifest = json.loads((mine / MANIFEST).read_text())
    manifest["files"]["notebooks/01_occlusion.ipynb"] = hashlib.sha256(older).hexdigest()
    (mine / MANIFEST).write_text(json.dumps(manifest))
    report = copy_course(mine)
    assert report.refreshed == ["notebooks/01_occlusion.ipynb"] and report.kept == []
    assert lesson.read_bytes() == shipped["notebooks/01_occlusion.ipynb"]


def test_force_saves_the_changed_file_aside_before_copying(tmp_path, shipped):
    mine = tmp_path / "mine"
    copy_course(mine)
    exercise = mine / "exercises" / "02_saliency.ipynb"
    exercise.write_bytes(b"my work, first version")
    (mine / "exercises" / "02_saliency.yours-1.ipynb").write_bytes(b"an earlier aside")
    report = copy_course(mine, force=True)
    assert report.saved_aside == {"exercises/02_saliency.ipynb": "exercises/02_saliency.yours-2.ipynb"}
    assert (mine / "exercises" / "02_saliency.yours-2.ipynb").read_bytes() == b"my work, first version"
    assert (mine / "exercises" / "02_saliency.yours-1.ipynb").read_bytes() == b"an earlier aside"
    assert exercise.read_bytes() == shipped["exercises/02_saliency.ipynb"]


def test_files_present_without_a_manifest_count_as_yours(tmp_path):
    """No (or an unreadable) manifest: nothing present is known to be the kit's, so nothing is replaced."""
    mine = tmp_path / "mine"
    (mine / "notebooks").mkdir(parents=True)
    (mine / "notebooks" / "01_occlusion.ipynb").write_text("a notebook of mine with this name")
    (mine / MANIFEST).write_text("{not json")
    report = copy_course(mine)
    assert report.kept == ["notebooks/01_occlusion.ipynb"]
    assert (mine / "notebooks" / "01_occlusion.ipynb").read_text() == "a notebook of mine with this name"


def test_a_copy_never_writes_into_the_sources(tmp_path):
    before = {path: _sha(path) for folder in course.COURSE_FOLDERS for path in (ROOT / folder).glob("*.ipynb")}
    copy_course(tmp_path / "mine")
    after = {path: _sha(path) for folder in course.COURSE_FOLDERS for path in (ROOT / folder).glob("*.ipynb")}
    assert after == before


# --------------------------------------------------------------------------------------------
# The first cell
# --------------------------------------------------------------------------------------------

NOTEBOOKS = sorted(p for folder in ("notebooks", "exercises", "solutions") for p in (ROOT / folder).glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_notebook_starts_with_the_setup_cell_and_no_output(path):
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "code" and first.source == SETUP_CELL, (
        f"{path.name}: run `python scripts/add_setup_cell.py` to insert the setup cell")
    assert first.outputs == []  # so nbval expects nothing from it


# The cell runs in a real IPython shell (for its %pip line), in a fresh interpreter, with the three
# situations simulated: gradviz_lab importable or blocked, google.colab present or not, and the
# %pip magic replaced by one that records its arguments and then "installs" the package.
RUN_CELL = r"""
import json, sys, types
from IPython.core.interactiveshell import InteractiveShell

installed, colab, source = json.loads(sys.argv[1])
if not installed:
    real = sys.modules.pop("gradviz_lab", None)
    sys.modules["gradviz_lab"] = None  # `import gradviz_lab` now raises ModuleNotFoundError
if colab:
    google = types.ModuleType("google"); google.colab = types.ModuleType("google.colab")
    sys.modules.update({"google": google, "google.colab": google.colab})
shell = InteractiveShell.instance()
pip_calls = []

def fake_pip(line):
    pip_calls.append(line)
    del sys.modules["gradviz_lab"]  # the install makes the package importable

shell.register_magic_function(fake_pip, "line", "pip")
result = shell.run_cell(source)
error = result.error_in_exec
print("RESULT " + json.dumps({
    "pip": pip_calls,
    "error": type(error).__name__ if error else None,
    "message": str(error) if error else None,
    "imported": "gradviz_lab" in shell.user_ns,
}))
"""


def _run_setup_cell(installed: bool, colab: bool, env_spec: str | None = None) -> tuple[dict, str]:
    import os

    env = {key: value for key, value in os.environ.items() if key != "GRADVIZ_INSTALL_SPEC"}
    if env_spec is not None:
        env["GRADVIZ_INSTALL_SPEC"] = env_spec
    done = subprocess.run([sys.executable, "-c", RUN_CELL, json.dumps([installed, colab, SETUP_CELL])],
                          capture_output=True, text=True, env=env, timeout=120)
    lines = done.stdout.splitlines()
    result = json.loads(next(line for line in lines if line.startswith("RESULT "))[len("RESULT "):])
    others = "\n".join(line for line in lines if not line.startswith("RESULT ")) + done.stderr
    return result, others


def test_setup_cell_where_the_kit_is_installed_does_nothing_visible():
    result, printed = _run_setup_cell(installed=True, colab=False)
    assert result == {"pip": [], "error": None, "message": None, "imported": True}
    assert printed.strip() == ""


@pytest.mark.parametrize("env_spec, expected", [
    (None, "gradviz-lab"),
    ("git+https://example.org/fork/gradviz-lab.git", "git+https://example.org/fork/gradviz-lab.git"),
])
def test_setup_cell_on_colab_installs_from_the_one_spec_then_goes_on(env_spec, expected):
    result, _ = _run_setup_cell(installed=False, colab=True, env_spec=env_spec)
    assert result["pip"] == [f"install --quiet {expected}"]
    assert result["error"] is None and result["imported"]


def test_setup_cell_elsewhere_stops_with_one_line_saying_how_to_install():
    result, _ = _run_setup_cell(installed=False, colab=False, env_spec="gradviz-lab==0.1.0")
    assert result["pip"] == [] and result["error"] == "SystemExit"
    assert result["message"] == (
        "gradviz_lab is not installed: run `pip install gradviz-lab==0.1.0`, then restart the kernel")
