"""Plumbing shared by the methods: gradients of target scores, and work on copies of the images
done in batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .._forward import NonFiniteError, NonFiniteOutputError, run_model
from ..targets import TargetScore


@contextmanager
def gradients_on() -> Iterator[None]:
    """Autograd on, even when the caller is inside ``torch.no_grad()`` or inference mode."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def score_gradient(
    model: nn.Module, x: torch.Tensor, score: TargetScore
) -> tuple[torch.Tensor, torch.Tensor]:
    """(d score_b / d x_b for every image b, the scores), with ``torch.autograd.grad``.

    The images of a batch do not interact (a model in eval mode), so the gradient of the *sum* of
    the scores with respect to the batch holds, in row b, the gradient of score b alone: one
    backward pass for the whole batch. ``autograd.grad`` leaves the parameters' ``.grad`` alone.
    """
    with gradients_on():
        x = x.detach().clone().requires_grad_(True)  # an ordinary leaf (x may be an inference tensor)
        scores = score(run_model(model, x))
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


def chunks(total: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Index ranges 0..total-1 in pieces of at most batch_size (a loop over chunks, not items)."""
    for start in range(0, total, batch_size):
        yield torch.arange(start, min(start + batch_size, total))


# Copies of an image per forward/backward pass when the caller does not say. A CPU runs a batch
# fastest while its activations stay in its caches: in float64, ShapesCNN's path gradients take
# about 20% less time in batches of 8 images than of 32, and the deletion curves' forward passes
# half the time (benchmarks/bench_evaluate.py); float32 runs as fast from 8 to 128.
CACHE_BATCH_BYTES = 512 * 2**10  # of input images per batch, on a CPU
# The rows of a batch are computed each on its own, but a matrix product can round a row
# differently with the batch's size. For ShapesCNN (the lessons' float64 numbers) every batch of
# 8 or more gives the bits that batches of 32 gave, under each of tests/emulate_cpu.py's CPUs;
# for other models (the vision transformer; some small CNNs' linear heads under AVX2 kernels)
# the last bits can change with the batch. Multiples of 8 keep more rows in the blocks of 8 of
# MKL's reproducible mode (tests/emulate_cpu.py sse41) as before.
BATCH_MULTIPLE = 8


def cache_sized_batch(x: torch.Tensor, largest: int) -> int:
    """Copies of one image of x per batch: on a CPU as many as fit CACHE_BATCH_BYTES, rounded down
    to a multiple of BATCH_MULTIPLE (at least one multiple), at most ``largest`` (a multiple too);
    ``largest`` on a GPU, which large batches keep busy."""
    if x.device.type != "cpu":
        return largest
    fits = CACHE_BATCH_BYTES // (x[0].numel() * x.element_size())
    return min(largest, max(BATCH_MULTIPLE, fits - fits % BATCH_MULTIPLE))


@contextmanager
def copies_of(images: torch.Tensor, copies: str) -> Iterator[None]:
    """A non-finite output of the model on copies of the images (rows of ``images``: the
    caller's image each copy was made from) is reported for the caller's images."""
    try:
        yield
    except NonFiniteOutputError as error:
        raise error.for_copies(images, copies) from None


Terms = torch.Tensor | tuple[torch.Tensor, ...]


def sum_over_copies(
    terms: Callable[[torch.Tensor, torch.Tensor], Terms],
    n_copies: int,
    x: torch.Tensor,
    batch_size: int,
    copies: str,
) -> Terms:
    """sum_n terms(n, b) for every image b of x: (B, ...) per term, summed in order of n.

    ``terms(n, images)`` gets a batch of pairs (copy number n[r], image images[r]), both (R,) on
    x's device, and returns the term of each pair, (R, ...), or a tuple of such terms. All
    n_copies x B pairs are evaluated batch_size at a time: row r of the whole = (copy r // B,
    image r % B), so a batch holds every image's copy n before any image's copy n + 1, and each
    image's sum adds its copies in the same order whatever the batch size.
    """
    batch, totals = len(x), None
    for rows in chunks(n_copies * batch, batch_size):
        images, n = (rows % batch).to(x.device), (rows // batch).to(x.device)
        with copies_of(images, copies):
            values = terms(n, images)
        values = values if isinstance(values, tuple) else (values,)
        if totals is None:
            totals = tuple(v.new_zeros((batch, *v.shape[1:])) for v in values)
        for total, value in zip(totals, values):
            total.index_add_(0, images, value)
    return totals if len(totals) > 1 else totals[0]


def scores_of(model: nn.Module, x: torch.Tensor, score: TargetScore) -> torch.Tensor:
    """The scores (B,) of the images x, without a graph."""
    with torch.no_grad():
        return score(run_model(model, x))
