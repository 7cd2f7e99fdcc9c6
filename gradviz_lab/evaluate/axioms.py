"""Axioms an attribution can be checked against, here completeness (Sundararajan, Taly & Yan 2017).

Completeness: the attributions of an image add up to how much its score differs from the
baseline's score,

    sum_i a_i(x) = F(x) - F(x').

Integrated gradients satisfies it (up to the quadrature error of its integral); a plain gradient,
gradient x input or Grad-CAM do not. ``completeness_gap`` measures the gap for any attribution.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import hooks
from .._checks import check_finite, check_flag, check_images
from ..targets import Target, fixed_target, target_scores
from .._forward import run_model
from ..attribution.integrated import make_baseline


def completeness_gap(
    model: nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: Target = None,
    baseline: str | float | torch.Tensor = "zeros",
    relative: bool = True,
) -> torch.Tensor:
    """|sum_i a_i - (F(x) - F(x'))| per image, divided by |F(x) - F(x')| when relative: (B,).

    F is the target's logit (None = the predicted class of x), as in integrated gradients.
    attributions: (B, ...) with B rows, e.g. ``integrated_gradients(model, x, target)``.
    baseline: x' as in ``integrated_gradients`` ("zeros", a value, "blur" or an image).
    When F(x) = F(x') the relative gap is inf (or nan if the attributions sum to 0 too).
    """
    check_images(model, x)
    check_flag(relative, "relative")
    if not isinstance(attributions, torch.Tensor) or attributions.dim() < 1 or len(attributions) != len(x):
        shape = tuple(attributions.shape) if isinstance(attributions, torch.Tensor) else type(attributions).__name__
        raise ValueError(f"attributions must have one row per image ({len(x)}), got {shape}")
    if attributions.is_complex() or attributions.dtype == torch.bool:
        raise TypeError(f"attributions must hold real numbers, got dtype {attributions.dtype}")
    check_finite(attributions, "attributions")
    x_base = make_baseline(x, baseline)
    with hooks.preserved_state(model), torch.no_grad():
        target = fixed_target(model, x, target)
        gain = target_scores(run_model(model, x), target) - target_scores(run_model(model, x_base), target)
        gain = gain.double()
    gap = (attributions.detach().flatten(1).double().sum(dim=1) - gain).abs()
    return gap / gain.abs() if relative else gap
