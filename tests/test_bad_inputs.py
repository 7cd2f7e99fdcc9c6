"""Every public function against the kinds of bad input a course meets: one table, one test.

Each row of ``bad_input_cases()`` is a call that must either raise a *clear* error (the expected
type, and a message naming the problem: a regular expression it must contain) or return the
right result. The kinds: non-finite weights, inputs and targets; a model that returns a tuple or
a dict, or that writes into its input (its maps must be those of the same network written out
of place, and the caller's x must not change); an image too small (or of another size) for the network;
empty images; targets that are empty, text, huge, on the meta device; the meta device itself;
wrong types for every knob (a truthy string for a flag, text for a number); sizes that would
allocate without bound; files that exist, folders that do not.

``benchmarks/sweep_bad_inputs.py`` runs the same table against any version of the package and
counts clear / unclear / silent answers. The memory guard at the end runs the resource cases in
a subprocess whose memory is capped, so an unbounded allocation fails the test, not the machine.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from conftest import EVERY_METHOD, images, small_cnn

from gradviz_lab import attribution, cli, data, diagnostics, evaluate, featureviz, models, viz

ROOT = Path(__file__).resolve().parents[1]


# --- the networks and images the cases use ----------------------------------------------------


def cnn() -> nn.Sequential:
    """test_core_nets' small CNN (conv1 relu1 pool conv2 relu2 gap flat fc, 5 classes), its
    ReLUs out of place: a leading in-place operation is added only where a case asks for one."""
    return small_cnn(inplace=False)


class Returns(nn.Module):
    """The small CNN, its logits handed back inside a tuple, a dict, ... (``wrap(logits)``)."""

    def __init__(self, wrap: Callable[[torch.Tensor], object]) -> None:
        super().__init__()
        self.net, self.wrap = cnn(), wrap

    def forward(self, x: torch.Tensor) -> object:
        return self.wrap(self.net(x))


class DoublesInPlace(nn.Module):
    """First operation: x.mul_(2), on the caller's tensor if it is handed over."""

    def __init__(self, in_place: bool = True) -> None:
        super().__init__()
        self.net, self.in_place = cnn(), in_place

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.mul_(2) if self.in_place else x * 2)


def leading_relu(in_place: bool) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(inplace=in_place), cnn())


def with_nan_weight() -> nn.Sequential:
    model = cnn()
    with torch.no_grad():
        model.conv2.weight[0, 0, 0, 0] = float("nan")  # a diverged training run
    return model


def overflowing_gradient() -> nn.Sequential:
    """Finite output on tiny (1, 3, 8, 8) images, but d output / d x sums nine weights of 3e38
    each: the gradient map overflows float32 while the model's output does not."""
    conv, linear = nn.Conv2d(3, 1, 3, padding=1, bias=False), nn.Linear(64, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(3e38)
        linear.weight.fill_(1.0)
    return nn.Sequential(conv, nn.Flatten(), linear).eval()


MODEL = cnn()
X = images(2)
META_MODEL = cnn().to("meta")
NAN_TARGET = lambda output: output[:, 0] * float("nan")  # noqa: E731  (a target callable)

# The twelve map methods: conftest's registry of every attribution method (its layers are found
# on the model at hand: the cases use other models than the small CNN), and the two layer
# finders, which take no target.
METHODS: dict[str, Callable] = {
    **EVERY_METHOD,
    "default_cam_layer": lambda m, x, t=None: attribution.default_cam_layer(m, x),
    "cam_layers": lambda m, x, t=None: attribution.cam_layers(m, x),
}
TAKES_TARGET = [n for n in METHODS if n not in ("default_cam_layer", "cam_layers")]
MAP_METHODS = [n for n in TAKES_TARGET]  # return a map (layer_gradients: its gradients)


# --- the table ---------------------------------------------------------------------------------


@dataclass
class Case:
    """A call and what it must do: raise ``error`` with a message matching ``words`` (a
    regular expression, case-insensitive), or, with error None, return a result ``check``
    accepts. ``resource``: a case that would allocate without bound if unguarded."""

    name: str
    call: Callable[[], object]
    error: type[BaseException] | None
    words: str = ""
    check: Callable[[object], bool] | None = None
    resource: bool = False


def _existing_png(folder: Path) -> Path:
    """A PNG someone made (written when a case runs: building the table touches no file)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "existing.png"
    path.write_bytes(b"someone's slide")
    return path


def _figure() -> Figure:
    return viz.show_grid(X[0], {"map": X[0, 0]}, colorbar=False)


def _weights_file(folder: Path, content: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "digits.pt").write_bytes(content)
    return folder


def _cli(*args: str) -> int:
    return cli.main(list(args))


def attribution_cases() -> list[Case]:
    cases = []
    for name, method in METHODS.items():
        cases += [
            Case(f"{name}: a nan weight", lambda m=method: m(with_nan_weight(), X),
                 ValueError, r"output is not finite.*weights are not finite \(nan or inf in conv2\.weight"),
            Case(f"{name}: the model returns a tuple", lambda m=method: m(Returns(lambda y: (y, 0)), X),
                 TypeError, r"returned a tuple.*self\.model\(x\)\[0\]"),
            Case(f"{name}: the model returns a dict",
                 lambda m=method: m(Returns(lambda y: {"logits": y}), X),
                 TypeError, r"returned a dict.*\['logits'\]"),
            Case(f"{name}: image too small for the network",
                 lambda m=method: m(models.load_lab_model("shapes"), torch.rand(1, 3, 1, 1)),
                 ValueError, r"at least 4x4 pixels|window .* larger than the image"),
            Case(f"{name}: a Linear head given another image size",
                 lambda m=method: m(models.load_lab_model("digits"), torch.rand(1, 1, 32, 32)),
                 ValueError, r"layer 'classifier\.1'.*\(1, 2048\).*size the model was built for"),
            Case(f"{name}: H = W = 0", lambda m=method: m(MODEL, torch.rand(1, 3, 0, 0)),
                 ValueError, r"no pixels"),
            Case(f"{name}: the model is on the meta device", lambda m=method: m(META_MODEL, X),
                 ValueError, r"meta device.*no values"),
            Case(f"{name}: x on the meta device", lambda m=method: m(nn.Flatten(), X.to("meta")),
                 ValueError, r"meta device"),
            Case(f"{name}: an input that overflows inside the model",
                 lambda m=method: m(models.load_lab_model("shapes"), torch.rand(1, 3, 64, 64) * 1e38),
                 ValueError, r"output is not finite.*overflowed"),
        ]
    for name in TAKES_TARGET:
        method = METHODS[name]
        cases += [
            Case(f"{name}: a target callable returning nan", lambda m=method: m(MODEL, X, NAN_TARGET),
                 ValueError, r"target score is not finite"),
            Case(f"{name}: target=[]", lambda m=method: m(MODEL, X, []), ValueError, r"target.*empty"),
            Case(f"{name}: target=''", lambda m=method: m(MODEL, X, ""), TypeError, r"target.*class name.*class index"),
            Case(f"{name}: target=2**70", lambda m=method: m(MODEL, X, 2**70), ValueError, r"target class out of range"),
            Case(f"{name}: a target tensor on the meta device",
                 lambda m=method: m(MODEL, X, torch.tensor([0, 1], device="meta")), ValueError, r"target.*meta"),
            Case(f"{name}: a target of the wrong type", lambda m=method: m(MODEL, X, 1.5), TypeError, r"target must be"),
        ]
    overflow = overflowing_gradient()
    tiny = images(1) * 1e-30
    cases += [
        Case("input_gradient: the gradient overflows", lambda: attribution.input_gradient(overflow, tiny),
             ValueError, r"gradient map overflowed"),
        Case("saliency: the gradient overflows", lambda: attribution.saliency(overflow, tiny), ValueError, r"map overflowed"),
        Case("integrated_gradients: the gradient overflows",
             lambda: attribution.integrated_gradients(overflow, tiny, steps=2), ValueError, r"map overflowed"),
        Case("occlusion(per_position='yes')", lambda: attribution.occlusion(MODEL, X, per_position="yes"),
             TypeError, r"per_position must be True or False"),
        Case("gradcam(upsample='no')", lambda: attribution.gradcam(MODEL, X, upsample="no"), TypeError, r"upsample"),
        Case("integrated_gradients(return_delta=1)", lambda: attribution.integrated_gradients(MODEL, X, return_delta=1),
             TypeError, r"return_delta"),
        Case("integrated_gradients: a million Gauss-Legendre steps",
             lambda: attribution.integrated_gradients(MODEL, X, steps=10**6), ValueError, r"steps must be <= 1,024.*trapezoid",
             resource=True),
        Case("integrated_gradients: 10**9 riemann steps",
             lambda: attribution.integrated_gradients(MODEL, X, steps=10**9, rule="riemann"), ValueError, r"steps must be <=",
             resource=True),
        Case("occlusion: batch_size=10**12 on a large image",
             lambda: attribution.occlusion(MODEL, images(1, size=512), window=8, stride=1, batch_size=10**12),
             ValueError, r"batch_size=1000000000000 would hold .* use batch_size <=", resource=True),
        Case("smoothgrad: batch_size=10**12 with many noisy copies",
             lambda: attribution.smoothgrad(MODEL, images(1, size=512), n_samples=10**5, batch_size=10**12),
             ValueError, r"noisy copies.*use batch_size <=", resource=True),
        Case("integrated_gradients: batch_size=10**12 on a large image",
             lambda: attribution.integrated_gradients(MODEL, images(2, size=512), steps=1000, batch_size=10**12),
             ValueError, r"path points.*use batch_size <=", resource=True),
        Case("smoothgrad(variant=['mean'])",
             lambda: attribution.smoothgrad(MODEL, X, variant=["mean"]), ValueError, r"variant must be one of"),
        Case("smoothgrad(target=0) of a nan model: the noisy copies' images are named",
             lambda: attribution.smoothgrad(with_nan_weight(), X, 0, n_samples=2),
             ValueError, r"output is not finite .* for noisy copies of image\(s\) \[0, 1\]"),
        Case("integrated_gradients(target=0) of a nan model: the path points' images are named",
             lambda: attribution.integrated_gradients(with_nan_weight(), X, 0, steps=2),
             ValueError, r"output is not finite .* for path points of image\(s\) \[0, 1\]"),
        Case("occlusion(batch_size=10**12) on a small image: the work is one batch, the same map",
             lambda: (attribution.occlusion(MODEL, X, 0, window=4, stride=2, batch_size=10**12),
                      attribution.occlusion(MODEL, X, 0, window=4, stride=2, batch_size=3)),
             None, check=lambda maps: torch.allclose(*maps, atol=1e-6)),
        Case("max_response of a tuple", lambda: attribution.max_response((X,)), TypeError, r"output tensor"),
    ]
    return cases


def viz_cases(tmp: Path) -> list[Case]:
    return [
        Case("to_rgb: a uint8 tensor is an image (as a uint8 array is)",
             lambda: viz.to_rgb(torch.full((3, 2, 2), 255, dtype=torch.uint8)), None,
             check=lambda rgb: rgb.shape == (2, 2, 3) and bool(np.all(rgb == 1.0))),
        Case("show_grid(panel_inches=0)", lambda: viz.show_grid(X[0], {"m": X[0, 0]}, panel_inches=0),
             ValueError, r"panel_inches must be positive"),
        Case("show_grid(font_size=-1)", lambda: viz.show_grid(X[0], {"m": X[0, 0]}, font_size=-1),
             ValueError, r"font_size must be positive"),
        Case("show_grid(alpha='high')", lambda: viz.show_grid(X[0], {"m": X[0, 0]}, alpha="high"),
             TypeError, r"alpha.* must be a number"),
        Case("overlay(alpha='high')", lambda: viz.overlay(X[0], X[0, 0], alpha="high"),
             TypeError, r"alpha must be a number"),
        Case("overlay(alpha=nan)", lambda: viz.overlay(X[0], X[0, 0], alpha=float("nan")),
             ValueError, r"alpha must be finite"),
        Case("to_2d of a complex tensor", lambda: viz.to_2d(torch.zeros(1, 3, 4, 4, dtype=torch.complex64)),
             TypeError, r"real numbers"),
        Case("normalize of a nan map", lambda: viz.normalize(torch.full((4, 4), float("nan"))),
             ValueError, r"non-finite"),
        Case("figure_to_png(dpi=inf)", lambda: viz.figure_to_png(_figure(), dpi=float("inf")),
             ValueError, r"dpi must be finite"),
        Case("figure_to_png(dpi=3000)", lambda: viz.figure_to_png(_figure(), dpi=3000),
             ValueError, r"pixels, more than the kit's .* use dpi <=", resource=True),
        Case("figure_to_png of a 1000-inch figure",
             lambda: viz.figure_to_png(viz.show_grid(X[0], {"m": X[0, 0]}, panel_inches=1000)),
             ValueError, r"use dpi <=", resource=True),
        Case("save_png over an existing file", lambda: viz.save_png(_figure(), _existing_png(tmp), dpi=10),
             FileExistsError, r"exists; pass overwrite=True"),
        Case("save_png into a file's 'folder'", lambda: viz.save_png(_figure(), _existing_png(tmp) / "x.png", dpi=10),
             ValueError, r"does not exist \(or is not a folder\)"),
        Case("save_png(overwrite='yes')", lambda: viz.save_png(_figure(), tmp / "new.png", overwrite="yes"),
             TypeError, r"overwrite must be True or False"),
    ]


def evaluate_cases(tmp: Path) -> list[Case]:
    big_map, big_masks = torch.rand(1, 1, 64, 64), torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    big_masks[0, 0, 30, 30] = True
    masks = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    masks[:, :, 2:5, 2:5] = True
    labels = torch.tensor([0, 1])
    return [
        Case("pointing_game(tolerance=30000): a disc larger than the image is the image",
             lambda: evaluate.pointing_game(big_map, big_masks, tolerance=30000), None,
             check=lambda hits: hits.tolist() == [1.0], resource=True),
        Case("pointing_game(tolerance='far')", lambda: evaluate.pointing_game(big_map, big_masks, "far"),
             TypeError, r"tolerance must be a number"),
        Case("completeness_gap of nan attributions",
             lambda: evaluate.completeness_gap(MODEL, X, torch.full((2, 3, 8, 8), float("nan"))),
             ValueError, r"attributions contains non-finite"),
        Case("completeness_gap(relative='yes')",
             lambda: evaluate.completeness_gap(MODEL, X, torch.zeros(2, 3, 8, 8), relative="yes"),
             TypeError, r"relative must be True or False"),
        Case("completeness_gap with a nan weight",
             lambda: evaluate.completeness_gap(with_nan_weight(), X, torch.zeros(2, 3, 8, 8)),
             ValueError, r"output is not finite"),
        Case("ssim of complex maps", lambda: evaluate.ssim(torch.ones(1, 16, 16) * 1j, torch.ones(1, 16, 16) * 1j),
             TypeError, r"real numbers"),
        Case("spearman of complex maps", lambda: evaluate.spearman(torch.ones(1, 4) * 1j, torch.ones(1, 4) * 1j),
             TypeError, r"real numbers"),
        Case("randomisation_test: a method returning (B,)",
             lambda: evaluate.randomisation_test(MODEL, X, lambda m, x, t: torch.ones(len(x))),
             TypeError, r"one map per image.*shape \(2,\)"),
        Case("randomisation_test: a method returning NumPy",
             lambda: evaluate.randomisation_test(MODEL, X, lambda m, x, t: np.ones((2, 8, 8))),
             TypeError, r"one map per image.*ndarray"),
        Case("randomisation_test(cascading='no')",
             lambda: evaluate.randomisation_test(MODEL, X, attribution.saliency, cascading="no"),
             TypeError, r"cascading must be True or False"),
        Case("Table rows that are not dicts", lambda: evaluate.Table([1, 2]), TypeError, r"row 0 is int"),
        Case("Table of a dict", lambda: evaluate.Table({"a": 1}), TypeError, r"list of dicts"),
        Case("Table(precision=-1)", lambda: evaluate.Table([{"a": 1.0}], precision=-1), ValueError, r"precision"),
        Case("deletion_curve: batch_size=10**12 on a large image",
             lambda: evaluate.deletion_curve(MODEL, images(1, size=512), torch.rand(1, 1, 512, 512),
                                             steps=10**6, batch_size=10**12),
             ValueError, r"perturbed copies.*use batch_size <=", resource=True),
        Case("deletion_curve with a nan weight",
             lambda: evaluate.deletion_curve(with_nan_weight(), X, torch.rand(2, 1, 8, 8), steps=2),
             ValueError, r"output is not finite"),
        Case("accuracy of a model returning a tuple",
             lambda: evaluate.accuracy(Returns(lambda y: (y,)), X, labels), TypeError, r"returned a tuple"),
        Case("predictions of a nan model", lambda: evaluate.predictions(with_nan_weight(), X),
             ValueError, r"output is not finite"),
        Case("evaluate_methods(randomisation='no')",
             lambda: evaluate.evaluate_methods(MODEL, X, labels, masks, randomisation="no"),
             TypeError, r"randomisation must be True or False"),
        Case("energy_pointing_game of a nan map",
             lambda: evaluate.energy_pointing_game(torch.full((2, 1, 8, 8), float("nan")), masks),
             ValueError, r"non-finite"),
        Case("impute with float 'known'", lambda: evaluate.impute(X, torch.ones(2, 8, 8)), TypeError, r"bool"),
        Case("randomised_copy(cascading='yes')", lambda: evaluate.randomised_copy(MODEL, 1, cascading="yes"),
             TypeError, r"cascading must be True or False"),
        Case("with_tag of a float region", lambda: evaluate.with_tag(X, torch.ones(8, 8)), TypeError, r"bool"),
    ]


def data_model_cases(tmp: Path) -> list[Case]:
    photo = data.photo_path("cat")
    empty, truncated = tmp / "empty", tmp / "truncated"
    weights = models.lab_weights_path("digits")
    return [
        Case("load_image(size=100000)", lambda: data.load_image(photo, size=100000),
             ValueError, r"size=100000 would make a .*max_pixels", resource=True),
        Case("load_image(size=(200000, 200000))", lambda: data.load_image(photo, size=(200000, 200000)),
             ValueError, r"max_pixels", resource=True),
        Case("make_shapes(tag_prob='high')", lambda: data.make_shapes(2, 0, tag_prob="high"),
             TypeError, r"tag_prob must be a number"),
        Case("tag_mask(size=2)", lambda: data.tag_mask(2), ValueError, r"size must be >="),
        Case("load_photo('dog')", lambda: data.load_photo("dog"), ValueError, r"unknown photo 'dog'"),
        Case("build_lab_model(['shapes'])", lambda: models.build_lab_model(["shapes"]),
             TypeError, r"name must be a string"),
        Case("load_lab_model(device='gpu')", lambda: models.load_lab_model("digits", device="gpu"),
             ValueError, r"device 'gpu' is not a torch device"),
        Case("load_lab_model of an empty weights file",
             lambda: models.load_lab_model("digits", weights_dir=_weights_file(empty, b"")),
             ValueError, r"empty/digits\.pt could not be read.*empty or truncated"),
        Case("load_lab_model of a truncated weights file",
             lambda: models.load_lab_model("digits", weights_dir=_weights_file(truncated, weights.read_bytes()[:1000])),
             ValueError, r"truncated/digits\.pt could not be read.*empty or truncated"),
        Case("imagenet_preprocess(crop=-5)", lambda: models.imagenet_preprocess(X[0], crop=-5),
             ValueError, r"crop must be >= 1"),
        Case("imagenet_preprocess(resize=100000)", lambda: models.imagenet_preprocess(X[0], resize=100000),
             ValueError, r"resize=100000 makes .* smaller resize", resource=True),
        Case("imagenet_preprocess(resize='big')", lambda: models.imagenet_preprocess(X[0], resize="big"),
             TypeError, r"resize must be an int"),
    ]


def featureviz_diagnostics_cases() -> list[Case]:
    return [
        Case("class_visualisation of a nan model",
             lambda: featureviz.class_visualisation(with_nan_weight(), 0, (3, 8, 8), steps=1),
             ValueError, r"output is not finite"),
        Case("class_visualisation of a huge image_shape",
             lambda: featureviz.class_visualisation(MODEL, 0, (3, 100000, 100000), steps=1),
             ValueError, r"image_shape .* more than", resource=True),
        Case("top_activating_patches: a model returning a tuple",
             lambda: featureviz.top_activating_patches(Returns(lambda y: (y,)), X, "net.conv2", k=1),
             TypeError, r"returned a tuple"),
        Case("receptive_field: image too small",
             lambda: featureviz.receptive_field(models.load_lab_model("shapes"), "features.9", (3, 1, 1)),
             ValueError, r"at least 4x4 pixels"),
        Case("deep_mlp(kind=['relu'])", lambda: diagnostics.deep_mlp(["relu"]), ValueError, r"kind must be one of"),
        Case("saliency_pictures of a nan model", lambda: diagnostics.saliency_pictures(with_nan_weight(), X),
             ValueError, r"output is not finite"),
    ]


def cli_cases(tmp: Path) -> list[Case]:
    out = str(tmp / "new.png")

    def explain(*args: str) -> Callable[[], int]:
        def call() -> int:
            _existing_png(tmp)
            return _cli("explain", "shapes:0", *args)

        return call

    said = r"gradviz explain: error: .*"
    return [
        Case("explain --out existing.png", explain("--out", str(tmp / "existing.png"), "--method", "saliency"),
             SystemExit, said + r".*existing\.png exists; pass --force"),
        Case("explain --steps with saliency", explain("--method", "saliency", "--steps", "3", "--out", out),
             SystemExit, said + r"--steps is not a knob of saliency"),
        Case("explain --layer with saliency", explain("--method", "saliency", "--layer", "features.0", "--out", out),
             SystemExit, said + r"--layer is not a knob of saliency"),
        Case("explain --alpha without an overlay", explain("--method", "saliency", "--alpha", "0.3", "--out", out),
             SystemExit, said + r"--alpha .* saliency draws no overlay"),
        Case("explain --channel without --layer", explain("--method", "gradient", "--channel", "2", "--out", out),
             SystemExit, said + r"--channel needs --layer"),
        Case("explain --out /dev/full/x.png", explain("--method", "saliency", "--out", "/dev/full/x.png"),
             SystemExit, said + r"folder '/dev/full' does not exist \(or is not a folder\)"),
        Case("explain --dpi inf", explain("--method", "saliency", "--dpi", "inf", "--out", out),
             SystemExit, said + r"--dpi must be a positive number"),
        Case("explain --dpi 3000", explain("--method", "saliency", "--dpi", "3000", "--out", out),
             SystemExit, said + r"use dpi <=", resource=True),
        Case("explain --dpi 20000", explain("--method", "saliency", "--dpi", "20000", "--out", out),
             SystemExit, said + r"use dpi <=", resource=True),
        Case("explain --target ²", explain("--method", "saliency", "--target", "²", "--out", out),
             SystemExit, said + r"unknown target class '²'"),
        Case("explain shapes:²", lambda: _cli("explain", "shapes:²", "--out", out),
             SystemExit, said + r"no image file at 'shapes:²'"),
    ]


def in_place_twin(name: str, in_place: bool) -> tuple[bool, float]:
    """(the caller's x unchanged?, largest difference from the map of the same network written
    out of place) for a network whose first operation writes into its input: ``x.mul_(2)``
    (in_place) or a leading ``ReLU(inplace=True)``. The twins have the same weights (seed 0)."""
    if in_place:
        writer, twin = DoublesInPlace(in_place=True), DoublesInPlace(in_place=False)
    else:
        writer, twin = leading_relu(True), leading_relu(False)
    x = X - 0.5  # negative values: a leading ReLU changes them
    kept = x.clone()
    got, expected = METHODS[name](writer, x), METHODS[name](twin, x.clone())
    if not isinstance(got, torch.Tensor):  # a layer name, a list of names
        return torch.equal(x, kept), 0.0 if got == expected else float("inf")
    return torch.equal(x, kept), float((got - expected).abs().max())


def in_place_cases() -> list[Case]:
    return [
        Case(f"{name}: a network whose first operation is {what}",
             lambda name=name, mul=mul: in_place_twin(name, mul), None,
             check=lambda result: result == (True, 0.0))
        if not (mul and name.startswith("lrp")) else
        # LRP has rules for modules only: x * 2 between them is refused, named (issue 22)
        Case(f"{name}: a network whose first operation is {what}",
             lambda name=name: in_place_twin(name, True), ValueError,
             "cannot pass relevance through the operation MulBackward0 just before layer "
             "'net.conv1'")
        for name in METHODS
        for what, mul in (("x.mul_(2)", True), ("ReLU(inplace=True)", False))
    ]


def bad_input_cases(tmp: Path) -> list[Case]:
    """Every case, with files made in the folder ``tmp`` when they run."""
    return (attribution_cases() + in_place_cases() + viz_cases(tmp) + evaluate_cases(tmp)
            + data_model_cases(tmp) + featureviz_diagnostics_cases() + cli_cases(tmp))


# --- running a case ----------------------------------------------------------------------------


def outcome(case: Case) -> tuple[str, str]:
    """("clear" | "unclear" | "silent", what happened). A command line case "raises" SystemExit
    when it returns status 2 with its one-line message on stderr."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            result = case.call()
    except Exception as error:  # noqa: BLE001  (judged below)
        said = f"{type(error).__name__}: {error}"
        if case.error is None:
            return "unclear", said
        good = isinstance(error, case.error) and re.search(case.words, str(error), re.I | re.S)
        return ("clear" if good else "unclear"), said
    if case.error is SystemExit:
        said = stderr.getvalue().strip()
        if result == 2 and re.search(case.words, said, re.I | re.S):
            return "clear", said
        return ("unclear" if result == 2 else "silent"), f"exit {result}: {said}"
    if case.error is not None:
        return "silent", f"returned {type(result).__name__}"
    ok = bool(case.check(result))
    return ("clear" if ok else "silent"), f"returned {'the right' if ok else 'a wrong'} result: {str(result)[:100]}"


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> dict[str, Case]:
    cases = bad_input_cases(tmp_path_factory.mktemp("bad_inputs"))
    return {case.name: case for case in cases}


NAMES = [case.name for case in bad_input_cases(Path("not-made"))]  # builds no file


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_gets_a_clear_error_or_the_right_result(table, name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the command line writes explanation.png by default
    case = table[name]
    verdict, said = outcome(case)
    assert verdict == "clear", f"{case.name}: {verdict}: {said}"


def test_every_public_function_family_is_in_the_table():
    families = {name.split(":")[0].split("(")[0].split(" ")[0] for name in NAMES}
    for expected in ("input_gradient", "saliency", "smoothgrad", "integrated_gradients", "occlusion",
                     "deconvnet", "guided_backprop", "gradcam", "guided_gradcam", "layer_gradients",
                     "default_cam_layer", "cam_layers", "to_rgb", "show_grid", "overlay",
                     "figure_to_png", "save_png", "pointing_game", "completeness_gap", "ssim",
                     "randomisation_test", "Table", "deletion_curve", "load_image", "make_shapes",
                     "build_lab_model", "load_lab_model", "imagenet_preprocess",
                     "class_visualisation", "top_activating_patches", "deep_mlp", "explain"):
        assert expected in families, expected


# --- the memory guard ----------------------------------------------------------------------------

GUARD = textwrap.dedent(
    """
    import resource, sys, tempfile
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import test_bad_inputs as t

    def data_bytes():
        pages = int(open("/proc/self/statm").read().split()[5])  # data + stack, in pages
        return pages * resource.getpagesize()

    folder = Path(tempfile.mkdtemp())
    cases = [c for c in t.bad_input_cases(folder) if c.resource]
    t.outcome(t.bad_input_cases(folder)[0])  # warm up: torch's first kernels allocate too
    limit = data_bytes() + {extra}
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    if {control}:
        try:
            bytearray(3 * 2**30)
            print("NO LIMIT")
        except MemoryError:
            print("LIMITED")
        sys.exit(0)
    for case in cases:
        verdict, said = t.outcome(case)
        print(f"{{verdict}}\\t{{case.name}}\\t{{said[:200]}}")
    """
)


def guarded_run(control: bool, package_root: Path = ROOT) -> subprocess.CompletedProcess:
    """The resource cases (or, with control, a 3 GB allocation) in a subprocess whose memory is
    capped 2 GB above what it holds once warm; gradviz_lab imported from ``package_root``."""
    script = GUARD.format(tests=str(ROOT / "tests"), extra=2 * 2**30, control=control)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONPATH": str(package_root)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=package_root, timeout=600)


def test_the_memory_guard_holds_an_allocation_of_3_gb():
    """The control: under the guard's limit, allocating 3 GB fails at once (so the guard can
    make the resource cases fail instead of the machine)."""
    run = guarded_run(control=True)
    assert run.stdout.strip() == "LIMITED", run.stdout + run.stderr


def test_no_resource_case_allocates_more_than_2_gb():
    """The resource cases (sizes that would allocate without bound: a disc of 30,000 px, a PNG
    at 20,000 dpi, an image resized to 100,000 px, 10**12 occluded copies at once, ...) run in a
    subprocess whose memory is capped at what it holds after importing torch and warming up,
    plus 2 GB; each must still give its clear error or right result.

    Why RLIMIT_DATA and not RLIMIT_AS: importing torch maps ~3 GB of address space (its shared
    libraries, CUDA's included where installed) that is never allocated memory, and the figure
    varies by build; RLIMIT_DATA (Linux >= 4.7) counts the private writable memory that numpy,
    torch and matplotlib really allocate, so "baseline + 2 GB" means 2 GB of new allocations.
    An allocation beyond it raises MemoryError (or torch's "can't allocate memory"), which the
    case reports as unclear: the test fails, the machine does not.
    """
    run = guarded_run(control=False)
    lines = [line.split("\t") for line in run.stdout.strip().splitlines()]
    assert run.returncode == 0 and lines, run.stdout + run.stderr
    wrong = [line for line in lines if line[0] != "clear"]
    assert not wrong, wrong
    assert len(lines) == sum(case.resource for case in bad_input_cases(Path("not-made")))
