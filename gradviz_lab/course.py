"""``gradviz course [DIR]``: a student's own copy of the course, never overwritten.

The lessons (``notebooks/``), the exercises and their solutions are the course's *sources*: the
installed package carries them (``gradviz_lab.shipped``) and, in a clone, they are the tracked
folders that the tests check. A student works in a copy of them, made by this command (``make lab``
and ``gradviz lab`` make it first), so that running and saving notebooks never touches the sources.

Copying again is safe. A manifest in the copy, ``.gradviz-course.json``, records the sha256 of every
file as the kit wrote it; on the next run each file is

- *copied* if it is not there yet;
- *refreshed* to the kit's current version if it is still exactly what the kit wrote;
- *kept* if you changed it (its sha256 differs from the recorded one; saving a notebook in
  JupyterLab counts as a change, even without an edit), and reported;
- with ``--force``, a changed file is first *saved aside* as ``NAME.yours-N.ipynb``, then the kit's
  version is copied: nothing is ever lost.

Files the kit does not ship (your own notebooks, ``figures/``, ``runs/``) are never looked at.

This module also holds ``SETUP_CELL``, the first cell of every lesson, exercise and solution.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

from . import __version__
from .shipped import shipped_dir

COURSE_FOLDERS: tuple[str, ...] = ("notebooks", "exercises", "solutions")
MANIFEST = ".gradviz-course.json"
DEFAULT_DIR = Path("gradviz-lab")  # relative: in the folder the command runs from

# The first cell of every notebook of the course (scripts/add_setup_cell.py inserts it). Where
# gradviz_lab imports it prints nothing, so nbval's stored outputs are unchanged. On Colab it
# installs the kit from one install spec (GRADVIZ_INSTALL_SPEC, default the package's name: a fork
# or a wheel URL can be given instead); anywhere else it stops with the one line that says how.
SETUP_CELL = """\
# Setup: nothing happens where gradviz_lab is installed; on Colab this installs it first.
try:
    import gradviz_lab
except ModuleNotFoundError:
    import os, sys
    GRADVIZ_INSTALL_SPEC = os.environ.get("GRADVIZ_INSTALL_SPEC", "gradviz-lab")
    if "google.colab" not in sys.modules:
        raise SystemExit(f"gradviz_lab is not installed: run `pip install {GRADVIZ_INSTALL_SPEC}`, then restart the kernel")
    %pip install --quiet {GRADVIZ_INSTALL_SPEC}
    import gradviz_lab"""
SETUP_CELL_ID = "gradviz-setup"  # a fixed cell id, so that inserting the cell is reproducible


def sha256_bytes(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def shipped_course_files() -> dict[str, bytes]:
    """Relative path (``notebooks/01_occlusion.ipynb``) -> content, for every shipped notebook."""
    files = {}
    for folder in COURSE_FOLDERS:
        for path in sorted(shipped_dir(folder).glob("*.ipynb")):
            files[f"{folder}/{path.name}"] = path.read_bytes()
    return files


def write_atomically(path: Path, content: bytes) -> None:
    """Write through a temporary file and a rename: an interrupted copy never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def aside_name(path: Path) -> Path:
    """The first free ``NAME.yours-N.SUFFIX`` beside ``path``."""
    number = 1
    while (candidate := path.with_name(f"{path.stem}.yours-{number}{path.suffix}")).exists():
        number += 1
    return candidate


def read_manifest(course_dir: Path) -> dict[str, str]:
    """Relative path -> sha256 of what the kit last wrote there ({} if none or unreadable: then
    every file already present counts as yours, the safe reading)."""
    try:
        return dict(json.loads((course_dir / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


@dataclasses.dataclass
class CourseReport:
    """What ``copy_course`` did, file by file (relative paths)."""

    course_dir: Path
    copied: list[str] = dataclasses.field(default_factory=list)
    refreshed: list[str] = dataclasses.field(default_factory=list)
    kept: list[str] = dataclasses.field(default_factory=list)  # changed by you, left as they are
    saved_aside: dict[str, str] = dataclasses.field(default_factory=dict)  # yours -> where it went
    up_to_date: list[str] = dataclasses.field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"gradviz course: {self.course_dir}"]
        if self.copied:
            out.append(f"  copied {len(self.copied)} new file(s)")
        if self.refreshed:
            out.append(f"  refreshed {len(self.refreshed)} file(s) you had not changed: {', '.join(self.refreshed)}")
        if self.up_to_date:
            out.append(f"  {len(self.up_to_date)} file(s) already up to date")
        for path in self.kept:
            out.append(f"  kept your changed {path} (the kit's version differs; `gradviz course --force` "
                       f"saves yours aside as {Path(path).stem}.yours-N.ipynb and copies the kit's)")
        for path, aside in self.saved_aside.items():
            out.append(f"  saved your {path} as {aside}, then copied the kit's version")
        return out


def copy_course(course_dir: str | os.PathLike, force: bool = False) -> CourseReport:
    """Copy the shipped notebooks into ``course_dir`` without losing any change made there."""
    course_dir = Path(course_dir)
    report = CourseReport(course_dir)
    recorded = read_manifest(course_dir)
    manifest = dict(recorded)
    for relative, content in shipped_course_files().items():
        target, shipped_hash = course_dir / relative, sha256_bytes(content)
        if not target.exists():
            write_atomically(target, content)
            report.copied.append(relative)
        else:
            current_hash = sha256_bytes(target.read_bytes())
            if current_hash == shipped_hash:
                report.up_to_date.append(relative)
            elif recorded.get(relative) == current_hash:  # still what the kit wrote: refresh it
                write_atomically(target, content)
                report.refreshed.append(relative)
            elif force:
                aside = aside_name(target)
                target.rename(aside)
                write_atomically(target, content)
                report.saved_aside[relative] = aside.relative_to(course_dir).as_posix()
            else:
                report.kept.append(relative)
                continue  # the manifest keeps its old hash: the file stays yours
        manifest[relative] = shipped_hash
    write_atomically(
        course_dir / MANIFEST,
        (json.dumps({"kit_version": __version__, "files": manifest}, indent=1, sort_keys=True) + "\n").encode(),
    )
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR,
                        help=f"where to put your copy (default ./{DEFAULT_DIR})")
    parser.add_argument("--force", action="store_true",
                        help="replace files you changed by the kit's version, after saving yours as NAME.yours-N.ipynb")


def run(args: argparse.Namespace) -> int:
    report = copy_course(args.dir, force=args.force)
    print("\n".join(report.lines()))
    print(f"  open it with: gradviz lab {args.dir}")
    return 0
