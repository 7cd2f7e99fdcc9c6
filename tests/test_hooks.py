"""Hook hygiene: every call leaves the model exactly as it was, also when it raises."""

from __future__ import annotations

import random
import warnings

import pytest
import torch
from conftest import (
    FunctionalReLU,
    TwiceReLU,
    assert_same_state,
    batchnorm_net,
    images,
    prepared_model,
    small_cnn,
    snapshot,
)
from torch import nn

from gradviz_lab import hooks
from gradviz_lab.attribution import (
    deconvnet,
    default_cam_layer,
    gradcam,
    guided_backprop,
    guided_gradcam,
    input_gradient,
    integrated_gradients,
    layer_gradients,
    occlusion,
    saliency,
    smoothgrad,
)
from gradviz_lab.attribution.relu_rules import backprop_with_rule, gradient_rule


def test_a_thousand_mixed_calls_leave_no_trace():
    model, user_calls = prepared_model()
    before = snapshot(model)
    x = images(2, size=6)
    bad_x = x.clone()
    bad_x[0, 0, 0, 0] = float("nan")

    def raising_score(out):
        raise RuntimeError("boom inside the target")

    calls = [
        # (call, error expected or None)
        (lambda: input_gradient(model, x), None),
        (lambda: saliency(model, x, [0, 2], reduce="mean"), None),
        (lambda: layer_gradients(model, x, "bn", 1), None),
        (lambda: smoothgrad(model, x, 1, n_samples=3, batch_size=4), None),
        (lambda: smoothgrad(model, x, None, n_samples=2, method=guided_backprop), None),
        (lambda: integrated_gradients(model, x, 2, steps=3, return_delta=True), None),
        (lambda: occlusion(model, x, 0, window=3, stride=3, batch_size=3), None),
        (lambda: deconvnet(model, x, [1, 1]), None),
        (lambda: guided_backprop(model, x), None),
        (lambda: gradcam(model, x, 0, layer="relu1"), None),
        (lambda: gradcam(model, x), None),
        (lambda: guided_gradcam(model, x, 1, layer=model.conv2), None),
        (lambda: default_cam_layer(model, x), None),
        # errors raised before, during and after the forward pass, inside every hook context
        (lambda: input_gradient(model, bad_x), ValueError),
        (lambda: guided_backprop(model, x, 7), ValueError),
        (lambda: deconvnet(model, x, raising_score), RuntimeError),
        (lambda: guided_gradcam(model, x, [0, 1, 2], layer="relu1"), ValueError),
        (lambda: gradcam(model, x, raising_score, layer="relu1"), RuntimeError),
        (lambda: gradcam(model, x, 0, layer="relu9"), ValueError),
        (lambda: layer_gradients(model, x, "fc", lambda out: torch.ones(len(out))), ValueError),
        (lambda: smoothgrad(model, x, raising_score, n_samples=2), RuntimeError),
        (lambda: smoothgrad(model, x, 0, sigma=-1.0), ValueError),
        (lambda: integrated_gradients(model, x, raising_score, steps=2), RuntimeError),
        (lambda: occlusion(model, x, raising_score, window=2), RuntimeError),
        (lambda: occlusion(model, x, 0, window=7), ValueError),
    ]
    rng = random.Random(0)
    counts = {None: 0, ValueError: 0, RuntimeError: 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a hook left behind would be cleaned up with a warning
        for _ in range(1000):
            call, error = rng.choice(calls)
            if error is None:
                call()
            else:
                with pytest.raises(error):
                    call()
            counts[error] += 1
    assert min(counts.values()) > 100  # many calls of each kind really happened
    assert_same_state(before, snapshot(model))
    assert hooks.count_hooks(model) == 2
    user_calls.clear()
    model(x)
    assert user_calls == ["conv1", "relu2"]  # the user's own hooks still work


def test_preserved_state_restores_everything_on_exit_and_on_error():
    model, _ = prepared_model()
    before = snapshot(model)
    with pytest.raises(KeyError), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with hooks.preserved_state(model):
            model.eval()
            model.bn.train()
            for p in model.parameters():
                p.requires_grad_(True)
            model.conv1.weight.grad.add_(1.0)  # in place
            model.bn.bias.grad = None
            model.fc.bias.grad = torch.ones(3)
            model(images(4, size=6))  # batch-norm statistics move (train mode)
            model.relu1.register_forward_hook(lambda *a: None)  # leaked on purpose
            raise KeyError("the work inside failed")
    assert_same_state(before, snapshot(model))
    assert any("removed 1 hook(s)" in str(w.message) for w in caught)


def test_preserved_state_does_not_write_to_untouched_tensors():
    # A graph the user built before the call still back-propagates after it.
    model = small_cnn()
    model.fc.weight.grad = torch.zeros_like(model.fc.weight)
    out = model(images(1)).sum()
    input_gradient(model, images(1))
    out.backward()  # would fail if a saved tensor had been written to
    assert model.fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("where", ["no_grad", "inference_mode"])
def test_methods_work_inside_no_grad_and_inference_mode(where):
    model, x = small_cnn(), images(2)
    expected = guided_backprop(model, x, 1), gradcam(model, x, 1, layer="conv2")
    context = torch.no_grad() if where == "no_grad" else torch.inference_mode()
    with context:
        got = guided_backprop(model, x, 1), gradcam(model, x, 1, layer="conv2")
        ig = integrated_gradients(model, x, 1, steps=2)
        occ = occlusion(model, x, 1, window=4, stride=4)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert ig.shape == x.shape and occ.shape == (2, 1, 8, 8)


def test_occlusion_returns_an_ordinary_tensor():
    # inference-mode tensors cannot be changed in place later (e.g. by a normalising step)
    out = occlusion(small_cnn(), images(1), 0, window=4, stride=4)
    assert not out.is_inference()
    out /= out.abs().max()


def test_a_train_mode_model_stays_in_train_mode_with_unchanged_statistics():
    model = batchnorm_net().train()
    before = snapshot(model)
    x = images(3, size=6)
    for method in (input_gradient, guided_backprop, deconvnet):
        method(model, x)
    smoothgrad(model, x, n_samples=2)
    integrated_gradients(model, x, steps=2)
    occlusion(model, x, window=3, stride=3)
    gradcam(model, x, layer="bn")
    assert_same_state(before, snapshot(model))
    assert model.training


def test_captured_layer_and_relu_rule_remove_their_hooks_on_error():
    model = small_cnn()
    with pytest.raises(RuntimeError):
        with hooks.captured_layer(model, "conv2", model.conv2):
            assert hooks.count_hooks(model) == 1
            raise RuntimeError
    with pytest.raises(RuntimeError):
        with hooks.relu_backward_rule(model, gradient_rule):
            assert hooks.count_hooks(model) == 2 * 2 + 2  # pre + post per ReLU, model enter/leave
            raise RuntimeError
    with pytest.raises(RuntimeError):
        with hooks.forward_shapes(model):
            raise RuntimeError
    assert hooks.count_hooks(model) == 0


@pytest.mark.parametrize("make", [small_cnn, TwiceReLU], ids=["cnn", "relu-twice"])
def test_the_ordinary_relu_rule_through_the_hooks_is_the_gradient(make):
    # The hook machinery alone (pre-hook copy, replaced output, custom backward) changes nothing
    # when the rule is the ReLU's own derivative: in place, reused ReLUs included.
    model, x = make(), images(3, seed=2)
    assert torch.equal(backprop_with_rule(model, x, [0, 1, 2], gradient_rule),
                       input_gradient(model, x, [0, 1, 2]))


def test_relu_rule_keeps_the_forward_values_and_the_inplace_side_effect():
    model, x = small_cnn(inplace=True), images(2)
    with torch.no_grad():
        expected = model(x)
    with hooks.relu_backward_rule(model, gradient_rule), torch.no_grad():
        assert torch.equal(model(x), expected)
    relu = nn.ReLU(inplace=True)
    s = torch.tensor([-1.0, 2.0])
    with hooks.relu_backward_rule(relu, gradient_rule):
        out = relu(s)
    assert torch.equal(out, torch.tensor([0.0, 2.0])) and torch.equal(s, out)


def test_functional_relu_is_detected_and_reported():
    model, x = FunctionalReLU(), images(1)
    with pytest.warns(hooks.FunctionalReLUWarning, match="called relu as a function 1 time"):
        guided_backprop(model, x, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deconvnet(model, x, 0)
    # only the specific warning: it has no nn.ReLU module, but it does use relu
    assert [type(w.message) for w in caught] == [hooks.FunctionalReLUWarning]
    assert "only nn.ReLU modules can be changed" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        input_gradient(model, x, 0)  # plain gradients do not care
        guided_backprop(small_cnn(), x, 0)  # nn.ReLU modules only: no warning
        # relu used by the caller's score, outside the model's forward, is not the model's
        guided_backprop(small_cnn(), x, lambda out: torch.relu(out[:, 0]) + out[:, 1])


def test_count_hooks_counts_forward_and_backward_hooks():
    model = small_cnn()
    assert hooks.count_hooks(model) == 0
    handles = [model.conv1.register_forward_hook(lambda *a: None),
               model.fc.register_forward_pre_hook(lambda *a: None),
               model.relu2.register_full_backward_hook(lambda *a: None)]
    assert hooks.count_hooks(model) == 3
    for h in handles:
        h.remove()
    assert hooks.count_hooks(model) == 0


def test_forward_shapes_in_the_order_modules_finish():
    with hooks.forward_shapes(small_cnn()) as shapes:
        small_cnn()(images(1))
    assert shapes == []  # hooks were on another instance
    model = small_cnn()
    with hooks.forward_shapes(model) as shapes:
        model(images(1))
    assert [n for n, _ in shapes] == ["conv1", "relu1", "pool", "conv2", "relu2", "gap", "flat",
                                      "fc"]
    assert shapes[2][1] == (1, 6, 4, 4)


@pytest.mark.parametrize("name", ["input_gradient", "saliency", "smoothgrad", "ig", "occlusion",
                                  "deconvnet", "guided_backprop", "gradcam", "guided_gradcam",
                                  "layer_gradients"])
def test_the_input_is_untouched_and_maps_carry_no_graph(name):
    model = small_cnn()
    x = images(2).requires_grad_()
    x_before = x.detach().clone()
    call = {
        "input_gradient": lambda: input_gradient(model, x),
        "saliency": lambda: saliency(model, x),
        "smoothgrad": lambda: smoothgrad(model, x, n_samples=2),
        "ig": lambda: integrated_gradients(model, x, steps=2, baseline=x.detach() * 0.5),
        "occlusion": lambda: occlusion(model, x, window=4, stride=4),
        "deconvnet": lambda: deconvnet(model, x),
        "guided_backprop": lambda: guided_backprop(model, x),
        "gradcam": lambda: gradcam(model, x, layer="conv2"),
        "guided_gradcam": lambda: guided_gradcam(model, x, layer="conv2"),
        "layer_gradients": lambda: torch.cat(layer_gradients(model, x, "conv2")),
    }[name]
    out = call()
    assert not out.requires_grad and out.grad_fn is None
    assert torch.equal(x.detach(), x_before) and x.grad is None


def test_hooks_are_registered_only_in_the_hooks_module():
    """The package's rule: every hook lives in gradviz_lab/hooks/, inside a context manager that removes it."""
    import re
    from pathlib import Path

    package = Path(hooks.__file__).parents[1]
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py")) if path.relative_to(package).parts[0] != "hooks"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.register_\w*hook\(|_execution_engine", line)
    ]
    assert offenders == [], offenders


def test_training_mode_sets_the_flag_inside_and_restores_each_modules_own():
    model, _ = prepared_model()  # train mode, conv2 in eval mode
    modes = [m.training for m in model.modules()]
    with hooks.training_mode(model, False):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == modes
    with pytest.raises(RuntimeError), hooks.training_mode(model, True):
        assert all(m.training for m in model.modules())
        model.bn.eval()
        raise RuntimeError("inside")
    assert [m.training for m in model.modules()] == modes  # conv2 back in eval, bn in train
    with hooks.training_mode(model):  # no flag: only the restoring
        model.eval()
    assert [m.training for m in model.modules()] == modes


def test_model_state_restores_what_it_describes():
    model, _ = prepared_model()
    before = snapshot(model)
    state = hooks.ModelState.of(model)
    model.eval()
    model.fc.weight.requires_grad_(True)
    model.conv1.weight.grad.add_(1.0)
    model.bn.bias.grad = None
    model.bn.running_mean.add_(3.0)
    model.conv2.register_forward_hook(lambda *_: None)
    assert state.restore() == 1  # the hook added since
    assert_same_state(before, snapshot(model))
