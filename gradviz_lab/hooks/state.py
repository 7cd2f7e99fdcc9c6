"""What a model's state is (``ModelState``), and putting it back: ``preserved_state``,
``training_mode``, ``count_hooks``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .._warnings import warn

# The dicts in which nn.Module keeps its hooks (hook id -> function).
_HOOK_DICTS = (
    "_forward_pre_hooks",
    "_forward_hooks",
    "_backward_pre_hooks",
    "_backward_hooks",
)
_HOOK_SIDE_DICTS = (
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
)


def count_hooks(model: nn.Module) -> int:
    """Number of forward/backward hooks registered on the model and all its submodules."""
    return sum(len(getattr(m, d, {})) for m in model.modules() for d in _HOOK_DICTS)


# --- preserved_state -------------------------------------------------------------------------


@dataclass
class ModelState:
    """Everything an explanation could change in a model, as ``of(model)`` found it: the
    train/eval flag of every module, ``requires_grad`` of every parameter, every parameter's
    ``.grad`` (the same tensor, its values copied; None stays None), every buffer's values
    (BatchNorm statistics move when a model in train mode runs forward) and the ids of every
    module's hooks. ``restore()`` puts all of it back. (No method of the kit writes weights.)"""

    modes: list[tuple[nn.Module, bool]]
    requires_grad: list[tuple[nn.Parameter, bool]]
    grads: list[tuple[torch.Tensor, torch.Tensor] | None]
    buffers: list[tuple[torch.Tensor, torch.Tensor]]
    hook_ids: list[tuple[nn.Module, dict[str, set[int]]]]

    @classmethod
    def of(cls, model: nn.Module) -> ModelState:
        params = list(model.parameters())
        return cls(
            modes=_modes(model),
            requires_grad=[(p, p.requires_grad) for p in params],
            grads=[None if p.grad is None else _snapshot(p.grad) for p in params],
            buffers=[_snapshot(b) for b in model.buffers()],
            hook_ids=[(m, {d: set(getattr(m, d, {})) for d in _HOOK_DICTS}) for m in model.modules()],
        )

    def restore(self) -> int:
        """Put everything back; returns the number of hooks added since and now removed."""
        _restore_modes(self.modes)
        with torch.no_grad():
            for (p, flag), saved in zip(self.requires_grad, self.grads):
                p.requires_grad_(flag)
                p.grad = None if saved is None else _restored(*saved)
            for saved in self.buffers:
                _restored(*saved)
        return _remove_new_hooks(self.hook_ids)


@contextmanager
def preserved_state(model: nn.Module) -> Iterator[nn.Module]:
    """Restore, on exit, everything an explanation could change in the model (``ModelState``),
    also when the block raises. Module hooks added inside and not removed are removed, with a
    warning, since a leaked hook would silently change every later forward pass."""
    state = ModelState.of(model)
    try:
        yield model
    finally:
        leaked = state.restore()
        if leaked:
            warn(f"removed {leaked} hook(s) left on the model", RuntimeWarning)


@contextmanager
def training_mode(model: nn.Module, training: bool | None = None) -> Iterator[nn.Module]:
    """Every module's own train/eval flag restored on exit (not ``model.train(flag)``, which
    would give every submodule the top module's flag); with training=True or False, the block
    runs with ``model.train(training)``."""
    modes = _modes(model)
    if training is not None:
        model.train(training)
    try:
        yield model
    finally:
        _restore_modes(modes)


def _modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    return [(m, m.training) for m in model.modules()]


def _restore_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    for module, flag in modes:
        module.training = flag


def _snapshot(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return t, t.detach().clone()


def _restored(t: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    # Compare values, not version counters: batch norm updates its running statistics in place
    # without bumping their version. An untouched tensor is not written to, so a graph the user
    # built before the call can still back-propagate through it.
    if not torch.equal(t, values):
        t.copy_(values)
    return t


def _remove_new_hooks(hook_ids: list[tuple[nn.Module, dict[str, set[int]]]]) -> int:
    leaked = 0
    for module, before in hook_ids:
        for d, ids in before.items():
            hooks = getattr(module, d, {})
            for key in [k for k in hooks if k not in ids]:
                del hooks[key]
                for side in _HOOK_SIDE_DICTS:
                    getattr(module, side, {}).pop(key, None)
                leaked += 1
    return leaked
