"""The method registry (gradviz_lab.methods): one list that the command line, the dashboards and
the evaluation table read, so that a method added to it appears everywhere without other edits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from conftest import squares, tiny_cnn, with_registry_methods

from gradviz_lab import attribution, cli, evaluate, explain, methods
from gradviz_lab.widgets import compare_dashboard, deletion_dashboard, randomisation_dashboard
from gradviz_lab.widgets import recipes

CLASSES = ["zero", "one", "two"]


def tiny_images(n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def doubled_gradient(model, x, target=None, factor: float = 2.0):
    """A method for the tests: the input gradient times ``factor`` (a map we can predict)."""
    return factor * attribution.input_gradient(model, x, target)


FAKE = methods.Method(
    "doubled-gradient",
    "doubled gradient",
    f"{__name__}:doubled_gradient",
    (methods.Knob("factor", 2.0, "float", "how much to multiply the gradient by", low=0, high=4),),
    table={"factor": 3.0},
)


def test_importing_the_registry_imports_no_torch():
    # `gradviz --help` reads it: it must stay instant
    code = ("import sys, gradviz_lab.methods as m; m.get('gradcam').title; "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_every_method_loads_its_function_and_its_knobs_are_the_functions_own():
    import inspect

    for name in methods.names():
        method = methods.get(name)
        function = method.load()
        assert callable(function)
        parameters = inspect.signature(method.load(for_table=True)).parameters
        assert set(method.table) <= set(parameters), name  # the table calls it with these
        assert list(parameters)[:3] == ["model", "x", "target"], name


def test_one_spelling_and_the_table_titles_lesson_07_prints():
    assert methods.names()[:9] == (
        "saliency", "smoothgrad", "integrated-gradients", "occlusion", "gradient", "deconvnet",
        "guided-backprop", "gradcam", "guided-gradcam",
    )
    family = ("cam", "gradcam-plus-plus", "xgradcam", "hirescam", "layercam", "scorecam",
              "ablationcam", "eigencam")
    assert methods.names()[9:17] == family  # Grad-CAM's family: out of the comparison
    assert not set(family) & set(methods.names("compare"))
    assert set(family) <= set(methods.names("evaluation"))
    # out of the table: CAM (raises without a GAP + linear head), Eigen-CAM (its SVD's last bits
    # differ between CPUs, and so would the table's digits)
    assert set(family) - set(methods.names("table")) == {"cam", "eigencam"}
    assert methods.names()[17:20] == ("lrp", "input-x-gradient", "deeplift")
    attention = ("attention", "attention-rollout", "gradient-rollout")
    assert methods.names()[20:23] == attention  # transformers only: in no view that runs the CNNs
    assert not set(attention) & set(methods.names("table") + methods.names("compare") + methods.names("evaluation"))
    assert [methods.get(n).title for n in methods.names("table")] == [
        "saliency", "smoothgrad", "integrated gradients", "occlusion", "deconvnet",
        "guided backprop", "grad-cam", "guided grad-cam", "grad-cam++", "xgrad-cam", "hirescam",
        "layercam", "score-cam", "ablation-cam", "LRP", "input x gradient", "DeepLIFT",
    ]
    assert list(evaluate.default_methods()) == ["random", "edges"] + [
        methods.get(n).title for n in methods.names("table")
    ]
    assert explain.METHOD_NAMES == methods.names() == tuple(recipes.METHODS)


def test_knob_defaults_are_those_of_the_dashboards_and_the_command():
    assert recipes.METHODS["smoothgrad"] == {"sigma": 0.15, "n_samples": 25, "variant": "mean", "seed": 0}
    assert recipes.METHODS["occlusion"] == {"window": None, "stride": None, "baseline": "black"}
    assert methods.light_knobs("compare")["integrated-gradients"] == {"steps": 16}
    knob = methods.get("smoothgrad").knob("sigma")
    assert (knob.low, knob.high, knob.step) == (0.0, 0.5, 0.01)
    with pytest.raises(KeyError, match="its knobs are"):
        methods.get("saliency").knob("sigma")


def test_bad_registrations_and_names_are_refused_with_the_known_names():
    with pytest.raises(ValueError, match="choose one of saliency, smoothgrad"):
        methods.get("grad-cam")  # the table's title is not a method name
    with pytest.raises(ValueError, match="registered already"):
        methods.register(methods.get("gradcam"))
    with pytest.raises(TypeError, match="methods.Method"):
        methods.register({"name": "x"})
    with pytest.raises(ValueError, match="names no view"):
        methods.Method("x", "x", "m:f", left_out_of=frozenset({"slides"}))
    with pytest.raises(ValueError, match="not knobs of x"):
        methods.Method("x", "x", "m:f", light={"steps": 3})
    with pytest.raises(ValueError, match="unknown view"):
        methods.names("slides")


def test_a_registered_method_appears_everywhere_without_further_edits(tmp_path):
    model, images = tiny_cnn(), tiny_images()
    with methods.registered(FAKE):
        # the command line: a choice of --method, its knob an option
        parser = cli.build_parser("explain")
        sub = parser._subparsers._group_actions[0].choices["explain"]
        actions = {a.dest: a for a in sub._actions}
        assert "doubled-gradient" in actions["method"].choices
        assert "factor" in actions and actions["factor"].type is float
        # explain(): run through the registry's function, titled with its title
        e = recipes.explain(model, images[0], "doubled-gradient", 1, class_names=CLASSES, factor=0.5)
        expected = 0.5 * attribution.input_gradient(model, images[:1], 1)[0].abs().sum(0)
        np.testing.assert_allclose(e.maps["doubled gradient"], expected.numpy(), rtol=1e-6)
        # the compare dashboard
        dash = compare_dashboard(model, images, CLASSES)
        assert dash.last_error is None and "doubled gradient" in dash.last_maps
        # the evaluation dashboards' menus
        assert "doubled-gradient" in randomisation_dashboard(model, images, CLASSES).knobs["method"].options
        assert "doubled-gradient" in deletion_dashboard(model, images, CLASSES).knobs["method"].options
        # the evaluation table, called with the registry's table settings (factor 3)
        masks = torch.zeros(2, 16, 16, dtype=torch.bool)
        masks[:, 4:12, 4:12] = True
        labels = torch.tensor([0, 2])
        table, maps = evaluate.evaluate_methods(model, images, labels, masks, steps=4, return_maps=True)
        assert "doubled gradient" in table.column("method")
        torch.testing.assert_close(
            maps["doubled gradient"], evaluate.as_pixel_map(3 * attribution.input_gradient(model, images, labels))
        )
        # the tests' list of every method (state, boundary, devices, bad inputs), with its light knobs
        every = with_registry_methods({})
        assert "doubled_gradient" in every
        torch.testing.assert_close(every["doubled_gradient"](model, images, 1),
                                   2 * attribution.input_gradient(model, images, 1))
    # and gone again once removed
    assert "doubled-gradient" not in methods.names()
    assert "doubled_gradient" not in with_registry_methods({})
    assert "doubled gradient" not in evaluate.default_methods()
    assert "doubled gradient" not in compare_dashboard(model, images, CLASSES).last_maps


def test_left_out_of_keeps_a_method_out_of_that_view_only():
    slow = methods.Method("slow-gradient", "slow gradient", f"{__name__}:doubled_gradient",
                          left_out_of=frozenset({"compare", "table"}))
    with methods.registered(slow):
        assert "slow-gradient" in methods.names("evaluation")
        assert "slow-gradient" not in methods.names("compare")
        assert "slow gradient" not in evaluate.default_methods()
    assert "slow-gradient" not in methods.names()


def test_the_tables_cam_lrp_and_deeplift_rows_are_their_functions_with_the_table_settings():
    import functools

    model = tiny_cnn().double()
    x, y, masks = squares(3, seed=5, dtype=torch.float64)
    table, maps = evaluate.evaluate_methods(model, x, y, masks, steps=4, return_maps=True)
    rows = {row["method"]: row for row in table}
    assert list(rows) == list(evaluate.default_methods())
    # each row, again, from the function called by hand with the settings the registry gives
    by_hand = {
        "grad-cam++": attribution.gradcam_plus_plus,
        "layercam": attribution.layercam,
        "LRP": functools.partial(attribution.lrp, composite="epsilon-plus"),
        "DeepLIFT": functools.partial(attribution.deeplift, baseline="black"),
        "input x gradient": attribution.input_x_gradient,
    }
    direct, direct_maps = evaluate.evaluate_methods(model, x, y, masks, by_hand, steps=4, return_maps=True)
    for row in direct:
        assert row == rows[row["method"]], row["method"]
        assert torch.equal(direct_maps[row["method"]], maps[row["method"]])
    # the composite is really passed on: another one gives another map
    lrp_0 = evaluate.as_pixel_map(attribution.lrp(model, x, y, composite="lrp-0"))
    assert not torch.allclose(lrp_0, maps["LRP"])
    # identities on a global-average-pooling + linear network (lesson 05): at its last stage the
    # gradient is constant over space, so XGrad-CAM's and HiResCAM's maps are Grad-CAM's
    # (equal to round-off: a rank correlation may swap two nearly equal pixels, hence rel=1e-4)
    for name in ("xgrad-cam", "hirescam"):
        torch.testing.assert_close(maps[name], maps["grad-cam"], rtol=1e-9, atol=1e-12)
        assert {k: v for k, v in rows[name].items() if k != "method"} == pytest.approx(
            {k: v for k, v in rows["grad-cam"].items() if k != "method"}, rel=1e-4, nan_ok=True)


def test_cam_stays_out_of_the_table_because_it_refuses_a_head_without_global_pooling():
    flat_head = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                              nn.Linear(4 * 16 * 16, 3)).double()
    x, y, masks = squares(3, seed=5, dtype=torch.float64)
    with pytest.raises(ValueError, match="global average pooling"):
        attribution.cam(flat_head, x, y)
    table = evaluate.evaluate_methods(flat_head, x, y, masks, steps=2, randomisation=False)
    assert "cam" not in table.column("method") and "grad-cam" in table.column("method")
