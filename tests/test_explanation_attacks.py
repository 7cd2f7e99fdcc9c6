"""Attacks on explanations (gradviz_lab.explanation_attacks): Ghorbani's top-k attack and
Dombrowski's targeted manipulation keep the predicted class and move the saliency map; on a ReLU
model their second-order gradient is zero, so they need a smooth surrogate."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradviz_lab.data import load_digits, make_shapes
from gradviz_lab.evaluate.similarity import pearson
from gradviz_lab import attribution
from gradviz_lab.explanation_attacks import (
    explanation_distribution,
    fragility_attack,
    integrated_gradients_distribution,
    manipulate_explanation,
    rank_correlation,
    saliency_distribution,
    smooth_copy,
    topk_intersection,
)
from gradviz_lab.models import load_lab_model


def test_topk_intersection_by_hand():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    assert topk_intersection(a, b, 2).tolist() == [0.0]  # {2, 3} and {0, 1}
    assert topk_intersection(a, b, 3).tolist() == [2 / 3]  # {1, 2, 3} and {0, 1, 2}
    assert topk_intersection(a, a, 1).tolist() == [1.0]
    with pytest.raises(ValueError, match="at most the number of pixels"):
        topk_intersection(a, b, 5)
    with pytest.raises(ValueError, match="same shape"):
        topk_intersection(a, b[:, :3], 1)


def test_smooth_copy_replaces_every_relu_and_leaves_the_model_alone():
    model = load_lab_model("digits")
    smooth = smooth_copy(model, beta=50.0)
    assert not any(isinstance(m, nn.ReLU) for m in smooth.modules())
    assert sum(isinstance(m, nn.Softplus) for m in smooth.modules()) == 3
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 3
    x = load_digits("test")[0][::100]
    with torch.no_grad():  # softplus(z) - relu(z) is at most log(2) / beta per unit
        assert torch.allclose(smooth(x), model(x), atol=0.5)
        assert torch.equal(smooth(x).argmax(1), model(x).argmax(1))
    with pytest.raises(ValueError, match="beta must be > 0"):
        smooth_copy(model, beta=0.0)


@pytest.fixture(scope="module")
def digits():
    images, _ = load_digits("test")
    return load_lab_model("digits"), images[::100]  # one of each digit


def _classes(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def test_on_a_relu_model_the_attack_does_not_move_without_a_smooth_surrogate(digits):
    model, x = digits
    # A ReLU network is piecewise linear: the saliency map's own gradient is zero.
    assert torch.equal(fragility_attack(model, x, epsilon=0.1, steps=3), x)
    shapes = load_lab_model("shapes")
    images = make_shapes(2, seed=2024).images
    goal = torch.zeros(2, 64, 64)
    goal[:, 8:24, 8:24] = 1
    assert torch.equal(manipulate_explanation(shapes, images, goal, steps=3), images)


def test_ghorbani_top_k_attack_moves_the_map_and_keeps_the_class(digits):
    model, x = digits
    classes = _classes(model, x)
    x_adv = fragility_attack(model, x, epsilon=0.1, k=50, steps=10, surrogate=smooth_copy(model))
    assert torch.equal(_classes(model, x_adv), classes)
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    clean = saliency_distribution(model, x, classes)
    attacked = topk_intersection(saliency_distribution(model, x_adv, classes), clean, 50)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 2, x.shape, generator=generator).to(x.dtype) * 2 - 1
    noisy = (x + 0.1 * noise).clamp(0, 1)
    random = topk_intersection(saliency_distribution(model, noisy, classes), clean, 50)
    # Measured: mean top-50 intersection 0.28 after the attack, 0.61 after random signs of the same size.
    assert float(attacked.mean()) <= 0.45
    assert float(random.mean()) - float(attacked.mean()) >= 0.2


def test_dombrowski_manipulation_on_the_softplus_twin_draws_the_target_map():
    model = load_lab_model("shapes-softplus")
    images = make_shapes(4, seed=2024).images
    classes = _classes(model, images)
    goal = torch.zeros(4, 64, 64)
    goal[:, 8:24, 8:24] = 1  # a square in the top-left corner, where no shape is
    before = pearson(saliency_distribution(model, images, classes), goal)
    x_adv = manipulate_explanation(model, images, goal, epsilon=0.1, steps=30, step_size=0.005)
    after = pearson(saliency_distribution(model, x_adv, classes), goal)
    assert torch.equal(_classes(model, x_adv), classes)
    assert float((x_adv - images).abs().max()) <= 0.1 + 1e-6
    # Measured: correlation with the square -0.08..0.22 before, 0.77..0.86 after.
    assert float(before.max()) <= 0.4 and float(after.min()) >= 0.6


def test_bad_input_and_the_model_state(digits):
    model, x = digits
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        fragility_attack(model, x, epsilon=-1)
    with pytest.raises(ValueError, match=r"k must be at most the number of pixels of a map \(784\)"):
        fragility_attack(model, x, epsilon=0.1, k=785)
    with pytest.raises(ValueError, match="target_map must have shape"):
        manipulate_explanation(model, x, torch.ones(3, 28, 28))
    with pytest.raises(ValueError, match="non-negative"):
        manipulate_explanation(model, x, -torch.ones(len(x), 28, 28))
    smooth = smooth_copy(model)
    for net in (model, smooth):
        net.train()
        net.classifier[3].weight.grad = torch.ones_like(net.classifier[3].weight)
    fragility_attack(model, x[:2], epsilon=0.1, steps=2, surrogate=smooth)
    manipulate_explanation(model, x[:2], torch.rand(2, 28, 28), steps=2, surrogate=smooth)
    for net in (model, smooth):  # the model and the surrogate, as they were
        assert net.training and torch.equal(net.classifier[3].weight.grad, torch.ones_like(net.classifier[3].weight))
        assert all(p.grad is None for name, p in net.named_parameters() if name != "classifier.3.weight")
    model.eval()
    model.classifier[3].weight.grad = None


def test_they_work_under_inference_mode(digits):
    model, x = digits
    smooth = smooth_copy(model)
    expected = fragility_attack(model, x[:2], epsilon=0.1, steps=2, surrogate=smooth)
    goal = torch.rand(2, 28, 28, generator=torch.Generator().manual_seed(0))
    drawn = manipulate_explanation(model, x[:2], goal, steps=2, surrogate=smooth)
    with torch.inference_mode():
        assert torch.equal(fragility_attack(model, x[:2], epsilon=0.1, steps=2, surrogate=smooth), expected)
        assert torch.equal(manipulate_explanation(model, x[:2], goal, steps=2, surrogate=smooth), drawn)


# --- rank correlation, and Ghorbani's attack on integrated gradients ------------------------------


def test_rank_correlation_by_hand():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.1, 0.9, 0.2]])
    assert rank_correlation(a, a).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)  # itself
    assert rank_correlation(a, -a).tolist() == pytest.approx([-1.0, -1.0], abs=1e-12)  # reversed
    assert rank_correlation(a[:1], a[:1].flip(1)).tolist() == pytest.approx([-1.0], abs=1e-12)
    # ranks [1, 2, 3, 4] and [1, 3, 2, 4]: rho = 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - 12 / 60
    b = torch.tensor([[1.0, 3.0, 2.0, 4.0]])
    assert float(rank_correlation(a[:1], b)[0]) == pytest.approx(0.8, abs=1e-12)
    # a tie: [1, 2, 2, 3] has ranks [1, 2.5, 2.5, 4]; their Pearson correlation with [1, 2, 3, 4]
    # is 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    tied = torch.tensor([[1.0, 2.0, 2.0, 3.0]])
    assert float(rank_correlation(tied, a[:1])[0]) == pytest.approx(3 / 10**0.5, abs=1e-12)
    # signed, unlike lesson 07's |map| default: [-2, 1] and [2, 1] are in opposite orders
    signed = rank_correlation(torch.tensor([[-2.0, 1.0]]), torch.tensor([[2.0, 1.0]]))
    assert signed.tolist() == pytest.approx([-1.0], abs=1e-12)
    assert torch.isnan(rank_correlation(torch.ones(1, 4), a[:1])).all()  # a flat map has no order
    assert rank_correlation(a, a).dtype == torch.float64
    with pytest.raises(ValueError, match="same shape"):
        rank_correlation(a, a[:, :3])


def test_the_integrated_gradients_map_is_the_package_one(digits):
    """The batched, differentiable IG map equals attribution.integrated_gradients (black
    baseline, Gauss-Legendre) reduced the same way, computed independently."""
    model, x = digits
    classes = _classes(model, x)
    for steps in (4, 16):
        ig = attribution.integrated_gradients(model, x, classes, baseline="zeros", steps=steps)
        magnitude = ig.abs().sum(1)
        expected = magnitude / magnitude.flatten(1).sum(1).view(-1, 1, 1)
        found = integrated_gradients_distribution(model, x, classes, steps=steps)
        assert torch.allclose(found, expected, atol=1e-6)
        assert not found.requires_grad
    assert torch.equal(explanation_distribution(model, x, classes, "saliency"),
                       saliency_distribution(model, x, classes))
    with pytest.raises(ValueError, match="method must be one of"):
        explanation_distribution(model, x, classes, "gradcam")


def test_ghorbani_attack_on_integrated_gradients_keeps_the_class_and_moves_the_map(digits):
    model, x = digits
    x = x[:5]
    classes = _classes(model, x)

    def measures(x_adv):
        clean = explanation_distribution(model, x, classes, "integrated-gradients", ig_steps=8)
        after = explanation_distribution(model, x_adv, classes, "integrated-gradients", ig_steps=8)
        return float(topk_intersection(after, clean, 50).mean()), float(rank_correlation(after, clean).mean())

    settings = {"epsilon": 0.1, "k": 50, "steps": 5, "step_size": 0.02, "method": "integrated-gradients",
                "ig_steps": 8}
    x_adv = fragility_attack(model, x, surrogate=smooth_copy(model), **settings)
    assert torch.equal(_classes(model, x_adv), classes)
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    generator = torch.Generator().manual_seed(0)
    noisy = (x + 0.1 * (torch.randint(0, 2, x.shape, generator=generator).to(x.dtype) * 2 - 1)).clamp(0, 1)
    attacked, random = measures(x_adv), measures(noisy)
    # Measured (float32, these 5 digits): top-50 intersection 0.66 attacked, 0.82 after random
    # signs of the same size; Spearman 0.64 and 0.65: the attack aims at the top 50 pixels only.
    assert attacked[0] <= 0.75 and random[0] - attacked[0] >= 0.1
    assert 0.3 <= attacked[1] <= 0.95
    # Without a surrogate the IG map still moves on the ReLU model, through its factor x
    # (the saliency map does not move at all: test above)
    relu_only = fragility_attack(model, x, **settings)
    assert not torch.equal(relu_only, x)
    # measured: top-50 intersection 0.77, Spearman 0.998 (the order of the other pixels stays)
    assert measures(relu_only)[0] < 0.9 and measures(relu_only)[1] >= 0.98
    with pytest.raises(ValueError, match="method must be one of"):
        fragility_attack(model, x, epsilon=0.1, method="occlusion")
    with pytest.raises(ValueError, match="ig_steps"):
        fragility_attack(model, x, epsilon=0.1, method="integrated-gradients", ig_steps=0)
