"""Warnings that name the caller's line: the first line outside the kit (and outside the
context-manager and decorator plumbing of the standard library), however deep inside the kit the
warning is raised. A fixed ``stacklevel`` would name a line of the kit's own plumbing as soon as a
call goes through one more layer of it (the public-call boundary, a context manager)."""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from pathlib import Path

_INSIDE = (str(Path(__file__).resolve().parent), str(Path(contextlib.__file__).resolve()),
           str(Path(functools.__file__).resolve()))


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)``, attributed to the first frame outside the kit."""
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_INSIDE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)  # + 1: this function's own frame
