"""Issue 7's acceptance checks on the shipped lab models (skipped only while their weights file
is missing: train them with ``gradviz train NAME``)."""

from __future__ import annotations

import pytest
import torch
from conftest import lab_model

from gradviz_lab import attribution
from gradviz_lab.data import load_digits, make_shapes
from gradviz_lab.evaluate import (
    completeness_gap,
    default_methods,
    deletion_curve,
    evaluate_methods,
    insertion_curve,
    pointing_game,
    randomisation_test,
    randomised_copy,
    random_map,
    shortcut_report,
)
from gradviz_lab.attribution.integrated import make_baseline
from gradviz_lab.evaluate.imputation import impute

EVAL_SEED = 2024  # images no training run uses


def lab_images(name: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "digits":
        images, labels = load_digits("test")
        return images[:: 1000 // n][:n], labels[:: 1000 // n][:n]
    shapes = make_shapes(n, EVAL_SEED, tag_prob=1.0 if name == "shapes-tagged" else 0.0)
    return shapes.images, shapes.labels


# (model, baseline, bound on the mean relative |delta| over 8 images at 64 Gauss-Legendre steps).
# Black is the natural baseline of the digits (black background). For the shapes it is not: the
# models give the black image a high score for many classes, so F(x) - F(black) can be ~0.05 and
# the relative delta of that image is meaningless (0.43 measured); "blur" removes the shape and
# keeps the gain >= 1 on most images. Measured at 64 steps (float32 and float64 alike), mean / worst
# of the 8: digits 7.8e-4 / 1.7e-3, shapes 2.6e-3 / 4.8e-3, shapes-tagged 4.8e-3 / 3.1e-2 (the worst
# on an image whose gain F(x) - F(x') is only 0.35); 256 steps bring the shapes below 1e-3 on most.
COMPLETENESS = [("digits", "zeros", 1e-3), ("shapes", "blur", 5e-3), ("shapes-tagged", "blur", 5e-3)]


@pytest.mark.parametrize("name, baseline, bound", COMPLETENESS)
def test_integrated_gradients_are_complete_at_64_gauss_legendre_steps(name, baseline, bound):
    """Relative |delta| = |sum IG - (F(x) - F(x'))| / |F(x) - F(x')|, over 8 images.

    F along the path has a kink wherever a ReLU or a max-pool switches, so the integrand (its
    gradient) jumps there and the quadrature error shrinks only like 1/steps (it is not rounding:
    float64 gives the same).
    """
    model = lab_model(name)
    x, labels = lab_images(name, 8)
    ig, delta = attribution.integrated_gradients(
        model, x, labels, baseline=baseline, steps=64, rule="gauss-legendre", return_delta=True
    )
    x_base = make_baseline(x, baseline)
    with torch.no_grad():  # F(x) - F(x'), the amount the attributions must add up to
        gain = model(x)[range(len(x)), labels] - model(x_base)[range(len(x)), labels]
    relative = (delta / gain).abs()
    assert relative.mean() < bound and relative.max() < 10 * bound, relative.tolist()
    # The evaluation's own measure agrees with the method's reported delta.
    gap = completeness_gap(model, x, ig, target=labels, baseline=baseline)
    assert torch.allclose(gap, relative.double(), rtol=1e-3, atol=1e-6), (gap, relative)


def relative_completeness_error(model, x, labels, baseline, steps):
    """|sum IG - (F(x) - F(x'))| / |F(x) - F(x')| per image, Gauss-Legendre rule (the measure
    the first test checks against a gain computed here)."""
    ig = attribution.integrated_gradients(model, x, labels, baseline=baseline, steps=steps, rule="gauss-legendre")
    return completeness_gap(model, x, ig, target=labels, baseline=baseline)


def test_without_relu_kinks_64_gauss_legendre_steps_reach_1e_3_on_every_image():
    """The issue's bound at the issue's 64 steps, on the lab model made for it: the shapes CNN with
    softplus instead of ReLU (same data, recipe and images as ``shapes``). Its integrand has no
    ReLU jumps, so the error is ~20x smaller than the ReLU model's on the same images (measured,
    float32, mean / worst of 8: softplus 1.3e-4 / 2.5e-4, ReLU 2.6e-3 / 4.8e-3). This is what
    shows the jumps, not the quadrature rule or rounding, are the ReLU models' error."""
    x, labels = lab_images("shapes", 8)
    smooth = relative_completeness_error(lab_model("shapes-softplus"), x, labels, "blur", steps=64)
    kinked = relative_completeness_error(lab_model("shapes"), x, labels, "blur", steps=64)
    assert smooth.max() < 1e-3, smooth.tolist()
    assert smooth.mean() < kinked.mean() / 5, (smooth.tolist(), kinked.tolist())


@pytest.mark.parametrize("name, baseline, bound", COMPLETENESS)
def test_integrated_gradients_reach_1e_3_on_every_image_at_512_steps(name, baseline, bound):
    """The issue's bound, relative |delta| < 1e-3, holds on every one of the 8 images of every lab
    model once the steps are enough: the gradient along the path is a step function (it jumps
    where a ReLU or a max-pool switches), so the error falls like 1/steps, not faster. Measured
    (float64, max over the 8 images): 64 steps 1.7e-3 / 4.7e-3 / 3.1e-2 (digits, shapes, tagged),
    256 steps 3.9e-4 / 7.9e-4 / 1.3e-3, 512 steps 1.9e-4 / 5.8e-4 / 4.2e-4."""
    model = lab_model(name)
    x, labels = lab_images(name, 8)
    coarse = attribution.integrated_gradients(model, x, labels, baseline=baseline, steps=64, return_delta=True)[1]
    fine = attribution.integrated_gradients(
        model, x, labels, baseline=baseline, steps=512, batch_size=256, return_delta=True
    )[1]
    x_base = make_baseline(x, baseline)
    with torch.no_grad():
        gain = model(x)[range(len(x)), labels] - model(x_base)[range(len(x)), labels]
    relative = (fine / gain).abs()
    assert relative.max() < 1e-3, relative.tolist()
    assert (fine / gain).abs().mean() < (coarse / gain).abs().mean() / 2  # more steps, less error


def test_randomisation_leaves_the_lab_models_weights_identical():
    model = lab_model("shapes")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, labels = lab_images("shapes", 2)
    copy = randomised_copy(model, 5, seed=0)
    randomisation_test(model, x, attribution.guided_backprop, labels)
    randomisation_test(model, x, attribution.gradcam, labels, cascading=False)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training
    assert not torch.equal(copy.classifier.weight, model.classifier.weight)


def test_guided_backprop_changes_less_than_the_gradient_when_weights_are_randomised():
    """Adebayo et al. 2018: along the cascade, guided backprop stays closer to the trained
    model's map than the plain gradient does (it recovers image structure more than the model)."""
    model = lab_model("digits")
    x, labels = lab_images("digits", 16)
    guided = randomisation_test(model, x, lambda m, x, t: attribution.guided_backprop(m, x, t).abs(), labels)
    plain = randomisation_test(model, x, attribution.saliency, labels)
    mean_guided = sum(guided.column("spearman")[1:]) / (len(guided) - 1)
    mean_plain = sum(plain.column("spearman")[1:]) / (len(plain) - 1)
    assert mean_guided > mean_plain + 0.1, (guided, plain)


@pytest.mark.parametrize("name", ["shapes", "shapes-tagged"])
def test_a_ground_truth_mask_map_scores_100_percent_and_beats_a_random_map(name):
    """Issue 7: pointing game 100%, and a better deletion and insertion AUC than a random map.
    Deletion fills the removed pixels from the remaining ones (``baseline="impute"``, as in
    ROAD): with black or blur it does not rank the mask first on these models, for the reason
    the next test shows. Measured (16 images, 16 steps): deletion mask 0.44 / random 0.69
    (shapes), 0.20 / 0.45 (tagged); insertion from blur 0.79 / 0.40 and 0.51 / 0.28."""
    model = lab_model(name)
    shapes = make_shapes(16, EVAL_SEED, tag_prob=1.0 if name == "shapes-tagged" else 0.0)
    x, labels, masks = shapes.images, shapes.labels, shapes.masks[:, :1]
    truth, noise = masks.float(), random_map(model, x, seed=0)
    assert pointing_game(truth, masks).tolist() == [1.0] * 16
    deletion = [deletion_curve(model, x, m, labels, steps=16, baseline="impute").auc.mean().item() for m in (truth, noise)]
    assert deletion[0] < deletion[1] - 0.15, deletion
    insertion = [insertion_curve(model, x, m, labels, steps=16).auc.mean().item() for m in (truth, noise)]
    assert insertion[0] > insertion[1] + 0.2, insertion


def test_deleting_a_shape_to_black_leaves_its_silhouette():
    """Why deletion AUC misleads on the shapes: pixels "removed" to black still draw the shape,
    and the model still recognises it (while scattered black pixels, as a random map deletes
    them, are unlike anything it was trained on and confuse it at once). Lesson 07's pitfall."""
    model = lab_model("shapes")
    shapes = make_shapes(16, EVAL_SEED)
    x, labels, masks = shapes.images, shapes.labels, shapes.masks[:, :1]
    with torch.no_grad():
        silhouette = model(torch.where(masks, 0.0, x)).softmax(dim=1)[range(16), labels]
    assert silhouette.mean() > 0.5, silhouette.tolist()
    truth = deletion_curve(model, x, masks.float(), labels, steps=16).auc.mean()
    noise = deletion_curve(model, x, random_map(model, x, seed=0), labels, steps=16).auc.mean()
    assert truth > noise, (truth, noise)
    # Filled from the background instead, the deleted shapes are gone: the class falls.
    with torch.no_grad():
        removed = model(impute(x, ~masks)).softmax(dim=1)[range(16), labels]
    assert removed.mean() < silhouette.mean() - 0.3, (removed.tolist(), silhouette.tolist())


def test_the_table_is_reproducible_to_its_printed_digits():
    model = lab_model("shapes")
    shapes = make_shapes(4, EVAL_SEED)
    # The methods with randomness (the random control, SmoothGrad's noise) and the randomised
    # weights; every default method runs in test_evaluate_report on a small CNN.
    methods = {k: v for k, v in default_methods().items() if k in ("random", "smoothgrad", "grad-cam")}
    first = evaluate_methods(model, shapes.images, shapes.labels, shapes.masks[:, :1], methods, steps=4)
    second = evaluate_methods(model, shapes.images, shapes.labels, shapes.masks[:, :1], methods, steps=4)
    assert str(first) == str(second) and len(first) == 3


def test_the_tagged_model_takes_the_shortcut_and_the_shapes_model_does_not():
    shapes = make_shapes(40, EVAL_SEED)
    masks = shapes.masks[:, :1]
    methods = {"gradcam": attribution.gradcam}
    tagged = shortcut_report(lab_model("shapes-tagged"), shapes.images, shapes.labels, masks, methods)
    honest = shortcut_report(lab_model("shapes"), shapes.images, shapes.labels, masks, methods)
    assert tagged.accuracy_tagged > tagged.accuracy_clean + 0.1
    assert tagged.fooled > honest.fooled
