"""Put the setup cell (``gradviz_lab.course.SETUP_CELL``) first in every lesson and solution, then
regenerate exercises/ from solutions/ (so the exercises get it too).

Run from the root of a clone, after any change to the cell or to the notebooks:

    python scripts/add_setup_cell.py

Idempotent: a notebook that already starts with the current cell is left byte for byte as it is;
an older version of the cell (the one with id ``gradviz-setup``) is replaced. Nothing else in a
notebook changes: the cell has no outputs, so nbval's stored outputs stay as they are.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # this clone's gradviz_lab, whatever is installed

from gradviz_lab.course import SETUP_CELL, SETUP_CELL_ID  # noqa: E402
from gradviz_lab.exercises import render, write_exercises  # noqa: E402


def with_setup_cell(notebook: nbformat.NotebookNode) -> bool:
    """Insert (or update) the setup cell as the first cell; True if the notebook changed."""
    cell = nbformat.v4.new_code_cell(SETUP_CELL, id=SETUP_CELL_ID)
    cells = notebook.cells
    if cells and cells[0].get("id") == SETUP_CELL_ID:
        if cells[0] == cell:
            return False
        cells[0] = cell
    else:
        cells.insert(0, cell)
    return True


def main() -> int:
    # First bring exercises/ up to date with the solutions as they are: an exercise that is exactly
    # what the generator makes is then recorded as the generator's (older ones carry no record), so
    # the regeneration below may replace it. A hand-edited exercise stops the script here, untouched.
    write_exercises(REPO_ROOT / "solutions", REPO_ROOT / "exercises")
    for folder in ("notebooks", "solutions"):
        for path in sorted((REPO_ROOT / folder).glob("*.ipynb")):
            notebook = nbformat.read(path, as_version=4)
            if with_setup_cell(notebook):
                path.write_text(render(notebook))
                print(f"setup cell: {path.relative_to(REPO_ROOT)}")
    changed = write_exercises(REPO_ROOT / "solutions", REPO_ROOT / "exercises")
    print(f"exercises regenerated: {len(changed)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
