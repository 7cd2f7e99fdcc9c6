"""Attacks on the explanation, not the prediction: the saliency map is fragile.

- ``fragility_attack`` (Ghorbani, Abid & Zou 2019, "Interpretation of neural networks is
  fragile", the top-k attack): move the most salient pixels elsewhere with a perturbation of
  L-infinity size epsilon, while the predicted class stays;
- ``manipulate_explanation`` (Dombrowski et al. 2019, "Explanations can be manipulated and
  geometry is to blame"): make the saliency map look like a chosen target map while the output
  stays almost the same.

Both follow the gradient *of the saliency map* with respect to the input: a second derivative
of the network. A ReLU network is piecewise linear, so that second derivative is zero almost
everywhere and the attack does not move at all (the tests show it). The papers' answer is a
smooth network: the kit's softplus twin (``shapes-softplus``) is attacked as it is, and for a
ReLU model the gradients come from ``smooth_copy(model)``, the same weights with every ReLU
replaced by a softplus of large beta (Dombrowski et al.'s beta-smoothing), while the result is
judged on the ReLU model itself.

The map attacked is the saliency map S(x) = sum over channels of |d y_c / d x|, or (for
``fragility_attack``, ``method="integrated-gradients"``) the integrated-gradients map
sum over channels of |IG(x)| from a black baseline, normalised to sum 1 over the pixels (so only
where it points matters, not its scale); c is the class the model predicts for the clean image.
How far a map moved: ``topk_intersection`` (Ghorbani et al.'s measure) and ``rank_correlation``
(Spearman's rho over all the pixels).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import hooks
from ._checks import check_choice, check_images, check_number, check_positive_int
from ._forward import run_model
from .attacks import check_bounds
from .attribution._common import gradients_on
from .attribution.integrated import path_points
from .evaluate.similarity import spearman

MAPS = ("saliency", "integrated-gradients")  # the explanations fragility_attack can move
IG_STEPS = 16  # path points of the integrated-gradients map (Gauss-Legendre: lesson 06)


def smooth_copy(model: nn.Module, beta: float = 10.0) -> nn.Module:
    """A copy of the model with every ``nn.ReLU`` replaced by softplus(z) = log(1 + e^(beta z)) /
    beta: the same weights, a smooth function whose second derivatives exist (beta -> infinity
    gives the ReLU back). The model itself is not changed. A functional relu inside ``forward``
    cannot be replaced: it stays, and so do its zero second derivatives."""
    beta = check_number(beta, "beta")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    smooth = copy.deepcopy(model)
    for parent in smooth.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, nn.Softplus(beta=beta))
    return smooth


def saliency_distribution(model: nn.Module, x: torch.Tensor, classes: torch.Tensor,
                          create_graph: bool = False) -> torch.Tensor:
    """S(x) / sum S(x) with S = sum over channels of |d y_c / d x|, (B, H, W). With
    ``create_graph`` the map keeps its graph, so it can be differentiated again (w.r.t. x)."""
    with gradients_on():
        if not x.requires_grad:
            x = x.detach().clone().requires_grad_(True)
        scores = run_model(model, x).gather(1, classes.view(-1, 1)).sum()
        (gradient,) = torch.autograd.grad(scores, x, create_graph=create_graph)
    magnitude = gradient.abs().sum(dim=1)
    return magnitude / magnitude.flatten(1).sum(1).clamp_min(torch.finfo(x.dtype).tiny).view(-1, 1, 1)


def integrated_gradients_distribution(model: nn.Module, x: torch.Tensor, classes: torch.Tensor,
                                      steps: int = IG_STEPS, create_graph: bool = False) -> torch.Tensor:
    """The integrated-gradients map from the black baseline x' = 0, as a distribution (B, H, W):

        IG(x) = x * sum_k w_k d y_c / d x (a_k x),     S(x) = sum over channels of |IG(x)|, / sum S

    with the Gauss-Legendre nodes a_k and weights w_k of ``attribution.integrated_gradients``
    (the same map, computed here in one batch of steps * B path points so that, with
    ``create_graph``, it can be differentiated again w.r.t. x). Note the factor x: even on a
    piecewise-linear ReLU model the map has a non-zero derivative through it, so the attack moves
    an IG map without a smooth surrogate (only the gradient factor's own derivative vanishes)."""
    steps = check_positive_int(steps, "steps")
    nodes, weights = (torch.as_tensor(v, dtype=x.dtype, device=x.device)
                      for v in path_points(steps, "gauss-legendre"))
    with gradients_on():
        if not x.requires_grad:
            x = x.detach().clone().requires_grad_(True)
        path = nodes.view(-1, 1, 1, 1, 1) * x.unsqueeze(0)  # (steps, B, C, H, W): x' + a (x - x'), x' = 0
        flat = path.reshape(-1, *x.shape[1:])
        scores = run_model(model, flat).gather(1, classes.repeat(steps).view(-1, 1)).sum()
        (gradient,) = torch.autograd.grad(scores, flat, create_graph=create_graph)
    mean_gradient = (weights.view(-1, 1, 1, 1, 1) * gradient.view(path.shape)).sum(0)
    magnitude = (x * mean_gradient).abs().sum(dim=1)
    if not create_graph:
        magnitude = magnitude.detach()
    return magnitude / magnitude.flatten(1).sum(1).clamp_min(torch.finfo(x.dtype).tiny).view(-1, 1, 1)


def explanation_distribution(model: nn.Module, x: torch.Tensor, classes: torch.Tensor,
                             method: str = "saliency", create_graph: bool = False,
                             ig_steps: int = IG_STEPS) -> torch.Tensor:
    """The map of ``method`` ("saliency" or "integrated-gradients", with ``ig_steps`` path
    points) as a distribution (B, H, W)."""
    check_choice(method, "method", MAPS)
    if method == "saliency":
        return saliency_distribution(model, x, classes, create_graph)
    return integrated_gradients_distribution(model, x, classes, ig_steps, create_graph)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of maps a[i] and b[i] over their pixels, (B, ...) -> (B,)
    float64 (Ghorbani et al.'s second measure, beside the top-k intersection):

        rho = Pearson correlation of rank(a_i) and rank(b_i)      (ties get average ranks)

    1 = the pixels in the same order, -1 = the reverse order, nan for a constant map. The maps
    are compared as they are (signed); the attacked maps are magnitudes already.
    ``evaluate.spearman`` computes it (lesson 07's randomisation check uses it too)."""
    return spearman(a, b, absolute=False)


def topk_intersection(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """The fraction of the k largest pixels of map a[i] that are also among the k largest of
    b[i] (Ghorbani et al.'s measure of how much an attack moved the map): (B, ...) -> (B,).
    1 = the same top-k pixels, 0 = none in common."""
    if a.shape != b.shape:
        raise ValueError(f"the maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    pixels = a[0].numel()
    k = check_positive_int(k, "k")
    if k > pixels:
        raise ValueError(f"k must be at most the number of pixels of a map ({pixels}), got {k}")
    top_a = torch.zeros(a.flatten(1).shape, dtype=torch.bool, device=a.device)
    top_b = torch.zeros_like(top_a)
    top_a.scatter_(1, a.flatten(1).topk(k, dim=1).indices, True)
    top_b.scatter_(1, b.flatten(1).topk(k, dim=1).indices, True)
    return (top_a & top_b).sum(1).double() / k


def second_order_gradient(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d loss / d x for a loss built from an input gradient; zero where the network is piecewise
    linear (autograd then finds no path to x at all, or one that carries zeros)."""
    if not loss.requires_grad:
        return torch.zeros_like(x)
    (gradient,) = torch.autograd.grad(loss, x, allow_unused=True)
    return torch.zeros_like(x) if gradient is None else gradient


def _attack_setup(model, x, epsilon, steps, step_size, bounds):
    check_images(model, x)
    epsilon = check_number(epsilon, "epsilon", minimum=0.0)
    steps = check_positive_int(steps, "steps")
    alpha = epsilon / 10 if step_size is None else check_number(step_size, "step_size", minimum=0.0)
    return epsilon, steps, alpha, check_bounds(bounds, x)


def class_keeping_step(model: nn.Module, current: torch.Tensor, gradient: torch.Tensor, x: torch.Tensor,
                       alpha: float, epsilon: float, bounds: tuple[float, float], classes: torch.Tensor) -> torch.Tensor:
    """One signed step down the gradient, back into the epsilon-ball around x and the pixel
    range; an image whose predicted class the step would change stays where it was."""
    moved = torch.clamp(current - alpha * gradient.sign(), min=x - epsilon, max=x + epsilon)
    moved = torch.clamp(moved, *bounds)
    kept = _predicted(model, moved) == classes
    return torch.where(kept.view(-1, 1, 1, 1), moved, current)


def _predicted(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return run_model(model, x).argmax(1)


def fragility_attack(
    model: nn.Module,
    x: torch.Tensor,
    *,
    epsilon: float,
    k: int = 50,
    steps: int = 20,
    step_size: float | None = None,
    surrogate: nn.Module | None = None,
    method: str = "saliency",
    ig_steps: int = IG_STEPS,
    bounds: Sequence[float] = (0.0, 1.0),
) -> torch.Tensor:
    """Ghorbani et al.'s top-k attack on an explanation: with M the k most salient pixels of
    the clean image and S the normalised map (``method``: "saliency", or "integrated-gradients"
    from a black baseline with ``ig_steps`` path points; the paper attacks both),

        x_{t+1} = clip(P_eps(x_t - alpha * sign(d/dx sum_{p in M} S_p(x_t))), low, high)

    a step is kept only for the images whose predicted class it does not change, and each image
    ends at the iterate with the smallest top-k intersection with its clean map. The gradient is
    taken on ``surrogate`` (default: the model itself; for a ReLU model pass ``smooth_copy(model)``:
    on the ReLU model the saliency map's gradient is zero and nothing moves; the IG map moves a
    little through its factor x); the class and the maps are judged on ``model``. step_size
    defaults to epsilon / 10. Returns x_adv (B, C, H, W), detached.
    """
    epsilon, steps, alpha, (low, high) = _attack_setup(model, x, epsilon, steps, step_size, bounds)
    check_choice(method, "method", MAPS)
    ig_steps = check_positive_int(ig_steps, "ig_steps")
    if check_positive_int(k, "k") > x.shape[-2] * x.shape[-1]:
        raise ValueError(f"k must be at most the number of pixels of a map ({x.shape[-2] * x.shape[-1]}), got {k}")
    surrogate = model if surrogate is None else surrogate
    # gradients_on: ordinary tensors (and copies of x and the target map), even when the caller
    # is in torch.inference_mode, whose tensors autograd cannot use
    with hooks.preserved_state(model), hooks.preserved_state(surrogate), gradients_on():
        x = x.detach().clone()
        classes = _predicted(model, x)
        clean = explanation_distribution(model, x, classes, method, ig_steps=ig_steps).detach()
        top = torch.zeros(clean.flatten(1).shape, dtype=x.dtype, device=x.device)
        top.scatter_(1, clean.flatten(1).topk(k, dim=1).indices, 1.0)
        best, best_overlap = x.clone(), torch.ones(len(x), dtype=torch.float64, device=x.device)
        current = x.clone()
        for _ in range(steps):
            with gradients_on():
                leaf = current.clone().requires_grad_(True)
                mass = (explanation_distribution(surrogate, leaf, classes, method, True, ig_steps)
                        .flatten(1) * top).sum()
                gradient = second_order_gradient(mass, leaf)
            current = class_keeping_step(model, current, gradient, x, alpha, epsilon, (low, high), classes)
            overlap = topk_intersection(
                explanation_distribution(model, current, classes, method, ig_steps=ig_steps).detach(),
                clean, k)
            better = overlap < best_overlap
            best = torch.where(better.view(-1, 1, 1, 1), current, best)
            best_overlap = torch.where(better, overlap, best_overlap)
    return best


def manipulate_explanation(
    model: nn.Module,
    x: torch.Tensor,
    target_map: torch.Tensor,
    *,
    epsilon: float = 0.1,
    steps: int = 50,
    step_size: float | None = None,
    gamma: float = 1e-3,
    surrogate: nn.Module | None = None,
    bounds: Sequence[float] = (0.0, 1.0),
) -> torch.Tensor:
    """Dombrowski et al.'s targeted manipulation: make the saliency map look like ``target_map``
    while the output stays, by minimising over the L-infinity ball of size epsilon

        L(x_adv) = ||S(x_adv) - S_t||^2 + gamma ||softmax(f(x_adv)) - softmax(f(x))||^2

    with signed gradient steps (as PGD), S and S_t normalised to sum 1; a step that would change
    an image's predicted class is refused for that image, so the class always stays. target_map: (B, H, W) or
    (B, 1, H, W), non-negative. The gradient is taken on ``surrogate`` (default the model: use
    the softplus twin, or ``smooth_copy`` of a ReLU model). step_size defaults to epsilon / 20.
    gamma weighs the two terms: maps that sum to 1 over H x W pixels differ by little in squared
    distance (about 4e-3 on the 64 x 64 shapes), so gamma = 1e-3 balances them (measured on
    shapes-softplus: the map's correlation with a target square rose from -0.08..0.22 to
    0.77..0.86 at epsilon 0.1, every class kept, probabilities moved by at most 0.14).
    Returns x_adv (B, C, H, W), detached.
    """
    epsilon, steps, alpha, (low, high) = _attack_setup(
        model, x, epsilon, steps, epsilon / 20 if step_size is None else step_size, bounds)
    gamma = check_number(gamma, "gamma", minimum=0.0)
    goal = target_map.detach().to(x.device, x.dtype)
    if goal.dim() == 4 and goal.shape[1] == 1:
        goal = goal[:, 0]
    if goal.shape != (len(x), *x.shape[-2:]):
        raise ValueError(f"target_map must have shape {(len(x), *x.shape[-2:])} (or with a channel of 1), "
                         f"got {tuple(target_map.shape)}")
    if not bool(torch.isfinite(goal).all()) or bool((goal < 0).any()) or bool((goal.flatten(1).sum(1) <= 0).any()):
        raise ValueError("target_map must be finite, non-negative and not all zero in any image")
    goal = goal / goal.flatten(1).sum(1).view(-1, 1, 1)
    surrogate = model if surrogate is None else surrogate
    # gradients_on: ordinary tensors (and copies of x and the target map), even when the caller
    # is in torch.inference_mode, whose tensors autograd cannot use
    with hooks.preserved_state(model), hooks.preserved_state(surrogate), gradients_on():
        x = x.detach().clone()
        goal = goal.clone()
        classes = _predicted(model, x)
        with torch.no_grad():
            clean_output = F.softmax(run_model(surrogate, x), dim=1)
        current = x.clone()
        for _ in range(steps):
            with gradients_on():
                leaf = current.clone().requires_grad_(True)
                explanation = saliency_distribution(surrogate, leaf, classes, create_graph=True)
                output = F.softmax(run_model(surrogate, leaf), dim=1)
                loss = ((explanation - goal) ** 2).sum() + gamma * ((output - clean_output) ** 2).sum()
                gradient = second_order_gradient(loss, leaf)
            current = class_keeping_step(model, current, gradient, x, alpha, epsilon, (low, high), classes)
    return current
