"""gradviz_lab.viz: every number below is computed by hand or by an independent formula."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image

from gradviz_lab import viz

# One (1, 3, 2, 2) attribution whose reductions are easy to do on paper.
# channel 0: [[ 1, -2], [ 0, 3]]
# channel 1: [[-4,  1], [ 2, 0]]
# channel 2: [[ 2,  2], [-1, 1]]
ATTR = torch.tensor(
    [[[[1.0, -2.0], [0.0, 3.0]], [[-4.0, 1.0], [2.0, 0.0]], [[2.0, 2.0], [-1.0, 1.0]]]]
)


# ---------------------------------------------------------------- to_2d
@pytest.mark.parametrize(
    "mode, reduce, expected",
    [
        ("magnitude", "sum", [[7.0, 5.0], [3.0, 4.0]]),  # |1|+|-4|+|2| = 7 ...
        ("magnitude", "max", [[4.0, 2.0], [2.0, 3.0]]),
        ("signed", "sum", [[-1.0, 1.0], [1.0, 4.0]]),  # 1-4+2 = -1 ...
        ("signed", "max", [[-4.0, -2.0], [2.0, 3.0]]),  # largest |value|, sign kept (ties: first)
    ],
)
def test_to_2d_by_hand(mode, reduce, expected):
    out = viz.to_2d(ATTR, mode=mode, reduce=reduce)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([expected], dtype=np.float32))
    # a single (C, H, W) image gives (H, W); numpy input gives the same as torch input
    np.testing.assert_array_equal(viz.to_2d(ATTR[0], mode, reduce), np.array(expected))
    np.testing.assert_array_equal(viz.to_2d(ATTR.numpy(), mode, reduce), out)


def test_to_2d_magnitude_sum_is_the_lectures_abs_sum():
    torch.manual_seed(0)
    attr = torch.randn(3, 3, 5, 7, requires_grad=True) * 2  # a non-leaf with grad: detached
    np.testing.assert_allclose(viz.to_2d(attr), attr.detach().abs().sum(1).numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (dict(attr=torch.zeros(4, 4)), ValueError, "(B, C, H, W)"),
        (dict(attr=torch.zeros(1, 1, 1, 4, 4)), ValueError, "(B, C, H, W)"),
        (dict(attr=ATTR, mode="abs"), ValueError, "mode"),
        (dict(attr=ATTR, reduce="mean"), ValueError, "reduce"),
        (dict(attr=ATTR > 0), TypeError, "real numbers"),
        (dict(attr=[[1.0]]), TypeError, "torch.Tensor or numpy.ndarray"),
        (dict(attr=torch.full((1, 1, 2, 2), float("nan"))), ValueError, "non-finite"),
        (dict(attr=torch.zeros(1, 3, 0, 2)), ValueError, "empty"),
    ],
)
def test_to_2d_rejects_bad_input(bad, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        viz.to_2d(**bad)


# ---------------------------------------------------------------- normalize
def test_percentile_clipping_by_hand():
    m = np.array([[0.0, 1.0], [2.0, 3.0]])
    # 50th percentile of 0, 1, 2, 3 with linear interpolation: halfway between 1 and 2
    assert viz.robust_scale(m, 50) == pytest.approx(1.5)
    np.testing.assert_allclose(viz.normalize(m, 50), [[0.0, 1 / 1.5], [1.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(viz.normalize(m, 100), [[0.0, 1 / 3], [2 / 3, 1.0]], rtol=1e-6)


def test_signed_normalisation_is_symmetric_about_zero():
    m = np.array([[-4.0, 1.0], [2.0, 0.0]])
    # |m| = 4, 1, 2, 0 -> 100th percentile 4, 50th percentile 1.5
    np.testing.assert_allclose(viz.normalize(m, 100), [[-1.0, 0.25], [0.5, 0.0]])
    np.testing.assert_allclose(viz.normalize(m, 50), [[-1.0, 1 / 1.5], [1.0, 0.0]], rtol=1e-6)
    # the scale comes from |m|: negating the map negates the picture, zero stays zero
    np.testing.assert_allclose(viz.normalize(-m, 50), -viz.normalize(m, 50))
    assert viz.color_limits(m, 100) == (-4.0, 4.0)
    assert viz.color_limits(np.abs(m), 100) == (0.0, 4.0)


def test_signed_is_detected_from_negative_values_or_forced():
    positive = np.array([[0.0, 2.0], [1.0, 4.0]])
    assert not viz.is_signed(positive) and viz.is_signed(-positive)
    # a positive map drawn as signed uses [-s, s]: values land in [0, 1], zero stays 0
    np.testing.assert_allclose(viz.normalize(positive, 100, signed=True), positive / 4)
    assert viz.color_limits(positive, 100, signed=True) == (-4.0, 4.0)
    with pytest.raises(ValueError, match="negative values.*signed=True"):
        viz.normalize(-positive, signed=False)


def test_flat_maps_render_flat_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 0/0 would warn before producing NaN
        zeros = viz.normalize(np.zeros((4, 5)))
        assert zeros.shape == (4, 5) and (zeros == 0).all()
        assert (viz.normalize(np.zeros((4, 5)), signed=True) == 0).all()
        np.testing.assert_array_equal(viz.normalize(np.full((3, 3), 5.0)), np.ones((3, 3)))
        np.testing.assert_array_equal(viz.normalize(np.full((3, 3), -2.0)), -np.ones((3, 3)))
        colours = viz.colorize(np.zeros((2, 2)))
        assert np.isfinite(colours).all()
        assert viz.color_limits(np.zeros((2, 2))) == (0.0, 1.0)


def test_mostly_zero_map_falls_back_to_the_maximum():
    m = np.zeros((10, 10))
    m[3, 4] = 3.0
    # the median of |m| is 0: dividing by it is impossible, the largest value is used instead
    out = viz.normalize(m, 50)
    assert out[3, 4] == 1.0 and out.sum() == 1.0


def test_each_map_of_a_batch_gets_its_own_scale():
    torch.manual_seed(1)
    m = torch.rand(6, 6)
    batch = torch.stack([m, 10 * m, -m])
    out = viz.normalize(batch, 90)
    assert out.shape == (3, 6, 6)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)
    np.testing.assert_allclose(out[1], viz.normalize(m, 90), rtol=1e-6)
    # the batch has negative values, so it is signed as a whole; the third map is -first
    np.testing.assert_allclose(out[2], -out[0], rtol=1e-6)
    np.testing.assert_allclose(
        viz.robust_scale(batch, 90), [np.percentile(m, 90) * k for k in (1, 10, 1)], rtol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(map2d=np.ones((2, 2)), clip_percentile=0), ValueError, "clip_percentile"),
        (dict(map2d=np.ones((2, 2)), clip_percentile=100.5), ValueError, "clip_percentile"),
        (dict(map2d=np.ones((1, 3, 2, 2))), ValueError, "to_2d first"),
        (dict(map2d=np.ones(5)), ValueError, "to_2d first"),
        (dict(map2d=np.array([[1.0, np.inf]])), ValueError, "non-finite"),
        (dict(map2d=np.array([["a"]])), TypeError, "real numbers"),
    ],
)
def test_normalize_rejects_bad_input(kwargs, error, words):
    with pytest.raises(error, match=words):
        viz.normalize(**kwargs)


# ---------------------------------------------------------------- colour
def test_sequential_colours_for_magnitudes():
    assert viz.colormap_for(False) == "inferno" and viz.colormap_for(True) == "RdBu_r"
    m = np.array([[0.0, 2.0], [4.0, 8.0]])
    colours = viz.colorize(m, clip_percentile=100)
    cmap = colormaps["inferno"]
    assert colours.shape == (2, 2, 3)
    np.testing.assert_allclose(colours[0, 0], cmap(0.0)[:3], atol=1e-6)  # zero is black
    np.testing.assert_allclose(colours[1, 1], cmap(1.0)[:3], atol=1e-6)
    np.testing.assert_allclose(colours[1, 0], cmap(0.5)[:3], atol=1e-6)


def test_diverging_colours_are_centred_on_zero():
    m = np.array([[-3.0, 0.0], [1.5, 3.0]])
    colours = viz.colorize(m, clip_percentile=100)
    cmap = colormaps["RdBu_r"]
    np.testing.assert_allclose(colours[0, 1], cmap(0.5)[:3], atol=1e-6)  # zero -> the centre
    np.testing.assert_allclose(colours[0, 0], cmap(0.0)[:3], atol=1e-6)  # -max -> blue end
    np.testing.assert_allclose(colours[1, 1], cmap(1.0)[:3], atol=1e-6)  # +max -> red end
    np.testing.assert_allclose(colours[1, 0], cmap(0.75)[:3], atol=1e-6)
    # the centre of RdBu_r is nearly white: "no effect" reads as background
    assert colours[0, 1].min() > 0.9
    # an explicit colormap is honoured
    np.testing.assert_allclose(
        viz.colorize(m, clip_percentile=100, cmap="coolwarm")[0, 0], colormaps["coolwarm"](0.0)[:3]
    )


# ---------------------------------------------------------------- images and overlay
def test_to_rgb_layouts():
    chw = torch.rand(3, 4, 5)
    np.testing.assert_allclose(viz.to_rgb(chw), chw.permute(1, 2, 0).numpy())
    np.testing.assert_allclose(
        viz.to_rgb(chw.permute(1, 2, 0).numpy()), chw.permute(1, 2, 0).numpy()
    )
    grey = torch.rand(1, 4, 5)
    rgb = viz.to_rgb(grey)
    assert rgb.shape == (4, 5, 3) and (rgb[..., 0] == rgb[..., 2]).all()
    np.testing.assert_allclose(viz.to_rgb(grey[0]), rgb)
    np.testing.assert_allclose(
        viz.to_rgb(np.full((2, 2, 3), 51, np.uint8)), np.full((2, 2, 3), 0.2), rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        viz.to_rgb(chw * 255)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        viz.to_rgb(torch.rand(2, 4, 5))


def test_overlay_alpha_zero_is_the_image_and_one_is_the_map():
    torch.manual_seed(2)
    image = torch.rand(3, 6, 6)
    m = torch.rand(6, 6)
    np.testing.assert_allclose(
        viz.overlay(image, m, alpha=0.0), image.permute(1, 2, 0).numpy(), atol=1e-7
    )
    np.testing.assert_allclose(viz.overlay(image, m, alpha=1.0), viz.colorize(m), atol=1e-7)


def test_overlay_mixes_by_hand():
    image = np.zeros((3, 1, 2), np.float32)
    image[:, 0, 0] = [0.2, 0.4, 0.6]
    m = np.array([[2.0, 0.0]])  # pixel 0 is the maximum, pixel 1 is zero
    out = viz.overlay(image, m, alpha=0.25, clip_percentile=100)
    top = np.array(colormaps["inferno"](1.0)[:3])
    bottom = np.array(colormaps["inferno"](0.0)[:3])
    np.testing.assert_allclose(out[0, 0], 0.75 * np.array([0.2, 0.4, 0.6]) + 0.25 * top, atol=1e-6)
    np.testing.assert_allclose(out[0, 1], 0.25 * bottom, atol=1e-6)


def test_overlay_rejects_bad_input():
    with pytest.raises(ValueError, match="upsample"):
        viz.overlay(torch.rand(3, 8, 8), torch.rand(4, 4))
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(torch.rand(3, 8, 8), torch.rand(8, 8), alpha=1.5)


# ---------------------------------------------------------------- grid and PNG
def _map_images(fig: Figure) -> list:
    """The imshow artists of the map panels (panels with a title other than 'image')."""
    return [ax.images[0] for ax in fig.axes if ax.get_title() not in ("", "image")]


def test_show_grid_panels_titles_and_colour_limits():
    torch.manual_seed(3)
    images = torch.rand(2, 3, 8, 8)
    attr = torch.randn(2, 3, 8, 8)
    signed = viz.to_2d(attr, mode="signed")
    fig = viz.show_grid(images, {"saliency": attr, "signed": signed}, row_titles=["a", "b"])
    assert isinstance(fig, Figure)
    # 2 rows x (image + 2 maps + 2 colorbars)
    assert len(fig.axes) == 2 * 5
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["image", "saliency", "signed"]  # titles on the first row only
    assert sorted(ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()) == ["a", "b"]
    saliency_im, signed_im = _map_images(fig)
    # the 4-D map was reduced with to_2d(magnitude, sum): sequential, from 0 to the percentile
    expected = attr[0].abs().sum(0).numpy()
    np.testing.assert_allclose(saliency_im.get_array(), expected, rtol=1e-6)
    assert saliency_im.get_cmap().name == "inferno"
    assert saliency_im.get_clim() == pytest.approx((0.0, np.percentile(expected, 99.5)), rel=1e-5)
    # the signed map: diverging, symmetric limits
    s = np.percentile(np.abs(signed[0]), 99.5)
    assert signed_im.get_cmap().name == "RdBu_r"
    assert signed_im.get_clim() == pytest.approx((-s, s), rel=1e-5)


def test_show_grid_overlay_and_single_image():
    torch.manual_seed(4)
    image = torch.rand(3, 8, 8)
    m = torch.rand(8, 8)
    fig = viz.show_grid(image, {"map": m}, alpha=0.4, colorbar=False)
    assert len(fig.axes) == 2
    (im,) = _map_images(fig)
    np.testing.assert_allclose(im.get_array(), viz.overlay(image, m, 0.4), atol=1e-6)


@pytest.mark.parametrize(
    "images, maps, error, words",
    [
        (torch.rand(2, 3, 8, 8), {"m": torch.rand(8, 8)}, ValueError, "B = 2"),
        (torch.rand(2, 3, 8, 8), {"m": torch.rand(3, 8, 8)}, ValueError, "B = 2"),
        (torch.rand(2, 5, 8, 8), {"m": torch.rand(2, 8, 8)}, ValueError, "C = 1 or 3"),
        (torch.rand(3, 8, 8), [torch.rand(8, 8)], TypeError, "dict"),
    ],
)
def test_show_grid_rejects_bad_input(images, maps, error, words):
    with pytest.raises(error, match=words):
        viz.show_grid(images, maps)


def test_show_grid_row_titles_must_match():
    with pytest.raises(ValueError, match="row_titles"):
        viz.show_grid(torch.rand(2, 3, 4, 4), {"m": torch.rand(2, 4, 4)}, row_titles=["one"])


def test_png_is_figsize_times_dpi(tmp_path):
    fig = Figure(figsize=(4, 3))
    fig.add_subplot().imshow(np.eye(3))
    path = viz.save_png(fig, tmp_path / "slide.png", dpi=50)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (200, 150)
    assert viz.figure_to_png(fig, dpi=20)[:8] == b"\x89PNG\r\n\x1a\n"
    # the compression level changes the file, not the picture
    fast, small = (
        viz.figure_to_png(fig, 20, compress_level=1),
        viz.figure_to_png(fig, 20, compress_level=9),
    )
    with Image.open(io.BytesIO(fast)) as a, Image.open(io.BytesIO(small)) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    with Image.open(io.BytesIO(viz.figure_to_png(fig, dpi=20))) as png:
        assert png.size == (80, 60)


def test_grid_png_at_slide_resolution(tmp_path):
    fig = viz.show_grid(torch.rand(3, 16, 16), {"m": torch.rand(16, 16)})
    width, height = fig.get_size_inches()
    path = viz.save_png(fig, tmp_path / "grid.png")  # default: SLIDE_DPI
    with Image.open(path) as png:
        # matplotlib truncates fractional pixels: allow one pixel either way
        assert abs(png.size[0] - width * viz.SLIDE_DPI) <= 1
        assert abs(png.size[1] - height * viz.SLIDE_DPI) <= 1
        assert png.size[0] >= 1000  # wide enough for a projected slide


def test_save_png_rejects_bad_paths(tmp_path):
    fig = Figure(figsize=(1, 1))
    with pytest.raises(ValueError, match=r"\.png"):
        viz.save_png(fig, tmp_path / "figure.jpg")
    with pytest.raises(ValueError, match="does not exist"):
        viz.save_png(fig, tmp_path / "missing" / "figure.png")
    with pytest.raises(TypeError, match="Figure"):
        viz.save_png("not a figure", tmp_path / "figure.png")
    with pytest.raises(ValueError, match="dpi"):
        viz.figure_to_png(fig, dpi=0)
    with pytest.raises(ValueError, match="compress_level"):
        viz.figure_to_png(fig, compress_level=10)


def test_grid_figures_show_themselves_in_a_notebook():
    # IPython calls _repr_png_ for the last expression of a cell, with or without pyplot
    fig = viz.show_grid(torch.rand(3, 8, 8), {"m": torch.rand(8, 8)}, panel_inches=1.0)
    png = fig._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as picture:
        assert abs(picture.size[0] - fig.get_size_inches()[0] * 100) <= 1


def test_save_png_replaces_a_file_only_when_asked(tmp_path):
    fig = Figure(figsize=(1, 1))
    path = tmp_path / "slide.png"
    path.write_bytes(b"someone's slide")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        viz.save_png(fig, path, dpi=10)
    assert path.read_bytes() == b"someone's slide"
    viz.save_png(fig, path, dpi=10, overwrite=True)
    assert path.read_bytes() == viz.figure_to_png(fig, dpi=10)


def test_the_largest_png_is_bounded_before_drawing():
    fig = Figure(figsize=(10, 5))
    largest = int((viz.MAX_FIGURE_PIXELS / 50) ** 0.5)  # dpi at which 10 x 5 inches reach the bound
    assert viz.figure_to_png(fig, dpi=largest * 0.01)[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=f"use dpi <= {largest}"):
        viz.figure_to_png(fig, dpi=largest + 1)


@pytest.mark.parametrize("shape", [(32, 96), (96, 32), (40, 40)])
def test_show_grid_fits_its_panels_to_non_square_images(shape):
    """issue 18: each image and map fills its cell (no gaps above and below a wide image, none
    beside a tall one) and every colorbar is exactly as tall as its map."""
    import torch

    images = torch.rand(2, 3, *shape)
    maps = {"a": torch.rand(2, *shape), "b": torch.rand(2, *shape) - 0.5}
    fig = viz.show_grid(images, maps, panel_inches=3.0)
    fig.canvas.draw()  # applies each image's aspect: the axes shrink to the picture they show
    width_in, height_in = fig.get_size_inches()
    pictures = [ax for ax in fig.axes if ax.get_images() and ax.get_images()[0].get_array().shape[:2] == shape]
    bars = [ax for ax in fig.axes if ax not in pictures]
    assert len(pictures) == 6 and len(bars) == 4
    height, width = shape
    for ax in pictures:
        drawn, cell = ax.get_position(original=False), ax.get_position(original=True)
        assert drawn.width == pytest.approx(cell.width, rel=1e-3)  # nothing left empty in the cell
        assert drawn.height == pytest.approx(cell.height, rel=1e-3)
        # the longer side is panel_inches, the other follows the image's aspect ratio
        assert max(drawn.width * width_in, drawn.height * height_in) == pytest.approx(3.0, rel=1e-3)
        assert drawn.width * width_in / (drawn.height * height_in) == pytest.approx(width / height, rel=1e-3)
    for bar in bars:  # each colorbar sits on its map's row, as tall as the map
        box = bar.get_position()
        assert any(box.y0 == pytest.approx(p.get_position().y0, abs=1e-6)
                   and box.height == pytest.approx(p.get_position().height, rel=1e-3) for p in pictures)
    # neighbouring panels 0.1 panel (the spacer) apart, rows 0.06 panel apart, whatever the shape
    image_box, first_map = pictures[0].get_position(), fig.axes[2].get_position()
    assert (first_map.x0 - image_box.x1) * width_in == pytest.approx(0.3, rel=0.02)
    rows = sorted({round(p.get_position().y0, 6) for p in pictures})
    top_of_lower = min(p.get_position().y1 for p in pictures if round(p.get_position().y0, 6) == rows[0])
    assert (rows[1] - top_of_lower) * height_in == pytest.approx(0.18, rel=0.02)
