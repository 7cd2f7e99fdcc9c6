"""Imputation by pull-push (the fill of deletion's baseline="impute"): by hand, against a loop
reference, and the property it exists for: the fill carries nothing of the removed pixels."""

from __future__ import annotations

import pytest
import torch

from gradviz_lab.attribution.integrated import make_baseline
from gradviz_lab.evaluate.imputation import impute


def reference_pull_push(x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The same algorithm, written with loops over pixels (one image, one channel, float64)."""
    height, width = x.shape
    if bool(known.all()) or (height == 1 and width == 1):
        return torch.where(known, x, torch.zeros_like(x))
    coarse_h, coarse_w = (height + 1) // 2, (width + 1) // 2
    coarse = torch.zeros(coarse_h, coarse_w, dtype=torch.float64)
    coarse_known = torch.zeros(coarse_h, coarse_w, dtype=torch.bool)
    for i in range(coarse_h):
        for j in range(coarse_w):
            block = [(r, c) for r in (2 * i, 2 * i + 1) for c in (2 * j, 2 * j + 1) if r < height and c < width]
            values = [float(x[r, c]) for r, c in block if known[r, c]]
            if values:
                coarse[i, j], coarse_known[i, j] = sum(values) / len(values), True
    filled = reference_pull_push(coarse, coarse_known)

    def source(out: int, size_in: int, size_out: int) -> tuple[int, int, float]:
        # bilinear, align_corners=False: output pixel centre -> input coordinate, clamped
        position = max((out + 0.5) * size_in / size_out - 0.5, 0.0)
        low = min(int(position), size_in - 1)
        return low, min(low + 1, size_in - 1), position - low

    result = x.clone()
    for r in range(height):
        for c in range(width):
            if known[r, c]:
                continue
            r0, r1, fr = source(r, coarse_h, height)
            c0, c1, fc = source(c, coarse_w, width)
            top = (1 - fc) * filled[r0, c0] + fc * filled[r0, c1]
            bottom = (1 - fc) * filled[r1, c0] + fc * filled[r1, c1]
            result[r, c] = (1 - fr) * top + fr * bottom
    return result


def test_a_gap_in_a_row_is_filled_linearly_by_hand():
    a, b = 0.2, 1.0
    x = torch.tensor([[a, 9.0, 9.0, b]] * 2).view(1, 1, 2, 4)
    known = torch.tensor([[True, False, False, True]] * 2).view(1, 1, 2, 4)
    # pull: 1 x 2 level (a, b); push: bilinear back to 4 columns -> a, 3/4 a + 1/4 b, 1/4 a + 3/4 b, b
    expected = torch.tensor([a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b])
    assert torch.allclose(impute(x, known)[0, 0], expected.expand(2, 4))


def test_one_missing_pixel_of_four_is_the_mean_of_the_other_three():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 100.0]]]])
    known = torch.tensor([[[True, True], [True, False]]])
    assert impute(x, known).tolist() == [[[[1.0, 2.0], [3.0, 2.0]]]]


@pytest.mark.parametrize("size", [(5, 7), (8, 8), (1, 6), (9, 2)])
def test_agrees_with_a_loop_reference_on_odd_and_thin_images(size):
    generator = torch.Generator().manual_seed(sum(size))
    x = torch.rand(3, 2, *size, generator=generator, dtype=torch.float64)
    known = torch.rand(3, 1, *size, generator=generator) < 0.3
    known[0] = False
    known[0, 0, 0, 0] = True  # one known pixel: the whole image takes its value
    ours = impute(x, known)
    for b in range(3):
        for c in range(2):
            assert torch.allclose(ours[b, c], reference_pull_push(x[b, c], known[b, 0]), atol=1e-12), (b, c)
    assert torch.allclose(ours[0], x[0, :, :1, :1].expand_as(ours[0]))


def test_known_pixels_are_unchanged_and_the_fill_is_a_mean_of_known_pixels():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=generator)
    known = torch.rand(4, 1, 16, 16, generator=generator) < 0.2
    filled = impute(x, known)
    assert torch.equal(torch.where(known, filled, 0.0), torch.where(known, x, 0.0))
    for b in range(4):
        kept = x[b][:, known[b, 0]]  # (3, n_known)
        low, high = kept.min(dim=1).values.view(3, 1, 1), kept.max(dim=1).values.view(3, 1, 1)
        assert ((filled[b] >= low - 1e-6) & (filled[b] <= high + 1e-6)).all()


def test_the_fill_does_not_depend_on_the_removed_pixels():
    """What deletion needs: change what is under the removed pixels, the imputed image stays the
    same. A blurred copy (deletion's "blur") fails this: it is made from the removed pixels."""
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 12, 12, generator=generator)
    known = torch.rand(2, 1, 12, 12, generator=generator) < 0.5
    other = torch.where(known, x, torch.rand(x.shape, generator=generator))
    assert torch.equal(impute(x, known), impute(other, known))
    blur_fill = lambda images: torch.where(known, images, make_baseline(images, "blur"))  # noqa: E731
    assert not torch.allclose(blur_fill(x), blur_fill(other), atol=1e-3)


def test_removing_an_object_leaves_its_background_and_no_silhouette():
    background = torch.tensor([0.2, 0.6, 0.3]).view(1, 3, 1, 1).expand(1, 3, 20, 20)
    obj = torch.zeros(1, 1, 20, 20, dtype=torch.bool)
    obj[..., 6:13, 5:14] = True
    x = torch.where(obj, torch.tensor([0.9, 0.1, 0.8]).view(1, 3, 1, 1), background)
    assert torch.allclose(impute(x, ~obj), background, atol=1e-6)  # the object is gone
    black = torch.where(obj, 0.0, x)
    blur = torch.where(obj, make_baseline(x, "blur"), x)
    assert (black - background).abs().amax() > 0.5  # a black silhouette
    assert (blur - background).abs().amax() > 0.1  # a blob of the object's colour


def test_no_known_pixel_gives_black_and_every_known_pixel_gives_the_image():
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(impute(x, torch.zeros(2, 5, 5, dtype=torch.bool)), torch.zeros_like(x))
    assert torch.equal(impute(x, torch.ones(2, 5, 5, dtype=torch.bool)), x)


@pytest.mark.parametrize(
    "x, known, error, match",
    [
        (torch.rand(3, 4, 4), torch.ones(3, 4, 4, dtype=torch.bool), ValueError, r"\(B, C, H, W\)"),
        (torch.ones(1, 1, 4, 4, dtype=torch.int64), torch.ones(1, 4, 4, dtype=torch.bool), TypeError, "floating"),
        (torch.rand(1, 1, 4, 4), torch.ones(1, 4, 4), TypeError, "bool"),
        (torch.rand(1, 1, 4, 4), torch.ones(2, 4, 4, dtype=torch.bool), ValueError, "shape"),
        (torch.full((1, 1, 2, 2), float("nan")), torch.ones(1, 2, 2, dtype=torch.bool), ValueError, "non-finite"),
    ],
)
def test_bad_input_is_a_clear_error(x, known, error, match):
    with pytest.raises(error, match=match):
        impute(x, known)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_fill_and_curve():
    from torch import nn

    from gradviz_lab.evaluate import deletion_curve

    generator = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 11, 9, generator=generator, dtype=torch.float64)
    known = torch.rand(2, 1, 11, 9, generator=generator) < 0.3
    assert torch.allclose(impute(x.cuda(), known.cuda()).cpu(), impute(x, known), atol=1e-12)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = model.double().eval()
    m = torch.rand(2, 1, 11, 9, generator=generator, dtype=torch.float64)
    on_cpu = deletion_curve(model, x, m, target=[0, 1], steps=6, baseline="impute").scores
    on_gpu = deletion_curve(model.cuda(), x.cuda(), m.cuda(), target=[0, 1], steps=6, baseline="impute").scores
    assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-10)
