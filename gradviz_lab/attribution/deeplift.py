"""Input x gradient, and DeepLIFT with the rescale rule (Shrikumar, Greenside & Kundaje 2017,
"Learning important features through propagating activation differences").

    input x gradient   x * d y_c / dx
    DeepLIFT           (x - x') * m,   m = the input's multipliers, back-propagated with

        linear layers      their ordinary gradient (a linear map's multiplier is its weight)
        activation f       m = (f(s) - f(s')) / (s - s')    (the rescale rule; the gradient
                           f'(s) where |s - s'| < 1e-10)
        max pooling        each window's difference of maxima y - y', split as
                           (max(y, y') - y') to the input that wins at x and (y - max(y, y')) to
                           the one that wins at x', each divided by that input's difference

where s, s' are a unit's inputs on the image and on the baseline x'. Summation to delta: the map
sums to y_c(x) - y_c(x') exactly, for any network of such layers (linear maps, element-wise
activations as ``nn`` modules, max pooling). With x' = 0 on a network whose activations are
ReLUs and whose biases are zero, DeepLIFT-rescale = input x gradient.

The image and its baseline run as one batch of 2B (the model must treat images independently:
eval mode for batch norm). Only activation *modules* get the rescale rule: a relu called as a
function (``F.relu``) passes the plain gradient, and summation to delta then fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .. import hooks
from .._boundary import public
from .._forward import run_model
from ..targets import Target
from ._common import finite_map, gradients_on, score_gradient
from .baselines import make_baseline
from .lrp.layers import MAX_POOLS, PASS_THROUGH

CLOSE = 1e-10  # |s - s'| below which the rescale rule falls back to the gradient


@public
def input_x_gradient(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """x * d y_c / dx: the gradient weighted by the input (Shrikumar et al. 2016). On a ReLU
    network it equals LRP-0. Returns (B, C, H, W)."""
    grad, _ = score_gradient(model, x, target)
    return x.detach() * grad


class _Rescale(torch.autograd.Function):
    """Forward: the module's output for [x; x']. Backward: the rescale multipliers for the x half."""

    @staticmethod
    def forward(ctx, s, output, module, maxpool):  # type: ignore[override]
        ctx.save_for_backward(s, output)
        ctx.module, ctx.maxpool = module, maxpool
        return output.clone()

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        s, y = ctx.saved_tensors
        half = len(s) // 2
        ds, dy, g = s[:half] - s[half:], y[:half] - y[half:], g[:half]
        grad = routed(ctx.module, s[:half], g)  # the plain gradient at x
        if ctx.maxpool:
            # y - y' = (max(y, y') - y') + (y - max(y, y')): the first part to the window's winner
            # at x, the second to its winner at x' (Captum's cross maximum). The input that
            # receives a non-zero part always differs between x and x', so it sums exactly.
            top = torch.maximum(y[:half], y[half:])
            to_inputs = (routed(ctx.module, s[:half], g * (top - y[half:]))
                         + routed(ctx.module, s[half:], g * (y[:half] - top)))
        else:  # element-wise: g (f(s) - f(s')) / (s - s'), or g f'(s)
            to_inputs = g * dy
        m = torch.where(ds.abs() > CLOSE, to_inputs / torch.where(ds == 0, 1, ds), grad)
        return torch.cat([m, torch.zeros_like(m)]), None, None, None


def routed(module: nn.Module, s: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The module's vector-Jacobian product at s: g sent back as its gradient would be."""
    with torch.enable_grad():
        a = s.detach().clone().requires_grad_(True)
        (into,) = torch.autograd.grad(module.forward(a.clone()), a, g)
    return into


@contextmanager
def rescale_rules(model: nn.Module) -> Iterator[None]:
    """Inside the block, back-propagation through activation modules and max pools follows
    DeepLIFT's rescale rule, for a forward pass on the batch [x; x']."""

    def rescale(module: nn.Module, s: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        return _Rescale.apply(s, output.detach(), module, isinstance(module, MAX_POOLS))

    modules = [m for m in model.modules() if isinstance(m, PASS_THROUGH + MAX_POOLS)]
    with hooks.outputs_replaced(modules, rescale):
        yield


@public
def deeplift(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    baseline: str | float | torch.Tensor = "zeros",
) -> torch.Tensor:
    """DeepLIFT with the rescale rule (see the module docstring): (x - x') * multipliers, which
    sum to y_c(x) - y_c(x'). baseline: x', in the vocabulary of ``attribution.baselines``
    ("zeros", "black", "grey", "mean", "blur", a number or an image). Returns (B, C, H, W)."""
    x = x.detach()
    x_base = make_baseline(x, baseline)
    target = target.fixed(model, x)  # the image's class, for the image (not the baseline's)
    with gradients_on():
        both = torch.cat([x, x_base]).requires_grad_(True)
        with rescale_rules(model):
            output = run_model(model, both)
        (m,) = torch.autograd.grad(target(output[: len(x)]).sum(), both)
    return finite_map((x - x_base) * m[: len(x)], "DeepLIFT")
