"""The kit's warnings name the line of the caller's code that led to them, however many layers of
the kit (the public-call boundary, nested methods, context managers) lie in between."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from gradviz_lab import attacks, attribution, hooks
from gradviz_lab.hooks import NoReLUWarning


def softplus_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.Softplus(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).eval()


def caught(call) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        call()
    return found


def test_a_warning_from_inside_a_method_names_the_callers_line():
    model, x = softplus_net(), torch.rand(2, 3, 8, 8)
    for call in (
        lambda: attribution.guided_backprop(model, x),
        lambda: attribution.smoothgrad(model, x, method=attribution.deconvnet, n_samples=2),
    ):
        (found,) = caught(call)
        assert found.category is NoReLUWarning
        assert found.filename == __file__ and found.lineno == call.__code__.co_firstlineno


def test_a_leaked_hook_warning_names_the_with_statement():
    model = softplus_net()
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        with hooks.preserved_state(model):
            model[0].register_forward_hook(lambda *args: None)
        line = found[0].lineno if found else None
    assert [w.category for w in found] == [RuntimeWarning] and hooks.count_hooks(model) == 0
    assert found[0].filename == __file__
    assert line is not None and "with hooks.preserved_state" in open(__file__).read().splitlines()[line - 1]


def test_a_fooling_image_that_misses_its_class_warns_at_the_call():
    model, x = softplus_net(), torch.rand(1, 3, 8, 8)
    target = (int(model(x).argmax()) + 1) % 3  # a class the model does not predict yet
    (found,) = [w for w in caught(lambda: attacks.fooling_image(model, x, target, max_steps=1, step_size=1e-6))
                if w.category is RuntimeWarning]
    assert found.filename == __file__ and "not yet predicted" in str(found.message)
