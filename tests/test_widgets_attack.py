"""The lesson 09 dashboard (gradviz_lab.widgets.attack), driven headlessly: each setting gives the
package's own attack and saliency maps, a change recomputes only what it changes, bad settings
give an error that says what to do, and the model is left exactly as it was."""

from __future__ import annotations

import html
import warnings

import numpy as np
import pytest
import torch
import conftest
from conftest import assert_same_state, prepared_model, snapshot
from torch import nn

from gradviz_lab import attacks, attribution
from gradviz_lab.explanation_attacks import rank_correlation, topk_intersection
from gradviz_lab.widgets import attack_dashboard
from gradviz_lab.widgets.attack import ATTACKS, EPSILON_SLIDERS, AttackDashboard

CLASSES = ["a", "b", "c"]


def tiny_cnn(seed: int = 0) -> nn.Sequential:
    """conftest's tiny_cnn without its max pool."""
    return conftest.tiny_cnn(seed, pool=False)


def images() -> torch.Tensor:
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3))


def predicted(model, x) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


def saliency_map(model, x: torch.Tensor) -> np.ndarray:
    """Lesson 02's map of one (1, C, H, W) image for its predicted class, (H, W)."""
    return attribution.saliency(model, x, int(predicted(model, x)[0]))[0, 0].detach().numpy()


@pytest.fixture
def dash():
    return attack_dashboard(tiny_cnn(), images(), CLASSES)


def test_it_answers_with_the_package_attack_and_both_saliency_maps(dash):
    model, x = dash.model, images()[:1]
    assert dash.last_error is None, dash.last_error
    assert dash.last_png.startswith(b"\x89PNG")
    # the default: PGD L-infinity, epsilon 0.1, 10 steps, untargeted; an independent call agrees
    expected = attacks.pgd(model, x, epsilon=0.1, steps=10)
    assert torch.equal(dash.last_adversarial, expected)
    before, after = dash.last_maps.values()
    np.testing.assert_allclose(before, saliency_map(model, x), atol=1e-6)
    np.testing.assert_allclose(after, saliency_map(model, expected), atol=1e-6)
    np.testing.assert_allclose(dash.last_map, after)  # the dashboard's own map: after the attack
    assert dash.last_prediction == int(predicted(model, expected)[0])


@pytest.mark.parametrize("attack", ["fgsm", "pgd-l2"])
def test_each_attack_is_the_package_function_with_the_knobs_on_show(dash, attack):
    dash.set(attack=attack, image=1)
    assert dash.last_error is None, dash.last_error
    x, epsilon = images()[1:2], dash.controls["epsilon"].value
    if attack == "fgsm":
        expected = attacks.fgsm(dash.model, x, epsilon=epsilon)
    else:
        assert epsilon == EPSILON_SLIDERS["l2"][0]  # the L2 ball has its own scale
        expected = attacks.pgd(dash.model, x, epsilon=epsilon, steps=10, norm="l2")
        assert float((expected - x).flatten().norm()) <= epsilon + 1e-6
    assert torch.equal(dash.last_adversarial, expected)


def test_a_targeted_attack_and_the_fooling_image_go_toward_the_class_chosen(dash):
    model, x = dash.model, images()[:1]
    goal = (int(predicted(model, x)[0]) + 1) % 3
    dash.set(target=goal, epsilon=0.5, steps=40)
    assert dash.last_error is None, dash.last_error
    expected = attacks.pgd(model, x, goal, epsilon=0.5, steps=40)
    assert torch.equal(dash.last_adversarial, expected)
    fooled = int(predicted(model, expected)[0]) == goal
    assert ("<b>fooled</b>" in dash.caption.value) == fooled
    assert f"toward <b>{CLASSES[goal]}</b>" in dash.caption.value
    dash.set(attack="fooling-image", steps=20)
    assert dash.last_error is None, dash.last_error
    assert dash.controls["epsilon"].disabled and not dash.controls["steps"].disabled
    with warnings.catch_warnings(record=True) as caught:  # "not yet predicted as the target"
        warnings.simplefilter("always")
        expected = attacks.fooling_image(model, x, goal, step_size=0.5, max_steps=20)
    assert torch.equal(dash.last_adversarial, expected)
    # a warning of the attack is shown in the caption, not lost
    assert all(str(w.message) in html.unescape(dash.caption.value) for w in caught)


def test_fgsm_disables_the_steps_and_the_caption_numbers_are_the_package_measures(dash):
    dash.set(attack="fgsm", epsilon=0.2)
    assert dash.controls["steps"].disabled and not dash.controls["epsilon"].disabled
    before, after = (torch.from_numpy(m).double()[None] for m in dash.last_maps.values())
    k = round(0.05 * 16 * 16)
    facts = dash.last_facts
    assert facts["k"] == k
    assert facts["topk"] == float(topk_intersection(after, before, k)[0])
    assert facts["spearman"] == pytest.approx(float(rank_correlation(after, before)[0]), abs=1e-12)
    assert facts["linf"] == pytest.approx(0.2, abs=1e-6)  # every pixel moves by epsilon (or hits 0/1)
    assert f"top-{k} intersection <b>{facts['topk']:.2f}</b>" in dash.caption.value


def test_epsilon_zero_changes_nothing_and_the_maps_agree_exactly(dash):
    dash.set(epsilon=0.0)
    assert dash.last_error is None, dash.last_error
    assert torch.equal(dash.last_adversarial, images()[:1])
    assert dash.last_facts["topk"] == 1.0 and dash.last_facts["spearman"] == pytest.approx(1.0)
    assert "not fooled" in dash.caption.value and "perturbation none" not in dash.caption.value


def test_a_change_recomputes_only_what_it_changes_and_going_back_is_cached(dash, monkeypatch):
    calls = []
    real_pgd = attacks.pgd
    monkeypatch.setattr(attacks, "pgd", lambda *a, **k: calls.append(k) or real_pgd(*a, **k))
    renders = dash.renders
    dash.set(epsilon=0.2)
    assert len(calls) == 1 and calls[0]["epsilon"] == 0.2 and dash.renders == renders + 1
    before_map = list(dash.last_maps.values())[0]
    dash.set(epsilon=0.1)  # shown before: from the cache, no new attack
    assert len(calls) == 1 and dash.renders == renders + 2
    np.testing.assert_array_equal(list(dash.last_maps.values())[0], before_map)  # clean map kept
    # steps do not enter FGSM: changing them under FGSM computes nothing new
    dash.set(attack="fgsm")
    hits = dash.cache.hits
    dash.set(steps=30)
    assert len(calls) == 1 and dash.cache.hits > hits


def test_the_epsilon_slider_keeps_one_value_per_ball(dash):
    dash.set(epsilon=0.25)
    dash.set(attack="pgd-l2")
    slider = dash.controls["epsilon"]
    assert (slider.value, slider.max) == (EPSILON_SLIDERS["l2"][0], EPSILON_SLIDERS["l2"][1])
    dash.set(epsilon=3.0)
    dash.set(attack="fgsm")  # back to L-infinity: its own value again
    assert (slider.value, slider.max) == (0.25, EPSILON_SLIDERS["linf"][1])
    dash.set(attack="pgd-l2")
    assert slider.value == 3.0
    assert set(ATTACKS) == {"fgsm", "pgd-linf", "pgd-l2", "fooling-image"}


def test_bad_settings_give_errors_that_say_what_to_do(dash):
    dash.set(attack="fooling-image")  # with "none: untargeted"
    assert isinstance(dash.last_error, ValueError)
    assert "pick a class in 'attack toward'" in str(dash.last_error)
    assert "pick a class" in dash.error.value
    own = int(predicted(dash.model, images()[:1])[0])
    dash.set(attack="pgd-linf", target=own)
    assert isinstance(dash.last_error, ValueError)
    assert f"already predicts {CLASSES[own]}" in str(dash.last_error)
    dash.set(target=(own + 1) % 3)  # a good setting clears the error
    assert dash.last_error is None and dash.error.value == ""
    with pytest.raises(ValueError, match="no control named sigma; controls are image, target, attack"):
        dash.set(sigma=0.1)
    with pytest.raises(Exception, match="Invalid selection"):
        dash.set(attack="deepfool")
    with pytest.raises(ValueError, match="unknown gallery 'digitz'"):
        attack_dashboard(gallery_name="digitz")
    assert "model" not in dash.controls  # the caller's own model: no lab model to switch to


def test_a_model_in_a_mixed_state_comes_back_exactly_as_it_was():
    """Train mode with an eval submodule, batch norm, a frozen weight, .grad set, two hooks."""
    model, user_calls = prepared_model()
    before = snapshot(model)
    x = torch.rand(3, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    dash = AttackDashboard(model, x, CLASSES)
    for settings in ({"attack": "fgsm"}, {"attack": "pgd-l2", "image": 2}, {"target": 0},
                     {"attack": "fooling-image", "steps": 3}):
        dash.set(**settings)
        assert_same_state(before, snapshot(model))
    assert user_calls  # the user's hooks ran (they were kept), and are still there
    assert_same_state(before, snapshot(model))


def test_the_static_view_is_one_line_and_the_png_can_be_saved(dash, tmp_path):
    bundle = dash._repr_mimebundle_()
    assert bundle["text/plain"].startswith("AttackDashboard: run this cell in JupyterLab")
    path = dash.save_png(tmp_path / "attack.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert dash.last_figure_name.startswith("attack_image_0_")
    assert "attack-pgd-linf_epsilon-0.1_steps-10" in dash.last_figure_name


def test_on_the_lab_digits_the_model_switch_loads_the_robust_model():
    dash = attack_dashboard()  # the digits gallery
    assert dash.last_error is None, dash.last_error
    assert dash.controls["model"].value == "digits"
    standard_prediction = dash.last_prediction
    dash.set(model="digits-robust", epsilon=0.1)
    assert dash.last_error is None, dash.last_error
    assert dash.gallery_name == "digits-robust"
    from gradviz_lab.models import load_lab_model

    robust = load_lab_model("digits-robust")
    expected = attacks.pgd(robust, dash.images[:1], epsilon=0.1, steps=10)
    assert torch.equal(dash.last_adversarial, expected)
    # the first test digit, a 0: the standard model is fooled at 0.1, the robust one is not
    assert standard_prediction != 0 and dash.last_prediction == 0
    # to the shapes: other images and classes, set together with a class they have
    dash.set(model="shapes", target=4, image=7)
    assert dash.last_error is None, dash.last_error
    assert dash.controls["target"].options[5] == ("star", 4)
    assert dash.image_names[7] == "cross + square" and dash.images.shape[1:] == (3, 64, 64)
