"""Feature visualisation: activation maximisation, receptive fields, top-k patches, unit views.

Oracles: one ascent step recomputed by hand on a linear model; the blur against a dense 2-D
Gaussian written out here; receptive fields against the gradient support of a linear twin network
(all-positive weights, no ReLU, average pooling); top-k against a brute-force loop over every
activation; unit views against autograd of the unit written here.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state, indexed_cnn, snapshot
from matplotlib.figure import Figure
from test_evaluate_state import call_and_compare_state, trapped_model
from test_widgets_ascent import (
    check_saving_for_slides,
    check_static_view,
    check_the_class_image_follows_the_controls,
)
from torch import nn

from gradviz_lab import featureviz as fv
from gradviz_lab import hooks
from gradviz_lab.hooks import count_hooks


def sensitive_cnn(seed: int = 0) -> nn.Sequential:
    """indexed_cnn with larger weights: random default-initialised weights make logits that
    hardly depend on the image, so there would be little for the ascent to climb."""
    model = indexed_cnn(seed)
    with torch.no_grad():
        model[0].weight.mul_(3)
        model[3].weight.mul_(3)
        model[7].weight.mul_(10)
    return model


# --- blur ------------------------------------------------------------------------------------


def test_gaussian_blur_equals_a_dense_2d_gaussian_in_the_interior() -> None:
    sigma = 0.8
    images = torch.rand(2, 3, 12, 13, generator=torch.Generator().manual_seed(0))
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    dense = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma**2))
    dense = dense / dense.sum()
    expected = F.conv2d(images.reshape(6, 1, 12, 13), dense[None, None]).reshape(
        2, 3, 12 - 2 * radius, 13 - 2 * radius
    )
    blurred = fv.gaussian_blur(images, sigma)
    assert blurred.shape == images.shape
    torch.testing.assert_close(blurred[..., radius:-radius, radius:-radius], expected)
    torch.testing.assert_close(
        fv.gaussian_blur(torch.full((1, 1, 8, 8), 0.3), 1.0), torch.full((1, 1, 8, 8), 0.3)
    )
    assert torch.equal(fv.gaussian_blur(images, 0.0), images)


@pytest.mark.parametrize(
    "images, sigma, error, match",
    [
        (torch.rand(1, 1, 8, 8), -1.0, ValueError, "sigma must be >= 0"),
        (torch.rand(1, 1, 8, 8), float("nan"), ValueError, "sigma must be finite"),
        (torch.rand(1, 1, 8, 8), "1", TypeError, "sigma must be a number"),
        (torch.rand(8, 8), 1.0, ValueError, r"images must be a batch of images of shape \(B, C, H, W\)"),
        (torch.ones(1, 1, 8, 8, dtype=torch.long), 1.0, TypeError, "floating-point"),
        (torch.full((1, 1, 8, 8), float("inf")), 1.0, ValueError, "non-finite"),
        (np.zeros((1, 1, 8, 8)), 1.0, TypeError, "torch.Tensor"),
    ],
)
def test_gaussian_blur_rejects_bad_input(images, sigma, error, match) -> None:
    with pytest.raises(error, match=match):
        fv.gaussian_blur(images, sigma)


# --- activation maximisation -------------------------------------------------------------------


def test_one_ascent_step_on_a_linear_model_matches_the_formula() -> None:
    """score = <w, x> has gradient w everywhere: x1 = clamp(x0 + lr * (w - 2 l2 (x0 - 0.5)) / mean|.|)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 3))
    lr, l2 = 0.1, 0.3
    x1 = fv.class_visualisation(
        model, [2], (2, 5, 5), steps=1, lr=lr, l2=l2, blur_every=0, jitter=0, seed=4
    )
    noise = torch.randn(1, 2, 5, 5, generator=torch.Generator().manual_seed(4))
    x0 = (0.5 + 0.05 * noise).clamp(0, 1)
    g = model[1].weight[2].detach().view(1, 2, 5, 5) - 2 * l2 * (x0 - 0.5)
    torch.testing.assert_close(x1, (x0 + lr * g / g.abs().mean()).clamp(0, 1))


def test_class_visualisation_raises_each_target_logit_and_leaves_the_model_alone() -> None:
    model = (
        sensitive_cnn().train()
    )  # a train-mode model: ascent runs in eval mode, then train comes back
    model[0].weight.grad = torch.ones_like(model[0].weight)
    before = snapshot(model)
    classes = [0, 3, 1]
    images = fv.class_visualisation(model, classes, (1, 16, 16), steps=40, seed=1)
    assert images.shape == (3, 1, 16, 16) and 0 <= images.min() and images.max() <= 1
    assert_same_state(before, snapshot(model))
    model.eval()
    with torch.no_grad():
        start = (
            0.5 + 0.05 * torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
        ).clamp(0, 1)
        gain = model(images)[range(3), classes] - model(start)[range(3), classes]
    assert bool((gain > 0.5).all()), gain


def test_ascent_runs_in_eval_mode_whatever_mode_the_model_is_in() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(36, 16),
        nn.BatchNorm1d(16),
        nn.Dropout(0.5),
        nn.ReLU(),
        nn.Linear(16, 3),
    )
    with torch.no_grad():
        model[2].running_mean.uniform_(-1, 1)
    twin = copy.deepcopy(model).eval()
    model.train()
    before = snapshot(model)
    in_train = fv.class_visualisation(model, [0, 2], (1, 6, 6), steps=5)
    assert_same_state(before, snapshot(model))  # BatchNorm statistics untouched, train mode back
    torch.testing.assert_close(in_train, fv.class_visualisation(twin, [0, 2], (1, 6, 6), steps=5))


def test_class_visualisation_is_seeded_and_l2_pulls_towards_grey() -> None:
    model = indexed_cnn()
    a = fv.class_visualisation(model, 1, (1, 12, 12), steps=20, seed=3)
    b = fv.class_visualisation(model, 1, (1, 12, 12), steps=20, seed=3)
    c = fv.class_visualisation(model, 1, (1, 12, 12), steps=20, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    free = fv.class_visualisation(model, 1, (1, 12, 12), steps=30, l2=0.0)
    held = fv.class_visualisation(model, 1, (1, 12, 12), steps=30, l2=3.0)
    assert (held - 0.5).abs().mean() < 0.5 * (free - 0.5).abs().mean()


def test_channel_visualisation_raises_the_channel_mean() -> None:
    model = sensitive_cnn()
    before = snapshot(model)
    # pure ascent (no blur, no jitter, no L2): channel 2 likes a pattern the blur would erase
    images = fv.channel_visualisation(
        model, "3", [2, 5], (1, 12, 12), steps=30, l2=0.0, blur_every=0, jitter=0
    )
    assert_same_state(before, snapshot(model))
    with torch.no_grad():
        start = (
            0.5 + 0.05 * torch.randn(2, 1, 12, 12, generator=torch.Generator().manual_seed(0))
        ).clamp(0, 1)
        trunk = model[:4]
        after, initial = trunk(images), trunk(start)
    assert after[0, 2].mean() > initial[0, 2].mean() + 0.3
    assert after[1, 5].mean() > initial[1, 5].mean() + 0.3


def test_activation_maximisation_rejects_bad_input() -> None:
    model = indexed_cnn()
    with pytest.raises(
        ValueError, match=r"target_class \[7\] out of range: valid classes are 0..3"
    ):
        fv.class_visualisation(model, 7, (1, 8, 8), steps=1)
    with pytest.raises(ValueError, match="pass image_shape"):
        fv.class_visualisation(model, 0)
    with pytest.raises(ValueError, match="image_shape must be three positive ints"):
        fv.class_visualisation(model, 0, (8, 8))
    with pytest.raises(ValueError, match="image_shape must be three positive ints"):
        fv.class_visualisation(model, 0, 28)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown knob"):
        fv.class_visualisation(model, 0, (1, 8, 8), temperature=2)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        fv.class_visualisation(model, 0, (1, 8, 8), lr=-1)
    with pytest.raises(TypeError, match="target_class must be an int"):
        fv.class_visualisation(model, "cat", (1, 8, 8))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"channel\(s\) \[8\] out of range"):
        fv.channel_visualisation(model, "3", 8, (1, 8, 8))
    with pytest.raises(ValueError, match="unknown layer 'conv9'.*Valid layer names"):
        fv.channel_visualisation(model, "conv9", 0, (1, 8, 8))
    assert count_hooks(model) == 0


# --- receptive fields --------------------------------------------------------------------------


def chain(with_relu: bool) -> nn.Sequential:
    """Conv/pool geometry worth testing: padding, stride, dilation, 'same', ceil_mode, a pool."""
    act = nn.ReLU if with_relu else nn.Identity
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),
        act(),
        nn.MaxPool2d(2) if with_relu else nn.AvgPool2d(2),
        nn.Conv2d(2, 2, (3, 5), stride=(1, 2), padding=(0, 2)),
        act(),
        nn.Conv2d(2, 2, 3, dilation=2, padding="same"),
        act(),
        nn.MaxPool2d(3, stride=2, ceil_mode=True)
        if with_relu
        else nn.AvgPool2d(3, stride=2, ceil_mode=True),
        nn.Conv2d(2, 3, 2),
        act(),
    )


def test_receptive_field_equals_the_gradient_support_of_a_linear_twin() -> None:
    """In the twin (average pooling, no ReLU, positive weights) a pixel reaches a unit exactly
    when a path of non-zero weights joins them: the gradient's support is the true field. The
    real model has max pooling and ReLU; the geometry is the same.

    Away from the border the support *is* the box. At the border it may be smaller: a unit
    whose window covers a layer's zero padding gets nothing from the image pixels that padding
    stands in front of, so the clipped box is then a (slight) over-estimate, never too small.
    """
    size = (40, 48)
    real, twin = chain(with_relu=True), chain(with_relu=False)
    with torch.no_grad():
        for p in twin.parameters():
            p.fill_(0.1)
    interior_checked = 0
    for index in (0, 2, 3, 5, 7, 8):
        field = fv.receptive_field(real, str(index), (1, *size))
        assert field == fv.receptive_field(twin, str(index), (1, *size))
        x = torch.rand(1, 1, *size, requires_grad=True)
        out = twin[: index + 1](x)
        h, w = out.shape[2:]
        for row in sorted({0, 1, h // 2, h - 2, h - 1}):
            for col in sorted({0, 1, w // 2, w - 2, w - 1}):
                (g,) = torch.autograd.grad(out[0, 0, row, col], x, retain_graph=True)
                support = g[0, 0] != 0
                top, left, bottom, right = field.box(
                    torch.tensor(row), torch.tensor(col), *size
                ).tolist()
                inside = torch.zeros(size, dtype=torch.bool)
                inside[top:bottom, left:right] = True
                assert not (support & ~inside).any(), (index, row, col)  # never too small
                start_row, start_col = (
                    int(s) for s in field.start(torch.tensor(row), torch.tensor(col))
                )
                if (
                    0 <= start_row
                    and start_row + field.size[0] <= size[0]
                    and 0 <= start_col
                    and start_col + field.size[1] <= size[1]
                ):
                    assert torch.equal(support, inside), (index, row, col)  # exact in the interior
                    interior_checked += 1
    assert interior_checked >= 15


def test_receptive_field_by_hand_for_the_lab_digits_layout() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )
    assert fv.receptive_field(model, "0", (1, 28, 28)) == fv.ReceptiveField((3, 3), (1, 1), (1, 1))
    assert fv.receptive_field(model, "2", (1, 28, 28)) == fv.ReceptiveField((4, 4), (2, 2), (1, 1))
    assert fv.receptive_field(model, "4", (1, 28, 28)) == fv.ReceptiveField((8, 8), (2, 2), (3, 3))
    assert fv.receptive_field(model, "5", (1, 28, 28)) == fv.ReceptiveField(
        (10, 10), (4, 4), (3, 3)
    )


class Branching(nn.Module):
    """A residual block with a strided shortcut: not a chain."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.shortcut = nn.Conv2d(1, 2, 1, stride=2)
        self.after = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after(self.conv(x) + self.shortcut(x))


def test_receptive_field_refuses_what_the_arithmetic_cannot_follow() -> None:
    with pytest.raises(ValueError, match="chains only"):
        fv.receptive_field(Branching(), "after", (1, 16, 16))
    with pytest.raises(ValueError, match=r"'5' \(AdaptiveAvgPool2d\) changes the map size"):
        fv.receptive_field(indexed_cnn(), "7", (1, 16, 16))  # past global pooling
    with pytest.raises(ValueError, match="not feature maps"):
        fv.receptive_field(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), "1", (1, 4, 4))


# --- top-k patches ------------------------------------------------------------------------------


def brute_force_top(
    acts: torch.Tensor, channel: int, k: int, distinct: bool
) -> list[tuple[float, int, int, int]]:
    """Every (value, image, row, col) of one channel in a plain loop, best first, ties by index."""
    candidates = []
    for n in range(acts.shape[0]):
        per_image = []
        for r in range(acts.shape[2]):
            for c in range(acts.shape[3]):
                per_image.append((acts[n, channel, r, c].item(), n, r, c))
        if distinct:
            best = max(v for v, *_ in per_image)
            per_image = [next(item for item in per_image if item[0] == best)]
        candidates += per_image
    return sorted(candidates, key=lambda item: (-item[0], item[1], item[2], item[3]))[:k]


def hand_crop(image: torch.Tensor, top: int, left: int, size: tuple[int, int]) -> torch.Tensor:
    patch = torch.zeros(image.shape[0], *size)
    for i in range(size[0]):
        for j in range(size[1]):
            if 0 <= top + i < image.shape[1] and 0 <= left + j < image.shape[2]:
                patch[:, i, j] = image[:, top + i, left + j]
    return patch


@pytest.mark.parametrize("distinct", [True, False])
def test_top_k_patches_equal_a_brute_force_top_k(distinct: bool) -> None:
    model = indexed_cnn(seed=2, channels=3)
    with torch.no_grad():
        model[3].bias[1] = -100.0  # channel 1 of layer 4 is dead: all ties at zero
    images = torch.rand(23, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    before = snapshot(model)
    top = fv.top_activating_patches(model, images, "4", k=5, distinct_images=distinct, batch_size=7)
    assert_same_state(before, snapshot(model))
    with torch.no_grad():
        acts = model[:5](images)
    assert top.layer == "4" and top.channels.tolist() == list(range(8))
    assert top.values.shape == (8, 5) and top.patches.shape == (8, 5, 3, 8, 8)
    field = fv.ReceptiveField((8, 8), (2, 2), (3, 3))
    assert top.field == field
    for channel in range(8):
        expected = brute_force_top(acts, channel, 5, distinct)
        torch.testing.assert_close(top.values[channel], torch.tensor([e[0] for e in expected]))
        assert top.image_index[channel].tolist() == [e[1] for e in expected], channel
        assert top.position[channel].tolist() == [[e[2], e[3]] for e in expected], channel
        for rank, (_, n, r, c) in enumerate(expected):
            t, l = 2 * r - 3, 2 * c - 3
            assert top.boxes[channel, rank].tolist() == [
                max(t, 0),
                max(l, 0),
                min(t + 8, 12),
                min(l + 8, 12),
            ]
            assert torch.equal(top.patches[channel, rank], hand_crop(images[n], t, l, (8, 8)))
    if distinct:
        assert top.image_index[1].tolist() == [
            0,
            1,
            2,
            3,
            4,
        ]  # dead channel: lowest index wins ties
        for channel in range(8):
            assert len(set(top.image_index[channel].tolist())) == 5
    else:
        assert top.position[1].tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [0, 4]]
    again = fv.top_activating_patches(
        model, images, "4", k=5, distinct_images=distinct, batch_size=100
    )
    assert torch.equal(again.image_index, top.image_index) and torch.equal(
        again.position, top.position
    )


def test_top_k_patches_run_in_eval_mode_so_batch_size_does_not_matter() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU()).train()
    images = torch.rand(10, 1, 8, 8)
    before = snapshot(model)
    small = fv.top_activating_patches(model, images, "2", k=4, batch_size=3)
    large = fv.top_activating_patches(model, images, "2", k=4, batch_size=10)
    assert_same_state(before, snapshot(model))
    assert torch.equal(small.image_index, large.image_index) and torch.equal(
        small.values, large.values
    )
    with torch.no_grad():
        expected = copy.deepcopy(model).eval()(images).flatten(2).amax(2).amax(0)
    torch.testing.assert_close(small.values[:, 0], expected)


def test_top_k_patches_channel_subset_and_errors() -> None:
    model = indexed_cnn()
    images = torch.rand(6, 1, 10, 10)
    top = fv.top_activating_patches(model, images, model[1], k=2, channels=[4, 0])
    assert top.layer == "1" and top.channels.tolist() == [4, 0] and top.values.shape == (2, 2)
    full = fv.top_activating_patches(model, images, "1", k=2)
    assert torch.equal(top.values[0], full.values[4]) and torch.equal(top.values[1], full.values[0])
    with pytest.raises(ValueError, match="k=7 but there are only 6 candidate images"):
        fv.top_activating_patches(model, images, "1", k=7)
    with pytest.raises(ValueError, match=r"channel\(s\) \[6\] out of range"):
        fv.top_activating_patches(model, images, "1", channels=[6])
    with pytest.raises(ValueError, match="not feature maps"):
        fv.top_activating_patches(model, images, "7", k=1)
    with pytest.raises(ValueError, match="shape"):
        fv.top_activating_patches(model, images[0], "1")
    assert count_hooks(model) == 0


STATE_IMAGES = torch.rand(5, 3, 12, 12, generator=torch.Generator().manual_seed(3))
# The top patches of prepared_model (seeded: every copy has the same weights) for unit_views.
STATE_TOP = fv.top_activating_patches(trapped_model()[0], STATE_IMAGES, "conv2", k=2)


@pytest.mark.parametrize(
    "call, error",
    [
        pytest.param(lambda m: fv.top_activating_patches(m, STATE_IMAGES, "conv2", k=2, batch_size=2), None, id="top-ok"),
        pytest.param(lambda m: fv.top_activating_patches(m, STATE_IMAGES, "conv2", k=6), ValueError, id="top-k-too-big"),
        pytest.param(lambda m: fv.top_activating_patches(m, STATE_IMAGES, "conv2", k=2), "trap", id="top-trap"),
        pytest.param(lambda m: fv.unit_views(m, STATE_IMAGES, STATE_TOP, "gradient", batch_size=3), None, id="views-ok"),
        pytest.param(lambda m: fv.unit_views(m, STATE_IMAGES, STATE_TOP, "deconvnet"), "trap", id="views-trap"),
        pytest.param(lambda m: fv.unit_views(m, STATE_IMAGES, STATE_TOP, "lrp"), ValueError, id="views-method"),
        pytest.param(lambda m: fv.class_visualisation(m, [0, 2], (3, 8, 8), steps=2), None, id="class-ok"),
        pytest.param(lambda m: fv.class_visualisation(m, [3], (3, 8, 8), steps=2), ValueError, id="class-range"),
        pytest.param(lambda m: fv.channel_visualisation(m, "conv2", 1, (3, 8, 8), steps=2), None, id="channel-ok"),
        pytest.param(lambda m: fv.channel_visualisation(m, "conv2", 1, (3, 8, 8), steps=2), "trap", id="channel-trap"),
    ],
)
def test_feature_visualisation_leaves_a_mixed_state_model_exactly_as_it_was(call, error) -> None:
    """test_hooks.prepared_model (train mode with an eval submodule, batch norm, dropout, a frozen
    weight, grads, user hooks), also when the call raises part-way; "trap" makes the model itself
    raise in its forward pass (see test_evaluate_state.trapped_model)."""
    call_and_compare_state(call, error)


def test_unit_views_are_the_gradient_of_that_one_unit_cropped() -> None:
    model = indexed_cnn(seed=1, channels=3)
    images = torch.rand(9, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    top = fv.top_activating_patches(model, images, "3", k=3, channels=[0, 5])
    before = snapshot(model)
    views = fv.unit_views(model, images, top, method="gradient", batch_size=4)
    assert_same_state(before, snapshot(model))
    assert views.shape == top.patches.shape
    for c, channel in enumerate([0, 5]):
        for rank in range(3):
            n, (r, col) = int(top.image_index[c, rank]), top.position[c, rank].tolist()
            x = images[n : n + 1].clone().requires_grad_(True)
            (g,) = torch.autograd.grad(model[:4](x)[0, channel, r, col], x)
            t, l = 2 * r - 3, 2 * col - 3
            torch.testing.assert_close(views[c, rank], hand_crop(g[0], t, l, (8, 8)))
    # the ReLU rules change the views, and guided backprop is the deconvnet masked where s <= 0
    deconv = fv.unit_views(model, images, top, method="deconvnet")
    guided = fv.unit_views(model, images, top, method="guided_backprop")
    assert not torch.allclose(deconv, views) and not torch.allclose(guided, deconv)
    assert count_hooks(model) == 0


def test_unit_views_of_a_network_without_relu_are_all_the_gradient() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Conv2d(3, 2, 3)).eval()
    images = torch.rand(5, 1, 11, 11)
    top = fv.top_activating_patches(model, images, "3", k=2)
    gradient = fv.unit_views(model, images, top, "gradient")
    for method in ("deconvnet", "guided_backprop"):  # with a warning that says why
        with pytest.warns(hooks.NoReLUWarning, match="no nn.ReLU module"):
            torch.testing.assert_close(fv.unit_views(model, images, top, method), gradient)
    with pytest.raises(ValueError, match="method must be one of"):
        fv.unit_views(model, images, top, "lrp")
    with pytest.raises(ValueError, match="pass the same images"):
        fv.unit_views(model, images[:1], top)


def test_plot_top_patches_draws_one_panel_per_patch_and_view() -> None:
    model = indexed_cnn()
    images = torch.rand(6, 1, 10, 10)
    top = fv.top_activating_patches(model, images, "4", k=3, channels=[0, 1, 2])
    views = {"deconvnet": fv.unit_views(model, images, top)}
    fig = fv.plot_top_patches(top, views, max_channels=2)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * 3 * 2  # 2 channels x 3 patches x (patches + 1 view)
    shown = fig.axes[0].images[0].get_array()
    torch.testing.assert_close(torch.as_tensor(shown.data), top.patches[0, 0, 0])
    with pytest.raises(ValueError, match="must have the patches' shape"):
        fv.plot_top_patches(top, {"bad": torch.zeros(1)})


# --- the dashboard (featureviz's name for widgets.ascent's: the same checks, through this name) --


def test_activation_maximisation_dashboard_headless() -> None:
    check_the_class_image_follows_the_controls(fv.activation_maximisation_dashboard)
    with pytest.raises(TypeError, match="class_names"):
        fv.activation_maximisation_dashboard(indexed_cnn(), [], (1, 10, 10))


def test_activation_maximisation_dashboard_saves_the_image_for_slides(tmp_path, monkeypatch) -> None:
    check_saving_for_slides(fv.activation_maximisation_dashboard, tmp_path, monkeypatch)


def test_the_activation_maximisation_dashboard_shows_one_line_in_a_static_view() -> None:
    check_static_view(fv.activation_maximisation_dashboard)
