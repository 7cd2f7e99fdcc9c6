"""Deletion and insertion curves (Petsiuk et al. 2018) and the completeness gap, checked by hand
on linear models, and a ground-truth map against a random one on a model that uses the object."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradviz_lab import attribution
from gradviz_lab.evaluate import completeness_gap, deletion_curve, insertion_curve, pixel_ranks, remove_top_pixels
from gradviz_lab.evaluate.faithfulness import changed_counts
from gradviz_lab.hooks import count_hooks


def linear_model(weights: list[float]) -> nn.Module:
    """Logit 0 = sum_i w_i x_i, logit 1 = 0, on 1 x 2 x 2 images (raster order)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(len(weights), 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([weights, [0.0] * len(weights)]))
    return model.eval()


def sigmoid(s: float) -> float:
    return 1 / (1 + math.exp(-s))


ONES = torch.ones(1, 1, 2, 2)
BY_WEIGHT = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # most salient: the pixel of weight 4


def test_pixel_ranks_by_hand_with_ties_in_raster_order():
    m = torch.tensor([[[3.0, 1.0], [3.0, 0.0]]])
    assert pixel_ranks(m).tolist() == [[[0, 2], [1, 3]]]


def test_changed_counts_are_near_equal_steps():
    assert changed_counts(10, 4).tolist() == [0, 2, 5, 7, 10]
    assert changed_counts(4, 4).tolist() == [0, 1, 2, 3, 4]


def test_deletion_curve_of_a_linear_model_by_hand():
    model = linear_model([1.0, 2.0, 3.0, 4.0])
    curve = deletion_curve(model, ONES, BY_WEIGHT, target=0, steps=4, score="logit")
    # Pixels leave in the order of weights 4, 3, 2, 1: the logit goes 10, 6, 3, 1, 0.
    assert curve.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve.scores.tolist() == [[10.0, 6.0, 3.0, 1.0, 0.0]]
    assert curve.auc.item() == pytest.approx(0.25 * (8 + 4.5 + 2 + 0.5))  # trapezoids: 3.75
    probability = deletion_curve(model, ONES, BY_WEIGHT, target=0, steps=4)
    expected = [sigmoid(s) for s in (10, 6, 3, 1, 0)]  # softmax of (s, 0)
    assert probability.scores[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert probability.kind == "deletion"


def test_insertion_curve_of_a_linear_model_by_hand():
    model = linear_model([1.0, 2.0, 3.0, 4.0])
    curve = insertion_curve(model, ONES, BY_WEIGHT, target=0, steps=4, baseline=0.0, score="logit")
    assert curve.scores.tolist() == [[0.0, 4.0, 7.0, 9.0, 10.0]]
    assert curve.auc.item() == pytest.approx(0.25 * (2 + 5.5 + 8 + 9.5))  # 6.25
    # Two steps: 2 pixels each.
    coarse = insertion_curve(model, ONES, BY_WEIGHT, target=0, steps=2, baseline=0.0, score="logit")
    assert coarse.scores.tolist() == [[0.0, 7.0, 10.0]]
    # More steps than pixels: one pixel per step.
    fine = insertion_curve(model, ONES, BY_WEIGHT, target=0, steps=32, baseline=0.0, score="logit")
    assert torch.equal(fine.scores, curve.scores) and torch.equal(fine.fractions, curve.fractions)


def test_baseline_image_and_value():
    model = linear_model([1.0, 2.0, 3.0, 4.0])
    grey = torch.full((1, 2, 2), 0.5)
    curve = deletion_curve(model, ONES, BY_WEIGHT, target=0, steps=4, baseline=grey, score="logit")
    assert curve.scores.tolist() == [[10.0, 8.0, 6.5, 5.5, 5.0]]
    same = deletion_curve(model, ONES, BY_WEIGHT, target=0, steps=4, baseline=0.5, score="logit")
    assert torch.equal(curve.scores, same.scores)


def test_curves_with_imputed_pixels_by_hand():
    """baseline="impute": the pixels not showing x are filled from those that do (pull-push: one
    missing pixel of four is the mean of the other three; with two known, the mean of the two)."""
    model = linear_model([1.0, 2.0, 3.0, 4.0])
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # logit 1*1 + 2*2 + 3*3 + 4*4 = 30
    deletion = deletion_curve(model, x, BY_WEIGHT, target=0, steps=4, baseline="impute", score="logit")
    # removed in the order 4, 3, 2, 1: fills 2 = (1+2+3)/3, then 1.5 = (1+2)/2, then 1, then black
    assert deletion.scores.tolist() == [[30.0, 1 + 4 + 9 + 4 * 2, 1 + 4 + 4.5 + 6, 1 + 2 + 3 + 4, 0.0]]
    insertion = insertion_curve(model, x, BY_WEIGHT, target=0, steps=4, baseline="impute", score="logit")
    # restored in the same order: black, all 4, then a = b = 3.5, then a = (2+3+4)/3, then x
    assert insertion.scores.tolist() == [[0.0, 40.0, 3.5 + 7 + 9 + 16, 3 + 4 + 9 + 16, 30.0]]


@pytest.mark.parametrize("baseline", [0.0, "blur", "impute"])
def test_remove_top_pixels_gives_the_images_the_deletion_curve_scores(baseline):
    generator = torch.Generator().manual_seed(5)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.rand(2, 3, 8, 8, generator=generator)
    m = torch.rand(2, 1, 8, 8, generator=generator)
    curve = deletion_curve(model, x, m, target=[0, 2], steps=8, baseline=baseline)
    for step in range(9):
        with torch.no_grad():
            p = model(remove_top_pixels(x, m, step / 8, baseline)).softmax(dim=1)[[0, 1], [0, 2]]
        assert torch.allclose(p.double(), curve.scores[:, step], atol=1e-6), step
    assert torch.equal(remove_top_pixels(x, m, 0.0, baseline), x)
    removed = remove_top_pixels(x, m, 0.25, baseline)  # 16 of 64 pixels: the top 16 of the map
    top = pixel_ranks(m[:, 0]) < 16
    assert torch.equal(removed.permute(0, 2, 3, 1)[~top], x.permute(0, 2, 3, 1)[~top])


@pytest.mark.parametrize(
    "fraction, baseline, error, match",
    [(1.5, 0.0, ValueError, r"\[0, 1\]"), (-0.1, 0.0, ValueError, ">= 0"), ("half", 0.0, TypeError, "number"),
     (0.5, "white", ValueError, "impute")],
)
def test_remove_top_pixels_rejects_bad_arguments(fraction, baseline, error, match):
    with pytest.raises(error, match=match):
        remove_top_pixels(ONES, BY_WEIGHT, fraction, baseline)


def test_remove_top_pixels_wants_a_batch_of_images():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*unsqueeze"):
        remove_top_pixels(ONES[0], BY_WEIGHT, 0.5)
    with pytest.raises(TypeError, match="floating"):
        remove_top_pixels(ONES.long(), BY_WEIGHT, 0.5)


def test_ties_are_broken_in_raster_order():
    model = linear_model([1.0, 2.0, 3.0, 4.0])
    flat = torch.zeros(1, 1, 2, 2)
    curve = deletion_curve(model, ONES, flat, target=0, steps=4, score="logit")
    assert curve.scores.tolist() == [[10.0, 9.0, 7.0, 4.0, 0.0]]  # weights 1, 2, 3, 4 leave in turn


def test_end_points_are_the_image_and_the_baseline():
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.rand(3, 3, 9, 9, generator=generator)
    m = torch.rand(3, 1, 9, 9, generator=generator)
    with torch.no_grad():
        p = model(x).softmax(1)
        cls = p.argmax(1)
        p_black = model(torch.zeros_like(x)).softmax(1)
    curve = deletion_curve(model, x, m, steps=5)
    assert curve.scores[:, 0].tolist() == pytest.approx(p[range(3), cls].tolist(), abs=1e-6)
    assert curve.scores[:, -1].tolist() == pytest.approx(p_black[range(3), cls].tolist(), abs=1e-6)
    ins = insertion_curve(model, x, m, steps=5, baseline=0.0)
    assert torch.allclose(ins.scores[:, 0], curve.scores[:, -1]) and torch.allclose(ins.scores[:, -1], curve.scores[:, 0])


def test_batch_size_and_batching_do_not_change_the_curves():
    generator = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.rand(3, 3, 8, 8, generator=generator)
    m = torch.rand(3, 8, 8, generator=generator)
    whole = insertion_curve(model, x, m, target=[0, 1, 2], steps=7, batch_size=64)
    tiny = insertion_curve(model, x, m, target=[0, 1, 2], steps=7, batch_size=1)
    assert torch.allclose(whole.scores, tiny.scores, atol=1e-6)
    singles = torch.cat([insertion_curve(model, x[i : i + 1], m[i : i + 1], target=i, steps=7).scores for i in range(3)])
    assert torch.allclose(whole.scores, singles, atol=1e-6)


def test_callable_target_scores_are_used_as_they_are():
    model = linear_model([1.0, 2.0, 3.0, 4.0])
    curve = deletion_curve(model, ONES, BY_WEIGHT, target=lambda out: out[:, 0] * 2, steps=4)
    assert curve.scores.tolist() == [[20.0, 12.0, 6.0, 2.0, 0.0]]


class BrightPixels(nn.Module):
    """A model that uses the object: logit 0 grows with the number of bright (> 0.5) pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = torch.relu(x - 0.5).sum(dim=(1, 2, 3))
        return torch.stack([evidence - 8.0, torch.zeros_like(evidence)], dim=1)


def object_images(n: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Dim noise (< 0.3) with one bright 6 x 6 square at a random place; and its masks."""
    generator = torch.Generator().manual_seed(2)
    x = 0.3 * torch.rand(n, 1, size, size, generator=generator)
    masks = torch.zeros(n, 1, size, size, dtype=torch.bool)
    for i, (top, left) in enumerate(torch.randint(0, size - 6, (n, 2), generator=generator).tolist()):
        masks[i, :, top : top + 6, left : left + 6] = True
    return torch.where(masks, 1.0, x), masks


def test_a_ground_truth_map_beats_a_random_map_on_a_model_that_uses_the_object():
    model = BrightPixels()
    x, masks = object_images(8)
    truth = masks.float()
    noise = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    for baseline in (0.0, "blur"):
        d_truth = deletion_curve(model, x, truth, target=0, steps=16).auc
        d_noise = deletion_curve(model, x, noise, target=0, steps=16).auc
        i_truth = insertion_curve(model, x, truth, target=0, steps=16, baseline=baseline).auc
        i_noise = insertion_curve(model, x, noise, target=0, steps=16, baseline=baseline).auc
        assert (d_truth < d_noise).all() and (i_truth > i_noise).all()
    # Deleting the object first: after 36 of 256 pixels (< 1/7 of the image) the evidence is gone.
    curve = deletion_curve(model, x, truth, target=0, steps=16)
    assert (curve.scores[:, 3] < 0.01).all()


@pytest.mark.parametrize("curve", [deletion_curve, insertion_curve])
def test_curves_leave_the_model_as_it_was(curve):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 2)).train()
    model[0].weight.grad = torch.ones_like(model[0].weight)
    running = model[1].running_mean.clone()
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    curve(model, x, torch.rand(2, 6, 6), steps=4)
    assert model.training and model[1].training
    assert torch.equal(model[1].running_mean, running)  # train-mode BatchNorm statistics restored
    assert torch.equal(model[0].weight.grad, torch.ones_like(model[0].weight)) and count_hooks(model) == 0


@pytest.mark.parametrize("curve", [deletion_curve, insertion_curve])
@pytest.mark.parametrize(
    "saliency_map, kwargs, error, match",
    [
        (torch.rand(1, 3, 2, 2), {}, ValueError, "reduce it"),
        (torch.rand(2, 1, 2, 2), {}, ValueError, "shape"),
        (torch.rand(1, 3, 3), {}, ValueError, "shape"),
        (torch.full((1, 2, 2), float("nan")), {}, ValueError, "non-finite"),
        (BY_WEIGHT, {"steps": 0}, ValueError, "steps"),
        (BY_WEIGHT, {"score": "softmax"}, ValueError, "score"),
        (BY_WEIGHT, {"baseline": "white"}, ValueError, "baseline must be one of.*impute"),
        (BY_WEIGHT, {"target": 2}, ValueError, "out of range"),
        (BY_WEIGHT, {"batch_size": 0}, ValueError, "batch_size"),
        ([[1.0]], {}, TypeError, "Tensor"),
    ],
)
def test_bad_arguments_are_clear_errors(curve, saliency_map, kwargs, error, match):
    with pytest.raises(error, match=match):
        curve(linear_model([1.0, 2.0, 3.0, 4.0]), ONES, saliency_map, **kwargs)


# --- completeness ------------------------------------------------------------------------------


def test_completeness_gap_by_hand_on_a_linear_model():
    model = linear_model([1.0, 2.0, 3.0, 4.0])
    x = torch.tensor([[[[1.0, 2.0], [0.5, 1.0]]]])  # F(x) = 1 + 4 + 1.5 + 4 = 10.5, F(0) = 0
    exact = torch.tensor([[[[1.0, 4.0], [1.5, 4.0]]]])  # w * (x - 0): IG of a linear model
    assert completeness_gap(model, x, exact, target=0).item() == pytest.approx(0.0)
    gradient = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # sums to 10: gap 0.5, relative 0.5 / 10.5
    assert completeness_gap(model, x, gradient, target=0, relative=False).item() == pytest.approx(0.5)
    assert completeness_gap(model, x, gradient, target=0).item() == pytest.approx(0.5 / 10.5)
    # From a grey baseline F(x') = 0.5 * 10 = 5: the gain is 5.5.
    assert completeness_gap(model, x, exact, target=0, baseline=0.5, relative=False).item() == pytest.approx(5.0)


def test_integrated_gradients_are_complete_and_agree_with_their_own_delta():
    generator = torch.Generator().manual_seed(5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        # Softplus, not ReLU: a smooth path integrand, which 64 Gauss-Legendre nodes integrate
        # to near machine precision (ReLU kinks limit the quadrature; see the lab-model tests).
        model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Softplus(), nn.Conv2d(6, 6, 3), nn.Softplus(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)).double().eval()  # fmt: skip
    x = torch.rand(3, 3, 10, 10, generator=generator, dtype=torch.float64)
    ig, delta = attribution.integrated_gradients(model, x, steps=64, rule="gauss-legendre", return_delta=True)
    gap = completeness_gap(model, x, ig, relative=False)
    assert torch.allclose(gap, delta.abs(), atol=1e-12)
    assert (completeness_gap(model, x, ig) < 1e-8).all()
    # A plain gradient is not complete.
    assert (completeness_gap(model, x, attribution.input_gradient(model, x)) > 1e-2).any()


def test_completeness_gap_rejects_attributions_of_another_batch():
    with pytest.raises(ValueError, match="one row per image"):
        completeness_gap(linear_model([1.0, 2.0, 3.0, 4.0]), ONES, torch.ones(2, 1, 2, 2))
