"""Deletion and insertion: does the map rank the pixels the model really uses first?
(Petsiuk, Das & Saenko 2018, "RISE: randomized input sampling for explanation of black-box
models", section 4.1)

- deletion:  remove the pixels from the most salient down (replace them by a baseline, e.g. black)
             and record the probability of the target class. A faithful map makes it drop fast:
             a *low* area under the curve is good.
- insertion: start from a blurred copy and put the pixels back, most salient first. A faithful
             map makes the probability rise fast: a *high* area under the curve is good.

What replaces a removed pixel matters as much as the map: black leaves the object's silhouette,
a blurred copy a blob of its colour, and the model may still see the object in either.
``baseline="impute"`` fills removed pixels from the remaining ones only (``imputation.py``; Rong
et al. 2022, "ROAD"), so that removing the object removes it.

The pixels are changed in ``steps`` near-equal groups (at least one pixel per step), so a curve
has steps + 1 points at the fractions 0, ~1/steps, ..., 1 of the pixels; its AUC is the
trapezoid rule over these fractions.
Ties in the map are broken by raster order (top row first, left to right), so a map with flat
regions gives one reproducible curve. All steps of all images go through the model in batches of
``batch_size`` (None: as many as keep a batch in a CPU's cache, at most 64; the curves are the
same for any batch size).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._boundary import public
from .._checks import (
    check_batch_memory,
    check_choice,
    check_image_batch,
    check_number,
    check_positive_int,
)
from ..targets import Target
from .._forward import run_model
from ..attribution.baselines import NAMES, make_baseline
from ..attribution._common import cache_sized_batch
from ._maps import pixel_map
from .imputation import impute


@dataclass(frozen=True)
class Curve:
    """A deletion or insertion curve: the target score after changing a fraction of the pixels.

    fractions (S + 1,) from 0 to 1; scores (B, S + 1), one curve per image; kind "deletion" or
    "insertion". ``auc`` is the area under each curve, (B,).
    """

    fractions: torch.Tensor
    scores: torch.Tensor
    kind: str

    @property
    def auc(self) -> torch.Tensor:
        return torch.trapezoid(self.scores, self.fractions, dim=-1)


def pixel_ranks(saliency_map: torch.Tensor) -> torch.Tensor:
    """(B, H, W) map -> (B, H, W) ranks: 0 for the most salient pixel, H*W - 1 for the least.
    Equal values keep raster order (a stable sort), so ties are broken the same way every time."""
    flat = saliency_map.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions).view_as(saliency_map)


def changed_counts(n_pixels: int, steps: int) -> torch.Tensor:
    """How many pixels are changed after each step: floor(i * n / steps) for i = 0..steps."""
    return torch.arange(steps + 1) * n_pixels // steps


def _with_pixels_changed(
    x: torch.Tensor, fill: torch.Tensor | None, changed: torch.Tensor, kind: str
) -> torch.Tensor:
    """The image a curve scores: deletion replaces the changed pixels of x by ``fill``, insertion
    shows x on the changed pixels over ``fill``; fill None imputes every pixel that does not show
    x from those that do (``impute``). changed: (B, 1, H, W) booleans."""
    shows_x = ~changed if kind == "deletion" else changed
    if fill is None:
        return impute(x, shows_x)
    return torch.where(shows_x, x, fill)


def _fill_image(x: torch.Tensor, baseline: str | float | torch.Tensor) -> torch.Tensor | None:
    """What replaces the removed pixels: an image like x, or None for "impute" (made per step)."""
    if isinstance(baseline, str):
        check_choice(baseline, "baseline", (*NAMES, "impute"))
        if baseline == "impute":
            return None
    return make_baseline(x, baseline)


def remove_top_pixels(
    x: torch.Tensor,
    saliency_map: torch.Tensor,
    fraction: float,
    baseline: str | float | torch.Tensor = 0.0,
) -> torch.Tensor:
    """x with its most salient ``fraction`` of pixels removed: the image ``deletion_curve`` scores
    after changing floor(fraction * H * W) pixels (same ranks, same ties, same fills)."""
    check_image_batch(x)
    check_number(fraction, "fraction", minimum=0.0)
    if fraction > 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    batch, _, height, width = x.shape
    ranks = pixel_ranks(pixel_map(saliency_map, height, width, batch)).to(x.device).unsqueeze(1)
    changed = ranks < int(fraction * height * width)
    return _with_pixels_changed(x, _fill_image(x, baseline), changed, "deletion")


@public
def perturbation_curve(
    model: nn.Module,
    x: torch.Tensor,
    saliency_map: torch.Tensor,
    kind: str,
    target: Target = None,
    steps: int = 32,
    baseline: str | float | torch.Tensor | None = None,
    score: str = "probability",
    batch_size: int | None = None,
) -> Curve:
    """The deletion or insertion curve (``kind``) of each image: see ``deletion_curve``."""
    check_choice(kind, "kind", ("deletion", "insertion"))
    check_choice(score, "score", ("probability", "logit"))
    if batch_size is None:
        batch_size = cache_sized_batch(x, largest=64)
    check_positive_int(batch_size, "batch_size")
    batch, _, height, width = x.shape
    n_pixels = height * width
    steps = min(check_positive_int(steps, "steps"), n_pixels)  # at most one pixel per step
    check_batch_memory(batch * (steps + 1), x, batch_size, "perturbed copies")
    ranks = pixel_ranks(pixel_map(saliency_map, height, width, batch)).to(x.device).unsqueeze(1)
    if baseline is None:
        baseline = 0.0 if kind == "deletion" else "blur"
    fill = _fill_image(x, baseline)  # None: imputed at every step from the pixels shown
    counts = changed_counts(n_pixels, steps).to(x.device)
    n_items = batch * (steps + 1)  # item = (image, step)
    scores = torch.empty(n_items, dtype=torch.float64, device=x.device)
    target = target.fixed(model, x)  # explain the clean image's class all along
    if score == "probability":
        target = target.of_probabilities()  # Petsiuk et al. record the class probability
    with torch.no_grad():
        for start in range(0, n_items, batch_size):
            items = torch.arange(start, min(start + batch_size, n_items), device=x.device)
            images, step = items // (steps + 1), items % (steps + 1)
            changed = ranks[images] < counts[step].view(-1, 1, 1, 1)  # the first counts pixels
            chunk_fill = None if fill is None else fill[images]
            perturbed = _with_pixels_changed(x[images], chunk_fill, changed, kind)
            scores[items] = target.for_copies(images)(run_model(model, perturbed)).double()
    fractions = counts.double() / n_pixels
    return Curve(fractions, scores.view(batch, steps + 1), kind)


@public
def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    saliency_map: torch.Tensor,
    target: Target = None,
    steps: int = 32,
    baseline: str | float | torch.Tensor = 0.0,
    score: str = "probability",
    batch_size: int | None = None,
) -> Curve:
    """Deletion (Petsiuk et al. 2018): remove pixels in the map's order; a low AUC is good.

        curve_b(f) = p_c(x_b with its most salient fraction f of pixels set to the baseline)

    saliency_map: (B, 1, H, W) or (B, H, W), one value per pixel (all channels of a pixel are
    removed together). target: None (the clean image's predicted class), an int, B ints or a
    callable output -> (B,) scores. baseline: 0.0 (black, as in RISE), any baseline of
    ``gradviz_lab.attribution.baselines`` (a name, a value, an image), or "impute": each removed pixel filled from the pixels still there (``impute``,
    as in ROAD), so the fill keeps neither the object's silhouette (black) nor a blob of its
    colour (blur). score: "probability" (softmax, as in RISE) or "logit"; a callable target's own
    score is used as is. Returns a ``Curve``; ``curve.auc`` is (B,).
    """
    return perturbation_curve(model, x, saliency_map, "deletion", target, steps, baseline, score, batch_size)


@public
def insertion_curve(
    model: nn.Module,
    x: torch.Tensor,
    saliency_map: torch.Tensor,
    target: Target = None,
    steps: int = 32,
    baseline: str | float | torch.Tensor = "blur",
    score: str = "probability",
    batch_size: int | None = None,
) -> Curve:
    """Insertion (Petsiuk et al. 2018): put pixels back in the map's order; a high AUC is good.

        curve_b(f) = p_c(the baseline with the most salient fraction f of x_b's pixels restored)

    baseline: "blur" by default (a Gaussian blur of std 10% of the image side, as the
    integrated-gradients baseline of the same name; RISE starts from a blurred image too), or
    any baseline of ``gradviz_lab.attribution.baselines``, or "impute" (the pixels not yet restored filled from the
    restored ones; black while none is). Other arguments as ``deletion_curve``.
    """
    return perturbation_curve(model, x, saliency_map, "insertion", target, steps, baseline, score, batch_size)
