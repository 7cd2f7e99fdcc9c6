"""The class-visualisation dashboard on the dashboards' frame (gradviz_lab.widgets.ascent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_same_state, indexed_cnn, snapshot

from gradviz_lab import featureviz as fv
from gradviz_lab.widgets.ascent import ActivationMaximisationDashboard, activation_maximisation_dashboard
from gradviz_lab.widgets.frame import PictureDashboard

NAMES = ["a", "b", "c", "d"]


# The checks below take ``make_dashboard``: this module's dashboard, or featureviz's name for it
# (the name the lessons import), whose tests in test_featureviz run the same checks through it.


def check_the_class_image_follows_the_controls(make_dashboard) -> None:
    """The class image is class_visualisation's for the controls on show, a setting seen
    before comes back from the cache, and the model is left exactly as it was."""
    model = indexed_cnn()
    before = snapshot(model)
    dash = make_dashboard(model, NAMES, (1, 10, 10), steps=8)
    assert isinstance(dash, PictureDashboard)  # the frame every dashboard shares
    assert dash.last_error is None and dash.last_image.shape == (1, 10, 10)
    first_png = dash.last_png
    assert first_png.startswith(b"\x89PNG")
    dash.controls["target"].value = 2
    assert dash.last_error is None and dash.last_png != first_png
    expected = fv.class_visualisation(model, 2, (1, 10, 10), steps=8, l2=dash.controls["l2"].value)[0]
    torch.testing.assert_close(dash.last_image, expected)
    with torch.no_grad():
        assert dash.last_logit == pytest.approx(model(expected[None])[0, 2].item(), rel=1e-5)
    start_l2 = dash.controls["l2"].value
    dash.controls["l2"].value = 1.0
    assert dash.last_error is None and "L2 = 1" in dash.children[3].value  # the caption
    assert len(dash.cache) == 3
    dash.controls["l2"].value = start_l2
    dash.controls["target"].value = 0
    assert dash.last_png == first_png and len(dash.cache) == 3  # back to the first setting: cached
    assert dash.renders == 5
    assert_same_state(before, snapshot(model))


def check_saving_for_slides(make_dashboard, tmp_path, monkeypatch) -> None:
    """The button saves the image enlarged into figures/ (of ``tmp_path``, made the working
    directory), and no file is ever replaced."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    dash = make_dashboard(indexed_cnn(), NAMES, (1, 10, 10), steps=8)
    dash.controls["target"].value = 2
    button = dash.children[-1].children[0]
    button.click()
    (saved,) = (tmp_path / "figures").glob("*.png")
    assert saved.name.startswith("classvis_c_l2-")
    assert str(saved.relative_to(tmp_path)) in dash.children[-1].children[1].value
    picture = np.asarray(Image.open(saved))
    assert picture.shape == (220, 220)  # each of the 10x10 pixels as a 22x22 block
    expected = (dash.last_image[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(picture[::22, ::22], expected)
    with pytest.raises(ValueError, match="ending in .png"):
        dash.save_png(tmp_path / "x.jpg")
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"someone's work")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        dash.save_png(mine)
    assert mine.read_bytes() == b"someone's work"


def check_static_view(make_dashboard) -> None:
    """Outside JupyterLab the dashboard shows one line that says where to run it."""
    dash = make_dashboard(indexed_cnn(), NAMES, (1, 10, 10), steps=2)
    text = dash._repr_mimebundle_()["text/plain"]
    assert text.startswith("class visualisation: run this cell in JupyterLab"), text


def test_the_class_image_follows_the_controls_and_comes_back_from_the_cache():
    check_the_class_image_follows_the_controls(activation_maximisation_dashboard)


def test_it_shows_class_visualisation_and_the_logit_it_reaches():
    model = indexed_cnn(1)
    dash = activation_maximisation_dashboard(model, NAMES, (1, 10, 10), steps=6, lr=0.05)
    assert fv.activation_maximisation_dashboard is not activation_maximisation_dashboard
    for target, l2 in ((0, None), (3, None), (3, 0.01)):
        dash.controls["target"].value = target
        if l2 is not None:
            dash.controls["l2"].value = l2
        strength = dash.controls["l2"].value
        expected = fv.class_visualisation(model, target, (1, 10, 10), steps=6, lr=0.05, l2=strength)
        assert torch.equal(dash.last_image, expected[0])
        with torch.no_grad():
            assert dash.last_logit == float(model.eval()(expected)[0, target])
        assert f"{NAMES[target]}: logit {dash.last_logit:.2f}" in dash.children[3].value
    # featureviz's name is the same dashboard (the lessons import it from there)
    again = fv.activation_maximisation_dashboard(model, NAMES, (1, 10, 10), steps=6, lr=0.05)
    again.controls["target"].value = 3
    again.controls["l2"].value = 0.01
    assert again.last_png == dash.last_png and type(again) is type(dash)


def test_bad_arguments_are_refused_before_any_widget_is_made():
    model = indexed_cnn()
    with pytest.raises(TypeError, match="class_names"):
        activation_maximisation_dashboard(model, [], (1, 10, 10))
    with pytest.raises(ValueError, match="l2_range"):
        activation_maximisation_dashboard(model, NAMES, (1, 10, 10), l2_range=(1.0, 0.1))
    with pytest.raises(TypeError, match="unknown knob"):
        activation_maximisation_dashboard(model, NAMES, (1, 10, 10), stepz=3)
    with pytest.raises(ValueError, match="image_shape"):
        activation_maximisation_dashboard(model, NAMES)  # a Sequential has no input_shape


def test_an_error_while_redrawing_is_shown_in_the_dashboard_not_raised():
    dash = activation_maximisation_dashboard(indexed_cnn(), NAMES + ["e"], (1, 10, 10), steps=2)
    dash.controls["target"].value = 4  # the model has 4 classes: class_visualisation refuses 4
    assert isinstance(dash.last_error, ValueError) and "out of range" in str(dash.last_error)
    assert "ValueError" in dash.error.value
    dash.controls["target"].value = 1
    assert dash.last_error is None and dash.error.value == ""


def test_saves_the_enlarged_image_for_slides_and_never_replaces_a_file(tmp_path, monkeypatch):
    check_saving_for_slides(activation_maximisation_dashboard, tmp_path, monkeypatch)


def test_shows_one_line_in_a_static_view():
    check_static_view(ActivationMaximisationDashboard)
