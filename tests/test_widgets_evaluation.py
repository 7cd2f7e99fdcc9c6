"""The randomisation dashboard, driven headlessly: the slider over randomised layers."""

from __future__ import annotations

import conftest
import numpy as np
import torch
from torch import nn

from gradviz_lab import attribution, hooks
from gradviz_lab.evaluate import randomisable_layers
from gradviz_lab.widgets import DASHBOARDS, randomisation_dashboard

CLASSES = ["a", "b", "c"]


def tiny_cnn(seed: int = 0) -> nn.Sequential:
    """conftest's tiny_cnn without its max pool, relu1 in place."""
    return conftest.tiny_cnn(seed, pool=False, inplace=("relu1",))


def images() -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))


def test_registered_with_a_layers_slider():
    assert DASHBOARDS["randomisation"] is randomisation_dashboard
    dash = randomisation_dashboard(tiny_cnn(), images(), CLASSES)
    assert dash.controls["layers"].min == 0 and dash.controls["layers"].max == 3  # fc, conv2, conv1


def test_slider_at_zero_shows_the_trained_map_and_moving_it_changes_the_map():
    model = tiny_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dash = randomisation_dashboard(model, images(), CLASSES)
    assert dash.last_error is None, dash.last_error
    # slider at 0: the copy is the trained model, so both panels equal the package's saliency
    target = int(model(images()[:1]).argmax())
    expected = attribution.saliency(model, images()[:1], target)[0, 0].detach().numpy()
    trained, random = dash.last_maps.values()
    np.testing.assert_allclose(trained, expected, atol=1e-6)
    np.testing.assert_allclose(dash.last_map, expected, atol=1e-6)
    assert dash.last_similarity == 1.0 or abs(dash.last_similarity - 1.0) < 1e-12
    # every layer random: a different map, and the trained panel stays as it was
    dash.controls["layers"].value = 3
    assert dash.last_error is None, dash.last_error
    assert not np.allclose(dash.last_map, expected, atol=1e-4)
    np.testing.assert_allclose(list(dash.last_maps.values())[0], expected, atol=1e-6)
    assert dash.last_similarity < 0.99
    # back to 0: the trained map again
    dash.controls["layers"].value = 0
    np.testing.assert_allclose(dash.last_map, expected, atol=1e-6)
    # the model itself was never randomised, nor left with grads or hooks
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training and hooks.count_hooks(model) == 0
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_cascade_matches_an_independent_reinitialisation_of_the_top_layer():
    """Slider at 1 = only the logits layer re-drawn: rebuild that copy here and compare."""
    from gradviz_lab.evaluate import randomised_copy

    model = tiny_cnn()
    dash = randomisation_dashboard(model, images(), CLASSES)
    dash.set(method="gradcam", layers=1)
    assert dash.last_error is None, dash.last_error
    copy = randomised_copy(model, 1, seed=0)
    assert randomisable_layers(model)[0] == "fc"
    assert not torch.equal(copy.fc.weight, model.fc.weight)
    assert torch.equal(copy.conv1.weight, model.conv1.weight)
    target = int(model(images()[:1]).argmax())
    expected = attribution.gradcam(copy, images()[:1], target, layer="relu2")[0, 0]
    np.testing.assert_allclose(dash.last_map, expected.detach().numpy(), atol=1e-6)


def test_the_randomised_half_of_a_long_method_moves_the_progress_bar():
    """SmoothGrad on the randomised copy costs as much as on the trained model: the bar must show it."""
    dash = randomisation_dashboard(tiny_cnn(), images(), CLASSES)
    dash.set(method="smoothgrad")  # the trained and the untouched (depth 0) copy, now cached
    seen: list[float] = []
    dash.progress.observe(lambda change: seen.append(change["new"]), names="value")
    dash.controls["layers"].value = 2  # only the randomised half is new work
    assert dash.last_error is None
    assert seen and seen[-1] == 1.0 and len(set(seen)) > 2, seen


# ---------------------------------------------------------------- deletion, live
def test_deletion_dashboard_shows_the_package_s_curves_and_images():
    """What is on show is exactly evaluate's: the deletion curve of |map| and of the seeded random
    map, the image remove_top_pixels gives, and the curve's point at the slider's fraction."""
    from gradviz_lab.evaluate import deletion_curve, random_map, remove_top_pixels
    from gradviz_lab.widgets import deletion_dashboard
    from gradviz_lab.widgets.evaluation import DELETION_STEPS, FILLS

    model, x = tiny_cnn(), images()
    dash = deletion_dashboard(model, x, CLASSES)
    assert DASHBOARDS["deletion"] is deletion_dashboard
    assert dash.last_error is None, dash.last_error
    for fill, fraction in (("black", 0.25), ("impute", 0.5), ("blur", 1.0), ("impute", 0.0)):
        dash.set(method="saliency", fill=fill, fraction=fraction)
        assert dash.last_error is None, dash.last_error
        target = int(model(x[:1]).argmax())
        saliency = attribution.saliency(model, x[:1], target).detach()  # already |gradient|, (1, 1, H, W)
        expected = deletion_curve(model, x[:1], saliency, target, steps=DELETION_STEPS, baseline=FILLS[fill])
        assert torch.allclose(dash.last_curves["map"].scores, expected.scores, atol=1e-6), fill
        control = deletion_curve(model, x[:1], random_map(model, x[:1], seed=0), target, steps=DELETION_STEPS,
                                 baseline=FILLS[fill])
        assert torch.allclose(dash.last_curves["random map"].scores, control.scores, atol=1e-6), fill
        shown = remove_top_pixels(x[:1], saliency, fraction, FILLS[fill])[0]
        assert torch.allclose(dash.last_removed, shown, atol=1e-6), fill
        step = round(fraction * DELETION_STEPS)
        assert dash.last_score == float(expected.scores[0, step])
        assert f"{dash.last_score:.2f}" in dash.caption.value and fill in dash.caption.value
    assert "fill-impute" in dash.figure_name() and "fraction-0.0" in dash.figure_name()


def test_deletion_dashboard_ranks_a_signed_map_by_magnitude():
    """Integrated gradients are signed: pixels go in the order of |IG|, as in lesson 07's table."""
    from gradviz_lab.evaluate import remove_top_pixels
    from gradviz_lab.widgets import deletion_dashboard

    model, x = tiny_cnn(), images()
    dash = deletion_dashboard(model, x, CLASSES)
    dash.set(method="integrated-gradients", fraction=0.5)
    assert dash.last_error is None, dash.last_error
    signed = torch.from_numpy(dash.last_map.copy())
    assert (signed < 0).any()  # a signed map, or the test shows nothing
    expected = remove_top_pixels(x[:1], signed.abs()[None, None], 0.5, 0.0)[0]
    assert torch.allclose(dash.last_removed, expected)
