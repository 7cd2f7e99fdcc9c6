"""Integrated gradients (Sundararajan, Taly & Yan 2017, "Axiomatic attribution for deep
networks")."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._boundary import public
from .._checks import (
    check_batch_memory,
    check_choice,
    check_flag,
    check_positive_int,
)
from ..targets import Target
from .baselines import blurred, make_baseline  # noqa: F401  (blurred: the names lessons use)
from ._common import cache_sized_batch, finite_map, score_gradient, scores_of, sum_over_copies

RULES = ("gauss-legendre", "trapezoid", "riemann")
# numpy finds the Gauss-Legendre nodes as eigenvalues of a steps x steps matrix (memory and time
# grow as steps^2); past a few hundred nodes the rule is exact to float32 for any smooth path.
MAX_GAUSS_STEPS = 1024
MAX_STEPS = 100_000  # any rule: the nodes and weights are arrays of this length


def path_points(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Nodes alpha_k in [0, 1] and weights w_k with sum_k w_k f(alpha_k) ~ integral_0^1 f.

    gauss-legendre: exact for polynomials of degree < 2*steps (fastest convergence on smooth f)
    trapezoid:      alpha_k = k/(steps-1), end points weighted 1/2 (needs steps >= 2)
    riemann:        alpha_k = k/steps, k = 1..steps (the right Riemann sum of the paper)
    """
    limit = MAX_GAUSS_STEPS if rule == "gauss-legendre" else MAX_STEPS
    if steps > limit:
        other = " (use rule='trapezoid' or 'riemann' for more)" if rule == "gauss-legendre" else ""
        raise ValueError(f"steps must be <= {limit:,} for the {rule} rule{other}, got {steps:,}")
    if rule == "gauss-legendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)  # on [-1, 1]
        return (nodes + 1) / 2, weights / 2
    if rule == "trapezoid":
        if steps < 2:
            raise ValueError("the trapezoid rule needs steps >= 2")
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, steps), weights
    return np.arange(1, steps + 1) / steps, np.full(steps, 1.0 / steps)


@public
def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    baseline: str | float | torch.Tensor = "zeros",
    steps: int = 32,
    rule: str = "gauss-legendre",
    batch_size: int | None = None,
    return_delta: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Integrated gradients along the straight path from a baseline x' to the input x.

        IG(x) = (x - x') * integral_0^1 grad F(x' + a (x - x')) da
              ~ (x - x') * sum_k w_k grad F(x' + a_k (x - x'))

    Completeness: sum_i IG_i(x) = F(x) - F(x'), up to the quadrature error
    delta = sum_i IG_i - (F(x) - F(x')), returned as (B,) with return_delta=True.
    Don't forget the (x - x') factor: without it the map is only an averaged gradient.

    baseline: x', a name ("zeros", "black", "grey", "mean", "blur"), a number or an image (C, H, W)
    / (B, C, H, W): see ``gradviz_lab.attribution.baselines``. steps: the
    number of gradient evaluations per image, batch_size at a time (None: as many as keep a batch
    in a CPU's cache, at most 32; see ``cache_sized_batch``). rule: "gauss-legendre",
    "trapezoid" or "riemann" (see ``path_points``). Returns (B, C, H, W) [, delta (B,)].
    """
    check_positive_int(steps, "steps")
    check_choice(rule, "rule", RULES)
    if batch_size is None:
        batch_size = cache_sized_batch(x, largest=32)
    check_positive_int(batch_size, "batch_size")
    check_flag(return_delta, "return_delta")
    check_batch_memory(steps * len(x), x, batch_size, "path points")
    x = x.detach()
    x_base = make_baseline(x, baseline)
    alphas, weights = (torch.as_tensor(v, dtype=x.dtype, device=x.device)
                       for v in path_points(steps, rule))
    target = target.fixed(model, x)  # image b's class at every point of its path

    def weighted_gradient(k: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """w_k grad F(x' + a_k (x - x')) at path point k of each image."""
        a = alphas[k].view(-1, 1, 1, 1)
        points = x_base[images] + a * (x[images] - x_base[images])
        grad, _ = score_gradient(model, points, target.for_copies(images))
        return weights[k].view(-1, 1, 1, 1) * grad

    summed = sum_over_copies(weighted_gradient, steps, x, batch_size, "path points")
    attributions = finite_map((x - x_base) * summed, "integrated gradients")
    if not return_delta:
        return attributions
    gap = scores_of(model, x, target) - scores_of(model, x_base, target)
    return attributions, attributions.sum(dim=(1, 2, 3)) - gap
