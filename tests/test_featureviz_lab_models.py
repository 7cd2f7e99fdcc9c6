"""Feature visualisation on the shipped lab models (skipped only while their weights file is
missing: train them with ``gradviz train NAME``)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import lab_model

from gradviz_lab import featureviz as fv
from gradviz_lab.data import load_digits
from gradviz_lab.hooks import count_hooks

IMAGE_SHAPES = {"digits": (1, 28, 28), "shapes": (3, 64, 64)}


@pytest.mark.parametrize("name", ["digits", "shapes"])
def test_class_visualisation_raises_every_class_logit_of_the_lab_model(name: str) -> None:
    model = lab_model(name)
    state = copy.deepcopy(model.state_dict())
    classes = list(range(len(model.classes)))
    images = fv.class_visualisation(model, classes, IMAGE_SHAPES[name], steps=100)
    start = (
        0.5
        + 0.05
        * torch.randn(len(classes), *IMAGE_SHAPES[name], generator=torch.Generator().manual_seed(0))
    ).clamp(0, 1)
    with torch.no_grad():
        after, before = model(images), model(start)
    gain = after[classes, classes] - before[classes, classes]
    print(f"{name}: target logit gain per class", [round(g, 1) for g in gain.tolist()])
    assert bool((gain > 2.0).all()), gain
    # the picture for class c is classified as c for most classes
    assert int((after.argmax(1) == torch.tensor(classes)).sum()) >= len(classes) - 1
    assert not model.training and count_hooks(model) == 0
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_top_9_digit_patches_of_the_second_conv_layer() -> None:
    model = lab_model("digits")
    images = load_digits("test")[0][:300]
    top = fv.top_activating_patches(model, images, "features.4", k=9, channels=[0, 7, 31])
    # conv5 (pad 2) - pool2 - conv3 (pad 1), by hand: size 5, +1 for the pool, +2 x 2 for the
    # conv3 at stride 2 = 10; stride 2; the field starts 2 + 1 x 2 = 4 pixels before the unit
    assert top.field == fv.ReceptiveField((10, 10), (2, 2), (4, 4))
    assert top.patches.shape == (3, 9, 1, 10, 10)
    with torch.no_grad():
        activations = model.features[:5](images)[:, [0, 7, 31]]
    best_per_image = activations.flatten(2).amax(2)  # (300, 3)
    torch.testing.assert_close(
        top.values, best_per_image.T.sort(dim=1, descending=True).values[:, :9]
    )
    views = fv.unit_views(model, images, top, "deconvnet")
    assert views.shape == top.patches.shape and bool(views.abs().sum((-3, -2, -1)).gt(0).all())
