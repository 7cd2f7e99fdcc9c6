"""Does the map point at the object? Scored against ground-truth masks.

- ``pointing_game`` (Zhang, Lin, Brandt, Shen & Sclaroff 2016, "Top-down neural attention by
  excitation backprop"): a hit when the map's maximum falls on the object.
- ``energy_pointing_game`` (Wang et al. 2020, "Score-CAM"): the share of the map's (positive)
  energy that falls on the object, which also rewards a map for what it does *not* highlight.

The shapes data (``gradviz_lab.data.make_shapes``) come with exact object masks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._checks import check_number
from ._maps import boolean_masks, pixel_map


def dilated(masks: torch.Tensor, radius: float) -> torch.Tensor:
    """(B, H, W) bool masks grown by every pixel within Euclidean distance ``radius``.

    Pixel (i, j) joins when a mask pixel (i + dy, j + dx) has dx^2 + dy^2 <= radius^2, i.e.
    |dx| <= w(dy) = floor(sqrt(radius^2 - dy^2)). For each row offset dy that is the mask widened
    by w(dy) columns (counted with a cumulative sum along the rows) and shifted by dy rows. Only
    offsets inside the image matter (|dy| < H, |dx| < W), so memory stays a few masks and time
    at most H * H * W per image, however large the radius: a disc larger than the image is
    the image.
    """
    if radius <= 0:
        return masks
    batch, height, width = masks.shape
    # radius^2 in float32, as a disc of float32 offsets compared with it would see it
    radius_sq = float(torch.tensor(float(radius) ** 2, dtype=torch.float32))
    counts = F.pad(masks.to(torch.int32).cumsum(dim=-1), (1, 0))  # counts[..., k] = sum of [:k]
    columns = torch.arange(width, device=masks.device)
    grown = torch.zeros_like(masks, dtype=torch.bool)
    for dy in range(-min(int(radius), height - 1), min(int(radius), height - 1) + 1):
        w = _half_width(radius_sq, dy, width - 1)
        right, left = (columns + w + 1).clamp(max=width), (columns - w).clamp(min=0)
        wide = (counts[..., right] - counts[..., left]) > 0  # a mask pixel within w columns
        if dy >= 0:  # row i takes row i + dy
            grown[:, : height - dy] |= wide[:, dy:]
        else:
            grown[:, -dy:] |= wide[:, : height + dy]
    return grown


def _half_width(radius_sq: float, dy: int, largest: int) -> int:
    """The largest dx in 0..largest with dx^2 + dy^2 <= radius_sq (dy^2 <= radius_sq)."""
    w = min(int(math.sqrt(max(radius_sq - dy * dy, 0.0))), largest)
    while w < largest and (w + 1) ** 2 + dy * dy <= radius_sq:  # sqrt's rounding, both ways
        w += 1
    while w > 0 and w * w + dy * dy > radius_sq:
        w -= 1
    return w


def pointing_game(saliency_map: torch.Tensor, masks: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """Does the map's maximum lie on the object? Per image: 1.0 = hit, 0.0 = miss, (B,) float.

    saliency_map: (B, 1, H, W) or (B, H, W); masks: the same shape, bool or 0/1, none empty.
    tolerance: a hit may miss the mask by up to this many pixels (Euclidean). Zhang et al. use
    15 px on images of about 224 px; the default here is 0, since the shapes are small (about
    25-45 px across on 64 px images) and a tolerance would credit near misses; scale it with the
    image if you want the paper's setting (15 * 64 / 224 ~ 4 px).
    Ties: when several pixels share the maximum (a blocky occlusion map, a flat map), the score
    is the share of them that lie on the object, which is the expected score if the tie were
    broken at random, without the randomness. A flat map thus scores the object's area fraction,
    the chance level. The hit rate of a batch is ``pointing_game(...).mean()``.
    """
    tolerance = check_number(tolerance, "tolerance", minimum=0.0)
    batch, height, width = _batch_shape(saliency_map)
    m = pixel_map(saliency_map, height, width, batch)
    target_area = dilated(boolean_masks(masks, height, width, batch).to(m.device), tolerance)
    is_max = m == m.flatten(1).amax(dim=1).view(-1, 1, 1)
    hits = (is_max & target_area).flatten(1).sum(dim=1)
    return hits.double() / is_max.flatten(1).sum(dim=1)


def energy_pointing_game(saliency_map: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of the map's positive energy inside the object, per image: (B,) in [0, 1].

        energy_b = sum_{p in mask} max(m_b(p), 0) / sum_p max(m_b(p), 0)

    Negative values count as no energy (pass |map| to count both signs). A map with no positive
    value highlights nothing and scores 0. A map spread uniformly scores the object's area
    fraction, the chance level to compare with.
    """
    batch, height, width = _batch_shape(saliency_map)
    m = pixel_map(saliency_map, height, width, batch).double().clamp(min=0)
    inside = boolean_masks(masks, height, width, batch).to(m.device)
    total = m.flatten(1).sum(dim=1)
    on_object = (m * inside).flatten(1).sum(dim=1)
    return torch.where(total > 0, on_object / torch.where(total > 0, total, 1.0), 0.0)


def _batch_shape(saliency_map: torch.Tensor) -> tuple[int, int, int]:
    if not isinstance(saliency_map, torch.Tensor):
        raise TypeError(f"saliency_map must be a torch.Tensor, got {type(saliency_map).__name__}")
    if saliency_map.dim() not in (3, 4):
        raise ValueError(f"saliency_map must be (B, 1, H, W) or (B, H, W), got {tuple(saliency_map.shape)}")
    return saliency_map.shape[0], saliency_map.shape[-2], saliency_map.shape[-1]
