"""Feature visualisation: which image a unit wants to see, and which patches excite it most.

Two ways to ask what a class or a channel responds to:

1. Synthesise it. *Activation maximisation* (Simonyan, Vedaldi & Zisserman 2014) climbs the
   gradient of a score S with respect to the *input*, the weights fixed:

       x* = argmax_x  S(x) - l2 * ||x - 0.5||^2,    x in [0, 1]^(C x H x W)

   Left alone, the ascent finds high-frequency noise the network happens to like; regularisers
   keep the image natural: the L2 term pulls pixels to mid-grey and a Gaussian blur every few
   steps removes high frequencies (both from Yosinski et al. 2015), and a random shift (jitter,
   from DeepDream: Mordvintsev, Olah & Tyka 2015) before each step stops the image from
   exploiting exact pixel positions.
   ``class_visualisation`` maximises a class logit, ``channel_visualisation`` a channel's mean.

2. Find it in the data. Zeiler & Fergus (2014) show, for each channel, the 9 images whose
   strongest activation is highest, cropped to that unit's *receptive field* (the input pixels
   it can see), beside the deconvnet view of that unit. ``top_activating_patches`` does this for
   any channel of a chain of conv/pool layers, ``unit_views`` adds the deconvnet or guided-
   backprop views, ``plot_top_patches`` draws them.

``activation_maximisation_dashboard`` is a widget over the class and the regularisation strength.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from . import hooks
from ._checks import (
    check_flag,
    check_image_batch,
    check_images,
    check_model,
    check_number,
    check_positive_int,
    model_device_dtype,
    resolve_layer,
    target_scores,
)
from ._forward import run_model
from .data import MAX_IMAGE_PIXELS

# --------------------------------------------------------------------------------------------
# Reading a layer
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Activation maximisation
# --------------------------------------------------------------------------------------------


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur each channel of (B, C, H, W) images with a Gaussian of std ``sigma`` pixels.

    Separable: one 1-D kernel exp(-t^2 / 2 sigma^2), normalised to sum 1, along rows then
    columns; edges are reflected so the border does not darken. sigma = 0 returns the images.
    """
    check_image_batch(images, "images")
    sigma = check_number(sigma, "sigma", minimum=0.0)
    if sigma == 0:
        return images
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    rows = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    mode = "reflect" if min(images.shape[-2:]) > radius else "replicate"
    x = F.conv2d(F.pad(images, (0, 0, radius, radius), mode=mode), rows, groups=channels)
    return F.conv2d(F.pad(x, (radius, radius, 0, 0), mode=mode), cols, groups=channels)


@dataclass
class AscentSettings:
    """The knobs of activation maximisation (defaults suit the lab models' [0, 1] images).

    steps       gradient-ascent steps
    lr          step size: each step moves the pixels by ``lr`` on average (the gradient is
                divided by its mean absolute value, so lr does not depend on the score's scale)
    l2          weight of the penalty ||x - 0.5||^2 (Simonyan et al.'s L2 regulariser)
    blur_every  blur the image every this many steps (0: never) ...
    blur_sigma  ... with a Gaussian of this std, in pixels
    jitter      shift the image by up to this many pixels before each step (0: never)
    seed        the random start (mid-grey plus a little noise) and the shifts
    """

    steps: int = 200
    lr: float = 0.02
    l2: float = 0.01
    blur_every: int = 4
    blur_sigma: float = 0.5
    jitter: int = 2
    seed: int = 0

    def checked(self) -> AscentSettings:
        check_positive_int(self.steps, "steps")
        check_number(self.lr, "lr", 0.0)
        check_number(self.l2, "l2", 0.0)
        check_positive_int(self.blur_every, "blur_every", minimum=0)
        check_number(self.blur_sigma, "blur_sigma", 0.0)
        check_positive_int(self.jitter, "jitter", minimum=0)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        return self


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


def activation_maximisation(
    model: nn.Module,
    score: Callable[[torch.Tensor], torch.Tensor],
    n_images: int,
    image_shape: Sequence[int],
    settings: AscentSettings | None = None,
) -> torch.Tensor:
    """``n_images`` images x in [0, 1], each maximising its own entry of ``score(model(x))``.

        x <- clamp(x + lr * g / mean|g|, 0, 1),   g = d/dx [S(jitter(x)) - l2 ||x - 0.5||^2]

    and every ``blur_every`` steps x <- blur(x). ``score`` maps the model's output for the batch
    to (n_images,) scores. The gradient is taken with ``torch.autograd.grad`` w.r.t. the image
    only; the model runs in eval mode and is left exactly as it was (mode, weights, ``.grad``).
    Returns (n_images, C, H, W).
    """
    check_model(model)
    check_positive_int(n_images, "n_images")
    s = (settings or AscentSettings()).checked()
    channels, height, width = _image_shape(model, image_shape)
    device, dtype = model_device_dtype(model) or (torch.device("cpu"), torch.float32)
    generator = torch.Generator().manual_seed(s.seed)
    noise = torch.randn(n_images, channels, height, width, generator=generator)
    x = (0.5 + 0.05 * noise).clamp(0, 1).to(device=device, dtype=dtype)
    shifts = torch.randint(-s.jitter, s.jitter + 1, (s.steps, 2), generator=generator).tolist()
    with hooks.preserved_state(model), torch.inference_mode(False), torch.enable_grad():
        model.eval()  # batch-norm statistics and dropout off: one image must not depend on others
        for step, (dy, dx) in enumerate(shifts):
            x.requires_grad_(True)
            shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))  # jitter, undone by the gradient
            scores = target_scores(run_model(model, shifted), score)
            objective = scores - s.l2 * (x - 0.5).pow(2).flatten(1).sum(1)
            (g,) = torch.autograd.grad(objective.sum(), x)
            with torch.no_grad():
                step_size = s.lr / g.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
                x = (x + step_size * g).clamp(0, 1)
                if s.blur_every and (step + 1) % s.blur_every == 0:
                    x = gaussian_blur(x, s.blur_sigma).clamp(0, 1)
    return x.detach()


def _settings(knobs: dict) -> AscentSettings:
    unknown = set(knobs) - set(AscentSettings.__dataclass_fields__)
    if unknown:
        raise TypeError(
            f"unknown knob(s) {sorted(unknown)}; valid: {list(AscentSettings.__dataclass_fields__)}"
        )
    return AscentSettings(**knobs)


def class_visualisation(
    model: nn.Module,
    target_class: int | Sequence[int],
    image_shape: Sequence[int] | None = None,
    **knobs: float,
) -> torch.Tensor:
    """Simonyan et al. (2014) class model: an image maximising the logit y_c of each class.

    target_class: one class index or several (one image each, optimised together).
    image_shape: (C, H, W), e.g. (1, 28, 28) for the digits model (or ``model.input_shape``).
    knobs: ``steps, lr, l2, blur_every, blur_sigma, jitter, seed`` (see ``AscentSettings``).
    Returns (len(classes), C, H, W) in [0, 1]. The model is left exactly as it was.
    """
    check_model(model)
    classes = _indices(target_class, "target_class")
    wanted = torch.tensor(classes, dtype=torch.long)

    def logit(output: torch.Tensor) -> torch.Tensor:
        if output.dim() != 2:
            raise ValueError(
                f"the model's output has shape {tuple(output.shape)}, not (B, num_classes)"
            )
        if not bool(((wanted >= 0) & (wanted < output.shape[1])).all()):
            raise ValueError(
                f"target_class {classes} out of range: valid classes are 0..{output.shape[1] - 1}"
            )
        return output.gather(1, wanted.to(output.device).view(-1, 1)).squeeze(1)

    return activation_maximisation(
        model, logit, len(classes), _image_shape(model, image_shape), _settings(knobs)
    )


def channel_visualisation(
    model: nn.Module,
    layer: str | nn.Module,
    channel: int | Sequence[int],
    image_shape: Sequence[int] | None = None,
    **knobs: float,
) -> torch.Tensor:
    """An image maximising the mean activation of one channel of a layer (one image per channel).

    layer: a submodule or its dotted name, e.g. ``"features.3"``. Same knobs as
    ``class_visualisation``. Returns (len(channels), C, H, W) in [0, 1].
    """
    check_model(model)
    name, module = resolve_layer(model, layer)
    shape = _image_shape(model, image_shape)
    with hooks.captured_layer(model, name, module) as record:
        with torch.no_grad(), hooks.preserved_state(model):
            model.eval()
            _run_once(model, record, torch.full((1, *shape), 0.5, **_like(model)))
            wanted = _check_channels(channel, record.outputs[-1].shape[1], name)

        def channel_mean(_output: torch.Tensor) -> torch.Tensor:
            activations = record.outputs.pop()  # this step's; earlier ones are not kept
            rows = torch.arange(len(activations), device=activations.device)
            return activations[rows, wanted.to(activations.device)].flatten(1).mean(1)

        return activation_maximisation(model, channel_mean, len(wanted), shape, _settings(knobs))


def _like(model: nn.Module) -> dict:
    device, dtype = model_device_dtype(model) or (torch.device("cpu"), torch.float32)
    return {"device": device, "dtype": dtype}


# --------------------------------------------------------------------------------------------
# Receptive fields
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Top-k activating patches (Zeiler & Fergus 2014)
# --------------------------------------------------------------------------------------------


@dataclass
class TopPatches:
    """The k strongest activations of each chosen channel of a layer over a set of images.

    For channel ``channels[c]`` and rank r (0 = strongest):
    values[c, r]       the activation A[image, channel, row, col]
    image_index[c, r]  which image; position[c, r] = (row, col) in the layer's map
    boxes[c, r]        its receptive field in the image, (top, left, bottom, right), clipped
    patches[c, r]      the image inside the receptive field, (C, size_h, size_w), zero where the
                       field hangs over the image's border
    Ties are broken by the lower (image, row, col), so the result is fully reproducible.
    """

    layer: str
    channels: torch.Tensor  # (K,)
    values: torch.Tensor  # (K, k)
    image_index: torch.Tensor  # (K, k)
    position: torch.Tensor  # (K, k, 2)
    boxes: torch.Tensor  # (K, k, 4)
    patches: torch.Tensor  # (K, k, C, size_h, size_w)
    field: ReceptiveField


def _merge_top(
    best: tuple[torch.Tensor, torch.Tensor], candidates: tuple[torch.Tensor, torch.Tensor], k: int
):
    """Keep the k largest (value, index) pairs per row; among equal values the lower index.

    ``best`` holds earlier, lower indices than ``candidates``, each in index order among equal
    values, and a *stable* sort keeps that order for ties.
    """
    values = torch.cat([best[0], candidates[0]], dim=1)
    indices = torch.cat([best[1], candidates[1]], dim=1)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    return values.gather(1, order), indices.gather(1, order)


def _crop(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """(M, C, size_h, size_w) windows of (M, C, H, W) images starting at (top, left), which may
    hang over the border: the images are zero-padded first, so every crop has the full size."""
    pad_h, pad_w = size[0] + max(0, -int(top.min())), size[1] + max(0, -int(left.min()))
    padded = F.pad(images, (pad_w, pad_w, pad_h, pad_h))
    rows = (top + pad_h).view(-1, 1) + torch.arange(size[0], device=top.device)
    cols = (left + pad_w).view(-1, 1) + torch.arange(size[1], device=top.device)
    m = torch.arange(len(images), device=top.device).view(-1, 1, 1)
    return padded[m, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (M, C, h, w)


def _candidates(
    maps: torch.Tensor, first_image: int, distinct_images: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, flat indices) competing for the top-k, from the (K, b, h*w) maps of b images.

    A flat index numbers every activation of a channel over the whole image set:
    image * (h*w) + row * w + col. With ``distinct_images`` each image offers only its
    strongest position (``max`` returns the first one among ties).
    """
    channels, batch, map_size = maps.shape
    image_start = (first_image + torch.arange(batch, device=maps.device)) * map_size
    if distinct_images:
        values, where = maps.max(dim=2)
        return values, image_start + where
    flat = image_start.view(-1, 1) + torch.arange(map_size, device=maps.device)
    return maps.flatten(1), flat.flatten().expand(channels, -1)


def top_activating_patches(
    model: nn.Module,
    images: torch.Tensor,
    layer: str | nn.Module,
    k: int = 9,
    channels: int | Sequence[int] | None = None,
    *,
    distinct_images: bool = True,
    batch_size: int = 256,
) -> TopPatches:
    """For each channel of ``layer``: its k largest activations over ``images``, and the image
    patches (receptive-field crops) that caused them (Zeiler & Fergus 2014, figure 2).

    distinct_images  True: at most one patch per image (its strongest position), as in Zeiler
                     & Fergus's top-9 images; False: any k positions, several per image allowed.
    channels         None for all, or the channel indices to keep.
    The images run through the model ``batch_size`` at a time, keeping a running top-k per
    channel, so the whole set of activations never sits in memory. The model runs in eval mode
    (so an image's activations do not depend on its batch) and is left as it was.
    """
    check_images(model, images, "images")
    check_positive_int(k, "k")
    check_positive_int(batch_size, "batch_size")
    name, module = resolve_layer(model, layer)
    with (
        hooks.preserved_state(model),
        torch.no_grad(),
        hooks.captured_layer(model, name, module) as record,
    ):
        model.eval()
        _run_once(model, record, images[:1])
        _, count, height, width = record.outputs.pop().shape
        kept = _check_channels(list(range(count)) if channels is None else channels, count, name)
        limit = len(images) * (1 if distinct_images else height * width)
        if k > limit:
            raise ValueError(
                f"k={k} but there are only {limit} candidate {'images' if distinct_images else 'positions'}"
            )
        best = (
            images.new_empty(len(kept), 0),
            torch.empty(len(kept), 0, dtype=torch.long, device=images.device),
        )
        for start in range(0, len(images), batch_size):
            _run_once(model, record, images[start : start + batch_size])
            activations = record.outputs.pop()[:, kept.to(images.device)]  # (b, K, h, w)
            maps = activations.transpose(0, 1).flatten(2)  # (K, b, h*w)
            best = _merge_top(best, _candidates(maps, start, distinct_images), k)
    values, flat = best
    image_index, row, col = flat // (height * width), flat % (height * width) // width, flat % width
    field = receptive_field(model, name, tuple(images.shape[1:]))
    top, left = field.start(row, col)
    patches = _crop(images[image_index.flatten()], top.flatten(), left.flatten(), field.size)
    return TopPatches(
        layer=name,
        channels=kept,
        values=values,
        image_index=image_index,
        position=torch.stack([row, col], dim=-1),
        boxes=field.box(row, col, images.shape[2], images.shape[3]),
        patches=patches.reshape(*values.shape, *patches.shape[1:]),
        field=field,
    )


VIEW_METHODS = ("deconvnet", "guided_backprop", "gradient")


def unit_views(
    model: nn.Module,
    images: torch.Tensor,
    top: TopPatches,
    method: str = "deconvnet",
    batch_size: int = 64,
) -> torch.Tensor:
    """What each top unit responds to inside its patch: the deconvnet (Zeiler & Fergus 2014),
    guided-backprop (Springenberg et al. 2015) or plain gradient of that one activation
    A[image, channel, row, col] with respect to its image, cropped like ``top.patches``.

    ``images`` must be the images ``top`` was computed on. The model runs in eval mode and is
    left as it was. Returns a signed (K, k, C, size_h, size_w) tensor (zero outside the image).
    """
    from . import attribution

    if method not in VIEW_METHODS:
        raise ValueError(f"method must be one of {list(VIEW_METHODS)}, got {method!r}")
    if not isinstance(top, TopPatches):
        raise TypeError(
            f"top must be the TopPatches that top_activating_patches returned, got {type(top).__name__}"
        )
    check_images(model, images, "images")
    if int(top.image_index.max()) >= len(images):
        raise ValueError("top refers to images beyond the batch given: pass the same images")
    explain = {
        "deconvnet": attribution.deconvnet,
        "guided_backprop": attribution.guided_backprop,
        "gradient": attribution.input_gradient,
    }[method]
    name, module = resolve_layer(model, top.layer)
    image_index = top.image_index.flatten()
    channel = top.channels.view(-1, 1).expand_as(top.values).flatten()
    row, col = top.position[..., 0].flatten(), top.position[..., 1].flatten()
    views = []
    with hooks.preserved_state(model), hooks.captured_layer(model, name, module) as record:
        model.eval()  # as in top_activating_patches
        for start in range(0, len(image_index), batch_size):
            part = slice(start, start + batch_size)

            def one_unit(_output: torch.Tensor, part: slice = part) -> torch.Tensor:
                a = record.outputs[-1]  # this forward pass's activations of the layer
                m = torch.arange(len(a), device=a.device)
                return a[
                    m, channel[part].to(a.device), row[part].to(a.device), col[part].to(a.device)
                ]

            views.append(explain(model, images[image_index[part]], one_unit))
            record.outputs.clear()
    top_left = top.field.start(row, col)
    crops = _crop(
        torch.cat(views),
        top_left[0].to(images.device),
        top_left[1].to(images.device),
        top.field.size,
    )
    return crops.reshape(*top.values.shape, *crops.shape[1:])


def _signed_to_unit(views: torch.Tensor) -> torch.Tensor:
    """Signed maps to [0, 1] for display, one scale per map: 0 -> grey 0.5, max |v| -> 0 or 1."""
    scale = views.abs().flatten(-3).amax(-1).clamp_min(1e-12)[..., None, None, None]
    return 0.5 + 0.5 * views / scale


def plot_top_patches(
    top: TopPatches,
    views: Mapping[str, torch.Tensor] | None = None,
    max_channels: int = 8,
    panel_inches: float = 0.9,
) -> Figure:
    """One row per channel: its top-k patches, then each view (e.g. {"deconvnet": ...}) of them.

    Views are signed; they are drawn with grey = 0, one scale per patch, as in Zeiler & Fergus.
    """
    if not isinstance(top, TopPatches):
        raise TypeError(f"top must be a TopPatches, got {type(top).__name__}")
    views = dict(views or {})
    for title, v in views.items():
        if not isinstance(v, torch.Tensor) or v.shape != top.patches.shape:
            raise ValueError(
                f"view {title!r} must have the patches' shape {tuple(top.patches.shape)}"
            )
    panels = [("patches", top.patches.clamp(0, 1))] + [
        (t, _signed_to_unit(v)) for t, v in views.items()
    ]
    n_channels, k = top.values.shape[0], top.values.shape[1]
    rows = min(n_channels, check_positive_int(max_channels, "max_channels"))
    height = panel_inches * rows + 0.6
    fig = Figure(figsize=(panel_inches * (k + 0.5) * len(panels) + 0.4, height))
    grid = fig.add_gridspec(
        rows,
        len(panels),
        left=0.4 / fig.get_figwidth(),
        right=0.99,
        bottom=0.1 / height,
        top=1 - 0.5 / height,
        wspace=0.06,
        hspace=0.08,
    )
    for p, (title, pictures) in enumerate(panels):
        for r in range(rows):
            inner = grid[r, p].subgridspec(1, k, wspace=0.04)
            for j in range(k):
                ax = fig.add_subplot(inner[0, j])
                ax.imshow(
                    _display(pictures[r, j]), cmap="gray", vmin=0, vmax=1, interpolation="nearest"
                )
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0 and j == 0:
                    ax.set_title(title, loc="left", fontsize=10)
                if p == 0 and j == 0:
                    ax.set_ylabel(f"ch {int(top.channels[r])}", fontsize=9)
    fig.suptitle(
        f"top-{k} activations of {top.layer} (receptive field {top.field.size[0]}x{top.field.size[1]})",
        fontsize=11,
    )
    return fig


def _display(picture: torch.Tensor) -> np.ndarray:
    """(C, h, w) in [0, 1] -> what imshow draws: (h, w) for one channel, (h, w, 3) for colour."""
    array = picture.detach().cpu().float().numpy()
    return array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)


# --------------------------------------------------------------------------------------------
# A dashboard: class x regularisation strength
# --------------------------------------------------------------------------------------------


def _png(image: torch.Tensor, scale: int = 4) -> bytes:
    """(C, H, W) in [0, 1] -> PNG bytes, enlarged ``scale`` times with visible pixels."""
    from PIL import Image

    array = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    array = array.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    pil = (
        Image.fromarray(array[0].numpy())
        if array.shape[0] == 1
        else Image.fromarray(array.permute(1, 2, 0).numpy())
    )
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


def activation_maximisation_dashboard(
    model: nn.Module,
    class_names: Sequence[str],
    image_shape: Sequence[int] | None = None,
    l2_range: tuple[float, float] = (1e-4, 1.0),
    **knobs: float,
):
    """An ipywidgets dashboard: pick a class and the L2 regularisation strength, see the image
    ``class_visualisation`` makes for it, with the logit it reaches.

    Returns an ``ipywidgets.VBox`` (the last expression of a cell shows it). Headless use:
    ``dash.controls["target"].value = 3`` or ``dash.controls["l2"].value = 0.1``, then read
    ``dash.last_image`` (C, H, W), ``dash.last_png``, ``dash.last_logit``, ``dash.last_error``.
    Results are cached per (class, l2), so moving back to a setting is instant.
    """
    import ipywidgets as widgets

    from .threads import lab_threads
    from .widgets.base import DashboardBox, file_name, free_path, write_png_file

    check_model(model)
    names = list(class_names)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError("class_names must be a non-empty sequence of strings")
    shape = _image_shape(model, image_shape)
    low, high = (check_number(v, "l2_range", 0.0) for v in l2_range)
    if not 0 < low < high:
        raise ValueError(f"l2_range must be (low, high) with 0 < low < high, got {l2_range}")
    settings = _settings(knobs)
    start_l2 = min(max(settings.l2, low), high)
    target = widgets.Dropdown(
        options=[(n, i) for i, n in enumerate(names)], value=0, description="class"
    )
    l2 = widgets.FloatLogSlider(
        value=start_l2,
        base=10,
        min=math.log10(low),
        max=math.log10(high),
        step=0.25,
        description="L2 strength",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    picture = widgets.Image(format="png", width=224)
    caption = widgets.HTML()
    save_button = widgets.Button(
        description="save PNG for slides", icon="download", layout=widgets.Layout(width="auto")
    )
    saved = widgets.HTML()
    dash = DashboardBox(
        [
            widgets.HTML(f"<b>Class visualisation</b> ({settings.steps} ascent steps)"),
            widgets.HBox([target, l2]),
            picture,
            caption,
            widgets.HBox([save_button, saved]),
        ]
    )
    save_button.add_class("gradviz-save")
    dash.static_name = "class visualisation"
    dash.controls = {"target": target, "l2": l2}
    dash.cache = {}
    dash.last_image = dash.last_png = dash.last_logit = dash.last_error = None

    def compute(c: int, strength: float) -> tuple[torch.Tensor, float]:
        image = class_visualisation(model, c, shape, **{**settings.__dict__, "l2": strength})
        with torch.no_grad(), hooks.preserved_state(model):
            model.eval()
            logit = float(model(image)[0, c])
        return image[0], logit

    def refresh(_change: object = None) -> None:
        key = (target.value, round(float(l2.value), 12))
        try:
            if key not in dash.cache:
                with lab_threads(model):  # one thread for a lab model: see gradviz_lab.threads
                    dash.cache[key] = compute(*key)
            dash.last_image, dash.last_logit = dash.cache[key]
            dash.last_png = picture.value = _png(dash.last_image)
            dash.last_error = None
            caption.value = f"{names[key[0]]}: logit {dash.last_logit:.2f} at L2 = {key[1]:.3g}"
        except Exception as error:  # shown in the dashboard instead of lost in a callback
            dash.last_error = error
            caption.value = (
                f"<span style='color:#b00'>error: {type(error).__name__}: {error}</span>"
            )

    written: set[Path] = set()

    def save_png(path: str | Path | None = None, overwrite: bool = False) -> Path:
        """The image on show, each pixel a 224/side-pixel block, to ``path`` (default
        figures/classvis_<class>_l2-<strength>.png, or -2, -3, ... beside a file this dashboard
        did not write); returns the path written. A path given that exists is replaced only
        with overwrite=True or if this dashboard wrote it."""
        if dash.last_image is None:
            raise RuntimeError("nothing to save: no class image has been made yet")
        check_flag(overwrite, "overwrite")
        if path is None:
            name = file_name(["classvis", str(names[target.value])], [f"l2-{l2.value:.3g}"])
            path = free_path(Path("figures") / name, written)
        image = dash.last_image
        return write_png_file(
            path, lambda: _png(image, scale=max(1, 224 // max(image.shape[-2:]))), written, overwrite
        )

    def on_save(_button: object) -> None:
        try:
            saved.value = f"saved <code>{html.escape(str(save_png()))}</code>"
        except Exception as error:
            saved.value = f"<span style='color:#b00'>error: {type(error).__name__}: {html.escape(str(error))}</span>"

    dash.save_png = save_png
    save_button.on_click(on_save)
    target.observe(refresh, names="value")
    l2.observe(refresh, names="value")
    refresh()
    return dash
