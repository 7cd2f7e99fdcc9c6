"""Layer-wise relevance propagation (issue 22): every rule against numbers worked out by hand,
the identities LRP must satisfy, an independent textbook implementation on the lab models and
torchvision's VGG11, and the errors that name the layer LRP cannot handle."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from conftest import assert_same_state, images, small_cnn, snapshot
from torch import nn

from gradviz_lab import models
from gradviz_lab.attribution import input_gradient, input_x_gradient, lrp
from gradviz_lab.attribution.lrp import AlphaBeta, Composite, Epsilon, Gamma, ZBox, Zero

F64 = torch.float64


# --- by hand ---------------------------------------------------------------------------------
# one linear layer, y = x . w (no bias), w = (1, -1, 2), x = (1, 1, 1): y = 2, the contributions
# x_j w_j = (1, -1, 2), z+ = 3, z- = -1; for the box rule x lies in [0, 2].
def one_layer() -> nn.Sequential:
    fc = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[1.0, -1.0, 2.0]]))
    return nn.Sequential(nn.Flatten(), fc).to(F64).eval()


ONE_X = torch.ones(1, 3, 1, 1, dtype=F64)
BY_HAND_ONE_LAYER = {
    # rule: (knobs, relevance worked out by hand with the formula of rules.py)
    "lrp-0": ({}, [1, -1, 2]),                                  # x_j w_j / z * R, R = z
    "epsilon": ({"epsilon": 1.0}, [2 / 3, -2 / 3, 4 / 3]),      # x_j w_j / (2 + 1) * 2
    "gamma": ({"gamma": 1.0}, [0.8, -0.4, 1.6]),                # (2, -1, 4) / 5 * 2
    "z-plus": ({}, [2 / 3, 0, 4 / 3]),                          # (1, 0, 2) / 3 * 2
    "alpha1-beta0": ({}, [2 / 3, 0, 4 / 3]),
    "alpha2-beta1": ({}, [4 / 3, -2, 8 / 3]),                   # 2 (1,0,2)/3 2 - (0,-1,0)/(-1) 2
    "z-box": ({"low": 0.0, "high": 2.0}, [0.5, 0.5, 1.0]),      # (1-0, -1+2, 2-0) / 4 * 2
    "flat": ({}, [2 / 3, 2 / 3, 2 / 3]),
    "w-square": ({}, [1 / 3, 1 / 3, 4 / 3]),                    # (1, 1, 4) / 6 * 2
}


@pytest.mark.parametrize("rule", list(BY_HAND_ONE_LAYER))
def test_each_rule_on_one_layer_gives_the_relevances_worked_out_by_hand(rule):
    knobs, expected = BY_HAND_ONE_LAYER[rule]
    got = lrp(one_layer(), ONE_X, 0, composite="lrp-0", layers={"1": rule}, **knobs)
    torch.testing.assert_close(got.flatten(), torch.tensor(expected, dtype=F64), rtol=1e-12,
                               atol=1e-12)


def test_alpha_beta_with_signed_inputs_by_hand():
    # x = (1, 1, -1), w = (1, -1, 2): contributions a_j w_j = (1, -1, -2), y = R = -2;
    # z+ = 1, z- = -3: R_j = (2 (1, 0, 0) / 1 - (0, -1, -2) / (-3)) (-2) = (-4, 2/3, 4/3).
    # After a ReLU the rule skips the a^- terms; here the input has them (the first layer).
    x = torch.tensor([1.0, 1.0, -1.0], dtype=F64).view(1, 3, 1, 1)
    got = lrp(one_layer(), x, 0, composite="lrp-0", layers={"1": "alpha2-beta1"})
    torch.testing.assert_close(got.flatten(), torch.tensor([-4, 2 / 3, 4 / 3], dtype=F64),
                               rtol=1e-12, atol=1e-12)


# two layers with biases: x = (1, 2); z1 = W1 x + b1 = (-0.5, 3), a1 = relu(z1) = (0, 3);
# y = W2 a1 + b2 = 0 + 6 + 1 = 7.
def two_layers() -> nn.Sequential:
    fc1, fc2 = nn.Linear(2, 2), nn.Linear(2, 1)
    with torch.no_grad():
        fc1.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0]]))
        fc1.bias.copy_(torch.tensor([0.5, -1.0]))
        fc2.weight.copy_(torch.tensor([[1.0, 2.0]]))
        fc2.bias.copy_(torch.tensor([1.0]))
    return nn.Sequential(nn.Flatten(), fc1, nn.ReLU(), fc2).to(F64).eval()


TWO_X = torch.tensor([1.0, 2.0], dtype=F64).view(1, 2, 1, 1)
BY_HAND_TWO_LAYERS = {
    # LRP-0: R(a1) = a1 w2 = (0, 6) (the bias keeps 1); unit 1: R/z = 6/3 = 2, R(x) = x w1 2
    "lrp-0": ({}, [4, 4]),
    # epsilon 1: R(a1) = (0, 6 * 7/8) = (0, 5.25); R(x) = x_i w1[1, i] 5.25 / (3 + 1)
    "epsilon": ({"epsilon": 1.0}, [2.625, 2.625]),
    # gamma 1: w2 -> (2, 4), b2 -> 2, z = 14, R(a1) = (0, 12/14 7) = (0, 6);
    # w1[1] -> (4, 2), b1[1] = -1 stays, z = 4 + 4 - 1 = 7: R(x) = (4, 4) / 7 * 6
    "gamma": ({"gamma": 1.0}, [24 / 7, 24 / 7]),
    # z+: R(a1) = (0, 6/6 7) = (0, 7); w1[1]+ = (2, 1), z+ = 4: R(x) = (2, 2) / 4 * 7
    "z-plus": ({}, [3.5, 3.5]),
}


@pytest.mark.parametrize("composite", list(BY_HAND_TWO_LAYERS))
def test_each_rule_through_two_layers_with_biases_by_hand(composite):
    knobs, expected = BY_HAND_TWO_LAYERS[composite]
    got = lrp(two_layers(), TWO_X, 0, composite=composite, **knobs)
    torch.testing.assert_close(got.flatten(), torch.tensor(expected, dtype=F64), rtol=1e-12,
                               atol=1e-12)


def test_a_composite_applies_its_rules_by_layer_kind_and_position():
    # epsilon-gamma-box: the first layer z-box, the dense layer above it epsilon
    rule = Composite(first=ZBox(0, 2), conv=Gamma(1.0), dense=Epsilon(1.0))
    by_name = lrp(two_layers(), TWO_X, 0, composite="epsilon-gamma-box", epsilon=1.0, gamma=1.0,
                  low=0.0, high=2.0)
    torch.testing.assert_close(lrp(two_layers(), TWO_X, 0, composite=rule), by_name)
    # by hand: R(a1) = (0, 5.25) (epsilon); first layer z-box on unit 1, w = (2, 1) >= 0:
    # terms x w - l w+ = (2, 2) - 0 -> R(x) = (2, 2) / 4 * 5.25
    torch.testing.assert_close(by_name.flatten(), torch.tensor([2.625, 2.625], dtype=F64))


# --- identities ------------------------------------------------------------------------------


def lab(name: str) -> tuple[nn.Module, torch.Tensor]:
    model = models.load_lab_model(name).double()
    shape = (3, 64, 64) if name.startswith("shapes") else (1, 28, 28)
    return model, torch.rand(2, *shape, generator=torch.Generator().manual_seed(3), dtype=F64)


@pytest.mark.parametrize("name", ["shapes", "digits"])
def test_lrp0_equals_input_times_gradient_on_relu_networks(name):
    model, x = lab(name)
    torch.testing.assert_close(lrp(model, x, [1, 2], composite="lrp-0"),
                               input_x_gradient(model, x, [1, 2]), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(input_x_gradient(model, x, [1, 2]),
                               x * input_gradient(model, x, [1, 2]))


def test_lrp_epsilon_tends_to_lrp0_as_epsilon_goes_to_zero():
    model, x = lab("shapes")
    zero = lrp(model, x, 1, composite="lrp-0")
    gaps = [float((lrp(model, x, 1, composite="epsilon", epsilon=eps) - zero).abs().max())
            for eps in (1e-1, 1e-4, 1e-7, 1e-10, 1e-13)]
    assert gaps[0] > 1e-4  # epsilon does change the map ...
    assert all(a > b for a, b in zip(gaps, gaps[1:]))  # ... less and less ...
    assert gaps[-1] < 1e-6 * float(zero.abs().max())  # ... and not at all in the limit


def bias_free(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model)
    with torch.no_grad():
        for module in model.modules():
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
    return model


CONSERVING = ["lrp-0", "gamma", "z-plus", "alpha1-beta0", "epsilon-plus-flat", "epsilon-gamma-box"]


@pytest.mark.parametrize("composite", CONSERVING)
@pytest.mark.parametrize("maxpool", ["winner", "average"])
@pytest.mark.parametrize("name", ["shapes", "digits"])
def test_relevance_is_conserved_on_a_bias_free_network(name, composite, maxpool):
    model, x = lab(name)
    model = bias_free(model)
    score = model(x)[:, 1]
    relevance = lrp(model, x, 1, composite=composite, maxpool=maxpool, epsilon=1e-12)
    torch.testing.assert_close(relevance.sum((1, 2, 3)), score, rtol=0, atol=1e-6)
    # and with biases it is not (they absorb some), so the test above can fail
    if composite == "lrp-0":
        model, _ = lab(name)
        assert (lrp(model, x, 1, composite=composite).sum((1, 2, 3)) - model(x)[:, 1]).abs().max() > 1e-3


# --- an independent implementation: the textbook loop over the layers' activations ----------


def textbook_layers(model: nn.Module) -> list[nn.Module]:
    """The model as a list of layers (the lab models and VGG: their modules in order, with the
    flatten their forward does by hand)."""
    if isinstance(model, torchvision.models.VGG):
        return [*model.features, model.avgpool, nn.Flatten(), *model.classifier]
    if hasattr(model, "pool"):  # ShapesCNN: features, global pool, flatten, classifier
        return [*model.features, model.pool, nn.Flatten(), model.classifier]
    return [*model.features, *model.classifier]  # DigitsCNN


def textbook_lrp(layers, x, c, composite: str, eps=1e-6, gamma=0.25, low=0.0, high=1.0):
    """Montavon et al. 2019's recipe, written afresh: keep every activation A[l], then from the
    top, for each layer, z = rho(layer)(A[l]), s = R[l+1] / z, c = d(z s)/dA, R[l] = A[l] c.
    Max pooling read as average pooling (as in their tutorial), ReLU passes R through."""
    A = [x]
    for layer in layers:
        A.append(layer(A[-1]))
    R = (A[-1] * nn.functional.one_hot(torch.tensor(c), A[-1].shape[1])).detach()
    first = next(i for i, layer in enumerate(layers) if isinstance(layer, (nn.Conv2d, nn.Linear)))
    for i in reversed(range(len(layers))):
        layer, a = layers[i], A[i].detach().requires_grad_(True)
        if isinstance(layer, (nn.ReLU, nn.Dropout, nn.Flatten)):
            R = R.reshape(a.shape)
            continue
        if isinstance(layer, (nn.MaxPool2d, nn.AdaptiveAvgPool2d)):
            pool = (nn.AvgPool2d(layer.kernel_size, layer.stride) if isinstance(layer, nn.MaxPool2d)
                    else layer)
            z = pool(a)
            (z * torch.where(z != 0, R / z, 0).detach()).sum().backward()
            R = (a * a.grad).detach()
            continue
        kind = ("z-box" if composite == "epsilon-gamma-box" else "z-plus") if i == first else \
            ("epsilon" if isinstance(layer, nn.Linear) else
             {"epsilon-plus": "z-plus", "epsilon-gamma-box": "gamma", "lrp-0": "lrp-0"}[composite])
        if composite == "lrp-0":
            kind = "lrp-0"
        w, b = layer.weight.detach(), layer.bias.detach()

        def forward(t, w, b, layer=layer):
            return (nn.functional.linear(t, w, b) if isinstance(layer, nn.Linear)
                    else nn.functional.conv2d(t, w, b, layer.stride, layer.padding))

        if kind == "z-box":
            lo, hi = (torch.full_like(a, v).requires_grad_(True) for v in (low, high))
            z = forward(a, w, None) - forward(lo, w.clamp(min=0), None) - forward(hi, w.clamp(max=0), None)
            (z * torch.where(z != 0, R / z, 0).detach()).sum().backward()
            R = (a * a.grad + lo * lo.grad + hi * hi.grad).detach()
            continue
        if kind == "gamma":
            z = forward(a, w + gamma * w.clamp(min=0), b + gamma * b.clamp(min=0))
        elif kind == "z-plus":
            z = forward(a, w.clamp(min=0), None)
        else:
            z = forward(a, w, b)
        den = z + eps * torch.where(z >= 0, 1.0, -1.0) if kind == "epsilon" else z
        (z * torch.where(den != 0, R / den, 0).detach()).sum().backward()
        R = (a * a.grad).detach()
    return R


@pytest.fixture(scope="module")
def vgg11():
    torch.manual_seed(0)
    model = torchvision.models.vgg11(weights=None).eval()
    with torch.no_grad():  # random weights, biases made non-zero so that they matter
        for module in model.modules():
            if getattr(module, "bias", None) is not None:
                module.bias.uniform_(-0.05, 0.05)
    return model


@pytest.mark.parametrize("composite", ["lrp-0", "epsilon-plus", "epsilon-gamma-box"])
@pytest.mark.parametrize("name", ["shapes", "digits"])
def test_lrp_equals_the_textbook_loop_on_the_lab_models(name, composite):
    model, x = lab(name)
    ours = lrp(model, x[:1], 2, composite=composite, maxpool="average")
    reference = textbook_lrp(textbook_layers(model), x[:1], 2, composite)
    torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("composite", ["epsilon-plus", "epsilon-gamma-box"])
def test_lrp_equals_the_textbook_loop_on_torchvision_vgg11(vgg11, composite):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ours = lrp(vgg11, x, 7, composite=composite, maxpool="average")
    reference = textbook_lrp(textbook_layers(vgg11), x, 7, composite)
    assert ours.abs().sum() > 0
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5 * float(reference.abs().max()))


def test_vgg11_winner_take_all_lrp0_is_input_times_gradient_and_state_is_kept(vgg11):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    before = snapshot(vgg11)
    torch.testing.assert_close(lrp(vgg11, x, 3, composite="lrp-0"), input_x_gradient(vgg11, x, 3),
                               rtol=1e-4, atol=1e-6)
    assert_same_state(before, snapshot(vgg11))


# --- batch norm, batches, composites ---------------------------------------------------------


def conv_bn_net() -> nn.Sequential:
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(inplace=True),
                        nn.Conv2d(5, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        for bn in (net[1], net[4]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return net.double().eval()


def folded_by_hand(net: nn.Sequential) -> nn.Sequential:
    """The same network with each batch norm folded into its convolution, written afresh."""
    out = []
    for layer, nxt in zip(net, [*net[1:], None]):
        if isinstance(layer, nn.BatchNorm2d):
            continue
        layer = copy.deepcopy(layer)
        if isinstance(nxt, nn.BatchNorm2d):
            scale = nxt.weight / torch.sqrt(nxt.running_var + nxt.eps)
            bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
            conv = nn.Conv2d(layer.in_channels, layer.out_channels, 3, padding=1).double()
            with torch.no_grad():
                conv.weight.copy_(layer.weight * scale.view(-1, 1, 1, 1))
                conv.bias.copy_((bias - nxt.running_mean) * scale + nxt.bias)
            layer = conv
        out.append(layer)
    return nn.Sequential(*out).eval()


@pytest.mark.parametrize("composite", ["lrp-0", "epsilon-gamma-box", "epsilon-plus"])
def test_batch_norm_is_folded_for_the_pass_and_the_model_left_unchanged(composite):
    net, x = conv_bn_net(), images(2, dtype=F64)
    twin = folded_by_hand(net)
    torch.testing.assert_close(net(x), twin(x))  # the fold by hand is right
    before = snapshot(net)
    ours = lrp(net, x, [0, 2], composite=composite)
    assert_same_state(before, snapshot(net))
    torch.testing.assert_close(ours, lrp(twin, x, [0, 2], composite=composite), rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("composite", ["epsilon-plus", "epsilon-gamma-box", "alpha2-beta1",
                                       "epsilon-plus-flat", "lrp-0"])
@pytest.mark.parametrize("maxpool", ["winner", "average"])
def test_a_batch_equals_single_images_and_in_place_relus_change_nothing(composite, maxpool):
    model, x = small_cnn(inplace=True).double(), images(3, dtype=F64)
    batch = lrp(model, x, [0, 1, 4], composite=composite, maxpool=maxpool)
    singles = torch.cat([lrp(model, x[i:i + 1], c, composite=composite, maxpool=maxpool)
                         for i, c in enumerate([0, 1, 4])])
    torch.testing.assert_close(batch, singles, rtol=1e-10, atol=1e-13)
    twin = small_cnn(inplace=False).double()
    assert torch.equal(batch, lrp(twin, x, [0, 1, 4], composite=composite, maxpool=maxpool))


def test_the_composites_give_different_maps():
    model, x = lab("shapes")
    maps = {c: lrp(model, x[:1], 1, composite=c) for c in
            ("lrp-0", "epsilon-plus", "epsilon-gamma-box", "alpha2-beta1", "epsilon-plus-flat")}
    names = list(maps)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not torch.allclose(maps[a], maps[b]), (a, b)


# --- errors that say what is wrong -------------------------------------------------------------


@pytest.mark.parametrize("knobs, words", [
    ({"composite": "epsilon-plsu"}, "unknown LRP composite 'epsilon-plsu'; choose one of lrp-0"),
    ({"layers": {"conv1": "gama"}}, "unknown LRP rule 'gama'; choose one of lrp-0, epsilon"),
    ({"gamma": -0.1}, "gamma must be a number >= 0"),
    ({"epsilon": 0.0}, "epsilon must be a number > 0"),
    ({"epsilon": -1e-3}, "epsilon must be a number > 0"),
    ({"low": 1.0, "high": 0.0}, "needs low < high"),
    ({"maxpool": "median"}, "maxpool must be one of"),
])
def test_bad_knobs_get_clear_errors(knobs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        lrp(small_cnn(), images(1), 0, **knobs)


def test_alpha_beta_must_conserve():
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        AlphaBeta(1.0, 1.0)
    assert Zero() == Zero()


def test_a_layer_without_a_rule_is_named():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.ReLU(), nn.Flatten(),
                          nn.LazyLinear(2))
    model(images(1))
    with pytest.raises(ValueError, match=r"no rule for layer '1' \(GroupNorm\)"):
        lrp(model.eval(), images(1), 0)


def test_resnet_skip_connections_are_refused_by_name():
    model = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"a sum \(a skip connection.*ResNet.*just before layer "
                                         r"'layer4.1.relu'"):
        lrp(model, images(1, size=32), 0)
    assert_same_state(before, snapshot(model))  # no hook left behind, no batch norm folded in


def test_a_batch_norm_that_follows_no_convolution_is_refused_by_name():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(2))
    model(images(2))
    with pytest.raises(ValueError, match="batch norm '0' does not follow a convolution"):
        lrp(model.eval(), images(1), 0)
