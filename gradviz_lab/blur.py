"""The kit's one Gaussian blur: feature visualisation's regulariser and integrated gradients'
"blur" baseline both call ``gaussian_blur``, each with its own edge rule and kernel size.

    G(t) = exp(-0.5 (t / sigma)^2) / sum_t' exp(-0.5 (t' / sigma)^2),    t = -radius .. radius

applied along the rows, then along the columns (a 2-D Gaussian is the product of two 1-D ones).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._checks import check_choice, check_image_batch, check_number, check_positive_int

EDGES = ("reflect", "replicate")


def gaussian_blur(
    images: torch.Tensor, sigma: float, edges: str = "reflect", radius: int | None = None
) -> torch.Tensor:
    """Blur each channel of (B, C, H, W) images with a Gaussian of std ``sigma`` pixels.

    edges: what the kernel sees past the border, so that the border does not darken:
      "reflect"    the image mirrored about its edge pixel (c b | a b c); an image whose side is
                   not larger than ``radius`` cannot be mirrored that far and is replicated.
                   Feature visualisation's rule: no pixel value is repeated at the border.
      "replicate"  the edge pixel repeated (a a | a b c). Integrated gradients' "blur" baseline.
    radius: the kernel's half-width in pixels, at least 1; default ceil(3 sigma), which keeps
      more than 99.7% of the Gaussian's mass.
    sigma = 0 returns the images themselves.
    """
    check_image_batch(images, "images")
    sigma = check_number(sigma, "sigma", minimum=0.0)
    check_choice(edges, "edges", EDGES)
    if radius is not None:
        check_positive_int(radius, "radius")
    if sigma == 0:
        return images
    if radius is None:
        radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    rows = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    mode = "reflect" if edges == "reflect" and min(images.shape[-2:]) > radius else "replicate"
    x = F.conv2d(F.pad(images, (0, 0, radius, radius), mode=mode), rows, groups=channels)
    return F.conv2d(F.pad(x, (radius, radius, 0, 0), mode=mode), cols, groups=channels)
