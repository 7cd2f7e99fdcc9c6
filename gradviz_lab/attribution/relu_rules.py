"""Deconvnet and guided backpropagation: the gradient, with another backward pass through ReLUs.

For a ReLU x = max(0, s) and the gradient g = dl/dx arriving from above, what flows back to s is

    gradient          1{s>0} g          (Erhan et al. 2009; Simonyan et al. 2014)
    deconvnet         1{g>0} g          (Zeiler & Fergus 2014)
    guided backprop   1{s>0} 1{g>0} g   (Springenberg et al. 2015)

Every other layer back-propagates as usual. Only ``nn.ReLU`` modules can be changed (see
``gradviz_lab.hooks.relu_backward_rule``): a model that calls ``F.relu`` / ``torch.relu`` in its
forward gets a ``FunctionalReLUWarning``, and the plain gradient flows through those calls; a
model without any ReLU (softplus, GELU, ...) gets a ``NoReLUWarning``, and its result is the plain
gradient.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import hooks
from .._boundary import public
from ..targets import Target
from ._common import score_gradient


# Each rule is written with as few passes over the tensors as it needs (a product of 0/1 masks
# would make one pass per factor): they run once per ReLU and backward pass.


def gradient_rule(g: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """1{s>0} g: the ordinary ReLU backward (useful to check the machinery)."""
    return g.masked_fill(s <= 0, 0)


def deconvnet_rule(g: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """1{g>0} g: pass the positive part of the gradient, whatever the forward input was."""
    return g.clamp(min=0)


def guided_rule(g: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """1{s>0} 1{g>0} g: positive gradient, and only where the unit was active."""
    # 1{s>0} g by ReLU's own backward kernel (one pass), then the positive part in place: two
    # passes where clamp, s <= 0 and masked_fill_ take three (issue 23: Captum's speed).
    return torch.ops.aten.threshold_backward(g, s, 0).clamp_(min=0)


@public
def backprop_with_rule(
    model: nn.Module, x: torch.Tensor, target: Target, rule: hooks.ReluRule
) -> torch.Tensor:
    """The input gradient of the target score, with ``rule`` as the backward of each nn.ReLU."""
    with hooks.relu_backward_rule(model, rule):
        grad, _ = score_gradient(model, x, target)
    return grad


@public
def deconvnet(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """Zeiler & Fergus (2014) deconvnet: back-propagate 1{g>0} g through every nn.ReLU.

    Same call shape as ``input_gradient``; returns (B, C, H, W). Functional relu calls
    (``F.relu``) cannot be changed and are reported with a ``FunctionalReLUWarning``.
    """
    return backprop_with_rule(model, x, target, deconvnet_rule)


@public
def guided_backprop(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """Springenberg et al. (2015) guided backpropagation: 1{s>0} 1{g>0} g through every nn.ReLU.

    Same call shape as ``input_gradient``; returns (B, C, H, W). Functional relu calls
    (``F.relu``) cannot be changed and are reported with a ``FunctionalReLUWarning``.
    """
    return backprop_with_rule(model, x, target, guided_rule)
