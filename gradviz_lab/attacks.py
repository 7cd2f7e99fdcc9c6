"""Adversarial examples: the input gradient as an attack.

The saliency map is d y_c / d x: the direction in pixel space that changes the class score
fastest. An attacker follows the same vector, scaled to a budget the eye does not notice:

- ``fgsm``: one step of size epsilon along the sign of the loss gradient (Goodfellow et al. 2015);
- ``pgd``: many smaller steps, each projected back into the epsilon-ball around x, from a random
  start inside it (Madry et al. 2018), in the L-infinity or the L2 norm;
- ``fooling_image``: gradient ascent on a chosen class's score, without a budget, until the model
  predicts that class (the "fooling images" of Stanford CS231n's network-visualisation assignment).

One call shape, as for the attribution methods: ``attack(model, x, target=None, **knobs)``.
``target=None`` is an *untargeted* attack: it pushes each image away from its label (``labels``,
by default the class the model predicts for the clean image) by increasing the cross-entropy
loss. A class index (or B of them) is a *targeted* attack: it pulls each image toward that class
by decreasing the cross-entropy loss of the target. Every result stays in the pixel range
``bounds`` (the lab models take [0, 1]) and is returned detached; the model is left exactly as it
was (``hooks.preserved_state``). The model runs in whatever mode it is in: call ``model.eval()``
first for a dropout or batch-norm model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import hooks
from ._checks import (
    check_choice,
    check_images,
    check_number,
    check_positive_int,
)
from ._forward import run_model
from ._warnings import warn
from .attribution._common import finite_map, gradient_of, gradients_on
from .targets import check_target, class_indices, is_score_function

NORMS = ("linf", "l2")  # the balls pgd projects onto: max_i |delta_i| <= eps, or ||delta||_2 <= eps
Bounds = tuple[float, float]


# --- checks --------------------------------------------------------------------------------------


def check_bounds(bounds: Sequence[float], x: torch.Tensor) -> Bounds:
    """(low, high) with low < high, and every pixel of x inside them."""
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"bounds must be a pair (low, high) of pixel values, got {bounds!r}")
    low, high = check_number(bounds[0], "bounds[0]"), check_number(bounds[1], "bounds[1]")
    if not low < high:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
    found = (float(x.min()), float(x.max()))
    if found[0] < low or found[1] > high:
        raise ValueError(
            f"x has pixel values in [{found[0]:.4g}, {found[1]:.4g}], outside bounds=({low:g}, "
            f"{high:g}): an attack keeps the image in the range the model takes; pass that range "
            "as bounds (the lab models and the kit's ImageNet models take [0, 1])"
        )
    return low, high


def attack_classes(
    model: nn.Module, x: torch.Tensor, target: object, labels: object
) -> tuple[torch.Tensor, bool]:
    """(the classes the loss is computed for, targeted?) after checking target against labels.

    Untargeted (target None): each image's label, by default the model's prediction on it.
    Targeted: the target classes, none of which may be the image's own label.
    """
    for value, name in ((target, "target"), (labels, "labels")):
        check_target(value)
        if is_score_function(value):
            raise TypeError(f"an attack takes class indices for {name}, not a callable")
    with gradients_on(), torch.no_grad():  # ordinary tensors (copies) even under inference_mode
        output = run_model(model, x)
        true_classes = class_indices(output, labels).clone()  # None -> the predicted classes
        goal = None if target is None else class_indices(output, target).clone()
    if goal is None:
        return true_classes, False
    same = (goal == true_classes).nonzero().flatten().tolist()
    if same:
        raise ValueError(
            f"a targeted attack toward the image's own class does nothing: image(s) {same} are "
            f"already of class {sorted(set(goal[same].tolist()))} (their label"
            f"{'' if labels is not None else ', the predicted class'}); choose another target "
            "class, or target=None for an untargeted attack away from the label"
        )
    return goal, True


def loss_gradient(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """d CE(model(x_b), classes_b) / d x_b for every image b, in one backward pass (the images of
    a batch do not interact, so the gradient of the summed loss holds each image's own)."""
    with gradients_on():
        x = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(run_model(model, x), classes, reduction="sum")
        grad = gradient_of(loss, x, "the input")
    return finite_map(grad, "loss gradient")


# --- the attacks -----------------------------------------------------------------------------------


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    target: object = None,
    *,
    epsilon: float,
    labels: object = None,
    bounds: Sequence[float] = (0.0, 1.0),
) -> torch.Tensor:
    """The fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, "Explaining and
    harnessing adversarial examples"):

        x_adv = clip(x + epsilon * sign(d L(x, y) / d x), low, high)       untargeted, y = label
        x_adv = clip(x - epsilon * sign(d L(x, t) / d x), low, high)       targeted, t = target

    L is the cross-entropy loss. The sign makes it the best step of L-infinity size epsilon for a
    loss that is linear near x: on a linear score w.x it moves every pixel by exactly epsilon
    against w. Returns x_adv (B, C, H, W), detached; |x_adv - x| <= epsilon everywhere.
    """
    check_images(model, x)
    epsilon = check_number(epsilon, "epsilon", minimum=0.0)
    low, high = check_bounds(bounds, x)
    with hooks.preserved_state(model):
        classes, targeted = attack_classes(model, x, target, labels)
        direction = -1.0 if targeted else 1.0  # down the target's loss, or up the label's
        step = direction * loss_gradient(model, x, classes).sign()
    return torch.clamp(x.detach() + epsilon * step, low, high)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    target: object = None,
    *,
    epsilon: float,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "linf",
    random_start: bool = True,
    seed: int = 0,
    labels: object = None,
    bounds: Sequence[float] = (0.0, 1.0),
) -> torch.Tensor:
    """Projected gradient descent on the loss (Madry et al. 2018, "Towards deep learning models
    resistant to adversarial attacks"): from x_0 (x, or a uniform random point of the ball),

        x_{k+1} = clip(x + P_eps(x_k + alpha * s_k - x), low, high),    k = 0 .. steps-1

    with s_k = sign(g_k) for norm="linf" and g_k / ||g_k||_2 for "l2" (g_k = d L / d x at x_k,
    negated for a targeted attack), and P_eps the projection onto the ball: clamping every pixel
    of the perturbation to [-eps, eps] (L-infinity), or shrinking it to length eps when it is
    longer (L2). Clipping to the pixel range afterwards only moves pixels toward x, so the result
    stays in the ball. step_size alpha defaults to 2.5 * epsilon / steps (Madry et al.), so the
    steps can cross the ball. With steps=1, step_size=epsilon and random_start=False an
    L-infinity PGD is FGSM. The random start is drawn from a generator seeded by ``seed``:
    the same call gives the same images. Returns x_adv (B, C, H, W), detached.
    """
    check_images(model, x)
    epsilon = check_number(epsilon, "epsilon", minimum=0.0)
    steps = check_positive_int(steps, "steps")
    alpha = 2.5 * epsilon / steps if step_size is None else check_number(step_size, "step_size", minimum=0.0)
    check_choice(norm, "norm", NORMS)
    if not isinstance(random_start, bool):
        raise TypeError(f"random_start must be True or False, got {random_start!r}")
    check_positive_int(seed, "seed", minimum=0)
    low, high = check_bounds(bounds, x)
    x = x.detach()
    with hooks.preserved_state(model):
        classes, targeted = attack_classes(model, x, target, labels)
        direction = -1.0 if targeted else 1.0
        x_adv = x.clone()
        if random_start:
            start = random_in_ball(x, epsilon, norm, torch.Generator(x.device).manual_seed(seed))
            x_adv = torch.clamp(x + start, low, high)
        for _ in range(steps):
            gradient = direction * loss_gradient(model, x_adv, classes)
            moved = x_adv + alpha * steepest_step(gradient, norm)
            x_adv = torch.clamp(into_ball(moved, x, epsilon, norm), low, high)
    return x_adv


def fooling_image(
    model: nn.Module,
    x: torch.Tensor,
    target: object,
    *,
    step_size: float = 1.0,
    max_steps: int = 100,
    bounds: Sequence[float] = (0.0, 1.0),
) -> torch.Tensor:
    """Gradient ascent on the target class's score until the model predicts it (the fooling
    images of CS231n's network-visualisation assignment; Szegedy et al. 2014 first showed them):

        x_{k+1} = clip(x_k + step_size * g_k / ||g_k||_2, low, high),  g_k = d y_t(x_k) / d x_k

    y_t is the target's logit. There is no budget: each image stops changing at the first step
    at which the model predicts the target, which is usually after a change the eye barely sees.
    target: a class index or B of them (required). Returns (B, C, H, W), detached; a warning
    names the images that did not reach their target within max_steps.
    """
    check_images(model, x)
    if target is None:
        raise ValueError("fooling_image needs a target class: the class the model should predict")
    step_size = check_number(step_size, "step_size", minimum=0.0)
    max_steps = check_positive_int(max_steps, "max_steps")
    low, high = check_bounds(bounds, x)
    check_target(target)
    if is_score_function(target):
        raise TypeError("fooling_image takes class indices for target, not a callable")
    x_fool = x.detach().clone()
    with hooks.preserved_state(model):
        for _ in range(max_steps):
            with gradients_on():
                leaf = x_fool.clone().requires_grad_(True)
                output = run_model(model, leaf)
                goal = class_indices(output, target).clone()
                going = output.argmax(1) != goal  # images not yet fooled keep climbing
                if not bool(going.any()):
                    break
                scores = output.gather(1, goal.view(-1, 1))
                gradient = finite_map(gradient_of(scores, leaf, "the input"), "score gradient")
            step = step_size * steepest_step(gradient, "l2") * going.view(-1, 1, 1, 1).to(x.dtype)
            x_fool = torch.clamp(x_fool + step, low, high)
        else:  # max_steps taken: is the last step's result predicted as the target?
            with torch.no_grad():
                output = run_model(model, x_fool)
            goal = class_indices(output, target)
    missed = (output.argmax(1) != goal).nonzero().flatten().tolist()
    if missed:
        warn(
            f"fooling_image: image(s) {missed} are not yet predicted as their target after "
            f"max_steps={max_steps} steps of size {step_size:g}; raise max_steps or step_size",
            RuntimeWarning,
        )
    return x_fool


# --- the geometry of the two balls ------------------------------------------------------------------


def per_image_norm(t: torch.Tensor) -> torch.Tensor:
    """||t_b||_2 of every image b, shaped (B, 1, 1, 1) to broadcast against t."""
    return t.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def steepest_step(gradient: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit step that increases a linear function with this gradient the most: sign(g) in
    the L-infinity norm, g / ||g||_2 in L2 (an image whose gradient is zero does not move)."""
    if norm == "linf":
        return gradient.sign()
    length = per_image_norm(gradient)
    return torch.where(length > 0, gradient / length.clamp_min(torch.finfo(gradient.dtype).tiny), 0.0)


def into_ball(point: torch.Tensor, x: torch.Tensor, epsilon: float, norm: str) -> torch.Tensor:
    """The closest point to ``point`` in the epsilon-ball around x (per image): every pixel
    clamped to [x - eps, x + eps] (L-infinity; written on the pixels, not on point - x, so a
    pixel already at x + eps stays exactly there), or x + delta shrunk to length eps (L2)."""
    if norm == "linf":
        return torch.clamp(point, min=x - epsilon, max=x + epsilon)
    delta = point - x
    length = per_image_norm(delta)
    shrink = epsilon / length.clamp_min(torch.finfo(delta.dtype).tiny)
    return x + delta * torch.where(length > epsilon, shrink, 1.0)


def random_in_ball(x: torch.Tensor, epsilon: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    """A perturbation drawn uniformly from the epsilon-ball, one per image: every pixel uniform
    in [-eps, eps] (L-infinity); a Gaussian direction scaled to radius eps * u^(1/d), u uniform,
    d = pixels per image (L2: uniform in volume)."""
    if norm == "linf":
        return epsilon * (2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 1)
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    direction = direction / per_image_norm(direction)
    u = torch.rand(len(x), 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype)
    return epsilon * u ** (1.0 / x[0].numel()) * direction


# --- what robust training does to the gradient ---------------------------------------------------


def stroke_correlation(model: nn.Module, x: torch.Tensor, target: object = None) -> torch.Tensor:
    """How much the input gradient looks like the image: for each image b, the Pearson correlation

        r_b = corr( |d y_c / d x_b| summed over channels,  x_b summed over channels )

    over its pixels, in float64 (the digits are bright strokes on black, so r_b is how much the
    gradient's magnitude sits on the strokes). Models trained on adversarial examples have input
    gradients that look like the object (Tsipras et al. 2019, "Robustness may be at odds with
    accuracy"); a standard model's look like noise around it. Returns (B,) float64.
    """
    from .attribution import input_gradient
    from .evaluate.similarity import pearson

    magnitude = input_gradient(model, x, target).abs().sum(dim=1)
    return pearson(magnitude, x.detach().sum(dim=1))
