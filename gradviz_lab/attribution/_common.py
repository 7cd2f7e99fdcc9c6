"""Plumbing shared by the methods: gradients of target scores, and work split into chunks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .._checks import (
    Target,
    check_target_type,
    class_indices,
    fixed_target,
    named_target,
    requested_classes,
    target_scores,
)
from .._forward import NonFiniteError, NonFiniteOutputError, run_model


@contextmanager
def gradients_on() -> Iterator[None]:
    """Autograd on, even when the caller is inside ``torch.no_grad()`` or inference mode."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def score_gradient(
    model: nn.Module, x: torch.Tensor, target: Target
) -> tuple[torch.Tensor, torch.Tensor]:
    """(d score_b / d x_b for every image b, the scores), with ``torch.autograd.grad``.

    The images of a batch do not interact (a model in eval mode), so the gradient of the *sum* of
    the scores with respect to the batch holds, in row b, the gradient of score b alone: one
    backward pass for the whole batch. ``autograd.grad`` leaves the parameters' ``.grad`` alone.
    """
    with gradients_on():
        x = x.detach().clone().requires_grad_(True)  # an ordinary leaf (x may be an inference tensor)
        output = run_model(model, x)
        scores = target_scores(output, resolved_target(output, named_target(model, target)))
        grad = gradient_of(scores, x, "the input")
    return finite_map(grad, "gradient"), scores.detach()


def finite_map(result: torch.Tensor, what: str) -> torch.Tensor:
    """The result if all its values are finite. The model's outputs were (``run_model`` checks
    them), so a nan or inf here is an overflow on the way: a very large input or weights, or a
    map whose values exceed float32's range (about 3.4e38)."""
    bad = int((~torch.isfinite(result)).sum())
    if bad:
        raise NonFiniteError(
            f"the {what} map overflowed: {bad} of its {result.numel()} values are not finite "
            "(nan or inf) although the model's outputs were; its values exceed the range of "
            f"{result.dtype} (a very large input or weights?). Rescale the input, or compute in "
            "float64 (model.double(), x.double())"
        )
    return result


def gradient_of(scores: torch.Tensor, wrt: torch.Tensor, what: str) -> torch.Tensor:
    """d (sum of the scores) / d wrt, or a clear error when the scores do not depend on wrt."""
    grad = None
    if scores.requires_grad and wrt.requires_grad:
        (grad,) = torch.autograd.grad(scores.sum(), wrt, allow_unused=True)
    if grad is None:
        raise ValueError(f"the target score does not depend on {what}: there is no gradient")
    return grad


def resolved_target(output: torch.Tensor, target: Target) -> torch.Tensor | Callable:
    """A callable as is; otherwise the (B,) class indices, as an ordinary tensor (a copy of one
    made under ``torch.inference_mode`` could not be used by autograd)."""
    if callable(target) and not isinstance(target, torch.Tensor):
        return target
    return class_indices(output, target).clone()


def target_per_image(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor | Callable:
    """What every noisy copy / path point of image b is scored by, fixed on the clean image:
    None costs one forward pass (the predicted classes); ints become a (B,) tensor whose range
    the first batch of copies checks against the logits; a callable is kept as is."""
    target = named_target(model, target)
    check_target_type(target)
    if target is None:
        return fixed_target(model, x, None)
    if callable(target) and not isinstance(target, torch.Tensor):
        return target
    return requested_classes(target, len(x), x.device)


def chunks(total: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Index ranges 0..total-1 in pieces of at most batch_size (a loop over chunks, not items)."""
    for start in range(0, total, batch_size):
        yield torch.arange(start, min(start + batch_size, total))


@contextmanager
def copies_of(images: torch.Tensor, copies: str) -> Iterator[None]:
    """A non-finite output of the model on copies of the images (rows of ``images``: the
    caller's image each copy was made from) is reported for the caller's images."""
    try:
        yield
    except NonFiniteOutputError as error:
        raise error.for_copies(images, copies) from None


def pick(target: torch.Tensor | Callable, images: torch.Tensor) -> torch.Tensor | Callable:
    """The target for a chunk whose rows are copies of the given images."""
    if isinstance(target, torch.Tensor):
        return target[images.to(target.device)]
    return target
