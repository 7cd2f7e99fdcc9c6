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
4. ``overlay`` / ``show_grid`` / ``save_png``  pictures for a notebook or a slide.

Everything here returns NumPy arrays or matplotlib ``Figure`` objects and never touches pyplot's
global state, so it runs the same in a notebook, a test, a widget callback or a script.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from ._checks import check_flag, check_number

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


class NotebookFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG when it is the last expression of a cell,
    even where pyplot (which installs the notebook's figure display) was never imported."""

    def _repr_png_(self) -> bytes:
        return figure_to_png(self, dpi=100)


def _batch_of_images(images: ArrayLike) -> np.ndarray:
    imgs = as_numpy(images, "images")
    if imgs.ndim == 3:
        imgs = imgs[None]
    if imgs.ndim != 4 or imgs.shape[1] not in (1, 3):
        raise ValueError(
            f"images must be (B, C, H, W) or (C, H, W) with C = 1 or 3, got {tuple(imgs.shape)}"
        )
    return imgs


def _batch_of_maps(title: str, maps: ArrayLike, batch: int, mode: str, reduce: str) -> np.ndarray:
    m = as_numpy(maps, f"maps[{title!r}]")
    if m.ndim == 4:
        m = to_2d(m, mode=mode, reduce=reduce)
    elif m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[0] != batch:
        raise ValueError(
            f"maps[{title!r}] has shape {tuple(as_numpy(maps).shape)}; expected (B, C, H, W), "
            f"(B, H, W) or, for one image, (H, W), with B = {batch} images"
        )
    return m


def show_grid(
    images: ArrayLike,
    maps: Mapping[str, ArrayLike],
    *,
    mode: str = "magnitude",
    reduce: str = "sum",
    clip_percentile: float = DEFAULT_CLIP_PERCENTILE,
    alpha: float | Mapping[str, float | None] | None = None,
    row_titles: Sequence[str] | None = None,
    colorbar: bool = True,
    panel_inches: float = 3.0,
    font_size: float = 16.0,
) -> Figure:
    """One row per image: the image, then one panel per method, with titles and colorbars.

    images  (B, C, H, W) or (C, H, W) in [0, 1].
    maps    {title: map}; each map is (B, C, H, W) (reduced here with ``to_2d(mode, reduce)``),
            (B, H, W), or (H, W) for a single image.
    alpha   None draws the maps on their own; a number overlays them on the image; a dict
            {title: alpha or None} chooses per map.
    A map with negative values is drawn with the diverging colormap centred on zero, other maps
    with the sequential one; colorbars are in the map's own units, clipped at the percentile.
    Fonts are large for a projector. Returns a matplotlib Figure (``save_png`` writes it).
    """
    if not isinstance(maps, Mapping):
        raise TypeError(f"maps must be a dict {{title: map}}, got {type(maps).__name__}")
    for value, name in ((panel_inches, "panel_inches"), (font_size, "font_size")):
        if check_number(value, name) <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    check_flag(colorbar, "colorbar")
    imgs = _batch_of_images(images)
    batch = imgs.shape[0]
    batches = {t: _batch_of_maps(t, m, batch, mode, reduce) for t, m in maps.items()}
    alphas = dict(alpha) if isinstance(alpha, Mapping) else {title: alpha for title in batches}
    if set(alphas) != set(batches):
        raise ValueError(f"alpha has titles {sorted(alphas)}, maps have {sorted(batches)}")
    for title, value in alphas.items():
        if value is not None and not 0.0 <= check_number(value, f"alpha of {title!r}") <= 1.0:
            raise ValueError(f"alpha of {title!r} must be in [0, 1], got {value}")
    if row_titles is not None and len(row_titles) != batch:
        raise ValueError(f"row_titles has {len(row_titles)} entries for {batch} images")
    fig, image_axes, map_axes, bar_axes = _grid_layout(
        batch, len(batches), colorbar, panel_inches, font_size, row_titles is not None,
        image_shape=imgs.shape[-2:],
    )
    for row in range(batch):
        rgb = to_rgb(imgs[row])
        _image_panel(image_axes[row], rgb, "image" if row == 0 else None, font_size)
        if row_titles is not None:
            image_axes[row].set_ylabel(row_titles[row], fontsize=font_size * 0.85)
        for col, (title, batch_maps) in enumerate(batches.items()):
            _map_panel(
                map_axes[row][col],
                bar_axes[row][col],
                rgb,
                batch_maps[row],
                title if row == 0 else None,
                clip_percentile,
                alphas[title],
                font_size,
            )
    return fig


def _grid_layout(
    rows: int,
    n_maps: int,
    colorbar: bool,
    panel_inches: float,
    font_size: float,
    row_titles: bool,
    image_shape: tuple[int, int] = (1, 1),
) -> tuple[Figure, list, list[list], list[list]]:
    """A fixed grid (no layout engine, about twice as fast to draw as constrained layout).

    Columns: image, then per map [spacer, map, gap, colorbar, room for its tick labels], in units
    of panel_inches. The image and map cells take the images' aspect ratio, their longer side
    panel_inches: a square cell would shrink a wide image (gaps above and below, a colorbar taller
    than its map) or a tall one (gaps beside it).
    """
    image_height, image_width = (int(n) for n in image_shape)
    longer = max(image_height, image_width)
    cell_width, cell_height = image_width / longer, image_height / longer  # in panel_inches
    per_map = [0.1, cell_width, 0.04, 0.07, 0.35] if colorbar else [0.06, cell_width]
    ratios = [cell_width] + per_map * n_maps
    title_inches = font_size * 2.0 / 72.0
    left_inches = font_size * 1.8 / 72.0 if row_titles else 0.08
    row_gap = 0.06
    width = panel_inches * sum(ratios) + left_inches + 0.08
    # rows apart by row_gap * panel_inches whatever the aspect: room for the colorbars' end ticks
    height = panel_inches * (rows * cell_height + row_gap * (rows - 1)) + title_inches + 0.08
    fig = NotebookFigure(figsize=(width, height))
    grid = fig.add_gridspec(
        rows,
        len(ratios),
        width_ratios=ratios,
        wspace=0.0,
        hspace=row_gap / cell_height,  # (a fraction of a row's height)
        left=left_inches / width,
        right=1 - 0.08 / width,
        top=1 - title_inches / height,
        bottom=0.08 / height,
    )
    image_axes = [fig.add_subplot(grid[r, 0]) for r in range(rows)]
    first = 2  # column of the first map panel (after the image and a spacer)
    step = len(per_map)
    map_axes = [
        [fig.add_subplot(grid[r, first + k * step]) for k in range(n_maps)] for r in range(rows)
    ]
    bar_axes = [
        [
            fig.add_subplot(grid[r, first + 2 + k * step]) if colorbar else None
            for k in range(n_maps)
        ]
        for r in range(rows)
    ]
    return fig, image_axes, map_axes, bar_axes


def _image_panel(ax, rgb: np.ndarray, title: str | None, font_size: float) -> None:
    ax.imshow(rgb, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=font_size)


def _map_panel(
    ax,
    bar_ax,
    rgb: np.ndarray,
    map2d: np.ndarray,
    title: str | None,
    clip_percentile: float,
    alpha: float | None,
    font_size: float,
) -> None:
    signed = bool((map2d < 0).any())
    vmin, vmax = color_limits(map2d, clip_percentile, signed)
    cmap = colormap_for(signed)
    if alpha is None:
        ax.imshow(map2d, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    else:
        ax.imshow(overlay(rgb, map2d, alpha, signed, clip_percentile), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=font_size)
    if bar_ax is not None:
        _colorbar(bar_ax, cmap, vmin, vmax, font_size * 0.7)


def _colorbar(ax, cmap: str, vmin: float, vmax: float, font_size: float) -> None:
    """A light colorbar: a gradient strip with ticks at vmin, (0,) vmax in the map's units.

    Drawn as a small image rather than with ``Figure.colorbar``, which costs ~20 ms per panel.
    """
    gradient = np.linspace(0.0, 1.0, 256)[:, None]
    ax.imshow(gradient, aspect="auto", cmap=cmap, origin="lower", extent=(0, 1, vmin, vmax))
    ticks = [vmin, 0.0, vmax] if vmin < 0 else [vmin, vmax]
    ax.set_xticks([])
    ax.yaxis.tick_right()
    ax.set_yticks(ticks, [f"{t:.3g}" for t in ticks], fontsize=font_size)


def figure_to_png(fig: Figure, dpi: float = 100, compress_level: int = 6) -> bytes:
    """The figure as PNG bytes (for an ``ipywidgets.Image`` or a file).

    compress_level 0-9: 1 encodes fastest (the dashboards redraw on every slider change),
    9 gives the smallest file.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if not check_number(dpi, "dpi") > 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    width, height = (float(inches) * dpi for inches in fig.get_size_inches())
    if width * height > MAX_FIGURE_PIXELS:
        largest = dpi * (MAX_FIGURE_PIXELS / (width * height)) ** 0.5
        raise ValueError(
            f"at dpi={dpi:g} the PNG would be {width:,.0f} x {height:,.0f} pixels, more than the "
            f"kit's {MAX_FIGURE_PIXELS:,} (about 6,300 x 6,300): use dpi <= {int(largest)}"
        )
    if compress_level not in range(10):
        raise ValueError(f"compress_level must be an int from 0 to 9, got {compress_level!r}")
    buffer = io.BytesIO()
    # No bbox_inches="tight": the PNG is exactly figsize * dpi pixels, which slides rely on.
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": compress_level})
    return buffer.getvalue()


def save_png(fig: Figure, path: str | Path, dpi: float = SLIDE_DPI, overwrite: bool = False) -> Path:
    """Write the figure to ``path`` as a PNG of figsize * dpi pixels; returns the path.

    An existing file is never replaced unless ``overwrite=True``: it may be someone's work.
    """
    path = Path(path)
    check_flag(overwrite, "overwrite")
    if path.suffix.lower() != ".png":
        raise ValueError(
            f"save_png writes PNG files; the path should end in .png, got {path.name!r}"
        )
    if not path.parent.is_dir():
        raise ValueError(f"folder {str(path.parent)!r} does not exist (or is not a folder)")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{str(path)!r} exists; pass overwrite=True to replace it, or choose another name"
        )
    png = figure_to_png(fig, dpi)  # drawn before the file is opened: an error leaves no stub
    path.write_bytes(png)
    return path
