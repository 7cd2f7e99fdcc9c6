"""Turning attribution maps into pictures: reduce, normalise, colour, overlay, grid, save.

An attribution method returns a signed tensor shaped like the input, (B, C, H, W). Showing it
takes four explicit steps, each a function here:

1. ``to_2d``      one number per pixel: ``|a|`` or ``a``, summed or maxed over the channels
                  (the lecture's ``acc_grad.abs().sum(1)``).
2. ``normalize``  divide by a robust scale, the ``p``-th percentile of ``|map|``, and clip, so
                  that a few extreme pixels do not turn the rest of the picture black.
                  Zero stays zero: "no attribution" always has the same colour.
3. ``colorize``   a sequential colormap for magnitudes (dark = 0, bright = large) and a
                  diverging one centred on zero for signed maps (blue < 0 < red, white = 0).
4. ``overlay`` / ``show_grid`` / ``save_png``  pictures for a notebook or a slide (the last two
                  live in ``figures.py`` and are found here as well).

Everything here returns NumPy arrays or matplotlib ``Figure`` objects and never touches pyplot's
global state, so it runs the same in a notebook, a test, a widget callback or a script.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from matplotlib import colormaps

from ._checks import check_number

ArrayLike = Union[torch.Tensor, np.ndarray]

SEQUENTIAL_CMAP = "inferno"  # magnitudes: black (0) -> yellow (large), readable in greyscale
DIVERGING_CMAP = "RdBu_r"  # signed: blue (< 0), white (0), red (> 0)
SLIDE_DPI = 200  # a 6.4-inch-wide figure at 200 dpi is 1280 px: full width of a 720p slide
DEFAULT_CLIP_PERCENTILE = 99.5
# A PNG of more pixels than this (about 6,300 x 6,300) is refused before it is drawn: drawing
# holds several copies of the picture in memory (4 bytes per pixel each).
MAX_FIGURE_PIXELS = 40_000_000


# --------------------------------------------------------------------------------------------
# Checking inputs
# --------------------------------------------------------------------------------------------
def as_numpy(values: ArrayLike, name: str = "map") -> np.ndarray:
    """``values`` (a tensor or array of real numbers) as float32 NumPy; NaN or inf is an error."""
    if isinstance(values, torch.Tensor):
        if values.is_complex() or values.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got a tensor of dtype {values.dtype}")
        values = values.detach().to("cpu", torch.float32).numpy()
    elif isinstance(values, np.ndarray):
        if values.dtype.kind not in "iuf":
            raise TypeError(f"{name} must hold real numbers, got an array of dtype {values.dtype}")
        values = values.astype(np.float32, copy=False)
    else:
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy.ndarray, got {type(values).__name__}"
        )
    if values.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(values.shape)})")
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise ValueError(f"{name} has {bad} non-finite values (NaN or inf); cannot draw it")
    return values


def _check_percentile(clip_percentile: float) -> None:
    if not 0.0 < float(clip_percentile) <= 100.0:
        raise ValueError(f"clip_percentile must be in (0, 100], got {clip_percentile}")


# --------------------------------------------------------------------------------------------
# 1. One number per pixel
# --------------------------------------------------------------------------------------------
def to_2d(attr: ArrayLike, mode: str = "magnitude", reduce: str = "sum") -> np.ndarray:
    """Reduce an attribution over its channels: (B, C, H, W) -> (B, H, W), (C, H, W) -> (H, W).

    mode   "magnitude" uses |a| (how much a pixel matters, whatever the direction);
           "signed" keeps the sign (does the pixel push the score up or down?).
    reduce "sum" adds the channels (the lecture's ``acc_grad.abs().sum(1)``);
           "max" keeps the largest channel (Simonyan et al. 2014: max_c |dy/dx_c|). With
           mode="signed", "max" keeps the channel value of largest magnitude, sign included.
    """
    if mode not in ("magnitude", "signed"):
        raise ValueError(f"mode must be 'magnitude' or 'signed', got {mode!r}")
    if reduce not in ("sum", "max"):
        raise ValueError(f"reduce must be 'sum' or 'max', got {reduce!r}")
    a = as_numpy(attr, "attribution")
    if a.ndim not in (3, 4):
        raise ValueError(f"to_2d expects (B, C, H, W) or (C, H, W), got shape {tuple(a.shape)}")
    channel_axis = a.ndim - 3  # 1 for a batch, 0 for a single image
    if mode == "magnitude":
        a = np.abs(a)
    if reduce == "sum":
        return a.sum(axis=channel_axis)
    # max: with signed values, pick the channel whose |value| is largest, keep its sign
    winner = np.abs(a).argmax(axis=channel_axis)
    return np.take_along_axis(a, np.expand_dims(winner, channel_axis), channel_axis).squeeze(
        channel_axis
    )


# --------------------------------------------------------------------------------------------
# 2. Robust normalisation
# --------------------------------------------------------------------------------------------
def is_signed(map2d: ArrayLike) -> bool:
    """True when the map has negative values, i.e. it should be drawn with a diverging colormap."""
    return bool((as_numpy(map2d) < 0).any())


def _resolve_signed(m: np.ndarray, signed: bool | None) -> bool:
    if signed is None:
        return bool((m < 0).any())
    if not signed and (m < 0).any():
        raise ValueError(
            f"map has negative values (min {m.min():.3g}) but signed=False: pass signed=True "
            "for a signed map, or reduce it with to_2d(..., mode='magnitude')"
        )
    return bool(signed)


def robust_scale(map2d: ArrayLike, clip_percentile: float = DEFAULT_CLIP_PERCENTILE) -> np.ndarray:
    """The scale that ``normalize`` divides by: the ``clip_percentile``-th percentile of |map|.

    One scale per map: a float for (H, W), a (B,) array for (B, H, W). When the percentile is 0
    (a mostly-zero map) the largest |value| is used instead; an all-zero map gets scale 1 so
    that it renders flat, as zeros, instead of dividing by zero.
    """
    _check_percentile(clip_percentile)
    m = np.abs(_as_maps(map2d))
    scale = np.percentile(m, clip_percentile, axis=(-2, -1))
    scale = np.where(scale > 0, scale, m.max(axis=(-2, -1)))
    scale = np.where(scale > 0, scale, 1.0)
    return scale.astype(np.float32)


def _as_maps(map2d: ArrayLike) -> np.ndarray:
    m = as_numpy(map2d)
    if m.ndim not in (2, 3):
        raise ValueError(
            f"expected a map (H, W) or a batch of maps (B, H, W), got shape {tuple(m.shape)}; "
            "reduce an attribution with to_2d first"
        )
    return m


def color_limits(
    map2d: ArrayLike,
    clip_percentile: float = DEFAULT_CLIP_PERCENTILE,
    signed: bool | None = None,
) -> tuple[float, float]:
    """(vmin, vmax) for one (H, W) map, in its own units: (0, s) or (-s, s), s = robust_scale."""
    m = _as_maps(map2d)
    if m.ndim != 2:
        raise ValueError(f"color_limits takes one (H, W) map, got shape {tuple(m.shape)}")
    scale = float(robust_scale(m, clip_percentile))
    return (-scale, scale) if _resolve_signed(m, signed) else (0.0, scale)


def normalize(
    map2d: ArrayLike,
    clip_percentile: float = DEFAULT_CLIP_PERCENTILE,
    signed: bool | None = None,
) -> np.ndarray:
    """map / robust_scale(map), clipped to [0, 1] (magnitude) or [-1, 1] (signed).

    Each map of a (B, H, W) batch gets its own scale. ``signed=None`` means "signed if the map
    has negative values". Zero maps to zero in both cases, so a flat zero map stays all zeros
    and a constant map stays constant (never NaN, never a division by zero).
    """
    m = _as_maps(map2d)
    signed = _resolve_signed(m, signed)
    scale = robust_scale(m, clip_percentile)
    scaled = m / np.asarray(scale)[..., None, None]
    return np.clip(scaled, -1.0 if signed else 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# 3. Colour
# --------------------------------------------------------------------------------------------
def colormap_for(signed: bool) -> str:
    """The colormap name for a map: diverging (centred on 0) if signed, sequential otherwise."""
    return DIVERGING_CMAP if signed else SEQUENTIAL_CMAP


def colorize(
    map2d: ArrayLike,
    signed: bool | None = None,
    clip_percentile: float = DEFAULT_CLIP_PERCENTILE,
    cmap: str | None = None,
) -> np.ndarray:
    """An (H, W) map as an (H, W, 3) RGB float image in [0, 1], after ``normalize``.

    Magnitudes use [0, 1] -> the sequential colormap; signed maps use [-1, 1] -> the diverging
    colormap with 0 at its centre (white for RdBu_r), so the colour of "no effect" never moves.
    """
    m = _as_maps(map2d)
    if m.ndim != 2:
        raise ValueError(f"colorize takes one (H, W) map, got shape {tuple(m.shape)}")
    signed = _resolve_signed(m, signed)
    unit = normalize(m, clip_percentile, signed)
    if signed:
        unit = (unit + 1.0) / 2.0  # [-1, 1] -> [0, 1], zero -> 0.5, the colormap's centre
    lookup = colormaps[cmap or colormap_for(signed)]
    return lookup(unit)[..., :3].astype(np.float32)


# --------------------------------------------------------------------------------------------
# 4. Pictures
# --------------------------------------------------------------------------------------------
def to_rgb(image: ArrayLike) -> np.ndarray:
    """An image as (H, W, 3) float32 in [0, 1], the layout matplotlib draws.

    Accepts the kit's (3, H, W) or (1, H, W) float tensors in [0, 1], a greyscale (H, W) map,
    channel-last (H, W, 3) arrays, and uint8 arrays or tensors (divided by 255).
    """
    is_uint8 = isinstance(image, (np.ndarray, torch.Tensor)) and image.dtype in (np.uint8, torch.uint8)
    img = as_numpy(image, "image")
    if is_uint8:
        img = img / 255.0
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3:
        raise ValueError(
            f"image must be (C, H, W), (H, W, C) or (H, W), got shape {tuple(img.shape)}"
        )
    if img.shape[0] in (1, 3):  # channel-first, the kit's convention
        img = np.moveaxis(img, 0, -1)
    elif img.shape[-1] not in (1, 3):
        raise ValueError(f"image must have 1 or 3 channels, got shape {tuple(img.shape)}")
    if img.min() < -1e-6 or img.max() > 1 + 1e-6:
        raise ValueError(
            f"image values must lie in [0, 1] (got {img.min():.3g}..{img.max():.3g}); "
            "pass the un-normalised image, not the network's normalised input"
        )
    img = np.clip(img, 0.0, 1.0)
    return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img


def overlay(
    image: ArrayLike,
    map2d: ArrayLike,
    alpha: float = 0.5,
    signed: bool | None = None,
    clip_percentile: float = DEFAULT_CLIP_PERCENTILE,
    cmap: str | None = None,
) -> np.ndarray:
    """Blend the coloured map over the image: (1 - alpha) * image + alpha * colorize(map).

    alpha = 0 gives the image back, alpha = 1 the coloured map alone. Returns (H, W, 3) in [0, 1].
    """
    if not 0.0 <= check_number(alpha, "alpha") <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = to_rgb(image)
    colours = colorize(map2d, signed, clip_percentile, cmap)
    if colours.shape[:2] != rgb.shape[:2]:
        raise ValueError(
            f"map is {colours.shape[:2]} but image is {rgb.shape[:2]}: upsample the map to the "
            "image size first (e.g. gradcam(..., upsample=True))"
        )
    return ((1.0 - alpha) * rgb + alpha * colours).astype(np.float32)


# The figures (the grid of maps, PNG bytes and files) live in figures.py; they are part of viz's
# interface, looked up there on first use (figures.py builds on the functions above).
_FIGURES = ("NotebookFigure", "show_grid", "figure_to_png", "save_png")


def __getattr__(name: str):
    if name in _FIGURES:
        from . import figures

        return getattr(figures, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
