"""Checks for saliency maps handed to the evaluation functions."""

from __future__ import annotations

import torch

from .._checks import check_finite


def pixel_map(saliency_map: torch.Tensor, height: int, width: int, batch: int, name: str = "saliency_map") -> torch.Tensor:
    """A map with one value per pixel, (B, 1, H, W) or (B, H, W) -> (B, H, W), checked.

    An input-space attribution (B, C, H, W) with C > 1 must be reduced first: which reduction
    (absolute value summed over channels, signed sum, ...) is a choice the caller should see.
    """
    if not isinstance(saliency_map, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(saliency_map).__name__}")
    m = saliency_map.detach()
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    elif m.dim() == 4:
        raise ValueError(
            f"{name} has {m.shape[1]} channels: reduce it to one value per pixel first, e.g. "
            f"{name}.abs().sum(dim=1, keepdim=True)"
        )
    if m.dim() != 3 or tuple(m.shape) != (batch, height, width):
        raise ValueError(
            f"{name} must have shape ({batch}, 1, {height}, {width}) or ({batch}, {height}, {width}), "
            f"got {tuple(saliency_map.shape)}"
        )
    if not m.is_floating_point():
        m = m.float()
    check_finite(m, name)
    return m


def boolean_masks(masks: torch.Tensor, height: int, width: int, batch: int, name: str = "masks") -> torch.Tensor:
    """Ground-truth masks (B, 1, H, W) or (B, H, W), bool or 0/1 -> (B, H, W) bool, none empty."""
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(masks).__name__}")
    m = masks.detach()
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.dim() != 3 or tuple(m.shape) != (batch, height, width):
        hint = " (one mask per image: pick the object, e.g. masks[:, 0])" if m.dim() == 4 else ""
        raise ValueError(
            f"{name} must have shape ({batch}, 1, {height}, {width}) or ({batch}, {height}, {width}), "
            f"got {tuple(masks.shape)}{hint}"
        )
    if m.dtype != torch.bool:
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError(f"{name} must be boolean or hold only 0 and 1")
        m = m != 0
    empty = (~m.flatten(1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"{name} of image(s) {empty} is empty: there is no object to point at")
    return m
