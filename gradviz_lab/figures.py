"""Figures of attribution maps: the grid of ``show_grid``, and PNG bytes and files for slides.

Part of ``gradviz_lab.viz`` (``viz.show_grid``, ``viz.save_png`` ... are these functions): viz
turns one map into colours, this module lays many of them out. A dashboard redraws its grid in
place (``show_grid(..., into=figure)``): the panels' axes are built once and only their pictures,
titles and colorbar ticks change, which halves the time of a redraw.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ._checks import check_flag, check_number
from .viz import (
    DEFAULT_CLIP_PERCENTILE,
    MAX_FIGURE_PIXELS,
    SLIDE_DPI,
    ArrayLike,
    as_numpy,
    color_limits,
    colormap_for,
    overlay,
    to_2d,
    to_rgb,
)


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
    into: Figure | None = None,
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
    into    a figure an earlier ``show_grid`` returned: if it has the same layout (number of
            images and maps, image size, options), it is redrawn in place and returned (a
            dashboard's redraw); otherwise a new figure is made.
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
    layout = (batch, len(batches), colorbar, panel_inches, font_size, row_titles is not None,
              tuple(imgs.shape[-2:]))
    if into is not None and getattr(into, "gradviz_grid", (None,))[0] == layout:
        fig, (_, image_axes, map_axes, bar_axes) = into, into.gradviz_grid
    else:
        fig, image_axes, map_axes, bar_axes = _grid_layout(*layout[:-1], image_shape=layout[-1])
        fig.gradviz_grid = (layout, image_axes, map_axes, bar_axes)  # what ``into`` reuses
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


def _picture(ax, data: np.ndarray, **options) -> None:
    """Show ``data`` in ``ax``: a new image, or, in a grid drawn again, new data for the old one."""
    if ax.images:  # redrawn in place: same axes, same extent
        image = ax.images[0]
        image.set_data(data)
        image.set_cmap(options.get("cmap"))
        image.set_clim(options.get("vmin"), options.get("vmax"))
        if "extent" in options:
            image.set_extent(options["extent"])
        return
    ax.imshow(data, **options)


def _no_axis(axis) -> None:
    """An axis without ticks, not drawn at all: the same picture, and a redraw ~10% faster."""
    axis.set_ticks([])
    axis.set_visible(False)


def _image_panel(ax, rgb: np.ndarray, title: str | None, font_size: float) -> None:
    _picture(ax, rgb, interpolation="nearest")
    _no_axis(ax.xaxis)
    ax.set_yticks([])  # the y axis stays: it carries the row's title
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
    if ax.images and (alpha is None) != (ax.images[0].get_array().ndim == 2):
        ax.images[0].remove()  # a map that was an overlay, or the other way round: drawn anew
    if alpha is None:
        _picture(ax, map2d, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    else:
        _picture(ax, overlay(rgb, map2d, alpha, signed, clip_percentile), interpolation="nearest")
    _no_axis(ax.xaxis)
    _no_axis(ax.yaxis)
    if title:
        ax.set_title(title, fontsize=font_size)
    if bar_ax is not None:
        _colorbar(bar_ax, cmap, vmin, vmax, font_size * 0.7)


def _colorbar(ax, cmap: str, vmin: float, vmax: float, font_size: float) -> None:
    """A light colorbar: a gradient strip with ticks at vmin, (0,) vmax in the map's units.

    Drawn as a small image rather than with ``Figure.colorbar``, which costs ~20 ms per panel.
    """
    gradient = np.linspace(0.0, 1.0, 256)[:, None]
    # nearest: 256 colours on a strip of about as many pixels need no smoothing (faster)
    _picture(ax, gradient, aspect="auto", cmap=cmap, origin="lower", extent=(0, 1, vmin, vmax),
             interpolation="nearest")
    ticks = [vmin, 0.0, vmax] if vmin < 0 else [vmin, vmax]
    _no_axis(ax.xaxis)
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
