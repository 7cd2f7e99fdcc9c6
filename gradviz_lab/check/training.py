"""Checkers for lesson 8: a gradient-flow table and one step of activation maximisation."""

from __future__ import annotations

import torch
from torch import nn

from .harness import Case, CheckReport, Method, _not_a_function, run_checks, tiny_cnn

# Lesson 8: a gradient-flow table and one step of activation maximisation.

_STALE_GRAD = 0.01  # the .grad an earlier step left behind, in the case that tests for it


def _small_mlp(kind: str, seed: int, depth: int, stale_grad: bool = False) -> nn.Module:
    """A small ``diagnostics.deep_mlp`` for 1x6x6 inputs and 5 classes, in train mode (float64)."""
    from ..diagnostics import deep_mlp

    model = deep_mlp(kind, depth=depth, width=8, in_features=36, num_classes=5, seed=seed).double()
    if stale_grad:  # what a training step without zero_grad() leaves in every .grad
        for p in model.parameters():
            p.grad = torch.full_like(p, _STALE_GRAD)
    return model


def _gradient_norm_cases() -> list[Case]:
    specs = [
        ("tiny CNN in eval mode", lambda: tiny_cnn(0), (2, 3, 8, 8)),
        ("6-layer sigmoid MLP", lambda: _small_mlp("sigmoid", seed=1, depth=6), (3, 1, 6, 6)),
        ("batch-norm MLP in train mode, stale .grad from an earlier step",
         lambda: _small_mlp("batchnorm", seed=2, depth=3, stale_grad=True), (4, 1, 6, 6)),
    ]
    cases = []
    for number, (description, build, shape) in enumerate(specs):
        generator = torch.Generator().manual_seed(300 + number)
        x = torch.rand(shape, generator=generator, dtype=torch.float64)
        target = torch.randint(0, 5, (shape[0],), generator=generator)
        cases.append(Case(description, build(), x, target))
    return cases


def _fresh_weight_gradients(model, x, target, reduction: str = "mean") -> tuple[torch.Tensor, ...]:
    """dL/dW of the cross-entropy for every weight matrix or kernel; the model left as it was."""
    from .. import hooks

    weights = [p for p in model.parameters() if p.dim() > 1]
    with hooks.preserved_state(model):
        loss = nn.functional.cross_entropy(model(x), target, reduction=reduction)
        return torch.autograd.grad(loss, weights)


def _norm_table(gradients, signed_mean: bool = False) -> torch.Tensor:
    """One row [mean |g|, max |g|, ||g||_2] per gradient, float64 (signed_mean: the mistake mean g)."""
    rows = [torch.stack([g.mean() if signed_mean else g.abs().mean(), g.abs().max(), g.norm()])
            for g in gradients]
    return torch.stack(rows).double()


def _reference_gradient_norms(model, x, target, weights_only: bool = True) -> torch.Tensor:
    from ..diagnostics import measure_gradient_flow

    flow = measure_gradient_flow(model, x, target, weights_only=weights_only)
    return torch.stack([flow.mean_abs[0], flow.max_abs[0], flow.norm[0]], dim=1)


def _gradient_norms_in_eval_mode(model, x, target):
    from .. import hooks

    with hooks.preserved_state(model):
        model.eval()
        return _norm_table(_fresh_weight_gradients(model, x, target))


def check_gradient_norms(student: Method) -> CheckReport:
    """gradient_norms(model, x, target) -> (L, 3) float64: for each weight matrix or kernel
    (p.dim() > 1, in ``model.named_parameters()`` order) the row [mean |g|, max |g|, ||g||_2] of its
    gradient g = dL/dW after one backward pass of the mean cross-entropy L of (model(x), target),
    the model in the mode it is in and stale ``.grad`` cleared first. The reference is
    ``diagnostics.measure_gradient_flow``."""
    cases = _gradient_norm_cases()
    # The expected tables are computed before the student's function runs, so a function that
    # leaves the model changed (another mode, gradients left in .grad) cannot change them.
    expected = {id(case.model): _reference_gradient_norms(case.model, case.x, case.target) for case in cases}
    mistakes = {
        "clear the stale gradients first (p.grad = None, or model.zero_grad()): backward() adds "
        "to whatever .grad already holds.":
            lambda m, x, t: _norm_table(g + _STALE_GRAD for g in _fresh_weight_gradients(m, x, t)),
        "one row per weight matrix or kernel (p.dim() > 1): leave the biases and batch-norm "
        "scales out.": lambda m, x, t: _reference_gradient_norms(m, x, t, weights_only=False),
        "take |g| before the mean: signed gradients cancel out.":
            lambda m, x, t: _norm_table(_fresh_weight_gradients(m, x, t), signed_mean=True),
        "use the mean cross-entropy over the batch (F.cross_entropy's default), not the sum.":
            lambda m, x, t: _norm_table(_fresh_weight_gradients(m, x, t, reduction="sum")),
        "run the model in the mode it is in: model.eval() changes what batch norm computes.":
            _gradient_norms_in_eval_mode,
    }
    return run_checks("gradient norms", student, lambda m, x, t: expected[id(m)], cases, mistakes,
                      atol=1e-10, uses_grad=True)


def _ascent_gradient(model, x, target, l2: float, probability: bool | str = False,
                     l2_sign: float = -1.0) -> torch.Tensor:
    """g = d/dx [y_c(x) - l2 ||x - 0.5||^2] per image, the model in eval mode and left as it was."""
    from .. import hooks

    x = x.detach().clone().requires_grad_(True)
    with hooks.preserved_state(model):
        model.eval()
        output = model(x)
        if probability:  # the typical mistakes: the probability p_c, or log p_c = -loss
            output = output.log_softmax(dim=1) if probability == "log" else output.softmax(dim=1)
        scores = output.gather(1, target[:, None])[:, 0]
        objective = scores + l2_sign * l2 * (x - 0.5).pow(2).flatten(1).sum(1)
        grad, = torch.autograd.grad(objective.sum(), x)
    return grad


def _per_image_mean_abs(g: torch.Tensor) -> torch.Tensor:
    return g.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, *[1] * (g.dim() - 1))


def _ascent_variant(normalise: str = "image", l2_sign: float = -1.0, probability: bool | str = False,
                    clamp: bool = True) -> Method:
    """One ascent step, x + lr * g / mean|g| clamped to [0, 1], the mean taken per image: one step
    of ``featureviz.activation_maximisation`` without jitter or blur. Each argument, changed from
    its default, reproduces one typical mistake."""
    def step(model, x, target, lr, l2):
        g = _ascent_gradient(model, x, target, l2, probability=probability, l2_sign=l2_sign)
        scale = {"image": _per_image_mean_abs(g), "batch": g.abs().mean(), "none": 1.0}[normalise]
        moved = x + lr * g / scale
        return moved.clamp(0, 1) if clamp else moved
    return step


_reference_ascent_step = _ascent_variant()


def _ascent_cases() -> list[Case]:
    """Three seeded tiny CNNs and images in [0, 1]; case 2 without the L2 term, where only the
    clamp keeps the pixels in range."""
    cases = []
    for seed, (batch, channels, size, lr, l2) in enumerate([(1, 3, 8, 0.05, 0.5), (3, 3, 10, 0.2, 0.0),
                                                            (2, 1, 12, 0.1, 1.0)]):
        generator = torch.Generator().manual_seed(400 + seed)
        x = torch.rand(batch, channels, size, size, generator=generator, dtype=torch.float64)
        target = torch.randint(0, 5, (batch,), generator=generator)
        cases.append(Case(f"{batch} image(s) {channels}x{size}x{size}, lr {lr}, l2 {l2}",
                          tiny_cnn(seed, in_channels=channels), x, target, {"lr": lr, "l2": l2}))
    return cases


def check_ascent_step(student: Method) -> CheckReport:
    """ascent_step(model, x, target, lr, l2) -> (B, C, H, W): one step of activation maximisation
    (Simonyan et al. 2014), x <- clamp(x + lr * g / mean|g|, 0, 1) with
    g = d/dx [y_c(x) - l2 * ||x - 0.5||^2] and mean|g| taken per image; y_c is the logit."""
    mistakes = {
        "divide the gradient by its mean absolute value: the step is lr * g / mean|g|.":
            _ascent_variant(normalise="none"),
        "take mean|g| per image (over C, H, W), not over the whole batch.": _ascent_variant(normalise="batch"),
        "the L2 term is a penalty: subtract l2 * ||x - 0.5||^2 from the score (you added it).":
            _ascent_variant(l2_sign=1.0),
        "keep the pixels in [0, 1]: clamp after the step.": _ascent_variant(clamp=False),
        "climb the logit y_c, not the softmax probability.": _ascent_variant(probability=True),
        "climb the logit y_c, not the log-probability log p_c (minus the loss): it also pushes "
        "every other class down.": _ascent_variant(probability="log"),
    }
    if not callable(student):
        return _not_a_function("ascent step", student)
    # Compared as steps x_new - x: next to the image itself (values near 1) a wrong step of size
    # 1e-4 would read like rounding; next to the reference's step it does not.
    mistakes = {hint: _as_step(mistake) for hint, mistake in mistakes.items()}
    cases = _ascent_cases()
    for case in cases:
        case.description += ", compared as the step x_new - x"
    return run_checks("ascent step", _as_step(student), _as_step(_reference_ascent_step), cases, mistakes)


def _as_step(method: Method) -> Method:
    """method's moved image minus the image it was given (anything else is passed on as it is,
    for the checker to report)."""
    def step(model, x, target, **knobs):
        moved = method(model, x.clone(), target, **knobs)
        if isinstance(moved, torch.Tensor) and moved.shape == x.shape:
            return moved - x
        return moved
    return step
