"""Every evaluate function that takes a model leaves it exactly as it came in, also when it raises.

The model is conftest.prepared_model: train mode with an eval submodule, batch norm statistics,
dropout, a frozen weight, some .grad set and some None, and two hooks of the user's own. Each
function is called normally, and with a target, method or argument that raises part-way (a
``trap`` hook makes the model itself raise inside its forward pass once armed).
"""

from __future__ import annotations

import inspect

import pytest
import torch
from conftest import assert_same_state, images, prepared_model, snapshot

from gradviz_lab import attribution, evaluate
from gradviz_lab.evaluate import (
    accuracy,
    completeness_gap,
    deletion_curve,
    edge_map,
    evaluate_methods,
    insertion_curve,
    predictions,
    random_map,
    randomisable_layers,
    randomisation_test,
    randomised_copy,
    shortcut_report,
)

X = images(4, size=16)  # 16 px: the tag of shortcut_report (4 x 4 at (3, 3)) fits
LABELS = torch.tensor([0, 1, 2, 0])  # prepared_model has 3 classes
MASKS = torch.zeros(4, 1, 16, 16, dtype=torch.bool)
MASKS[:, :, 8:13, 8:13] = True
MAP = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def boom(*args):
    raise RuntimeError("boom")


def trapped_model():
    """prepared_model plus a user hook of its own that raises inside the forward pass once armed."""
    model, _ = prepared_model()
    armed = []

    def trap(module, inputs):
        if armed:
            raise RuntimeError("trap: the model raised in its forward pass")

    model.conv2.register_forward_pre_hook(trap)
    return model, armed


# (name of the function, call, error): None = no error; "trap" = arm the trap, the model raises
CALLS = [
    ("completeness_gap", lambda m: completeness_gap(m, X, torch.rand(4, 3, 16, 16)), None),
    ("completeness_gap", lambda m: completeness_gap(m, X, torch.rand(4, 3, 16, 16), target=boom), RuntimeError),
    ("deletion_curve", lambda m: deletion_curve(m, X, MAP, steps=3, batch_size=5), None),
    ("deletion_curve", lambda m: deletion_curve(m, X, MAP, target=boom, steps=3), RuntimeError),
    ("deletion_curve", lambda m: deletion_curve(m, X, MAP, steps=3), "trap"),
    ("insertion_curve", lambda m: insertion_curve(m, X, MAP, steps=3, batch_size=5), None),
    ("insertion_curve", lambda m: insertion_curve(m, X, MAP, target=boom, steps=3), RuntimeError),
    ("randomisable_layers", lambda m: randomisable_layers(m), None),
    ("randomised_copy", lambda m: randomised_copy(m, 3, seed=2), None),
    ("randomised_copy", lambda m: randomised_copy(m, 4), ValueError),
    ("randomisation_test", lambda m: randomisation_test(m, X, attribution.input_gradient), None),
    ("randomisation_test", lambda m: randomisation_test(m, X, boom), RuntimeError),
    ("randomisation_test", lambda m: randomisation_test(m, X, attribution.saliency), "trap"),
    ("evaluate_methods", lambda m: evaluate_methods(m, X, LABELS, MASKS, steps=2), None),
    ("evaluate_methods", lambda m: evaluate_methods(m, X, LABELS, MASKS, {"boom": boom}, steps=2), RuntimeError),
    ("evaluate_methods", lambda m: evaluate_methods(m, X, LABELS + 1, MASKS, steps=2), ValueError),  # class 3
    ("accuracy", lambda m: accuracy(m, X, LABELS, batch_size=3), None),
    ("accuracy", lambda m: accuracy(m, X, LABELS + 1, batch_size=3), ValueError),  # after the forward passes
    ("accuracy", lambda m: accuracy(m, X, LABELS), "trap"),
    ("predictions", lambda m: predictions(m, X, batch_size=3), None),
    ("predictions", lambda m: predictions(m, X), "trap"),
    ("shortcut_report", lambda m: shortcut_report(m, X, LABELS, MASKS, tagged_class=0), None),
    ("shortcut_report", lambda m: shortcut_report(m, X, LABELS, MASKS, {"boom": boom}, tagged_class=0), RuntimeError),
    ("shortcut_report", lambda m: shortcut_report(m, X, LABELS, MASKS, tagged_class=0), "trap"),
    ("random_map", lambda m: random_map(m, X), None),
    ("random_map", lambda m: random_map(m, X[0]), ValueError),
    ("edge_map", lambda m: edge_map(m, X), None),
    ("edge_map", lambda m: edge_map(m, X[0]), ValueError),
]


@pytest.mark.parametrize(
    "call, error",
    [pytest.param(call, error, id=f"{name}-{getattr(error, '__name__', error)}") for name, call, error in CALLS],
)
def test_the_model_is_left_exactly_as_it_was(call, error):
    call_and_compare_state(call, error)


def call_and_compare_state(call, error) -> None:
    """call(model) on a trapped mixed-state model: it must succeed (error None), raise ``error``,
    or, for "trap", raise from inside the model's forward pass; the model must come back as it was."""
    model, armed = trapped_model()
    before = snapshot(model)
    if error is None:
        call(model)
    else:
        if error == "trap":
            armed.append(True)
            error = RuntimeError
        with pytest.raises(error, match="trap|boom" if error is RuntimeError else None):
            call(model)
    assert_same_state(before, snapshot(model))


def test_every_function_that_takes_a_model_is_checked_above():
    takes_model = {
        name
        for name in evaluate.__all__
        if inspect.isfunction(function := getattr(evaluate, name))
        and next(iter(inspect.signature(function).parameters)) == "model"
    }
    assert takes_model == {name for name, _, _ in CALLS}
    # reinitialise(layer, seed) is left out on purpose: it re-draws the layer it is given.
    assert "reinitialise" in evaluate.__all__ and "reinitialise" not in takes_model
