"""A new backward pass through every ``nn.ReLU`` (deconvnet, guided backprop), and the warnings
for the ReLUs it cannot change."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .._warnings import warn

# --- changing the backward pass of nn.ReLU ---------------------------------------------------

# rule(grad_output, relu_input) -> grad_input: what flows back through one ReLU.
ReluRule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class _ReLUWithRule(torch.autograd.Function):
    """The ReLU's own output a = max(0, s), passed on unchanged; ``rule(g, s)`` sent back to s.

    The forward pass computes nothing: the ReLU has already computed a (recomputing max(0, s)
    here cost a pass over every activation map). The backward pass sends ``rule(g, s)`` to the
    ReLU's input s and nothing to a: the ReLU's own backward 1{s>0} g receives no gradient.
    """

    @staticmethod
    def forward(ctx, s: torch.Tensor, a: torch.Tensor, rule: ReluRule) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(s)
        ctx.rule = rule
        return a.view_as(a)  # a new tensor object (sharing a's memory) for this node to own

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (s,) = ctx.saved_tensors
        return ctx.rule(grad_output, s), None, None


class FunctionalReLUWarning(UserWarning):
    """The model calls relu as a function, which a hook on nn.ReLU modules cannot change."""


class NoReLUWarning(UserWarning):
    """The model has no ReLU at all (e.g. softplus activations): a ReLU rule changes nothing."""


_FUNCTIONAL_RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu,
                     torch.Tensor.relu_}


class _FunctionalReLUSpy(TorchFunctionMode):
    """Counts relu calls made by the model's forward pass outside its nn.ReLU modules."""

    def __init__(self) -> None:
        super().__init__()
        self.inside_model = 0
        self.inside_relu_module = 0
        self.functional_calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _FUNCTIONAL_RELUS and self.inside_model and not self.inside_relu_module:
            self.functional_calls += 1
        return func(*args, **(kwargs or {}))


@contextmanager
def relu_backward_rule(model: nn.Module, rule: ReluRule) -> Iterator[None]:
    """Inside this block, back-propagation through every ``nn.ReLU`` of the model uses ``rule``.

    How: a forward pre-hook keeps the ReLU's input s (a copy when the ReLU works in place, since
    the ReLU is about to overwrite it), and a forward hook passes the ReLU's output through
    ``_ReLUWithRule``: the same values, with a backward pass that sends ``rule(g, s)`` to s
    (the ReLU's own backward receives nothing). This works with ``ReLU(inplace=True)`` and with
    one ReLU module called several times (each call keeps its own input).

    Limits, said plainly: only ``nn.ReLU`` modules are changed. A relu called as a function
    (``F.relu``, ``torch.relu``, ``x.relu()``) cannot be hooked; such calls are detected during
    the forward pass and reported with a ``FunctionalReLUWarning``, and through them the plain
    gradient flows. A model with no ReLU at all (no module, no functional call) gets a
    ``NoReLUWarning``: the block changes nothing. ReLU variants and other activations
    (``nn.ReLU6``, ``nn.LeakyReLU``, ``nn.Softplus``, ``clamp(min=0)``) are neither changed nor
    detected.
    """
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    kept_inputs: dict[int, list[torch.Tensor]] = {id(m): [] for m in relus}
    spy = _FunctionalReLUSpy()

    def keep_input(module: nn.Module, inputs: tuple) -> None:
        s = inputs[0]
        kept_inputs[id(module)].append(s.clone() if module.inplace else s)
        spy.inside_relu_module += 1

    def apply_rule(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        spy.inside_relu_module -= 1
        return _ReLUWithRule.apply(kept_inputs[id(module)].pop(), output, rule)

    # The spy watches the model's forward passes only: a function mode slows every torch call
    # it sees, and the backward pass and the code around the model need no watching.
    def enter_model(_module: nn.Module, _inputs: tuple) -> None:
        spy.inside_model += 1
        if spy.inside_model == 1:
            spy.__enter__()

    def leave_model(_module: nn.Module, _inputs: tuple, _output: object) -> None:
        if spy.inside_model == 1:
            spy.__exit__(None, None, None)
        spy.inside_model -= 1

    handles = [m.register_forward_pre_hook(keep_input) for m in relus]
    handles += [m.register_forward_hook(apply_rule) for m in relus]
    handles += [model.register_forward_pre_hook(enter_model),
                model.register_forward_hook(leave_model)]
    try:
        yield
    finally:
        if spy.inside_model:  # a forward pass raised: its leave_model hook did not run
            spy.__exit__(None, None, None)
            spy.inside_model = 0
        for handle in handles:
            handle.remove()
    if spy.functional_calls:
        warn(
            f"the model called relu as a function {spy.functional_calls} time(s) (F.relu, "
            "torch.relu or x.relu()); only nn.ReLU modules can be changed, so the plain gradient "
            "flowed through those calls. Use nn.ReLU modules for deconvnet/guided backprop.",
            FunctionalReLUWarning,
        )
    elif not relus:
        warn(
            f"{type(model).__name__} has no nn.ReLU module and calls no relu"
            f"{_activations_named(model)}, so the backward rule changed nothing: deconvnet and "
            "guided backprop are rules for ReLUs, and here they equal the plain gradient.",
            NoReLUWarning,
        )
    elif any(isinstance(m, nn.GELU) for m in model.modules()):  # a transformer with a ReLU part
        warn(
            f"{type(model).__name__} has GELU activations besides its nn.ReLU modules: the rule "
            "changes the ReLUs only, and through every GELU the plain gradient flows, so this is "
            "deconvnet/guided backprop on part of the network (its ReLU layers) only.",
            NoReLUWarning,
        )


def _activations_named(model: nn.Module) -> str:
    """" (its activations: GELU)" for a transformer's GELUs, else "" (lesson 06 prints the
    softplus model's message as it is)."""
    return " (its activations: GELU)" if any(isinstance(m, nn.GELU) for m in model.modules()) else ""
