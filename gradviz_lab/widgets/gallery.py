"""The shipped examples a lesson starts from: a model with images to explain, and the knob
defaults that depend on that model.

    from gradviz_lab.widgets.gallery import gallery
    shapes = gallery("shapes")       # the shapes lab model, one image per class, three pairs
    shapes.model, shapes.images, shapes.image_names, shapes.class_names
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import attribution, data, hooks, methods, models
from .._forward import run_model

LAB_MODELS = ("digits", "digits-robust", "shapes", "shapes-tagged", "shapes-softplus", "shapes-vit")
IMAGENET_MODELS = ("vgg16", "vgg19", "alexnet", "resnet18", "resnet50", "vit_b_16")

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
    return {**methods.get(method).defaults, **gallery_defaults(method, gallery_name)}


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
    shapes-vit     a tiny vision transformer (torchvision's VisionTransformer) on the shapes gallery
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
    # the CNNs of the family: the pairs were chosen for them, before the ViT (lessons print them)
    names = model_names or tuple(n for n in LAB_MODELS if n.startswith("shapes") and n != "shapes-vit")
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

