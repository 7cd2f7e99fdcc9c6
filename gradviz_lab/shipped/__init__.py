"""Where the kit's shipped folders are: ``data/``, ``notebooks/``, ``exercises/``, ``solutions/``.

The repository keeps them at its top level; the wheel and the sdist carry them inside the package,
as the data-only subpackages ``gradviz_lab.shipped.data``, ``.notebooks``, ``.exercises`` and
``.solutions`` (pyproject.toml maps each to its top-level folder). ``shipped_dir(folder)`` answers,
in this order:

1. ``data`` only: the folder named by the environment variable ``GRADVIZ_DATA``, if set;
2. the folder at the top of the source checkout this package was imported from (a clone run with
   ``PYTHONPATH`` set, or an editable install), so that a second checkout on ``PYTHONPATH`` reads
   its own files and never those of the copy installed in the environment;
3. the copy inside the installed package, found with ``importlib.resources`` (a wheel, or an sdist
   built into one).

Nothing here writes: the shipped files are read-only sources, and what the kit produces (trained
weights, figures, a student's copy of the course) goes into the user's own folders.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.resources
import os
from pathlib import Path

FOLDERS: tuple[str, ...] = ("data", "notebooks", "exercises", "solutions")
_ABOVE_PACKAGE = Path(__file__).resolve().parents[2]  # the folder holding gradviz_lab/
_ZIP_EXTRACTS = contextlib.ExitStack()  # files extracted from a zipped install live until exit
atexit.register(_ZIP_EXTRACTS.close)


class ShippedFileMissingError(FileNotFoundError):
    """A file the kit ships is not where the installed kit looks for it."""


def source_checkout() -> Path | None:
    """The top of the gradviz-lab source checkout this package sits in, or None if installed.

    A checkout is recognised by its pyproject.toml naming the project, not by a ``data/`` folder
    alone, so that an unrelated ``site-packages/data`` is never mistaken for the kit's.
    """
    pyproject = _ABOVE_PACKAGE / "pyproject.toml"
    try:
        is_ours = 'name = "gradviz-lab"' in pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return _ABOVE_PACKAGE if is_ours else None


def _installed_dir(folder: str) -> Path | None:
    # The folders are data-only (no __init__.py), so they are reached from this package, which is
    # a regular one, rather than imported themselves.
    resource = importlib.resources.files(__name__).joinpath(folder)
    if not resource.is_dir():
        return None
    if isinstance(resource, Path):
        return resource
    # A zipped install: extract the folder once, for the readers that need a real file
    # (importlib.resources.as_file copies a whole directory on Python 3.12 and later).
    return _ZIP_EXTRACTS.enter_context(importlib.resources.as_file(resource))


def shipped_dir(folder: str) -> Path:
    """The shipped folder ``folder`` (one of ``FOLDERS``), as a real directory on disk."""
    if folder not in FOLDERS:
        raise ValueError(f"unknown shipped folder {folder!r}; choose one of {', '.join(FOLDERS)}")
    if folder == "data" and os.environ.get("GRADVIZ_DATA"):
        return Path(os.environ["GRADVIZ_DATA"])
    checkout = source_checkout()
    if checkout is not None and (checkout / folder).is_dir():
        return checkout / folder
    installed = _installed_dir(folder)
    if installed is not None:
        return installed
    raise ShippedFileMissingError(
        f"the kit's {folder}/ folder is neither in a source checkout nor inside the installed "
        f"package; {_HOW_TO_GET_IT}"
    )


_HOW_TO_GET_IT = (
    "to get the shipped files, reinstall the kit from its wheel or sdist "
    "(`pip install --force-reinstall gradviz-lab`), or from a clone (`pip install .` or "
    "`make setup`), or point the environment variable GRADVIZ_DATA at a copy of the data/ folder"
)


def shipped_file(folder: str, *parts: str) -> Path:
    """A file inside a shipped folder, e.g. ``shipped_file("data", "photos", "cat.jpg")``; a
    missing file is an error that names it and says how to get it."""
    path = shipped_dir(folder).joinpath(*parts)
    if not path.is_file():
        raise ShippedFileMissingError(f"{path} is missing: it is one of the files the kit ships; {_HOW_TO_GET_IT}")
    return path
