"""Each method run with the knobs of its dashboard: one image, one model, one method, one target.

The dashboards and ``gradviz explain`` both call ``explain`` and ``explanation_figure``, so the
live picture and the one on a slide agree for the same settings:

    from gradviz_lab.widgets.recipes import explain, explanation_figure, gallery
    shapes = gallery("shapes")                                   # the lab model, shipped images
    e = explain(shapes.model, shapes.images[5], "gradcam", target="square")
    explanation_figure(shapes.images[5], e)                      # viz.show_grid underneath

``explain`` returns an ``Explanation``: titled (H, W) maps ready to draw, the class explained,
and a note (e.g. integrated gradients' completeness check). ``gallery(name)`` gives the shipped
examples a lesson starts from.
"""

from __future__ import annotations

from collections import Counter

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import attribution, data, hooks, models
from .._checks import resolve_layer
from .._forward import run_model
from ..attribution.integrated import make_baseline
from ..viz import show_grid, to_2d

LAB_MODELS = ("digits", "digits-robust", "shapes", "shapes-tagged", "shapes-softplus")
IMAGENET_MODELS = ("vgg16", "vgg19", "alexnet", "resnet18", "resnet50")

# method -> its knobs and their defaults. None means "chosen from the image": the occlusion
# window is a quarter of the image side, the stride a quarter of the window; the Grad-CAM layer
# is the last convolutional stage before pooling (attribution.default_cam_layer); no layer means
# "explain a class score". GALLERY_DEFAULTS below changes some defaults for the shapes models.
METHODS: dict[str, dict[str, Any]] = {
    "occlusion": {"window": None, "stride": None, "baseline": "black"},
    "saliency": {"reduce": "max"},
    "gradient": {"layer": None, "channel": 0},
    "smoothgrad": {"sigma": 0.15, "n_samples": 25, "variant": "mean", "seed": 0},
    "deconvnet": {"layer": None, "channel": 0},
    "guided-backprop": {"layer": None, "channel": 0},
    "gradcam": {"layer": None},
    "guided-gradcam": {"layer": None},
    "integrated-gradients": {"steps": 32, "baseline": "black"},
}
BASELINES = ("black", "grey", "mean", "blur")  # what replaces the image: occlusion and IG

# Defaults that depend on the model a gallery comes with. The shapes models recognise fewer and
# fewer of their noisy copies above about 5 % noise (lesson 3); on their coloured backgrounds a
# black window draws a new dark shape instead of removing information (lesson 1); and they score
# the black image highly for some classes (a circle, mostly), so integrated gradients from black
# has almost nothing to attribute for those (lesson 6): the blurred image is their IG baseline.
GALLERY_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "shapes": {
        "smoothgrad": {"sigma": 0.05},
        "occlusion": {"baseline": "mean"},
        "integrated-gradients": {"baseline": "blur"},
    },
}


def gallery_defaults(method: str, gallery_name: str | None) -> dict[str, Any]:
    """The knobs of ``method`` whose default differs for the model of gallery ``gallery_name``
    (every "shapes..." model shares the shapes entry; None: a caller's own model, none)."""
    family = "shapes" if (gallery_name or "").startswith("shapes") else gallery_name
    return dict(GALLERY_DEFAULTS.get(family or "", {}).get(method, {}))


def default_knobs(method: str, gallery_name: str | None) -> dict[str, Any]:
    """Every knob of ``method`` with its default for the model of gallery ``gallery_name``."""
    return {**METHODS[method], **gallery_defaults(method, gallery_name)}


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


# --------------------------------------------------------------------------------------------
# Shipped examples
# --------------------------------------------------------------------------------------------
@dataclass
class Gallery:
    """A model with images to explain: images (N, C, H, W) in [0, 1], one name per image."""

    model: nn.Module
    images: torch.Tensor
    image_names: list[str]
    class_names: list[str]


GALLERY_SEED = 2024  # shapes drawn for the gallery (the lab models trained on other seeds)

# The gallery's two-object images. Two objects on a 64 px image are smaller than anything the lab
# models were trained on, and the models misread them (cross + circle read as "star"). So each pair
# is drawn on a 96 px canvas, where each object has the trained pixel size, and cut to the 64 px
# window centred on the two objects. The gallery shows the first GALLERY_PAIR_COUNT drawings that
# pass ``reads_both_objects`` for every model of the shapes family: they are what
# ``choose_gallery_pairs()`` returns, which a test recomputes.
PAIR_CANVAS = 96
GALLERY_PAIR_COUNT = 3
GALLERY_PAIRS = (13, 161, 293)  # = choose_gallery_pairs()


def gallery(name: str = "shapes", *, random_weights: bool = False) -> Gallery:
    """The shipped examples for model ``name``.

    digits         the digits CNN and the first test image of each digit
    digits-robust  the same CNN trained on PGD attacks (lesson 09), on the same digits
    shapes         the shapes CNN, one image per class, then three two-object images that every
                   shapes model reads (GALLERY_PAIRS, chosen by choose_gallery_pairs)
    shapes-tagged  the shortcut model: the shapes gallery, plus each class with the spurious
                   tag (the tagged class's mark) painted on
    shapes-softplus  the shapes CNN with softplus instead of ReLU (for integrated gradients),
                   on the shapes gallery
    vgg16, ...     an ImageNet model (random weights if asked) and the shipped photos, 224x224
    """
    if name in ("digits", "digits-robust"):
        images, labels = data.load_digits("test")
        first = [int((labels == k).nonzero()[0]) for k in range(len(data.DIGIT_CLASSES))]
        names = [f"digit {data.DIGIT_CLASSES[labels[i]]} (test #{i})" for i in first]
        return Gallery(
            models.load_lab_model(name), images[first], names, list(data.DIGIT_CLASSES)
        )
    if name in LAB_MODELS and name.startswith("shapes"):  # the shapes family, as gallery_defaults
        return _shapes_gallery(name)
    if name in IMAGENET_MODELS:
        model = models.imagenet_model(name, pretrained=not random_weights)
        photos = torch.stack([models.imagenet_preprocess(data.load_photo(p)) for p in data.PHOTOS])
        return Gallery(model, photos, list(data.PHOTOS), list(model.categories))
    raise ValueError(
        f"unknown gallery {name!r}; choose one of {', '.join(LAB_MODELS + IMAGENET_MODELS)}"
    )


def _shapes_gallery(name: str) -> Gallery:
    classes = list(data.SHAPE_CLASSES)
    singles = data.make_shapes(40, GALLERY_SEED)
    first = [int((singles.labels == k).nonzero()[0]) for k in range(len(classes))]
    images, names = [singles.images[first]], list(classes)
    pairs = gallery_pairs()
    images.append(pairs.images)
    names += [" + ".join(classes[k] for k in pair) for pair in pairs.labels.tolist()]
    if name == "shapes-tagged":  # the mark painted on every class: does the model still see shapes?
        marked = singles.images[first].clone()
        mark = data.tag_mask(marked.shape[-1])[0]
        marked[:, :, mark] = torch.tensor(data.TAG_COLOUR).view(1, 3, 1)
        images.append(marked)
        names += [f"{c} (tag painted)" for c in classes]
    return Gallery(models.load_lab_model(name), torch.cat(images), names, classes)


def pair_crop(index: int, size: int = 64) -> data.Shapes | None:
    """Drawing ``index`` of the two-object stream (GALLERY_SEED, PAIR_CANVAS px), cut to the
    ``size`` px window centred on its two objects (moved inside the canvas), or None when the two
    objects do not fit in one window."""
    drawn = data.make_shapes(1, GALLERY_SEED, objects=2, size=PAIR_CANVAS, start=index)
    both = drawn.masks[0].any(dim=0)
    rows, cols = both.any(dim=1).nonzero().flatten(), both.any(dim=0).nonzero().flatten()
    if rows[-1] - rows[0] >= size or cols[-1] - cols[0] >= size:
        return None
    top, left = (min(max(int(ends[0] + ends[-1] + 1) // 2 - size // 2, 0), PAIR_CANVAS - size)
                 for ends in (rows, cols))
    window = (..., slice(top, top + size), slice(left, left + size))
    return data.Shapes(drawn.images[window].contiguous(), drawn.labels,
                       drawn.masks[window].contiguous(), drawn.tagged)


def reads_both_objects(model: nn.Module, pair: data.Shapes) -> bool:
    """The rule for a two-object demo: the model's top two classes are the two objects' classes,
    and each class's Grad-CAM (the default layer, as the dashboard opens) has its maximum on that
    object (the pointing game, ties counted as a miss)."""
    from ..evaluate import pointing_game

    with hooks.preserved_state(model), torch.no_grad():
        model.eval()
        logits = run_model(model, pair.images)
    if set(logits[0].topk(2).indices.tolist()) != set(pair.labels[0].tolist()):
        return False
    for k, c in enumerate(pair.labels[0].tolist()):
        cam = attribution.gradcam(model, pair.images, c)
        if float(pointing_game(cam, pair.masks[:, k])) < 1.0:
            return False
    return True


def choose_gallery_pairs(count: int = GALLERY_PAIR_COUNT, search: int = 1000,
                         model_names: tuple[str, ...] | None = None) -> tuple[int, ...]:
    """The first ``count`` drawings whose objects fit one window (``pair_crop``) and that every
    shapes-family lab model reads (``reads_both_objects``, in float64: the same choice on every
    CPU)."""
    names = model_names or tuple(n for n in LAB_MODELS if n.startswith("shapes"))
    family = [models.load_lab_model(n).double() for n in names]
    chosen = []
    for index in range(search):
        pair = pair_crop(index)
        if pair is None:
            continue
        pair = pair._replace(images=pair.images.double())
        if all(reads_both_objects(model, pair) for model in family):
            chosen.append(index)
            if len(chosen) == count:
                return tuple(chosen)
    raise ValueError(f"only {len(chosen)} of the first {search} drawings pass the rule: {chosen}")


def gallery_pairs() -> data.Shapes:
    """The gallery's two-object images (GALLERY_PAIRS), 64 px, with labels (N, 2) and masks."""
    crops = [pair_crop(index) for index in GALLERY_PAIRS]
    return data.Shapes(*(torch.cat(parts) for parts in zip(*crops)))


# --------------------------------------------------------------------------------------------
# Running a method
# --------------------------------------------------------------------------------------------
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
    """None -> the predicted class; a class name -> its index; an int -> checked and kept."""
    with hooks.preserved_state(model), torch.no_grad():
        logits = run_model(model, x)
    n_classes = logits.shape[-1]
    if target is None:
        return int(logits[0].argmax())
    if isinstance(target, str):
        if class_names is None or target not in class_names:
            if target.isascii() and target.isdigit():  # "3", not "²"
                return resolve_target(model, x, int(target), class_names)
            raise ValueError(
                f"unknown target class {target!r}; classes are: {_listed(class_names)}"
            )
        return class_names.index(target)
    if isinstance(target, bool) or not isinstance(target, int):
        raise TypeError(f"target must be None, a class index or a class name, got {target!r}")
    if not 0 <= target < n_classes:
        raise ValueError(
            f"target class {target} is out of range: the model has {n_classes} classes"
        )
    return target


def _listed(names: list[str] | None, limit: int = 20) -> str:
    if not names:
        return "(the model has no class names; use an index)"
    return ", ".join(names[:limit]) + (
        f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    )


def baseline_image(x: torch.Tensor, name: str) -> torch.Tensor:
    """What replaces the image in occlusion and integrated gradients, shaped like x:
    black (0), grey (0.5), the image's mean colour, or the image blurred (std 10% of its side,
    the same blur as ``integrated_gradients(baseline="blur")``)."""
    if name == "black":
        return torch.zeros_like(x)
    if name == "grey":
        return torch.full_like(x, 0.5)
    if name == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()
    if name == "blur":
        return make_baseline(x, "blur")
    raise ValueError(f"baseline must be one of {list(BASELINES)}, got {name!r}")


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
    index or a class name) with the dashboard's knobs (see ``METHODS`` for names and defaults)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    unknown = set(knobs) - set(METHODS[method])
    if unknown:
        raise TypeError(
            f"{method} has no knob {', '.join(sorted(unknown))}; "
            f"its knobs are {', '.join(METHODS[method]) or 'none'}"
        )
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be one (C, H, W) tensor, got {shape}")
    settings = {**METHODS[method], **knobs}
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
    RECIPES[method](model, x, c, settings, result)
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


# --------------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------------
def explanation_figure(
    image: torch.Tensor, *explanations: Explanation, alpha: float = 0.5, **grid_options: Any
) -> Figure:
    """The image and every map of the explanations side by side (``viz.show_grid``).

    Maps listed in an explanation's ``overlay`` are drawn over the image with ``alpha``; the
    image panel is labelled with the target."""
    if not explanations:
        raise ValueError("explanation_figure needs at least one Explanation")
    maps: dict[str, np.ndarray] = {}
    alphas: dict[str, float | None] = {}
    for e in explanations:
        for title, m in e.maps.items():
            maps[title] = m
            alphas[title] = alpha if title in e.overlay else None
    label = f"target: {explanations[0].target_name}"
    return show_grid(image, maps, alpha=alphas, row_titles=[label], **grid_options)
