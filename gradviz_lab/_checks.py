"""Input checks shared by the attribution methods.

Every public method starts by calling these, so a wrong argument fails at once with a message that
names the problem, instead of deep inside the model with a shape error.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from numbers import Real

import numpy as np
import torch
from torch import nn

from ._forward import NonFiniteError



def check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype] | None:
    """Device and dtype of the model's first parameter (or buffer); None for a stateless model."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return None


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    return None


def check_image_batch(x: torch.Tensor, name: str = "x") -> None:
    """x must be a finite floating (B, C, H, W) batch with B >= 1 (no model involved)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        hint = f" (one image? use {name}.unsqueeze(0))" if x.dim() == 3 else ""
        raise ValueError(
            f"{name} must be a batch of images of shape (B, C, H, W), got shape "
            f"{tuple(x.shape)}{hint}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B = 0)")
    if 0 in x.shape[1:]:
        raise ValueError(f"{name} has no pixels: (C, H, W) = {tuple(x.shape[1:])}")
    if x.device.type == "meta":
        raise ValueError(f"{name} is on the meta device, which holds shapes but no values")
    check_finite(x, name)


def check_images(model: nn.Module, x: torch.Tensor, name: str = "x") -> None:
    """x must be a finite floating (B, C, H, W) batch on the model's device and dtype."""
    check_model(model)
    check_image_batch(x, name)
    where = model_device_dtype(model)
    if where is not None:
        device, dtype = where
        if device.type == "meta":
            raise ValueError(
                "the model is on the meta device: its weights have shapes but no values. Build "
                "or load it on a real device (e.g. model.to_empty(device='cpu'), then "
                "load_state_dict)"
            )
        if x.device != device:
            raise ValueError(
                f"{name} is on {x.device} but the model is on {device}; "
                f"use {name}.to({str(device)!r})"
            )
        if x.dtype != dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but the model uses {dtype}; use {name}.to({dtype})"
            )
    conv = first_conv(model)
    if conv is not None and conv[1].in_channels != x.shape[1]:
        raise ValueError(
            f"{name} has {x.shape[1]} channels but the model's first convolution "
            f"({conv[0] or 'model'}) expects {conv[1].in_channels}"
        )


def check_finite(t: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise NonFiniteError(f"{name} contains non-finite values (nan or inf)")


def check_flag(value: object, name: str) -> bool:
    """True or False, not a truthy string such as 'yes' (or 'no', which would also be true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


# A bound on the copies of the input a method holds at once (occluded, noisy, path points,
# perturbed): with the model's own activations on top, the kit stays far from the machine's
# memory whatever batch_size asks for.
MAX_BATCH_BYTES = 256 * 2**20


def check_batch_memory(copies: int, x: torch.Tensor, batch_size: int, what: str) -> None:
    """min(batch_size, copies) copies of one image of x must fit in MAX_BATCH_BYTES."""
    image_bytes = x[0].numel() * x.element_size()
    at_once = min(batch_size, copies)
    if at_once * image_bytes > MAX_BATCH_BYTES:
        fits = max(1, MAX_BATCH_BYTES // image_bytes)
        raise ValueError(
            f"batch_size={batch_size} would hold {at_once:,} {what} of a {tuple(x.shape[1:])} "
            f"image at once ({at_once * image_bytes / 2**30:.1f} GiB, more than the kit's "
            f"{MAX_BATCH_BYTES // 2**20} MiB per batch): use batch_size <= {fits}"
        )


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_number(value: object, name: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value  # type: ignore[return-value]


def check_pair(value: object, name: str) -> tuple[int, int]:
    """An int n means (n, n); a pair (h, w) of positive ints is taken as is."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"{name} must be an int or a pair (h, w) of ints, got {value!r}")
    return check_positive_int(pair[0], f"{name}[0]"), check_positive_int(pair[1], f"{name}[1]")


def as_image_like(value: float | torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    """A number or an image (C, H, W), (1, C, H, W) or (B, C, H, W), broadcast to x's shape."""
    if isinstance(value, torch.Tensor):
        image = value.detach().to(device=x.device, dtype=x.dtype)
        if image.dim() == 3:
            image = image.unsqueeze(0)
        if image.dim() != 4 or image.shape[1:] != x.shape[1:] or image.shape[0] not in (1, len(x)):
            raise ValueError(
                f"{name} must have shape {tuple(x.shape[1:])}, (1, ...) or {tuple(x.shape)}, "
                f"got {tuple(value.shape)}"
            )
        check_finite(image, name)
        return image.expand_as(x)
    return torch.full_like(x, check_number(value, name))


# --- layers ----------------------------------------------------------------------------------


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """A dotted name ("features.35") or a submodule -> (name, module), with a helpful error."""
    named = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in named.items():
            if module is layer:
                return name, module
        raise ValueError(f"layer {type(layer).__name__} is not a submodule of the model")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a module or a dotted name, got {type(layer).__name__}")
    if layer in named and layer != "":
        return layer, named[layer]
    names = [n for n in named if n]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    shown = ", ".join(names[:40]) + (f", ... ({len(names) - 40} more)" if len(names) > 40 else "")
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown layer {layer!r}.{hint} Valid layer names: {shown}")
