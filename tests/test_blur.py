"""The kit's one Gaussian blur (gradviz_lab.blur.gaussian_blur) and its two edge rules.

Oracles: with sigma = 1 / sqrt(2 ln 2) and radius 1 the kernel is exactly [1/4, 1/2, 1/4], so a
blurred row is worked out by hand below, edge pixels included; the kernel's support (radius) is
read off a blurred single pixel; and the two blurs the kit had before (feature visualisation's and
integrated gradients' baseline), written out here as they were, give the same bits.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gradviz_lab import featureviz
from gradviz_lab.attribution.integrated import blurred, make_baseline
from gradviz_lab.blur import gaussian_blur

QUARTER_HALF_QUARTER = 1 / math.sqrt(2 * math.log(2))  # exp(-1 / (2 sigma^2)) = 1/2


def rows_of(row: list[float], height: int = 3) -> torch.Tensor:
    """A (1, 1, height, W) image whose rows are all ``row``: the blur down the columns keeps it
    as it is (a constant column stays constant under either edge rule), so only the blur along
    the row acts."""
    return torch.tensor(row, dtype=torch.float64).repeat(height, 1)[None, None]


@pytest.mark.parametrize(
    "edges, expected",
    [
        # padded  0 | 4 0 0 8 | 0   (mirrored about the edge pixel: its neighbour, 0, on both sides)
        ("reflect", [0.25 * 0 + 0.5 * 4 + 0.25 * 0, 0.25 * 4, 0.25 * 8, 0.25 * 0 + 0.5 * 8 + 0.25 * 0]),
        # padded  4 | 4 0 0 8 | 8   (the edge pixel repeated)
        ("replicate", [0.25 * 4 + 0.5 * 4, 0.25 * 4, 0.25 * 8, 0.5 * 8 + 0.25 * 8]),
    ],
)
def test_each_edge_rule_gives_the_hand_computed_row(edges, expected):
    image = rows_of([4.0, 0.0, 0.0, 8.0])
    out = gaussian_blur(image, QUARTER_HALF_QUARTER, edges=edges, radius=1)
    torch.testing.assert_close(out, rows_of(expected), rtol=0, atol=1e-12)
    # The same along the columns: the blur is separable and treats both axes alike.
    out_t = gaussian_blur(image.transpose(2, 3), QUARTER_HALF_QUARTER, edges=edges, radius=1)
    torch.testing.assert_close(out_t, rows_of(expected).transpose(2, 3), rtol=0, atol=1e-12)


def test_reflect_falls_back_to_replicate_when_the_image_is_no_larger_than_the_radius():
    image = torch.rand(2, 3, 2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # Side 2 <= radius 2: there is no pixel to mirror that far.
    assert torch.equal(
        gaussian_blur(image, 1.0, edges="reflect", radius=2),
        gaussian_blur(image, 1.0, edges="replicate", radius=2),
    )
    # Side 3 > radius 2: mirrored, and so different at the border.
    bigger = torch.rand(1, 1, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(
        gaussian_blur(bigger, 1.0, edges="reflect", radius=2),
        gaussian_blur(bigger, 1.0, edges="replicate", radius=2),
    )


@pytest.mark.parametrize("sigma, radius", [(0.5, 2), (0.8, 3), (1.0, 3), (2.8, 9)])
def test_the_default_radius_is_ceil_3_sigma(sigma, radius):
    """A single bright pixel in the middle spreads exactly ``radius`` pixels each way."""
    image = torch.zeros(1, 1, 41, 41, dtype=torch.float64)
    image[..., 20, 20] = 1.0
    out = gaussian_blur(image, sigma)
    row = out[0, 0, 20]
    assert (row[20 - radius : 21 + radius] > 0).all()
    assert (row[: 20 - radius] == 0).all() and (row[21 + radius :] == 0).all()
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-12)  # the kernel sums to 1


def test_integrated_gradients_baseline_keeps_its_radius_round_3_sigma():
    """sigma 2.8 (lesson 06's digits): round(8.4) = 8, one pixel less than the default 9."""
    image = torch.zeros(1, 1, 41, 41, dtype=torch.float64)
    image[..., 20, 20] = 1.0
    row = blurred(image, 2.8)[0, 0, 20]
    assert (row[12:29] > 0).all() and (row[:12] == 0).all() and (row[29:] == 0).all()


def test_sigma_zero_returns_the_images_and_bad_arguments_say_what_is_allowed():
    image = torch.rand(1, 2, 6, 6)
    assert gaussian_blur(image, 0.0) is image
    with pytest.raises(ValueError, match=r"edges must be one of \['reflect', 'replicate'\]"):
        gaussian_blur(image, 1.0, edges="wrap")
    with pytest.raises(ValueError, match="radius must be >= 1"):
        gaussian_blur(image, 1.0, radius=0)
    with pytest.raises(TypeError, match="radius must be an int"):
        gaussian_blur(image, 1.0, radius=1.5)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        gaussian_blur(image, -1.0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        gaussian_blur(image[0], 1.0)


# The two blurs the kit had before there was one, as they were written: the new one must give
# their outputs bit for bit (integrated gradients' for every sigma, feature visualisation's for
# the sigmas the lessons use), so that no stored output moves.
def old_featureviz_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    rows, cols = kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    mode = "reflect" if min(images.shape[-2:]) > radius else "replicate"
    x = F.conv2d(F.pad(images, (0, 0, radius, radius), mode=mode), rows, groups=c)
    return F.conv2d(F.pad(x, (radius, radius, 0, 0), mode=mode), cols, groups=c)


def old_integrated_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(rows, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 1, 28, 28), (2, 3, 64, 64), (1, 3, 5, 7)])
def test_both_old_blurs_are_reproduced_bit_for_bit(dtype, shape):
    images = torch.rand(shape, generator=torch.Generator().manual_seed(3)).to(dtype)
    for sigma in (0.1 * min(shape[-2:]), 1.6, 2.8, 6.4):
        assert torch.equal(blurred(images, sigma), old_integrated_blur(images, sigma))
    assert torch.equal(make_baseline(images, "blur"), old_integrated_blur(images, 0.1 * min(shape[-2:])))
    for sigma in (0.5, 1.0):  # AscentSettings' default and lesson 08's VGG run
        assert torch.equal(featureviz.gaussian_blur(images, sigma), old_featureviz_blur(images, sigma))
