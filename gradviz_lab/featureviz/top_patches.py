"""Top-k activating patches (Zeiler & Fergus 2014): for each channel, the k images whose strongest
activation is highest, cropped to that unit's receptive field, beside the deconvnet, guided-
backprop or gradient view of that one unit (``unit_views``); ``plot_top_patches`` draws them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from .. import hooks
from .._checks import check_images, check_positive_int, resolve_layer
from ._common import _check_channels, _run_once
from .receptive_field import ReceptiveField, receptive_field


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
    from .. import attribution

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
