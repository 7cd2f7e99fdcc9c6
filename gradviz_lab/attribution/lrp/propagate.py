"""The relevance pass: the model's own backward pass, with each layer's backward replaced by an
LRP rule, so relevance flows where gradients would.

``relevance_rules(model, composite)`` hooks every layer: an affine layer's output is replaced
by a node of the same values whose backward turns the relevance R of its outputs into the
relevance of its inputs by the layer's rule; element-wise activations pass relevance through;
max pooling sends it to the winner of each window (its gradient) or, with maxpool="average",
shares it as an average pool would; a batch norm is folded into the affine layer before it.
Inside the block a backward pass of (the score's gradient x the output) carries relevance, not
gradient, and arrives at the input as the relevance of each pixel. The hooks are removed on
exit, also after an error.

What it refuses, with the layer named: a module type it has no rule for (a transformer block, an
embedding...), a batch norm that does not follow a convolution or linear layer, and any
operation between modules that is not a reshape: a skip connection (``x + f(x)``, torchvision's
ResNet), a functional mean or relu, a concatenation. Those need a rule too (for a sum, sharing
relevance in proportion to each summand), which this module does not have: it refuses rather
than return a map that silently does not conserve relevance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn

from ... import hooks
from . import layers as L
from .composites import Composite
from .rules import Zero

MAXPOOL = ("winner", "average")
# autograd nodes that only move values around (flatten, view, squeeze...): relevance passes as is
RESHAPES = {"ViewBackward0", "ReshapeAliasBackward0", "UnsafeViewBackward0", "CloneBackward0",
            "SqueezeBackward0", "SqueezeBackward1", "SqueezeBackward2", "SqueezeBackward3",
            "UnsqueezeBackward0", "PermuteBackward0", "TBackward0", "TransposeBackward0",
            "AccumulateGrad", "AliasBackward0"}


class _Rule(torch.autograd.Function):
    """Forward: the layer's output, as it was. Backward: ``step(a, R)``, the layer's rule."""

    @staticmethod
    def forward(ctx, a, output, step, name):  # type: ignore[override]
        ctx.save_for_backward(a)
        ctx.step, ctx.layer_name = step, name
        return output.clone()

    @staticmethod
    def backward(ctx, relevance):  # type: ignore[override]
        (a,) = ctx.saved_tensors
        with torch.enable_grad():
            return ctx.step(a.detach(), relevance), None, None, None


class _TimesOutput(torch.autograd.Function):
    """The model's output y; backward g -> g * y: the relevance that starts the pass is
    y * d score / dy (for a class logit: y_c at class c, 0 elsewhere)."""

    @staticmethod
    def forward(ctx, y):  # type: ignore[override]
        ctx.save_for_backward(y)
        return y.clone()

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return g * y


def module_kind(module: nn.Module) -> str | None:
    """'affine', 'norm', 'avgpool', 'maxpool', 'pass', 'neutral', 'container' or None (no rule)."""
    for kind, types in (("affine", L.AFFINE), ("norm", L.BATCH_NORMS), ("avgpool", L.AVERAGE_POOLS),
                        ("maxpool", L.MAX_POOLS), ("pass", L.PASS_THROUGH), ("neutral", L.NEUTRAL)):
        if isinstance(module, types):
            return kind
    return "container" if any(True for _ in module.children()) else None


def check_covered(model: nn.Module) -> None:
    """Every module without children has a rule (or no effect on relevance); else name it."""
    for name, module in model.named_modules():
        if module_kind(module) is None:
            raise ValueError(
                f"LRP has no rule for layer {name or 'the model'!r} ({type(module).__name__}); "
                "it covers Linear, Conv1d/2d/3d, batch norm after them, average and max pooling, "
                "and element-wise activations and dropout (relevance passes through)")


@contextmanager
def relevance_rules(model: nn.Module, composite: Composite, maxpool: str = "winner"
                    ) -> Iterator[None]:
    """Inside the block, back-propagation through the model carries relevance by ``composite``."""
    check_covered(model)
    made_by: dict[int, tuple] = {}  # id(an affine output) -> (its layer, its input, its rule)
    seen_affine = []
    hooked = {id(m): (name, kind) for name, m in model.named_modules()
              if (kind := module_kind(m)) in ("affine", "norm", "avgpool", "maxpool", "pass")}

    def rule_node(a, output, step, name):
        return _Rule.apply(a, output.detach(), step, name)

    def replace_output(module, a, output):
        name, kind = hooked[id(module)]
        if kind == "affine":
            layer = replace(L.affine_of(name, module), own=(a, output))
            rule = composite.rule_for(name, module, first=not seen_affine)
            seen_affine.append(name)
            node = rule_node(a, output, lambda a, r: rule(layer, a, r), name)
            made_by[id(node)] = (layer, a, rule)
            return node
        if kind == "norm":
            if id(a) not in made_by:
                raise ValueError(
                    f"batch norm {name!r} does not follow a convolution or linear layer "
                    "directly, so it cannot be folded into one; LRP has no rule for it alone")
            layer, a_before, rule = made_by[id(a)]  # the layer's own rule, folded weights
            merged = L.folded(layer, module, a, name)  # recomputed: z runs through a node
            node = rule_node(a_before, output, lambda a, r: rule(merged, a, r), name)
            made_by[id(node)] = (merged, a_before, rule)
            return node
        if kind == "avgpool":
            layer = replace(L.pooling(name, module), own=(a, output))
            return rule_node(a, output, lambda a, r: Zero()(layer, a, r), name)
        if kind == "maxpool" and maxpool == "average":
            layer = L.max_as_average(name, module)
            return rule_node(a, output, lambda a, r: Zero()(layer, a, r), name)
        if kind == "maxpool":
            a_in = a
            return rule_node(a, output, lambda a, r: winner_take_all(a_in, output, r), name)
        return rule_node(a, output, lambda a, r: r, name)  # pass-through

    modules = [m for m in model.modules() if id(m) in hooked]
    with hooks.outputs_replaced(modules, replace_output):
        yield


def winner_take_all(a: torch.Tensor, output: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Each window's relevance to its largest input: the max pool's own gradient (its forward
    pass's graph, from input a to output)."""
    (into,) = torch.autograd.grad(output, a, r)
    return into


def start_relevance(output: torch.Tensor) -> torch.Tensor:
    """The output, with a backward that multiplies by it (see ``_TimesOutput``); the graph
    between the input and it is checked first (``check_graph``)."""
    check_graph(output)
    return _TimesOutput.apply(output)


def check_graph(output: torch.Tensor) -> None:
    """Every autograd node between the input and ``output`` is a rule node or a reshape."""
    stack, seen = [(output.grad_fn, None)], set()
    while stack:
        node, below = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        kind = type(node).__name__
        layer = getattr(node, "layer_name", None)
        if layer is None and kind not in RESHAPES:
            place = f"just before layer {below!r}" if below else "at the model's output"
            what = ("a sum (a skip connection such as torchvision ResNet's x + f(x)?)"
                    if kind.startswith("Add") else f"the operation {kind}")
            raise ValueError(
                f"LRP cannot pass relevance through {what} {place}: only the model's modules "
                "have rules, and between them only reshapes (flatten, view) are allowed. Write "
                "the model with modules (nn.ReLU, nn.AdaptiveAvgPool2d, nn.Flatten) instead of "
                "functional calls; skip connections are not supported")
        stack += [(n, layer or below) for n, _ in node.next_functions]
