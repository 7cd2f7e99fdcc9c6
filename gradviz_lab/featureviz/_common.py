"""What every part of feature visualisation needs: one forward pass read at a layer, index and
channel checks, the image shape a model takes, and its device and dtype."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import hooks
from .._checks import model_device_dtype
from .._forward import run_model
from ..data import MAX_IMAGE_PIXELS


def _run_once(model: nn.Module, record: hooks.LayerRecord, x: torch.Tensor) -> torch.Tensor:
    """Run the model on x and return the captured layer's output of this forward pass."""
    before = len(record.outputs)
    output = run_model(model, x)
    if len(record.outputs) - before != 1:
        raise ValueError(
            f"layer {record.name!r} ran {len(record.outputs) - before} times in one forward pass; "
            "choose a layer that runs exactly once"
        )
    activations = record.outputs[-1]
    if activations.dim() != 4:
        raise ValueError(
            f"layer {record.name!r} outputs shape {tuple(activations.shape)}, not feature maps "
            "(B, K, h, w): choose a convolutional layer"
        )
    return output


def _indices(value: int | Sequence[int], what: str) -> list[int]:
    """One index or a non-empty sequence of them, as a list of ints."""
    values = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(values, Sequence)
        or not values
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    ):
        raise TypeError(f"{what} must be an int or a non-empty sequence of ints, got {value!r}")
    return list(values)


def _check_channels(channels: int | Sequence[int], count: int, layer: str) -> torch.Tensor:
    values = _indices(channels, "channel(s)")
    bad = [c for c in values if not 0 <= c < count]
    if bad:
        raise ValueError(
            f"channel(s) {bad} out of range: layer {layer!r} has channels 0..{count - 1}"
        )
    return torch.tensor(values, dtype=torch.long)


def _image_shape(model: nn.Module, image_shape: Sequence[int] | None) -> tuple[int, int, int]:
    shape = image_shape if image_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(
            "pass image_shape=(C, H, W), e.g. (1, 28, 28) for the digits model, (3, 64, 64) for shapes"
        )
    if (
        not isinstance(shape, Sequence)
        or len(shape) != 3
        or not all(isinstance(s, int) and s > 0 for s in shape)
    ):
        raise ValueError(f"image_shape must be three positive ints (C, H, W), got {shape!r}")
    if shape[1] * shape[2] > MAX_IMAGE_PIXELS:
        raise ValueError(f"image_shape {tuple(shape)} has more than {MAX_IMAGE_PIXELS:,} pixels")
    return tuple(shape)  # type: ignore[return-value]


def _like(model: nn.Module) -> dict:
    device, dtype = model_device_dtype(model) or (torch.device("cpu"), torch.float32)
    return {"device": device, "dtype": dtype}
