"""The lesson 11 dashboard (gradviz_lab.widgets.lrp), driven headlessly: the map on show is
``attribution.lrp`` with the knobs on show, a knob change recomputes and going back comes from the
cache, a setting LRP cannot follow gives an error in the dashboard, and the model is left exactly
as it was."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import assert_same_state, prepared_model, snapshot, tiny_cnn
from torch import nn

from gradviz_lab import attribution, viz
from gradviz_lab.attribution.lrp import COMPOSITES, Composite, Epsilon, Flat, Gamma, ZBox
from gradviz_lab.widgets import lrp_dashboard
from gradviz_lab.widgets.lrp import PER_GROUP, LrpDashboard

CLASSES = ["a", "b", "c"]


def images() -> torch.Tensor:
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3))


def reference(model, index: int, target: int, **knobs) -> np.ndarray:
    """attribution.lrp of image ``index``, |R| summed over channels: the map the dashboard shows."""
    relevance = attribution.lrp(model, images()[index : index + 1], target, **knobs)
    return viz.to_2d(relevance.detach())[0]


@pytest.fixture
def dash() -> LrpDashboard:
    return lrp_dashboard(tiny_cnn(), images(), CLASSES)


def test_the_map_on_show_is_lrp_with_the_knobs_on_show(dash):
    assert dash.last_error is None, dash.last_error
    predicted = int(dash.model(images()[:1]).argmax())
    np.testing.assert_allclose(dash.last_map, reference(dash.model, 0, predicted), rtol=1e-6)
    dash.set(image=2, target=1, composite="epsilon-gamma-box", gamma=0.5, epsilon=0.1)
    assert dash.last_error is None, dash.last_error
    expected = reference(dash.model, 2, 1, composite="epsilon-gamma-box", gamma=0.5, epsilon=0.1)
    np.testing.assert_allclose(dash.last_map, expected, rtol=1e-6)
    assert dash.last_explanations[0].target == 1
    # the other composite gives another map: the knob is not ignored
    assert not np.allclose(dash.last_map, reference(dash.model, 2, 1))


def test_a_rule_per_layer_group_is_the_composite_of_those_rules(dash):
    dash.set(composite=PER_GROUP, first="flat", conv="gamma", dense="epsilon", gamma=1.0,
             epsilon=0.01, maxpool="average", target=2)
    assert dash.last_error is None, dash.last_error
    composite = Composite(Flat(), Gamma(1.0), Epsilon(0.01))
    expected = reference(dash.model, 0, 2, composite=composite, maxpool="average")
    np.testing.assert_allclose(dash.last_map, expected, rtol=1e-6)
    assert "first layer <b>flat</b>" in dash.caption.value
    # a named composite shows its own rules in the group knobs, which are then read-only
    dash.set(composite="epsilon-gamma-box")
    assert [dash.knobs[g].value for g in ("first", "conv", "dense")] == ["z-box", "gamma", "epsilon"]
    assert all(dash.knobs[g].disabled for g in ("first", "conv", "dense"))
    expected = reference(dash.model, 0, 2, composite=Composite(ZBox(0.0, 1.0), Gamma(1.0),
                                                               Epsilon(0.01)), maxpool="average")
    np.testing.assert_allclose(dash.last_map, expected, rtol=1e-6)


def test_the_named_composites_are_the_packages(dash):
    for name in ("lrp-0", "z-plus", "epsilon-plus-flat"):
        dash.set(composite=name, target=0)
        assert dash.last_error is None, dash.last_error
        np.testing.assert_allclose(dash.last_map, reference(dash.model, 0, 0, composite=name),
                                   rtol=1e-6)
    assert set(dash.knobs["composite"].options) == set(COMPOSITES) | {PER_GROUP}


def test_a_knob_change_recomputes_and_going_back_comes_from_the_cache(dash):
    calls = []
    compute = dash._relevance
    dash._relevance = lambda *a: calls.append(a) or compute(*a)
    dash.set(composite="epsilon-gamma-box", gamma=0.25)
    first = dash.last_map.copy()
    dash.set(gamma=1.0)
    assert len(calls) == 2 and not np.allclose(dash.last_map, first)
    dash.set(gamma=0.25)  # back: no new pass
    assert len(calls) == 2
    np.testing.assert_array_equal(dash.last_map, first)
    # a knob the rules on show do not use neither recomputes nor changes the map
    dash.set(composite="z-plus")
    assert len(calls) == 3
    before = dash.last_map.copy()
    dash.set(gamma=1.5, epsilon=0.1)
    assert len(calls) == 3
    np.testing.assert_array_equal(dash.last_map, before)


def test_a_setting_lrp_cannot_follow_is_an_error_in_the_dashboard():
    dash = lrp_dashboard(tiny_cnn(pool_dilation=2), images(), CLASSES)
    assert dash.last_error is None, dash.last_error  # "winner" follows a dilated max pool
    dash.set(maxpool="average")
    assert isinstance(dash.last_error, ValueError)
    assert "dilated" in str(dash.last_error) and "dilated" in dash.error.value
    dash.set(maxpool="winner")  # back to a setting that works: the error goes
    assert dash.last_error is None and dash.error.value == ""


def test_a_model_lrp_does_not_cover_is_named_in_the_error():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3))

        def forward(self, x):
            return self.head(self.conv(x) + x)  # a sum between modules: LRP has no rule for it

    dash = lrp_dashboard(Skip().eval(), images(), CLASSES)
    assert isinstance(dash.last_error, ValueError), dash.last_error
    assert dash.error.value and "ValueError" in dash.error.value


def test_sliders_keep_epsilon_and_gamma_in_their_range(dash):
    dash.set(composite="epsilon", epsilon=0.0)  # LRP-epsilon needs epsilon > 0: the slider's floor
    assert dash.knobs["epsilon"].value == pytest.approx(1e-6)
    assert dash.last_error is None
    np.testing.assert_allclose(dash.last_map, reference(
        dash.model, 0, dash.last_explanations[0].target, composite="epsilon", epsilon=1e-6),
        rtol=1e-6)
    dash.set(composite="gamma", gamma=-1.0)
    assert dash.knobs["gamma"].value == 0.0 and dash.last_error is None


def test_the_model_is_left_as_it_was():
    model, _ = prepared_model()
    x = torch.rand(2, *next(model.parameters()).shape[1:2], 8, 8,
                   generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # on a copy: a forward pass in train mode moves batch norm's statistics
        names = [f"c{k}" for k in range(copy.deepcopy(model)(x).shape[-1])]
    before = snapshot(model)
    dash = lrp_dashboard(model, x, names)
    assert dash.last_error is None, dash.last_error
    dash.set(composite="epsilon-gamma-box", gamma=0.5)
    dash.set(maxpool="average", image=1)
    assert_same_state(before, snapshot(model))


def test_the_static_view_is_one_line_and_a_png_can_be_saved(dash, tmp_path, monkeypatch):
    text = dash._repr_mimebundle_()["text/plain"]
    assert text.startswith("LrpDashboard: run this cell in JupyterLab") and "\n" not in text
    monkeypatch.chdir(tmp_path)  # the button's folder, figures/, is made here
    dash.set(composite="epsilon-gamma-box")
    path = dash.save_png()
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.name.startswith("lrp") and "epsilon-gamma-box" in path.name


def test_the_lab_gallery_switches_models():
    dash = lrp_dashboard()  # the shapes model and its gallery
    assert dash.last_error is None, dash.last_error
    dash.set(model="digits")
    assert dash.last_error is None, dash.last_error
    assert dash.last_map.shape == (28, 28) and len(dash.class_names) == 10
    dash.set(model="shapes-vit")  # attention and layer norm: LRP names the layer it cannot follow
    assert isinstance(dash.last_error, ValueError) and "LayerNorm" in str(dash.last_error)
