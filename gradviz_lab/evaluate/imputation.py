"""Filling removed pixels from the pixels that are left, so the fill says nothing about them.

Deletion replaces a map's top pixels by a baseline, and the baseline can give the removed pixels
away. Black keeps the object's *silhouette*: a black square is still a square. A blurred copy of
the image keeps a *blob* of the object's colour, because the blur was computed from the very
pixels being removed. Rong, Leemann, Borisov, Kasneci & Kasneci (2022), "A Consistent and
Efficient Evaluation Strategy for Attribution Methods" (ROAD), fill each removed pixel from its
kept neighbours instead, so no information about the removed pixels leaks into the image.

``impute`` fills by pull-push (Gortler, Grzeszczuk, Szeliski & Cohen 1996, "The Lumigraph"):

    pull:  halve the resolution again and again; a coarse pixel is the mean of the known pixels
           under it, and is known if any of them is;
    push:  from the coarsest level back down, each unknown pixel takes the bilinear upsampling of
           the (now filled) level above.

Every filled value is a weighted mean of known pixels only, known pixels are returned unchanged,
and a hole is filled from its nearest surroundings first (a smooth, roughly linear fill, close to
ROAD's linear imputation at a fraction of its cost: about log2(H) poolings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_image_batch


def impute(x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """x with every pixel where ``known`` is False filled from the known pixels (pull-push).

    x: (B, C, H, W) images; known: (B, 1, H, W) or (B, H, W) booleans, True where x's pixel is
    kept. Returns a new (B, C, H, W) tensor, equal to x where known. An image with no known pixel
    at all has nothing to fill from and becomes 0 (black).
    """
    check_image_batch(x)
    if not isinstance(known, torch.Tensor) or known.dtype != torch.bool:
        what = known.dtype if isinstance(known, torch.Tensor) else type(known).__name__
        raise TypeError(f"known must be a bool tensor, got {what}")
    batch, _, height, width = x.shape
    if known.dim() == 3:
        known = known.unsqueeze(1)
    if tuple(known.shape) != (batch, 1, height, width):
        raise ValueError(
            f"known must have shape ({batch}, 1, {height}, {width}) or ({batch}, {height}, {width}), "
            f"got {tuple(known.shape)}"
        )
    return _pull_push(x, known.to(x.device, x.dtype))


def _pull_push(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """values (B, C, h, w), known (B, 1, h, w) of 0/1: every unknown pixel filled (0 when the
    whole image is unknown)."""
    height, width = values.shape[-2:]
    if bool(known.all()) or (height == 1 and width == 1):
        return values * known
    # pull: the mean of the known pixels under each coarse pixel (ceil_mode keeps odd edges)
    coarse_known = F.avg_pool2d(known, 2, ceil_mode=True)
    coarse = F.avg_pool2d(values * known, 2, ceil_mode=True) / coarse_known.clamp_min(1e-12)
    filled = _pull_push(coarse, (coarse_known > 0).to(values.dtype))
    # push: unknown pixels from the filled coarse level, known ones as they are
    up = F.interpolate(filled, size=(height, width), mode="bilinear", align_corners=False)
    return torch.where(known > 0, values, up)
