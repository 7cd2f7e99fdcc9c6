"""Re-execute notebooks in place, top to bottom in a fresh kernel, as nbval will (its cwd is the
notebook's folder), so that their stored outputs are what a run gives today.

    .venv/bin/python scripts/execute_notebooks.py notebooks/06_integrated_gradients.ipynb ...

Only for the course's authors: after changing a lesson or a solution, run this, then
`make exercises` and `make test`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from traitlets.config import Config

from gradviz_lab.lab import kernel_encryption_config


def execute(path: Path, save: bool = True) -> float:
    """Run the notebook at ``path`` in a fresh kernel (cwd: its folder); store the outputs in the
    file when ``save``. Returns the seconds it took (benchmarks/bench_course.py times it so)."""
    notebook = nbformat.read(path, as_version=4)
    # encrypted kernel sockets where Jupyter can, as `gradviz lab` runs them (lab.py says why)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            config=Config(kernel_encryption_config()),
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    if save:
        nbformat.write(notebook, path)
    return seconds


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {execute(Path(name)):.1f} s", flush=True)
