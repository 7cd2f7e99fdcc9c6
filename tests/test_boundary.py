"""One boundary per public call: the input is checked once and the model saved once, however
many methods call each other inside (Guided Grad-CAM, SmoothGrad over any base method), and the
model still leaves exactly as it came in, after success and after an exception."""

from __future__ import annotations

import contextlib
import inspect

import pytest
import torch
from conftest import EVERY_METHOD, assert_same_state, images, prepared_model, small_cnn, snapshot

from gradviz_lab import _checks, attribution, evaluate, hooks
from gradviz_lab._boundary import inside_boundary

def smoothed_guided_gradcam(model, x, target):
    return attribution.smoothgrad(model, x, target, n_samples=2, method=attribution.guided_gradcam)


# every method alone, and SmoothGrad over each of them (its batches of noisy copies call the base
# method 2 x 2 / 1 = 4 times), plus the layer finders, the curves and the randomisation test
CALLS = {name: method for name, method in EVERY_METHOD.items()}
CALLS.update({
    f"smoothgrad(method={name})":
        lambda m, x, t=None, base=base: attribution.smoothgrad(m, x, t, n_samples=2, batch_size=1,
                                                               method=base)
    for name, base in EVERY_METHOD.items()
})
CALLS.update({
    "smoothgrad(method=smoothgrad(method=guided_gradcam))":
        lambda m, x, t=None: attribution.smoothgrad(m, x, t, n_samples=2, batch_size=1,
                                                    method=smoothed_guided_gradcam),
    "default_cam_layer": lambda m, x, t=None: attribution.default_cam_layer(m, x),
    "cam_layers": lambda m, x, t=None: attribution.cam_layers(m, x),
    "deletion_curve": lambda m, x, t=None: evaluate.deletion_curve(m, x, torch.rand(len(x), 8, 8), t,
                                                                   steps=4),
    "insertion_curve": lambda m, x, t=None: evaluate.insertion_curve(m, x, torch.rand(len(x), 8, 8),
                                                                     t, steps=4),
})
TAKES_TARGET = [name for name in CALLS if name not in ("default_cam_layer", "cam_layers")]


@pytest.fixture
def counted(monkeypatch):
    """How many times hooks.preserved_state and _checks.check_images run (the boundary calls
    them through their modules, so replacing them there sees every call)."""
    counts = {"snapshots": 0, "checks": 0}
    real_state, real_check = hooks.preserved_state, _checks.check_images

    @contextlib.contextmanager
    def counting_state(model):
        counts["snapshots"] += 1
        with real_state(model) as saved:
            yield saved

    def counting_check(*args, **kwargs):
        counts["checks"] += 1
        return real_check(*args, **kwargs)

    monkeypatch.setattr(hooks, "preserved_state", counting_state)
    monkeypatch.setattr(_checks, "check_images", counting_check)
    return counts


@pytest.mark.parametrize("name", list(CALLS))
def test_one_check_and_one_snapshot_per_public_call(counted, name):
    model, x = small_cnn(), images(2)
    CALLS[name](model, x)
    assert counted == {"snapshots": 1, "checks": 1}
    assert not inside_boundary(model)


def test_the_counts_see_nested_calls_on_another_model(counted):
    """A method given to SmoothGrad that explains another model gets that model's own boundary
    (once per batch of noisy copies): the counter is not blind to snapshots."""
    model, other, x = small_cnn(), small_cnn(seed=1), images(2)
    attribution.smoothgrad(model, x, 0, n_samples=2, batch_size=2,
                           method=lambda m, noisy, t: attribution.input_gradient(other, noisy, t))
    assert counted == {"snapshots": 1 + 2, "checks": 1 + 2}


@pytest.mark.parametrize("name", TAKES_TARGET)
def test_the_model_is_restored_after_success_and_after_an_exception(name):
    model, _ = prepared_model()  # train mode, batch norm, frozen weight, grads, user hooks
    x = images(2)
    before = snapshot(model)
    CALLS[name](model, x, [0, 2])
    assert_same_state(before, snapshot(model))

    def boom(output):
        raise RuntimeError("boom: the target raised inside the call")

    with pytest.raises(RuntimeError, match="boom"):
        CALLS[name](model, x, boom)
    assert_same_state(before, snapshot(model))
    assert not inside_boundary(model)


def test_every_public_method_taking_model_and_x_has_the_boundary():
    """A method added to attribution without @public would check nothing and save nothing."""
    for name in attribution.__all__:
        function = getattr(attribution, name)
        if not inspect.isfunction(function):
            continue
        parameters = list(inspect.signature(function).parameters)
        if parameters[:2] == ["model", "x"]:
            assert hasattr(function, "__wrapped__"), f"{name} is not decorated with @public"
