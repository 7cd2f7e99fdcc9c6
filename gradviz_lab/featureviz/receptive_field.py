"""Receptive fields: which input pixels a unit of a layer can see, by walking the conv/pool
layers that run before it (the arithmetic of Dumoulin & Visin 2016, checked against the real
output sizes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import hooks
from .._checks import check_model, resolve_layer
from .._forward import run_model
from ._common import _image_shape, _like


@dataclass(frozen=True)
class ReceptiveField:
    """Which input pixels a unit (row i, col j) of a layer can see, along each axis:

        rows  i * stride[0] - offset[0]  ...  i * stride[0] - offset[0] + size[0] - 1

    (the same with index 1 for columns). ``stride`` is the product of the strides before the
    layer, ``offset`` the padding they add, ``size`` the receptive field's side in pixels.
    Near the image border the box is clipped to the image; there it can be slightly larger than
    what the unit really sees, since zero padding inside the network stands in for some pixels.
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[int, int]

    def start(self, row: torch.Tensor, col: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-left input pixel of the field of unit (row, col), unclipped (may be negative)."""
        return row * self.stride[0] - self.offset[0], col * self.stride[1] - self.offset[1]

    def box(self, row: torch.Tensor, col: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(..., 4) boxes (top, left, bottom, right), half-open, clipped to a height x width image."""
        top, left = self.start(row, col)
        return torch.stack(
            [
                top.clamp(0, height),
                left.clamp(0, width),
                (top + self.size[0]).clamp(0, height),
                (left + self.size[1]).clamp(0, width),
            ],
            dim=-1,
        )


def _geometry(module: nn.Module) -> tuple[tuple[int, int], ...] | None:
    """(kernel, stride, padding, dilation) pairs of a conv or pooling layer; None for others."""
    if not isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return None
    pair = nn.modules.utils._pair
    kernel, stride = pair(module.kernel_size), pair(module.stride or module.kernel_size)
    dilation = pair(getattr(module, "dilation", 1))
    padding = module.padding
    if padding == "valid":
        padding = 0
    elif padding == "same":  # PyTorch pads (total // 2) before, the rest after
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return kernel, stride, pair(padding), dilation


def _output_size(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool
) -> int:
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    return (math.ceil(span / stride) if ceil else span // stride) + 1


def receptive_field(
    model: nn.Module, layer: str | nn.Module, image_shape: Sequence[int]
) -> ReceptiveField:
    """The receptive field of the units of ``layer``, by walking the layers that run before it.

    Each conv/pool layer with kernel k, stride s, padding p and dilation d, applied to a map
    whose units see ``size`` pixels ``jump`` apart, gives units that see

        size + d (k - 1) jump  pixels,  jump * s  apart,  offset + p * jump  (padding)

    Pointwise layers (ReLU, batch norm, dropout) change nothing. The walk follows the order in
    which the layers run on one (1, C, H, W) image, and checks each layer's real output size
    against the arithmetic: a model with branches or functional pooling, which the arithmetic
    cannot follow, gets an error instead of a wrong box.
    """
    check_model(model)
    name, _ = resolve_layer(model, layer)
    shape = _image_shape(model, image_shape)
    modules = dict(model.named_modules())
    with hooks.preserved_state(model), torch.no_grad(), hooks.forward_shapes(model) as shapes:
        model.eval()
        run_model(model, torch.zeros(1, *shape, **_like(model)))
    size, jump, offset = [1, 1], [1, 1], [0, 0]
    current = list(shape[1:])
    for step_name, out_shape in shapes:  # in the order the layers finish
        module = modules[step_name]
        if next(module.children(), None) is None:  # a leaf; a container finishes after its leaves
            _walk_one(step_name, module, out_shape, current, size, jump, offset)
        if step_name == name:
            if len(out_shape) != 4 or list(out_shape[2:]) != current:
                raise ValueError(
                    f"layer {name!r} outputs {tuple(out_shape)}: not feature maps the arithmetic can follow"
                )
            return ReceptiveField(tuple(size), tuple(jump), tuple(offset))
    raise ValueError(f"layer {name!r} did not run in the forward pass")


def _walk_one(
    name: str,
    module: nn.Module,
    out_shape: torch.Size,
    current: list[int],
    size: list[int],
    jump: list[int],
    offset: list[int],
) -> None:
    """Update (size, jump, offset) and the current map size for one leaf layer, in place."""
    geometry = _geometry(module)
    if len(out_shape) != 4:
        raise ValueError(
            f"layer {name!r} outputs {tuple(out_shape)}, not feature maps (B, K, h, w)"
        )
    if geometry is None:
        if list(out_shape[2:]) != current:
            raise ValueError(
                f"layer {name!r} ({type(module).__name__}) changes the map size from {current} to "
                f"{list(out_shape[2:])}; receptive fields are computed for conv/pool chains only"
            )
        return
    ceil = bool(getattr(module, "ceil_mode", False))
    for axis, (k, s, p, d) in enumerate(zip(*geometry)):
        expected = _output_size(current[axis], k, s, p, d, ceil)
        if expected != out_shape[2 + axis]:
            raise ValueError(
                f"layer {name!r} outputs size {out_shape[2 + axis]} where a chain of layers would give "
                f"{expected}: the model branches, and receptive fields are computed for chains only"
            )
        offset[axis] += p * jump[axis]
        size[axis] += d * (k - 1) * jump[axis]
        jump[axis] *= s
        current[axis] = expected
