"""Running one method on one image, with the knobs of its dashboard: ``explain``.

    e = explain(model, image, "gradcam", target="square")   # an Explanation: titled (H, W) maps
    e.maps, e.target, e.target_name, e.note

The method comes from the registry (``gradviz_lab.methods``); each has a recipe here that runs its
function and names its panel (with the knob values that made it). A method without a recipe of
its own runs as ``function(model, x, class, **knobs)``, titled with its registry title.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import attribution, hooks, methods, targets
from .._checks import resolve_layer
from .._forward import run_model
from ..attribution.baselines import make_baseline
from ..methods import BASELINES
from ..viz import to_2d

@dataclass
class Explanation:
    """What ``explain`` found: panel title -> (H, W) map, and how to read it.

    target       the explained class index (None when a feature of a layer is explained)
    target_name  its name, for titles
    overlay      titles of the maps drawn over the image (Grad-CAM)
    note         one line of extra facts (e.g. the completeness check of integrated gradients)
    """

    method: str
    target: int | None
    target_name: str
    maps: dict[str, np.ndarray]
    overlay: set[str] = field(default_factory=set)
    note: str = ""



def class_names_of(model: nn.Module, class_names: list[str] | None = None) -> list[str] | None:
    """The class names given, or the model's own (``.classes`` of the lab models,
    ``.categories`` of the ImageNet ones), or None."""
    if class_names is not None:
        return list(class_names)
    names = getattr(model, "classes", None) or getattr(model, "categories", None)
    return list(names) if names is not None else None


def resolve_target(
    model: nn.Module, x: torch.Tensor, target: int | str | None, class_names: list[str] | None
) -> int:
    """None -> the predicted class; a class name -> its index; an int -> checked and kept.

    Only the class *name* is resolved here (the kit's functions take indices, and a dashboard's
    names may be its own); the rest is ``gradviz_lab.targets``, the kit's one target path.
    """
    if isinstance(target, str):
        if class_names is None or target not in class_names:
            if target.isascii() and target.isdigit():  # "3", not "²"
                return resolve_target(model, x, int(target), class_names)
            raise ValueError(
                f"unknown target class {target!r}; classes are: {_listed(class_names)}"
            )
        return class_names.index(target)
    if isinstance(target, bool) or not isinstance(target, (int, type(None))):
        raise TypeError(f"target must be None, a class index or a class name, got {target!r}")
    with hooks.preserved_state(model):
        score, _ = targets.target_score(model, x[:1], target).fixed_with_scores(model, x[:1])
    return int(score.classes[0])


def _listed(names: list[str] | None, limit: int = 20) -> str:
    if not names:
        return "(the model has no class names; use an index)"
    return ", ".join(names[:limit]) + (
        f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    )


def baseline_image(x: torch.Tensor, name: str) -> torch.Tensor:
    """What replaces the image in occlusion and integrated gradients, shaped like x: one of the
    dashboards' ``BASELINES``, as ``attribution.baselines`` (the kit's one vocabulary) makes it."""
    if name not in BASELINES:
        raise ValueError(f"baseline must be one of {list(BASELINES)}, got {name!r}")
    return make_baseline(x, name)


def spatial_layers(model: nn.Module, x: torch.Tensor) -> list[tuple[str, int]]:
    """(name, channels) of every leaf layer whose output is a (B, K, h, w) map, in forward order,
    each once; a module that runs several times per forward pass (a ResNet block's ``relu``) is
    left out, since a layer's activations must be one tensor to explain."""
    with hooks.preserved_state(model), torch.no_grad(), hooks.forward_shapes(model) as shapes:
        model.eval()  # one image is enough to see the layers; batch norm in train mode needs two
        run_model(model, x[:1])
    runs = Counter(name for name, _ in shapes)
    leaves = {name for name, m in model.named_modules() if not list(m.children())}
    return [
        (name, shape[1])
        for name, shape in shapes
        if name in leaves and runs[name] == 1 and len(shape) == 4 and shape[2] * shape[3] > 1
    ]


def default_layer(model: nn.Module, x: torch.Tensor) -> str:
    """Grad-CAM's layer when none is chosen: ``attribution.default_cam_layer``, the output of the
    last convolutional stage before any pooling (VGG19 in the kit's wrapper: "net.features.35",
    the lecture's choice; ResNet-18: "net.layer4.1"; the shapes model: "features.9")."""
    return attribution.default_cam_layer(model, x)


def conv_layers(model: nn.Module, x: torch.Tensor) -> list[tuple[str, int]]:
    """(name, channels) of each Conv2d: the layers whose channels a "feature response" explains."""
    convs = {name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    return [(name, k) for name, k in spatial_layers(model, x) if name in convs]


def explain(
    model: nn.Module,
    image: torch.Tensor,
    method: str,
    target: int | str | None = None,
    *,
    class_names: list[str] | None = None,
    **knobs: Any,
) -> Explanation:
    """Run ``method`` on one (C, H, W) image for ``target`` (None = the predicted class, an
    index or a class name) with the dashboard's knobs (``gradviz_lab.methods`` lists them with their defaults)."""
    entry = methods.get(method)  # an unknown name lists the known ones
    unknown = set(knobs) - set(entry.defaults)
    if unknown:
        raise TypeError(
            f"{method} has no knob {', '.join(sorted(unknown))}; "
            f"its knobs are {', '.join(entry.defaults) or 'none'}"
        )
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be one (C, H, W) tensor, got {shape}")
    settings = {**entry.defaults, **knobs}
    x = image.unsqueeze(0)
    names = class_names_of(model, class_names)
    if settings.get("layer") is not None and method in BACKPROP:
        if target is not None:
            raise ValueError(
                "target and layer exclude each other: with layer=... the map explains that "
                "layer's channel (its strongest response), not a class"
            )
        return _feature_explanation(model, x, method, settings["layer"], int(settings["channel"]))
    c = resolve_target(model, x, target, names)
    result = Explanation(method, c, names[c] if names else f"class {c}", {})
    RECIPES.get(method, _registered)(model, x, c, settings, result)
    return result


def _as_map(t: torch.Tensor) -> np.ndarray:
    """(1, 1, H, W) -> (H, W) NumPy."""
    return t[0, 0].detach().cpu().numpy()


# Each recipe runs one method on x (1, C, H, W) for class c and fills in the Explanation.
def occlusion_window(knobs: dict[str, Any], height: int, width: int) -> tuple[int, int]:
    """The occlusion (window, stride) of ``knobs``; None chooses from the image: a quarter of its
    side, a quarter of the window. (A 0 goes on to occlusion, which says what is wrong with it.)"""
    window = max(1, min(height, width) // 4) if knobs["window"] is None else knobs["window"]
    stride = max(1, window // 4) if knobs["stride"] is None else knobs["stride"]
    return window, stride


def _occlusion(model, x, c, knobs, result: Explanation) -> None:
    window, stride = occlusion_window(knobs, *x.shape[-2:])
    fill = baseline_image(x, knobs["baseline"])
    drop = attribution.occlusion(model, x, c, window=window, stride=stride, baseline=fill)
    result.maps[f"occlusion {window}×{window} /{stride}"] = _as_map(drop)


def _saliency(model, x, c, knobs, result: Explanation) -> None:
    reduce = knobs["reduce"]
    result.maps[f"saliency ({reduce})"] = _as_map(attribution.saliency(model, x, c, reduce=reduce))


def _smoothgrad(model, x, c, knobs, result: Explanation) -> None:
    sigma, n, variant = float(knobs["sigma"]), int(knobs["n_samples"]), knobs["variant"]
    g = attribution.smoothgrad(
        model, x, c, n_samples=n, sigma=sigma, variant=variant, seed=int(knobs["seed"])
    )
    name = {"mean": "SmoothGrad", "squared": "SmoothGrad²", "variance": "VarGrad"}[variant]
    result.maps[f"{name} σ={sigma:.2f} N={n}"] = to_2d(g)[0]


# The three backward rules through ReLU: method -> (function, panel title)
BACKPROP = {
    "gradient": (attribution.input_gradient, "gradient"),
    "deconvnet": (attribution.deconvnet, "deconvnet"),
    "guided-backprop": (attribution.guided_backprop, "guided backprop"),
}


def _backprop(model, x, c, knobs, result: Explanation) -> None:
    function, title = BACKPROP[result.method]
    result.maps[title] = to_2d(function(model, x, c))[0]


def _gradcam(model, x, c, knobs, result: Explanation) -> None:
    layer = knobs["layer"] or default_layer(model, x)
    title = f"Grad-CAM {layer}"
    result.maps[title] = _as_map(attribution.gradcam(model, x, c, layer=layer))
    result.overlay.add(title)


def _guided_gradcam(model, x, c, knobs, result: Explanation) -> None:
    layer = knobs["layer"] or default_layer(model, x)
    result.maps[f"guided Grad-CAM {layer}"] = to_2d(
        attribution.guided_gradcam(model, x, c, layer=layer)
    )[0]


def guided_gradcam_map(guided: torch.Tensor, cam: np.ndarray) -> np.ndarray:
    """Guided Grad-CAM from its two parts, as ``attribution.guided_gradcam`` multiplies them:
    guided backpropagation (1, C, H, W) times the upsampled Grad-CAM map (H, W) (``explain``'s
    "gradcam" map), reduced to (H, W) like the "guided-gradcam" recipe. A dashboard that shows
    Grad-CAM already has its map: this saves computing it a second time."""
    return to_2d(guided * torch.from_numpy(cam).to(guided)[None, None])[0]


def _integrated_gradients(model, x, c, knobs, result: Explanation) -> None:
    steps, fill = int(knobs["steps"]), baseline_image(x, knobs["baseline"])
    ig, delta = attribution.integrated_gradients(
        model, x, c, baseline=fill, steps=steps, return_delta=True
    )
    result.maps[f"IG ({knobs['baseline']}, {steps} steps)"] = to_2d(ig, mode="signed")[0]
    total, delta = float(ig.sum()), float(delta[0])
    result.note = (
        f"completeness: sum of attributions {total:.4g} = f(x) - f(x') {total - delta:.4g} "
        f"(delta {delta:+.2g})"
    )


def _registered(model, x, c, knobs, result: Explanation) -> None:
    """A method with no recipe of its own: its function with the knobs, titled as registered."""
    entry = methods.get(result.method)
    result.maps[entry.title] = to_2d(entry.load()(model, x, c, **knobs))[0]


# method -> its recipe; a registered method not listed here runs as ``_registered``
RECIPES = {
    "occlusion": _occlusion,
    "saliency": _saliency,
    "gradient": _backprop,
    "smoothgrad": _smoothgrad,
    "deconvnet": _backprop,
    "guided-backprop": _backprop,
    "gradcam": _gradcam,
    "guided-gradcam": _guided_gradcam,
    "integrated-gradients": _integrated_gradients,
}


def _feature_explanation(model, x, method: str, layer: str, channel: int) -> Explanation:
    """Explain the strongest response of one channel of one layer (the lecture's "max feature
    response"): the score is max_ij A^channel_ij, read from the layer while the model runs."""
    name, module = resolve_layer(model, layer)
    function, title = BACKPROP[method]
    with hooks.captured_layer(model, name, module) as record:

        def strongest_response(_output: torch.Tensor) -> torch.Tensor:
            activation = record.outputs[-1]  # this forward pass's (B, K, h, w) at the layer
            if not 0 <= channel < activation.shape[1]:
                raise ValueError(
                    f"channel {channel} is out of range: {name} has {activation.shape[1]} channels"
                )
            return activation[:, channel].flatten(1).amax(dim=1)

        g = function(model, x, strongest_response)
    return Explanation(method, None, f"{name} channel {channel}", {title: to_2d(g)[0]})

