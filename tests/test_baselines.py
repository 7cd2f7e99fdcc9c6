"""attribution/baselines.py: the kit's one vocabulary of baselines, and every method that takes
a baseline understands all of it."""

from __future__ import annotations

import pytest
import torch
from conftest import images, small_cnn

from gradviz_lab import attribution, evaluate
from gradviz_lab.attribution.baselines import NAMES, blurred, make_baseline

X = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]], [[0.2, 0.2], [0.2, 0.6]]]])  # (1, 2, 2, 2)


def test_each_name_is_the_hand_computed_image():
    assert torch.equal(make_baseline(X, "zeros"), torch.zeros_like(X))
    assert torch.equal(make_baseline(X, "black"), torch.zeros_like(X))
    assert torch.equal(make_baseline(X, "grey"), torch.full_like(X, 0.5))
    mean = make_baseline(X, "mean")
    assert mean.shape == X.shape
    torch.testing.assert_close(mean[0, :, 1, 0], torch.tensor([0.5, 0.3]))
    assert torch.equal(mean[0, 0], torch.full((2, 2), 0.5))
    flat = torch.full((1, 3, 10, 10), 0.25)
    torch.testing.assert_close(make_baseline(flat, "blur"), flat)  # blurring a flat image


def test_blur_is_a_gaussian_of_a_tenth_of_the_shorter_side():
    x = images(1, size=20)
    assert torch.equal(make_baseline(x, "blur"), blurred(x, sigma=2.0))
    impulse = torch.zeros(1, 1, 21, 21)
    impulse[0, 0, 10, 10] = 1.0
    kernel = blurred(impulse, sigma=2.0)[0, 0]
    torch.testing.assert_close(kernel.sum(), torch.tensor(1.0))
    # a separable Gaussian: the ratio of neighbours on the axis is exp(-((d+1)^2 - d^2) / (2 s^2))
    torch.testing.assert_close(kernel[10, 11] / kernel[10, 10], torch.exp(torch.tensor(-1 / 8.0)))


def test_numbers_and_images_are_taken_as_they_are():
    assert torch.equal(make_baseline(X, 0.25), torch.full_like(X, 0.25))
    image = torch.rand(2, 2, 2)
    assert torch.equal(make_baseline(X, image), image.unsqueeze(0))
    with pytest.raises(ValueError, match=r"baseline must be one of \['zeros', 'black', 'grey', "
                                         r"'mean', 'blur'\], got 'white'"):
        make_baseline(X, "white")
    with pytest.raises(ValueError, match="baseline must have shape"):
        make_baseline(X, torch.rand(3, 2, 2))


def test_the_dashboards_names_are_the_same_images():
    """recipes.baseline_image can be make_baseline: the same tensors, bit for bit."""
    from gradviz_lab.widgets import recipes

    x = images(2, size=12)
    for name in recipes.BASELINES:
        assert name in NAMES
        assert torch.equal(recipes.baseline_image(x, name), make_baseline(x, name)), name


@pytest.mark.parametrize("name", NAMES)
def test_every_method_taking_a_baseline_understands_every_name(name):
    model, x = small_cnn().double(), images(2, size=10, dtype=torch.float64)
    image = make_baseline(x, name)
    calls = {
        "integrated_gradients": lambda b: attribution.integrated_gradients(model, x, 1, b, steps=3),
        "occlusion": lambda b: attribution.occlusion(model, x, 1, window=4, stride=3, baseline=b),
        "deletion_curve": lambda b: evaluate.deletion_curve(model, x, x[:, 0], 1, steps=5,
                                                            baseline=b).scores,
        "insertion_curve": lambda b: evaluate.insertion_curve(model, x, x[:, 0], 1, steps=5,
                                                              baseline=b).scores,
    }
    for method, call in calls.items():
        assert torch.equal(call(name), call(image)), method
