"""gradviz_lab.explain: the recipes behind the dashboards, and the `gradviz explain` command."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image
from conftest import tiny_cnn
from torch import nn

from gradviz_lab import attribution, cli, explain, hooks, methods, viz
from gradviz_lab.widgets import recipes

CLASSES = ["zero", "one", "two"]


@pytest.fixture
def model():
    return tiny_cnn()


@pytest.fixture
def image():
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(5))


# ---------------------------------------------------------------- recipes == the functions
def test_each_recipe_is_the_attribution_function(model, image):
    x = image[None]
    c = 1
    expected = {
        "saliency": attribution.saliency(model, x, c, reduce="mean")[0, 0],
        "gradient": attribution.input_gradient(model, x, c)[0].abs().sum(0),
        "deconvnet": attribution.deconvnet(model, x, c)[0].abs().sum(0),
        "guided-backprop": attribution.guided_backprop(model, x, c)[0].abs().sum(0),
        "smoothgrad": attribution.smoothgrad(model, x, c, n_samples=4, sigma=0.2, seed=3)[0]
        .abs()
        .sum(0),
        "gradcam": attribution.gradcam(model, x, c, layer="conv2")[0, 0],
        "guided-gradcam": attribution.guided_gradcam(model, x, c, layer="conv2")[0].abs().sum(0),
        "occlusion": attribution.occlusion(model, x, c, window=6, stride=2, baseline=0.5)[0, 0],
        "integrated-gradients": attribution.integrated_gradients(
            model, x, c, baseline=0.5, steps=8
        )[0].sum(0),
        # issue 22's methods run as registered (``_registered``): the map's magnitude
        "lrp": attribution.lrp(model, x, c)[0].abs().sum(0),
        "input-x-gradient": attribution.input_x_gradient(model, x, c)[0].abs().sum(0),
        "deeplift": attribution.deeplift(model, x, c, baseline="black")[0].abs().sum(0),
    }
    knobs = {
        "saliency": {"reduce": "mean"},
        "smoothgrad": {"n_samples": 4, "sigma": 0.2, "seed": 3},
        "gradcam": {"layer": "conv2"},
        "guided-gradcam": {"layer": "conv2"},
        "occlusion": {"window": 6, "stride": 2, "baseline": "grey"},
        "integrated-gradients": {"steps": 8, "baseline": "grey"},
    }
    # the attention maps need a transformer: tests/test_vision_transformer.py checks their recipes
    transformer_only = {"attention", "attention-rollout", "gradient-rollout"}
    for method in set(methods.names()) - transformer_only:  # no recipe of its own: its function
        expected.setdefault(method, methods.get(method).load()(model, x, c)[0].abs().sum(0))
    assert set(expected) == set(recipes.METHODS) - transformer_only
    for method, reference in expected.items():
        result = recipes.explain(
            model, image, method, c, class_names=CLASSES, **knobs.get(method, {})
        )
        assert (result.method, result.target, result.target_name) == (method, 1, "one")
        ((title, got),) = result.maps.items()
        np.testing.assert_allclose(
            got, reference.detach().numpy(), rtol=1e-5, atol=1e-8, err_msg=method
        )
    assert hooks.count_hooks(model) == 0


def test_gradcam_is_overlaid_and_integrated_gradients_reports_completeness(model, image):
    cam = recipes.explain(model, image, "gradcam", 0)
    assert cam.overlay == set(cam.maps)
    ig = recipes.explain(model, image, "integrated-gradients", 0, steps=64)
    (ig_map,) = ig.maps.values()
    with torch.no_grad():
        gap = float(model(image[None])[0, 0] - model(torch.zeros(1, 3, 16, 16))[0, 0])
    # completeness up to the quadrature error, which the note reports as delta
    _, delta = attribution.integrated_gradients(model, image[None], 0, steps=64, return_delta=True)
    assert ig_map.sum() == pytest.approx(gap + float(delta[0]), rel=1e-4, abs=1e-7)
    assert abs(float(delta[0])) < 0.01 * abs(gap)
    assert "completeness" in ig.note and f"delta {float(delta[0]):+.2g}" in ig.note


def test_default_knobs_follow_the_image(model, image):
    occ = recipes.explain(model, image, "occlusion")
    assert list(occ.maps) == ["occlusion 4×4 /1"]  # window = side / 4, stride = window / 4
    cam = recipes.explain(model, image, "gradcam")
    assert list(cam.maps) == ["Grad-CAM relu2"]  # the last layer with spatial maps


def test_feature_response_is_the_gradient_of_a_channels_maximum(model, image):
    result = recipes.explain(model, image, "gradient", layer="conv2", channel=4)
    assert result.target is None and result.target_name == "conv2 channel 4"
    x = image[None].clone().requires_grad_(True)
    activation = model.conv2(model.pool(model.relu1(model.conv1(x))))  # the network up to conv2
    (grad,) = torch.autograd.grad(activation[0, 4].max(), x)
    np.testing.assert_allclose(
        result.maps["gradient"], grad[0].abs().sum(0).numpy(), rtol=1e-5, atol=1e-9
    )
    guided = recipes.explain(model, image, "guided-backprop", layer="conv2", channel=4)
    assert not np.allclose(guided.maps["guided backprop"], result.maps["gradient"])  # relu1 differs
    with pytest.raises(ValueError, match="channel 6 is out of range"):
        recipes.explain(model, image, "deconvnet", layer="conv2", channel=6)
    with pytest.raises(ValueError, match="Valid layer names"):
        recipes.explain(model, image, "deconvnet", layer="conv9", channel=0)
    assert hooks.count_hooks(model) == 0


# ---------------------------------------------------------------- targets, baselines, layers
def test_resolve_target(model, image):
    x = image[None]
    predicted = int(model(x).argmax())
    assert recipes.resolve_target(model, x, None, CLASSES) == predicted
    assert recipes.resolve_target(model, x, "two", CLASSES) == 2
    assert recipes.resolve_target(model, x, "1", CLASSES) == 1
    assert recipes.resolve_target(model, x, 0, None) == 0
    with pytest.raises(
        ValueError, match="unknown target class 'four'; classes are: zero, one, two"
    ):
        recipes.resolve_target(model, x, "four", CLASSES)
    with pytest.raises(ValueError, match=r"target class out of range: got \[3\], valid classes are 0..2"):
        recipes.resolve_target(model, x, 3, CLASSES)
    with pytest.raises(TypeError, match="target"):
        recipes.resolve_target(model, x, 1.5, CLASSES)


def test_baseline_images_by_hand():
    x = torch.tensor(
        [[[[0.0, 1.0], [1.0, 0.0]], [[0.2, 0.2], [0.2, 0.6]], [[1.0, 1.0], [1.0, 1.0]]]]
    )
    assert torch.equal(recipes.baseline_image(x, "black"), torch.zeros_like(x))
    assert torch.equal(recipes.baseline_image(x, "grey"), torch.full_like(x, 0.5))
    mean = recipes.baseline_image(x, "mean")
    assert torch.allclose(mean[0, :, 0, 0], torch.tensor([0.5, 0.3, 1.0])) and mean.shape == x.shape
    flat = torch.full((1, 3, 8, 8), 0.25)
    assert torch.allclose(recipes.baseline_image(flat, "blur"), flat)  # blurring a flat image
    with pytest.raises(ValueError, match="baseline must be one of"):
        recipes.baseline_image(x, "white")


def test_layer_lists(model, image):
    x = image[None]
    assert recipes.spatial_layers(model, x) == [
        ("conv1", 4),
        ("relu1", 4),
        ("pool", 4),
        ("conv2", 6),
        ("relu2", 6),
    ]
    assert recipes.conv_layers(model, x) == [("conv1", 4), ("conv2", 6)]
    assert recipes.default_layer(model, x) == "relu2"
    # pooling layers are skipped: Grad-CAM is read at the last conv stage
    pooled = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 2, 3),
            relu=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(4),
            flat=nn.Flatten(),
            fc=nn.Linear(32, 3),
        )
    )
    assert recipes.spatial_layers(pooled, x)[-1] == ("pool", 2)
    assert recipes.default_layer(pooled, x) == "relu"


@pytest.mark.parametrize(
    "call, error, words",
    [
        (dict(method="lime"), ValueError, "unknown method 'lime'"),
        (
            dict(method="smoothgrad", sigmaa=0.1),
            TypeError,
            "no knob sigmaa; its knobs are sigma, n_samples",
        ),
        (dict(method="saliency", image=torch.rand(1, 3, 16, 16)), ValueError, r"one \(C, H, W\)"),
        (dict(method="smoothgrad", sigma=-1.0), ValueError, "sigma"),
    ],
)
def test_explain_rejects_bad_input(model, image, call, error, words):
    call = {"image": image, **call}
    with pytest.raises(error, match=words):
        recipes.explain(model, call.pop("image"), call.pop("method"), **call)


def test_figure_panels(model, image):
    results = [
        recipes.explain(model, image, m, 2, class_names=CLASSES) for m in ("saliency", "gradcam")
    ]
    fig = recipes.explanation_figure(image, *results, alpha=0.3, colorbar=False)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["image", "saliency (max)", "Grad-CAM relu2"]
    assert fig.axes[0].get_ylabel() == "target: two"
    overlaid = fig.axes[2].images[0].get_array()  # Grad-CAM drawn over the image at alpha 0.3
    np.testing.assert_allclose(
        overlaid, viz.overlay(image, results[1].maps["Grad-CAM relu2"], 0.3), atol=1e-6
    )
    with pytest.raises(ValueError, match="at least one"):
        recipes.explanation_figure(image)


# ---------------------------------------------------------------- gradviz explain
@pytest.fixture
def tiny_gallery(monkeypatch):
    """`gradviz explain` on a tiny model: the shipped gallery replaced by three random images."""
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(9))
    shown = recipes.Gallery(tiny_cnn(), images, ["first", "second", "third"], CLASSES)
    monkeypatch.setattr(recipes, "gallery", lambda name, random_weights=False: shown)
    return shown


def test_cli_writes_a_png_at_the_requested_dpi(tiny_gallery, tmp_path, capsys):
    out = tmp_path / "slide.png"
    code = cli.main(
        [
            "explain",
            "shapes:1",
            "--method",
            "gradcam",
            "--target",
            "two",
            "--out",
            str(out),
            "--dpi",
            "50",
        ]
    )
    assert code == 0
    assert f"wrote {out} (gradcam, target two)" in capsys.readouterr().out
    figure = recipes.explanation_figure(
        tiny_gallery.images[1],
        recipes.explain(tiny_gallery.model, tiny_gallery.images[1], "gradcam", 2),
    )
    with Image.open(out) as png:
        width, height = figure.get_size_inches() * 50
        assert abs(png.size[0] - width) <= 1 and abs(png.size[1] - height) <= 1


def test_cli_knobs_reach_the_method(tiny_gallery, tmp_path):
    def run(*knobs: str) -> bytes:
        out = tmp_path / "figure.png"
        args = [
            "explain",
            "shapes:0",
            "--method",
            "smoothgrad",
            "--n-samples",
            "3",
            "--out",
            str(out),
            "--dpi",
            "30",
            "--force",  # the same file each time, on purpose
        ]
        assert cli.main(args + list(knobs)) == 0
        return out.read_bytes()

    assert run("--sigma", "0.1") == run("--sigma", "0.1")  # deterministic
    assert run("--sigma", "0.1") != run("--sigma", "0.4")
    assert run("--sigma", "0.1", "--seed", "1") != run("--sigma", "0.1", "--seed", "2")


def test_cli_reads_an_image_file_at_the_models_size(tiny_gallery, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(
        photo
    )
    out = tmp_path / "occ.png"
    assert (
        cli.main(
            [
                "explain",
                str(photo),
                "--method",
                "occlusion",
                "--window",
                "8",
                "--stride",
                "4",
                "--out",
                str(out),
                "--dpi",
                "30",
            ]
        )
        == 0
    )
    assert out.is_file() and "occlusion" in capsys.readouterr().out


def test_cli_lists_and_reports_errors(tiny_gallery, tmp_path, capsys):
    assert cli.main(["explain", "--list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "shapes:0  first",
        "shapes:1  second",
        "shapes:2  third",
    ]
    assert cli.main(["explain", "shapes:7", "--out", str(tmp_path / "x.png")]) == 2
    assert "shapes has 3 examples: 0 to 2" in capsys.readouterr().err
    assert (
        cli.main(["explain", "shapes:0", "--target", "seven", "--out", str(tmp_path / "x.png")])
        == 2
    )
    assert "unknown target class 'seven'" in capsys.readouterr().err
    assert cli.main(["explain", "digits:0", "--out", str(tmp_path / "x.png")]) == 2
    assert "--model is shapes" in capsys.readouterr().err
    assert cli.main(["explain", "shapes:0", "--out", str(tmp_path / "x.jpg")]) == 2
    assert ".png" in capsys.readouterr().err
    assert cli.main(["explain"]) == 2
    assert "which image" in capsys.readouterr().err


def test_explain_module_imports_no_torch():
    # `gradviz --help` imports every subcommand's module to build its parser: keep it light.
    code = (
        "import sys, gradviz_lab.explain; "
        "print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


def test_cli_choices_match_the_modules_that_define_them():
    # explain.py repeats these names so that `gradviz --help` imports no torch
    from gradviz_lab import data, models

    assert explain.LAB_MODELS == tuple(models.LAB_MODELS) == recipes.LAB_MODELS
    assert explain.IMAGENET_MODELS == tuple(models.IMAGENET_MODELS) == recipes.IMAGENET_MODELS
    assert explain.METHOD_NAMES == tuple(recipes.METHODS)
    assert explain.BASELINES == recipes.BASELINES
    assert explain.PHOTOS == tuple(data.PHOTOS)
    # every knob of every method is an option of the command
    parser = cli.build_parser("explain")  # the parser as `gradviz explain ...` builds it
    options = {a.dest for a in parser._subparsers._group_actions[0].choices["explain"]._actions}
    assert {k for knobs in recipes.METHODS.values() for k in knobs} <= options


def test_shipped_galleries():
    from gradviz_lab import data, models

    if not models.lab_weights_path("shapes").is_file():
        pytest.skip("lab weights not trained yet")
    shapes = recipes.gallery("shapes")
    assert shapes.images.shape == (8, 3, 64, 64) and shapes.class_names == list(data.SHAPE_CLASSES)
    assert shapes.image_names[:5] == list(data.SHAPE_CLASSES)  # one per class, then pairs
    assert all(" + " in n for n in shapes.image_names[5:])
    with pytest.raises(ValueError, match="unknown gallery"):
        recipes.gallery("cifar")


def test_explain_refuses_what_it_would_otherwise_silently_ignore():
    shapes = recipes.gallery("shapes")
    image = shapes.images[0]
    with pytest.raises(ValueError, match="target and layer exclude each other"):
        recipes.explain(shapes.model, image, "gradient", target="star", layer="features.0")
    with pytest.raises(ValueError, match=r"window\[0\] must be >= 1, got 0"):
        recipes.explain(shapes.model, image, "occlusion", window=0)
    with pytest.raises(ValueError, match=r"stride\[0\] must be >= 1, got 0"):
        recipes.explain(shapes.model, image, "occlusion", stride=0)


def test_default_grad_cam_layer_works_on_resnets_and_matches_the_attribution_default():
    """A ResNet block's relu runs twice per pass: the default must be a layer that runs once."""
    resnet = recipes.gallery("resnet18", random_weights=True)
    x = resnet.images[:1]
    assert recipes.default_layer(resnet.model, x) == attribution.default_cam_layer(resnet.model, x) == "net.layer4.1"
    result = recipes.explain(resnet.model, resnet.images[0], "gradcam")
    assert list(result.maps) == ["Grad-CAM net.layer4.1"]
    names = [name for name, _ in recipes.spatial_layers(resnet.model, x)]
    assert len(names) == len(set(names)) and not any(n.endswith(".relu") for n in names if "layer" in n)


def test_shapes_defaults_are_the_same_in_the_cli_and_the_dashboards(tmp_path, monkeypatch):
    """gradviz explain on a shapes image uses the shapes models' defaults, as their dashboards;
    an option given on the command line still wins."""
    from gradviz_lab.widgets import integrated_gradients_dashboard, occlusion_dashboard, smoothgrad_dashboard

    seen = []
    real_explain = recipes.explain

    def spy(model, image, method, target=None, **knobs):
        seen.append(knobs)
        return real_explain(model, image, method, target, **knobs)

    monkeypatch.setattr(recipes, "explain", spy)
    out = str(tmp_path / "figure.png")
    assert cli.main(["explain", "shapes:0", "--method", "smoothgrad", "--n-samples", "2", "--out", out]) == 0
    out = [out, "--force"]  # the same file again, on purpose
    assert cli.main(["explain", "shapes:0", "--method", "occlusion", "--out", *out]) == 0
    assert cli.main(["explain", "shapes:0", "--method", "smoothgrad", "--sigma", "0.3", "--out", *out]) == 0
    assert cli.main(["explain", "digits:0", "--model", "digits", "--method", "smoothgrad", "--out", *out]) == 0
    assert cli.main(["explain", "shapes:0", "--method", "integrated-gradients", "--steps", "4", "--out", *out]) == 0
    assert seen[0]["sigma"] == smoothgrad_dashboard().controls["sigma"].value == 0.05
    assert seen[1]["baseline"] == occlusion_dashboard().controls["baseline"].value == "mean"
    assert seen[2]["sigma"] == 0.3 and "sigma" not in seen[3]  # digits: the general default
    assert seen[4]["baseline"] == integrated_gradients_dashboard().controls["baseline"].value == "blur"
