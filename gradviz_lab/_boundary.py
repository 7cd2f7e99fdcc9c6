"""The boundary of a public call: what happens once, however many methods call each other inside.

A public method (``gradcam``, ``smoothgrad``, ``deletion_curve``, ...) is a plain function of
(model, x, ...) decorated with ``@public``. At the outermost call on a model the decorator

1. checks the input (``check_images``: a finite (B, C, H, W) batch on the model's device and dtype),
2. turns the ``target`` argument, whatever its form, into one score function (``targets.py``),
3. runs the body inside ``hooks.preserved_state(model)``, so the model leaves exactly as it came.

Inside, the bodies call each other freely (Guided Grad-CAM calls Grad-CAM and guided backprop,
SmoothGrad calls its base method once per batch of noisy copies): a public method called while
another one already holds the boundary for the same model skips steps 1 and 3 (its input was
made by the kit from a checked one, and the outer snapshot restores the model). Step 2 costs
nothing then: a score function is taken as it is.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from torch import nn

from . import _checks, hooks
from .targets import target_score

F = TypeVar("F", bound=Callable)

# ids of the models whose public call is running (per thread and task: a ContextVar)
_INSIDE: ContextVar[frozenset[int]] = ContextVar("gradviz_lab_inside", default=frozenset())


def inside_boundary(model: nn.Module) -> bool:
    """True while a public call on this model is running (its input checked, its state saved)."""
    return id(model) in _INSIDE.get()


@contextmanager
def boundary(model: nn.Module) -> Iterator[None]:
    """The model's state saved and restored around the block, once: nested blocks add nothing."""
    inside = _INSIDE.get()
    if id(model) in inside:
        yield
        return
    with hooks.preserved_state(model):
        token = _INSIDE.set(inside | {id(model)})
        try:
            yield
        finally:
            _INSIDE.reset(token)


def public(function: F) -> F:
    """Check the input, resolve the target and save the model once per public call (see the
    module docstring). ``function`` takes (model, x, ...) and, if it has one, a ``target``."""
    signature = inspect.signature(function)
    takes_target = "target" in signature.parameters

    @functools.wraps(function)
    def call(model, x, *args, **kwargs):
        if not inside_boundary(model):
            _checks.check_images(model, x)
        args, kwargs = with_score(model, x, args, kwargs)
        with boundary(model):
            return function(*args, **kwargs)

    def with_score(model, x, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if not takes_target:
            return (model, x, *args), kwargs
        bound = signature.bind(model, x, *args, **kwargs)
        bound.arguments["target"] = target_score(model, x, bound.arguments.get("target"))
        return bound.args, bound.kwargs

    return call  # type: ignore[return-value]
