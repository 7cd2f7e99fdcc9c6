"""Baselines: what stands for "no information" where a method removes or fades part of an image.

The kit's one vocabulary, taken by ``integrated_gradients`` (the path's start x'), ``occlusion``
(what fills the window), the deletion and insertion curves (what replaces removed pixels) and
the dashboards:

    "zeros", "black"  0 everywhere (black, for images in [0, 1])
    "grey"            0.5 everywhere (mid-grey, for images in [0, 1])
    "mean"            each image's mean colour, channel by channel
    "blur"            the image blurred by a Gaussian of std 10% of its shorter side
    a number          that value everywhere
    an image          a tensor (C, H, W), (1, C, H, W) or (B, C, H, W)

The deletion and insertion curves take one more, "impute": each removed pixel filled from the
pixels still there (``gradviz_lab.evaluate.imputation``), made anew at every step.

No baseline is neutral: each asks "compared with what?" (lesson 6). Black leaves an object's
silhouette, a blur a blob of its colour, the mean colour a flat patch.
"""

from __future__ import annotations

import torch
from .._checks import as_image_like, check_choice
from ..blur import gaussian_blur

NAMES = ("zeros", "black", "grey", "mean", "blur")
BLUR_FRACTION = 0.1  # the "blur" baseline's std, as a fraction of the image's shorter side


def make_baseline(x: torch.Tensor, baseline: str | float | torch.Tensor) -> torch.Tensor:
    """The baseline named (see the module docstring) or given, shaped like x (B, C, H, W)."""
    if not isinstance(baseline, str):
        return as_image_like(baseline, x, "baseline")
    check_choice(baseline, "baseline", NAMES)
    if baseline in ("zeros", "black"):
        return torch.zeros_like(x)
    if baseline == "grey":
        return torch.full_like(x, 0.5)
    if baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()
    return blurred(x, sigma=BLUR_FRACTION * min(x.shape[-2:]))


def blurred(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """x blurred by a Gaussian of std ``sigma`` pixels (separable, edges replicated, radius
    round(3 sigma)): ``gradviz_lab.blur.gaussian_blur``, the kit's one blur."""
    return gaussian_blur(x, sigma, edges="replicate", radius=max(1, int(3 * sigma + 0.5)))
