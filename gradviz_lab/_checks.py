"""Input checks shared by the attribution methods.

Every public method starts by calling these, so a wrong argument fails at once with a message that
names the problem, instead of deep inside the model with a shape error.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Sequence
from numbers import Real

import numpy as np
import torch
from torch import nn

from ._forward import NonFiniteError, NonFiniteOutputError, run_model

# A target is None (the predicted class), one class index, one index per image, or a function
# mapping the model's output (B, ...) to one score per image (B,). Where the model carries its
# class names (``.classes`` of the lab models, ``.categories`` of the ImageNet ones) a class name,
# or one per image, stands for its index.
Target = None | int | str | Sequence[int] | Sequence[str] | torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


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


# --- targets ---------------------------------------------------------------------------------


INT64_RANGE = range(-(2**63), 2**63)


def check_target_type(target: Target) -> None:
    if target is None or callable(target):
        return
    if isinstance(target, torch.Tensor):
        if target.device.type == "meta":
            raise ValueError("target is on the meta device, which holds no values")
        return
    if isinstance(target, (bool, np.bool_)):
        raise TypeError("target must be None, an int, a sequence of ints or a callable, got bool")
    if isinstance(target, str):
        raise TypeError(
            f"target must be a class index here, not the text {target!r}: a class name is "
            "understood only where the model carries its class names (.classes or .categories); "
            "otherwise pass class_names.index(name)"
        )
    if isinstance(target, numbers.Integral):  # int, np.int64, ...
        _check_int64([target])
        return
    if isinstance(target, np.ndarray) and target.dtype.kind in "iu":
        return
    if isinstance(target, Sequence) and all(
        isinstance(t, numbers.Integral) and not isinstance(t, (bool, np.bool_)) for t in target
    ):
        if len(target) == 0:
            raise ValueError("target is an empty sequence: give one class index per image")
        _check_int64(target)
        return
    raise TypeError(
        "target must be None, an int, a sequence/tensor of ints or a callable "
        f"output -> (B,) scores, got {target!r}"
    )


def named_target(model: nn.Module, target: Target) -> Target:
    """A class name, or one name per image, as the index (indices) of the model's own class
    names; any other target is returned as it is."""
    if isinstance(target, str):
        wanted = [target]
    elif (isinstance(target, Sequence) and len(target) > 0
          and all(isinstance(t, str) for t in target)):
        wanted = list(target)
    else:
        return target
    classes = getattr(model, "classes", None) or getattr(model, "categories", None)
    if classes is None:
        raise TypeError(
            f"target {target!r} is a class name, but this model carries no class names (no "
            f".classes or .categories attribute): pass the class index instead, e.g. "
            f"class_names.index({wanted[0]!r}) with the list of names of its classes"
        )
    classes = list(classes)
    unknown = [name for name in wanted if name not in classes]
    if unknown:
        close = difflib.get_close_matches(unknown[0], classes, n=3)
        listed = ", ".join(classes) if len(classes) <= 20 else (
            ", ".join(classes[:10]) + f", ... ({len(classes)} classes)")
        raise ValueError(
            f"unknown class name {unknown[0]!r}"
            + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else "")
            + f"; the model's classes are: {listed}"
        )
    indices = [classes.index(name) for name in wanted]
    return indices[0] if isinstance(target, str) else indices


def class_indices(output: torch.Tensor, target: Target) -> torch.Tensor:
    """One class index per image, (B,) int64, checked against the logits (B, num_classes)."""
    check_target_type(target)
    if output.dim() != 2:
        raise ValueError(
            f"the model's output has shape {tuple(output.shape)}, not (B, num_classes): "
            "pass a callable target that maps it to (B,) scores, e.g. "
            "gradviz_lab.attribution.max_response"
        )
    batch, num_classes = output.shape
    if target is None:
        return output.argmax(dim=1)
    classes = requested_classes(target, batch, output.device)
    bad = (classes < 0) | (classes >= num_classes)
    if bool(bad.any()):
        raise ValueError(  # each wrong value once (SmoothGrad and IG score many copies per image)
            f"target class out of range: got {sorted(set(classes[bad].tolist()))}, valid classes "
            f"are 0..{num_classes - 1}"
        )
    return classes


def requested_classes(target: int | Sequence[int] | torch.Tensor, batch: int,
                      device: torch.device) -> torch.Tensor:
    """An int or B ints as a (B,) int64 tensor (the range is checked against the logits)."""
    if isinstance(target, numbers.Integral):
        return torch.full((batch,), int(target), dtype=torch.long, device=device)
    classes = torch.as_tensor(target).to(device)  # a tensor on another device is moved
    if classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
        raise TypeError(f"target tensor must hold integers, got dtype {classes.dtype}")
    classes = classes.long().reshape(-1)
    if classes.numel() != batch:
        raise ValueError(
            f"target has {classes.numel()} class indices but the batch has {batch} images"
        )
    return classes


def _check_int64(values: Sequence[numbers.Integral]) -> None:
    too_large = [int(v) for v in values if int(v) not in INT64_RANGE]
    if too_large:
        raise ValueError(f"target class out of range: got {too_large[:5]}, far beyond any class")


def target_scores(output: torch.Tensor, target: torch.Tensor | Callable) -> torch.Tensor:
    """The score of each image: its target logit, or the callable's (B,) result."""
    if callable(target) and not isinstance(target, torch.Tensor):
        scores = target(output)
        if not isinstance(scores, torch.Tensor) or scores.shape != (len(output),):
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores)
            raise ValueError(
                f"a callable target must return one score per image, shape ({len(output)},), "
                f"got {shape} (for SmoothGrad and integrated gradients, each noisy copy or path "
                "point counts as an image)"
            )
        finite = torch.isfinite(scores.detach())
        if not bool(finite.all()):
            raise NonFiniteOutputError(
                (~finite).nonzero().flatten().tolist(),
                "the callable target returned it from a finite model output",
                what="the target score",
            )
        return scores
    return output.gather(1, target.view(-1, 1)).squeeze(1)


def fixed_target(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor | Callable:
    """Resolve None / ints once on the clean images, so every noisy or occluded copy of an image
    is scored for the same class (a callable is returned as is)."""
    return fixed_target_and_scores(model, x, target)[0]


def fixed_target_and_scores(
    model: nn.Module, x: torch.Tensor, target: Target
) -> tuple[torch.Tensor | Callable, torch.Tensor]:
    """``fixed_target`` and the clean images' scores (B,), from one forward pass (no graph)."""
    target = named_target(model, target)
    check_target_type(target)
    with torch.no_grad():
        output = run_model(model, x)
    if not (callable(target) and not isinstance(target, torch.Tensor)):
        target = class_indices(output, target)
    return target, target_scores(output, target)


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
