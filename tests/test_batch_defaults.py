"""The cache-sized default batch of integrated gradients and the perturbation curves: the size
follows the rule of ``cache_sized_batch``, and the default batch changes the time, not the
result (bit for bit, against the old fixed defaults)."""

from __future__ import annotations

import pytest
import torch

from conftest import images, small_cnn
from gradviz_lab.attribution import integrated_gradients
from gradviz_lab.attribution._common import CACHE_BATCH_BYTES, cache_sized_batch
from gradviz_lab.data import make_shapes
from gradviz_lab.evaluate import deletion_curve, insertion_curve
from gradviz_lab.models import build_lab_model


@pytest.mark.parametrize(
    ("shape", "dtype", "largest", "expected"),
    [
        ((3, 64, 64), torch.float64, 32, 8),  # 96 KiB an image: 5 fit, at least one multiple of 8
        ((3, 64, 64), torch.float32, 32, 8),  # 48 KiB: 10 fit, rounded down to 8
        ((1, 28, 28), torch.float64, 32, 32),  # 6.1 KiB: 83 fit, capped at the largest
        ((1, 28, 28), torch.float32, 64, 64),  # 3.1 KiB: 167 fit, capped
        ((1, 32, 32), torch.float64, 64, 64),  # 8 KiB: exactly 64 fit
        ((2, 32, 32), torch.float64, 64, 32),  # 16 KiB: exactly 32 fit
        ((3, 224, 224), torch.float32, 32, 8),  # 588 KiB: none fits, one multiple of 8
    ],
)
def test_cache_sized_batch_follows_its_rule(shape, dtype, largest, expected):
    x = torch.zeros(2, *shape, dtype=dtype)
    assert cache_sized_batch(x, largest) == expected
    fits = CACHE_BATCH_BYTES // (x[0].numel() * x.element_size())
    assert expected == min(largest, max(8, fits // 8 * 8))  # the rule, written another way


def test_cache_sized_batch_is_the_largest_off_the_cpu():
    x = torch.zeros(2, 3, 64, 64, device="meta")
    assert cache_sized_batch(x, 32) == 32


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_default_batches_give_the_results_of_the_old_ones_up_to_rounding(dtype):
    # 3 x 40 x 40 images: 37.5 KiB each in float64 (13 fit: batches of 8), 18.75 KiB in float32
    # (27 fit: batches of 24), not the old 32 / 64; 39 path points and 36 curve points, so the
    # last batch is a short one
    model = small_cnn(seed=3).to(dtype)
    x = images(3, size=40, seed=5, dtype=dtype)
    assert cache_sized_batch(x, 64) == (8 if dtype == torch.float64 else 24)
    target = [0, 2, 4]
    saliency_map = images(3, channels=1, size=40, seed=6, dtype=dtype)
    # a matrix product may round a row differently with the batch's size on some CPUs
    # (tests/emulate_cpu.py avx2): the same up to rounding here, bit for bit on the lab model below
    close = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-6}
    ig = integrated_gradients(model, x, target, steps=13, baseline="blur")
    old = integrated_gradients(model, x, target, steps=13, baseline="blur", batch_size=32)
    torch.testing.assert_close(ig, old, **close)
    for curve in (deletion_curve, insertion_curve):
        new = curve(model, x, saliency_map, target, steps=11).scores
        torch.testing.assert_close(new, curve(model, x, saliency_map, target, steps=11, batch_size=64).scores, **close)


def test_default_batches_give_the_lessons_bits_on_the_shapes_model():
    # lessons 6 and 7 print float64 numbers of ShapesCNN: the default batch (8) must give the bits
    # the old defaults gave, on every CPU of tests/emulate_cpu.py
    model = build_lab_model("shapes").double().eval()
    shapes = make_shapes(3, seed=4)
    x, target = shapes.images.double(), shapes.labels
    assert cache_sized_batch(x, 32) == 8
    ig = integrated_gradients(model, x, target, steps=7, baseline="blur")  # 21 points: 8, 8, 5
    assert torch.equal(ig, integrated_gradients(model, x, target, steps=7, baseline="blur", batch_size=32))
    saliency_map = ig.abs().sum(dim=1, keepdim=True)
    for curve in (deletion_curve, insertion_curve):
        new = curve(model, x, saliency_map, target, steps=6).scores
        assert torch.equal(new, curve(model, x, saliency_map, target, steps=6, batch_size=64).scores)
