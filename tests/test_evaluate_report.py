"""The table of all methods (evaluate_methods), the shortcut report, the controls and Table."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_same_state, relu_cnn, snapshot, squares
from torch import nn

from gradviz_lab import attribution
from gradviz_lab.data import TAG_COLOUR, tag_mask
from gradviz_lab.evaluate import (
    Table,
    accuracy,
    as_pixel_map,
    default_methods,
    edge_map,
    energy_pointing_game,
    evaluate_methods,
    pointing_game,
    predictions,
    random_map,
    shortcut_report,
    with_tag,
)
from gradviz_lab.evaluate.localisation import dilated

COLUMNS = ["method", "pointing", "energy", "deletion_auc", "insertion_auc", "rand_spearman", "rand_ssim"]


def small_cnn(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(*relu_cnn(3, (6, 8), 3))  # conftest's layout, layers named by index
    return model.eval()


# --- Table -------------------------------------------------------------------------------------


def test_table_prints_fixed_decimals_without_negative_zero():
    table = Table([{"method": "a", "score": 0.12345, "n": 3}, {"method": "bb", "score": -0.00001, "n": 10}], title="T")
    assert str(table) == "T\nmethod  score   n\n------  -----  --\na       0.123   3\nbb      0.000  10"
    assert table.to_markdown() == (
        "**T**\n\n| method | score | n |\n|:---|---:|---:|\n| a | 0.123 | 3 |\n| bb | 0.000 | 10 |"
    )
    assert table.column("n") == [3, 10] and table[1]["method"] == "bb" and len(table) == 2
    assert str(Table([{"x": float("nan"), "y": -1.5}], precision=1)).splitlines()[-1] == "nan  -1.5"


def test_table_rejects_rows_with_other_columns_and_unknown_columns():
    with pytest.raises(ValueError, match="same columns"):
        Table([{"a": 1}, {"b": 2}])
    with pytest.raises(KeyError, match="columns are"):
        Table([{"a": 1}]).column("b")


# --- controls and maps -------------------------------------------------------------------------


def test_edge_map_by_hand():
    x = torch.zeros(1, 1, 4, 4)
    x[..., 2:] = 1.0  # a vertical step between columns 1 and 2
    # Sobel x-derivative: (1 + 2 + 1) x the step at the two columns beside it, 0 elsewhere.
    assert edge_map(None, x).tolist() == [[[[0.0, 4.0, 4.0, 0.0]] * 4]]


def test_edge_map_equals_the_sobel_convolution_and_is_exactly_zero_where_flat():
    # An independent reference: Sobel as a convolution, sqrt(Gx^2 + Gy^2) per channel, summed.
    x = torch.rand(2, 3, 9, 7, dtype=torch.float64)
    x[:, :, :4, :4] = 0.25  # a flat corner
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype)
    padded = torch.nn.functional.pad(x.flatten(0, 1).unsqueeze(1), (1, 1, 1, 1), mode="replicate")
    grad = torch.nn.functional.conv2d(padded, torch.stack([sobel, sobel.T]).unsqueeze(1))
    reference = grad.pow(2).sum(dim=1).sqrt().view(2, 3, 9, 7).sum(dim=1, keepdim=True)
    edges = edge_map(None, x)
    assert torch.allclose(edges, reference, rtol=1e-12, atol=1e-12)
    assert bool((edges[:, :, :3, :3] == 0).all())  # flat: exactly 0, not rounding noise


def test_random_map_is_seeded_and_ignores_the_images():
    x = torch.rand(2, 3, 5, 5)
    assert torch.equal(random_map(None, x, seed=3), random_map(None, torch.zeros_like(x), seed=3))
    assert not torch.equal(random_map(None, x, seed=3), random_map(None, x, seed=4))
    assert random_map(None, x).shape == (2, 1, 5, 5)


@pytest.mark.parametrize("control", [random_map, edge_map])
@pytest.mark.parametrize(
    "x, error, match",
    [
        (torch.zeros(4, 4), ValueError, r"x must be a batch of images of shape \(B, C, H, W\)"),
        (torch.zeros(1, 3, 4, 4, dtype=torch.long), TypeError, "floating-point"),
        (torch.full((1, 3, 4, 4), float("nan")), ValueError, "non-finite"),
        (torch.zeros(0, 3, 4, 4), ValueError, "empty batch"),
        ([[0.0]], TypeError, "torch.Tensor"),
    ],
)
def test_controls_reject_bad_images(control, x, error, match):
    with pytest.raises(error, match=match):
        control(None, x)  # the controls ignore the model, but not their images


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (1.5, TypeError)])
def test_random_map_rejects_a_bad_seed(seed, error):
    with pytest.raises(error, match="seed must be"):
        random_map(None, torch.zeros(1, 3, 4, 4), seed=seed)


def test_as_pixel_map_sums_absolute_channels():
    a = torch.tensor([[[[1.0]], [[-2.0]], [[3.0]]]])  # (1, 3, 1, 1)
    assert as_pixel_map(a).tolist() == [[[[6.0]]]]
    single = torch.tensor([[[[-1.0]]]])
    assert as_pixel_map(single).tolist() == [[[[-1.0]]]]  # one channel: kept, with its sign
    with pytest.raises(ValueError, match="B, C, H, W"):
        as_pixel_map(torch.zeros(2, 3))


# --- evaluate_methods --------------------------------------------------------------------------


def test_every_default_method_is_scored_reproducibly_and_the_model_is_unchanged():
    model = small_cnn().train()  # small_cnn computes the same in either mode: reproducible scores
    model[3].eval()  # a mixed state: train mode with one eval submodule,
    model[3].bias.requires_grad_(False)  # a frozen parameter,
    model[0].weight.grad = torch.ones_like(model[0].weight)  # an existing .grad
    model.register_forward_hook(lambda *args: None)  # and a hook of the user's own
    before = snapshot(model)
    x, y, masks = squares(4)
    table = evaluate_methods(model, x, y, masks, steps=8)
    assert table.columns == COLUMNS
    assert table.column("method") == list(default_methods())
    for row in table:
        for column in COLUMNS[1:5]:
            assert 0.0 <= row[column] <= 1.0, (row["method"], column)
    # The controls ignore the model: their maps are those of the randomised model too.
    rows = {row["method"]: row for row in table}
    assert rows["random"]["rand_spearman"] == pytest.approx(1.0) and rows["edges"]["rand_ssim"] == pytest.approx(1.0)
    assert rows["saliency"]["rand_spearman"] < 0.99
    again = evaluate_methods(model, x, y, masks, steps=8)
    assert str(again) == str(table) and again.rows == table.rows
    # Modes per module, requires_grad, grads, parameters, buffers and hooks as they were
    # (a BatchNorm model in this state goes through every evaluate function in test_evaluate_state.py).
    assert_same_state(before, snapshot(model))


def test_an_oracle_map_wins_localisation_and_its_numbers_are_the_functions_numbers():
    model = small_cnn()
    x, y, masks = squares(6)
    oracle = {"mask": lambda m, images, target: masks.float(), "inverse": lambda m, images, target: (~masks).float()}
    table, maps = evaluate_methods(model, x, y, masks, oracle, steps=6, randomisation=False, return_maps=True)
    assert table.columns == COLUMNS[:5]
    assert table[0]["pointing"] == 1.0 and table[0]["energy"] == 1.0
    assert table[1]["pointing"] == 0.0 and table[1]["energy"] == 0.0
    assert torch.equal(maps["mask"], masks.float())
    from gradviz_lab.evaluate import deletion_curve

    expected = deletion_curve(model, x, masks.float(), y, steps=6).auc.mean().item()
    assert table[0]["deletion_auc"] == pytest.approx(expected, abs=1e-12)
    # the fill of the removed pixels is passed through (here imputed from the remaining ones)
    imputed = evaluate_methods(model, x, y, masks, oracle, steps=6, deletion_baseline="impute", randomisation=False)
    expected = deletion_curve(model, x, masks.float(), y, steps=6, baseline="impute").auc.mean().item()
    assert imputed[0]["deletion_auc"] == pytest.approx(expected, abs=1e-12)
    assert imputed[0]["deletion_auc"] != table[0]["deletion_auc"]


def test_methods_explain_the_labelled_class():
    model = small_cnn()
    x, y, masks = squares(3)
    seen = []
    evaluate_methods(model, x, y, masks, {"spy": lambda m, images, t: seen.append(t) or attribution.saliency(m, images, t)},
                     steps=4, randomisation=False)  # fmt: skip
    assert torch.equal(seen[0], y)


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"labels": torch.tensor([0, 1])}, ValueError, "labels"),
        ({"labels": torch.tensor([0.0, 1.0, 2.0])}, TypeError, "integers"),
        ({"labels": torch.tensor([0, 1, 7])}, ValueError, "out of range"),
        ({"masks": torch.ones(3, 2, 16, 16, dtype=torch.bool)}, ValueError, "one mask per image"),
        ({"methods": {}}, TypeError, "methods"),
        ({"methods": {"x": "saliency"}}, TypeError, "methods"),
        ({"methods": {"flat": lambda m, x, t: torch.zeros(3, 16, 16)}}, ValueError, "B, C, H, W"),
    ],
)
def test_evaluate_methods_rejects_bad_inputs(change, error, match):
    x, y, masks = squares(3)
    arguments = {"labels": y, "masks": masks, "methods": None} | change
    with pytest.raises(error, match=match):
        evaluate_methods(small_cnn(), x, arguments["labels"], arguments["masks"], arguments["methods"], steps=4)


# --- the shortcut report -----------------------------------------------------------------------


class TagOrHalves(nn.Module):
    """A Clever Hans model: class 0 = "the top-left tag is magenta"; classes 1 and 2 = "the left
    (right) half is brighter". Grey images score the tag at R - G + B = 0.5, magenta at 2."""

    def __init__(self, size: int) -> None:
        super().__init__()
        region = tag_mask(size)[0].float()
        self.register_buffer("tag_weights", torch.stack([region, -region, region]) / region.sum())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tag = (x * self.tag_weights).sum(dim=(1, 2, 3))
        half = x.shape[-1] // 2
        left, right = x[..., :half].mean(dim=(1, 2, 3)), x[..., half:].mean(dim=(1, 2, 3))
        return torch.stack([4 * (tag - 1), 2 * left, 2 * right], dim=1)


def hans_data(size: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grey images; class 0: a white square in the bottom middle, class 1: bottom left, class 2:
    bottom right. Away from the tag's corner."""
    lefts = {0: size // 2 - 2, 1: 1, 2: size - 5}
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    x = torch.full((len(labels), 3, size, size), 0.5)
    masks = torch.zeros(len(labels), 1, size, size, dtype=torch.bool)
    for i, label in enumerate(labels.tolist()):
        masks[i, :, size - 6 : size - 2, lefts[label] : lefts[label] + 4] = True
    return torch.where(masks, 1.0, x), labels, masks


def test_with_tag_paints_only_the_region():
    x = torch.zeros(2, 3, 16, 16)
    painted = with_tag(x, tag_mask(16))
    region = tag_mask(16)[0]
    assert torch.equal(painted[:, :, region], torch.tensor(TAG_COLOUR).view(1, 3, 1).expand(2, 3, int(region.sum())))
    assert painted[:, :, ~region].abs().sum() == 0 and x.abs().sum() == 0  # a copy


@pytest.mark.parametrize(
    "images, region, colour, error, match",
    [
        (torch.zeros(1, 3, 8, 8), torch.ones(4, 4, dtype=torch.bool), TAG_COLOUR, ValueError, r"shape \(8, 8\) or \(1, 8, 8\)"),
        (torch.zeros(1, 3, 8, 8), torch.ones(2, 32, dtype=torch.bool), TAG_COLOUR, ValueError, r"shape \(8, 8\)"),
        (torch.zeros(1, 3, 8, 8), torch.ones(8, 8), TAG_COLOUR, TypeError, "bool tensor"),
        (torch.zeros(1, 3, 8, 8), torch.ones(8, 8, dtype=torch.bool), (1.0, 0.0), ValueError, r"one value per channel \(3\)"),
        (torch.zeros(1, 3, 8, 8), torch.ones(8, 8, dtype=torch.bool), (1.0, float("nan"), 1.0), ValueError, "finite"),
        (torch.zeros(3, 8, 8), torch.ones(8, 8, dtype=torch.bool), TAG_COLOUR, ValueError, "one image"),
    ],
)
def test_with_tag_rejects_bad_input(images, region, colour, error, match):
    with pytest.raises(error, match=match):
        with_tag(images, region, colour)


def test_shortcut_report_on_a_model_that_reads_the_tag():
    model = TagOrHalves(16)
    x, y, masks = hans_data()
    report = shortcut_report(model, x, y, masks, {"saliency": attribution.saliency, "edges": edge_map}, tagged_class=0)
    assert report.accuracy_clean == pytest.approx(4 / 7)  # every class-0 image is missed
    assert report.accuracy_tagged == 1.0
    assert report.fooled == 1.0  # the tag alone turns squares into class 0
    saliency = report.table[0]
    # d logit_0 / dx is non-zero on the tag only: all energy and every maximum on the tag.
    assert saliency["tag_energy"] == 1.0 and saliency["object_energy"] == 0.0
    assert saliency["points_at_tag"] == 1.0 and saliency["points_at_object"] == 0.0
    edges = report.table[1]  # edges see both the tag and the square
    assert 0 < edges["tag_energy"] < 1 and 0 < edges["object_energy"] < 1
    assert "accuracy without the tag:" in str(report) and "every class 0:" in str(report)
    assert list(report.maps) == ["saliency", "edges"] and report.maps["saliency"].shape == (3, 1, 16, 16)
    assert torch.equal(report.images, with_tag(x[y == 0], tag_mask(16)))


def test_shortcut_report_needs_the_tagged_class_and_another():
    model = TagOrHalves(16)
    x, y, masks = hans_data()
    with pytest.raises(ValueError, match="tagged one"):
        shortcut_report(model, x[y == 0], y[y == 0], masks[y == 0], {"s": attribution.saliency}, tagged_class=0)


def test_accuracy_by_hand():
    model = TagOrHalves(16)
    x, y, _ = hans_data()
    assert accuracy(model, x, y) == pytest.approx(4 / 7)
    assert accuracy(model, x, y, batch_size=2) == pytest.approx(4 / 7)
    assert math.isclose(accuracy(model, x, torch.zeros_like(y)), 0.0)


def test_predictions_by_hand():
    model = TagOrHalves(16)
    x, y, _ = hans_data()
    # Grey images: logit 0 = 4 (0.5 - 1) = -2 < logits 1, 2 = 2 x (mean of a half) >= 1, so never
    # class 0. A square on the left (label 1) or right (label 2) wins its half; the class-0 square
    # straddles the middle (columns 6-9 of 16), both halves tie exactly and argmax takes class 1.
    assert y.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert predictions(model, x).tolist() == [1, 1, 2, 1, 1, 2, 1]
    assert predictions(model, x, batch_size=3).tolist() == [1, 1, 2, 1, 1, 2, 1]
    # With the magenta tag, logit 0 = 4 (R - G + B on the tag - 1) = 4 (2 - 1) = 4 > 2 >= logits 1, 2.
    assert predictions(model, with_tag(x, tag_mask(16))).tolist() == [0] * 7


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m, x, y: accuracy(m, x, torch.tensor([0, 1, 2, 0, 1, 2, 3])), ValueError, r"out of range: got \[3\]"),
        (lambda m, x, y: accuracy(m, x, torch.tensor([0, 1, 2, 0, 1, 2, -1])), ValueError, "out of range"),
        (lambda m, x, y: accuracy(m, x, y[:3]), ValueError, "labels must be a tensor of 7"),
        (lambda m, x, y: accuracy(m, x, y.float()), TypeError, "integers"),
        (lambda m, x, y: accuracy(m, x, y, batch_size=0), ValueError, "batch_size must be >= 1"),
        (lambda m, x, y: predictions(m, x, batch_size=0), ValueError, "batch_size must be >= 1"),
        (lambda m, x, y: predictions(m, x[0], batch_size=2), ValueError, "one image"),
        (lambda m, x, y: predictions(m, x.double()), TypeError, "dtype"),
    ],
)
def test_accuracy_and_predictions_reject_bad_input(call, error, match):
    x, y, _ = hans_data()
    with pytest.raises(error, match=match):
        call(TagOrHalves(16), x, y)


def test_shortcut_report_tolerance_grows_the_tag_region_only():
    model = TagOrHalves(16)
    x, y, masks = hans_data()
    methods = {"edges": edge_map}
    exact = shortcut_report(model, x, y, masks, methods, tagged_class=0)
    near = shortcut_report(model, x, y, masks, methods, tagged_class=0, tolerance=2)
    # The tag columns are the pointing game and the energy on the tag grown by 2 px ...
    grown = dilated(tag_mask(16), 2).expand(len(near.images), 16, 16)
    edges = near.maps["edges"]
    assert near.table[0]["tag_energy"] == pytest.approx(float(energy_pointing_game(edges, grown).mean()))
    pointing = pointing_game(edges, tag_mask(16).expand_as(grown), tolerance=2)
    assert near.table[0]["points_at_tag"] == pytest.approx(float(pointing.mean()))
    # ... which can only add to the exact tag's scores, while the object columns stay as they were.
    assert near.table[0]["tag_energy"] > exact.table[0]["tag_energy"]
    assert near.table[0]["object_energy"] == exact.table[0]["object_energy"]
    assert near.table[0]["points_at_object"] == exact.table[0]["points_at_object"]
    area = 100 * float(grown[0].double().mean())
    assert f"the tag, grown by 2 px, covers {area:.1f}% of the image" in str(near)
    assert "the tag covers 6.2% of the image" in str(exact)  # 4x4 of 16x16, untouched by default
    with pytest.raises(ValueError, match="tolerance"):
        shortcut_report(model, x, y, masks, methods, tagged_class=0, tolerance=-1)
