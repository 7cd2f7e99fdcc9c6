"""The approximate mode of occlusion (attribution/approximate.py): what it computes, that its
settings that change nothing give the exact map, the knob's errors and the model's state.

Oracles: the exact map (``approximate=None``); for the cap, an independent reference that runs
every layer on the whole occluded map and then puts the clean activations back outside each
layer's capped box (boxes found by enumerating which outputs read a changed input); for the
drill-down, the exact drops at the computed positions and a bilinear interpolation written out by
hand elsewhere.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradviz_lab import models
from gradviz_lab.attribution import OcclusionApproximation, occlusion, window_starts
from gradviz_lab.attribution.approximate import coarse_indices, interpolation_matrix
from gradviz_lab.attribution.incremental import changed_regions
from test_occlusion_incremental import (
    assert_occlusion_leaves_the_model_and_the_input,
    imagenet,
    state,
)

F64_BOUND = 16 * torch.finfo(torch.float64).eps  # as in test_occlusion_incremental


def close(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> bool:
    return bool((a - b).abs().max() <= F64_BOUND * scale)


def drops(model, x, approximate=None, **knobs):
    knobs.setdefault("batch_size", 16)
    return occlusion(model, x, per_position=True, approximate=approximate, **knobs)


# --- the cap ------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, shape, window, stride", [
    (lambda: models.load_lab_model("shapes"), (2, 3, 40, 40), (8, 8), 3),
    (lambda: models.load_lab_model("digits"), (2, 1, 28, 28), (5, 7), (3, 2)),
    (lambda: models.load_lab_model("shapes-softplus"), (1, 3, 64, 48), (12, 6), (6, 9)),
])  # (AlexNet's last maps change in full at every size tried: no cap < 1 holds them)
def test_a_cap_above_every_projected_region_is_the_exact_map(make, shape, window, stride):
    """cap = 1, and the smallest cap that still holds every layer's largest changed region,
    compute exactly what the exact engine computes; a cap just below that one changes the map."""
    model = make().double()
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = drops(model, x, window=window, stride=stride)
    assert torch.equal(exact, drops(model, x, OcclusionApproximation(cap=1.0), window=window,
                                    stride=stride))
    # The largest share of a map any window position changes, over the layers (per axis).
    share = 0.0
    (sh, sw) = (stride, stride) if isinstance(stride, int) else stride
    for r in window_starts(shape[2], window[0], sh).tolist():
        for c in window_starts(shape[3], window[1], sw).tolist():
            for _, (h, w), (r0, r1), (c0, c1) in changed_regions(model, shape[2:], window, (r, c)):
                share = max(share, (r1 - r0) / h, (c1 - c0) / w)
    assert share < 1  # otherwise no cap below 1 could be tested here
    holding = drops(model, x, OcclusionApproximation(cap=share), window=window, stride=stride)
    assert torch.equal(exact, holding)
    cut = drops(model, x, OcclusionApproximation(cap=share * 0.7), window=window, stride=stride)
    assert not torch.equal(exact, cut)


def read_by(kernel, stride, padding, first, stop, size):
    """Outputs (of ``size``) whose taps o*s - p + j, j < k, read one of the inputs [first, stop)."""
    readers = [o for o in range(size)
               if any(first <= o * stride - padding + j < stop for j in range(kernel))]
    return (readers[0], readers[-1] + 1) if readers else (0, 0)


def capped_reference(layers: list[nn.Module], rest: nn.Module, x, fill, window, start, cap):
    """The scores with the window at ``start`` hidden, layer by layer on whole maps: each sliding-
    window layer's output keeps its occluded values only inside its capped box (centred on the
    changed region, ceil(cap * size) long per axis, inside the map) and clean values elsewhere;
    the next layer's changed region is what reads that box's cut region."""
    hidden = x.clone()
    hidden[:, :, start[0]:start[0] + window[0], start[1]:start[1] + window[1]] = fill
    clean, occluded = x, hidden
    region = [(start[0], start[0] + window[0]), (start[1], start[1] + window[1])]
    for layer in layers:
        clean, occluded = layer(clean), layer(occluded)
        if not isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            continue
        kernel, stride, padding = (layer.kernel_size, layer.stride, layer.padding)
        kernel, stride, padding = ((v, v) if isinstance(v, int) else v
                                   for v in (kernel, stride, padding))
        keep = torch.zeros(clean.shape[-2:], dtype=torch.bool)
        cut = []
        for axis, (a, b) in enumerate(region):
            size = clean.shape[-2 + axis]
            first, stop = read_by(kernel[axis], stride[axis], padding[axis], a, b, size)
            n = min(stop - first, math.ceil(cap * size))
            box = min(first + max(0, stop - first - n) // 2, size - n)
            cut.append((max(first, box), min(stop, box + n)))
        region = cut
        keep[cut[0][0]:cut[0][1], cut[1][0]:cut[1][1]] = True
        occluded = torch.where(keep, occluded, clean)
    return rest(occluded)


def test_the_cap_keeps_clean_activations_outside_each_capped_box():
    torch.manual_seed(3)
    layers = [nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 5, stride=2, padding=1),
              nn.Tanh(), nn.MaxPool2d(2), nn.Conv2d(4, 3, 3, padding=1)]
    rest = nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 5, 2))
    model = nn.Sequential(*layers, *rest).double().eval()
    x = torch.randn(1, 2, 22, 22, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    window, stride = (6, 6), 4
    for cap in (0.5, 0.3):
        fast = drops(model, x, OcclusionApproximation(cap=cap), window=window, stride=stride,
                     target=1)[0, 0]
        exact = drops(model, x, window=window, stride=stride, target=1)[0, 0]
        with torch.no_grad():
            clean = model(x)[0, 1]
            for i, r in enumerate(window_starts(22, 6, 4).tolist()):
                for j, c in enumerate(window_starts(22, 6, 4).tolist()):
                    reference = clean - capped_reference(layers, rest, x, 0.0, window, (r, c),
                                                         cap)[0, 1]
                    assert abs(fast[i, j] - reference) <= F64_BOUND * clean.abs(), (cap, i, j)
        assert not torch.allclose(fast, exact)  # the cap does cut something here


# --- the drill-down -----------------------------------------------------------------------------


def test_interpolation_matrix_by_hand():
    known = torch.tensor([0, 2, 4, 5])
    weights = interpolation_matrix(6, known)
    expected = torch.tensor([[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 1, 0, 0], [0, 0.5, 0.5, 0],
                             [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    assert torch.equal(weights, expected)
    assert coarse_indices(6, 2).tolist() == [0, 2, 4, 5] and coarse_indices(7, 3).tolist() == [0, 3, 6]
    assert torch.equal(interpolation_matrix(1, torch.tensor([0])), torch.ones(1, 1,
                                                                            dtype=torch.float64))


@pytest.mark.parametrize("name", ["shapes", "digits"])
def test_drill_down_that_refines_everything_is_the_exact_map(name):
    model = models.load_lab_model(name).double()
    channels, side = (1, 28) if name == "digits" else (3, 40)
    x = torch.rand(2, channels, side, side, generator=torch.Generator().manual_seed(5),
                   dtype=torch.float64)
    exact = drops(model, x, window=6, stride=2)
    scale = exact.abs().max()
    for approx in (OcclusionApproximation(coarse=3, refine=1.0),
                   OcclusionApproximation(coarse=1, refine=0.0),
                   OcclusionApproximation(coarse=4, refine=1.0)):
        assert close(drops(model, x, approx, window=6, stride=2), exact, scale), approx
        maps = occlusion(model, x, window=6, stride=2, batch_size=16, approximate=approx)
        assert close(maps, occlusion(model, x, window=6, stride=2, batch_size=16), scale)


def counting(model: nn.Module) -> list[int]:
    """Images the model sees, per forward pass (a hook: occlusion then takes the full path)."""
    seen: list[int] = []
    model.register_forward_pre_hook(lambda m, inputs: seen.append(len(inputs[0])))
    return seen


@pytest.mark.parametrize("refine", [0.0, 0.3])
def test_drill_down_computes_the_coarse_and_the_largest_estimated_positions(refine):
    """Coarse positions and the refined share are exact; every other position is the bilinear
    interpolation of the coarse drops (written out here); the refined ones are those whose
    estimate is largest in magnitude; and no more occluded copies are run than those."""
    model = models.load_lab_model("shapes").double()
    x = torch.rand(2, 3, 36, 36, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    exact = drops(model, x, window=8, stride=4)[:, 0]  # (2, 8, 8) positions
    seen = counting(model)
    approx = drops(model, x, OcclusionApproximation(coarse=3, refine=refine), window=8,
                   stride=4)[:, 0]
    scale = exact.abs().max()
    known = [0, 3, 6, 7]  # coarse positions of 8 with coarse=3 (and the last one)
    others = [(r, c) for r in range(8) for c in range(8) if not (r in known and c in known)]
    n_refined = math.ceil(refine * len(others))
    assert sum(seen) == 2 + 2 * (len(known) ** 2 + n_refined)  # the clean images, then copies
    for b in range(2):
        def estimate(r, c):
            def side(i):  # (left known, right known, weight of the right one)
                left = max(k for k in known if k <= i)
                right = min(k for k in known if k >= i)
                return left, right, 0.0 if left == right else (i - left) / (right - left)
            r0, r1, tr = side(r)
            c0, c1, tc = side(c)
            e = exact[b]
            return ((1 - tr) * ((1 - tc) * e[r0, c0] + tc * e[r0, c1])
                    + tr * ((1 - tc) * e[r1, c0] + tc * e[r1, c1]))
        estimates = {p: float(estimate(*p)) for p in others}
        refined = set(sorted(others, key=lambda p: -abs(estimates[p]))[:n_refined])
        for r in range(8):
            for c in range(8):
                if (r, c) in estimates and (r, c) not in refined:
                    expected = estimates[(r, c)]
                else:
                    expected = exact[b, r, c]
                assert abs(approx[b, r, c] - expected) <= F64_BOUND * scale, (b, r, c)


# --- the knob -----------------------------------------------------------------------------------


def test_the_knob_is_checked_with_clear_errors():
    model = models.load_lab_model("digits")
    x = torch.rand(1, 1, 28, 28)
    with pytest.raises(TypeError, match="OcclusionApproximation"):
        occlusion(model, x, approximate="fast")
    with pytest.raises(TypeError, match="OcclusionApproximation"):
        occlusion(model, x, approximate=0.5)
    for bad, error, words in [
        (dict(cap=0), ValueError, "cap"), (dict(cap=1.5), ValueError, r"\(0, 1\]"),
        (dict(cap=float("nan")), TypeError, "finite"), (dict(cap="half"), TypeError, "cap"),
        (dict(refine=-0.1), ValueError, "refine"), (dict(refine=True), TypeError, "refine"),
        (dict(coarse=0), ValueError, "coarse"), (dict(coarse=2.0), ValueError, "int"),
    ]:
        with pytest.raises(error, match=words):
            OcclusionApproximation(**bad)


def test_a_cap_needs_the_incremental_path_and_the_drill_down_does_not():
    resnet = imagenet("resnet18").double()
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    before = state(resnet)
    with pytest.raises(ValueError, match="skip connection.*drill-down alone"):
        occlusion(resnet, x, window=12, stride=14, approximate=OcclusionApproximation(cap=0.5))
    with pytest.raises(ValueError, match="incremental=False"):
        occlusion(models.load_lab_model("digits"), torch.rand(1, 1, 28, 28), incremental=False,
                  approximate=OcclusionApproximation(cap=0.5))
    exact = drops(resnet, x, window=12, stride=7)
    assert close(drops(resnet, x, OcclusionApproximation(coarse=2, refine=1.0), window=12,
                       stride=7), exact, exact.abs().max())
    after = state(resnet)
    assert after[0] == before[0] and after[1] == before[1] and after[4] == before[4]


def test_the_model_and_the_input_are_left_as_they_were():
    assert_occlusion_leaves_the_model_and_the_input(
        window=6, stride=2, approximate=OcclusionApproximation(cap=0.4, coarse=3, refine=0.2))
