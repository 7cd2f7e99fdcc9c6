"""Maps computed by hand on tiny fixed-weight networks, one test (at least) per method.

The hand network (see test_core_nets): x = [[1, -2], [3, -0.5]], conv 1x1 (+1, -1), ReLU,
global average pooling, linear V = [[1, 2], [-1, 1], [0.5, -3]]. The gradient reaching each
ReLU output is V[c, k] / 4 (4 pixels averaged), so every map below follows in one line.
"""

from __future__ import annotations

import pytest
import torch
from conftest import HAND_X, hand_net, linear_net

from gradviz_lab.attribution import (
    deconvnet,
    gradcam,
    guided_backprop,
    guided_gradcam,
    input_gradient,
    integrated_gradients,
    layer_gradients,
    max_response,
    occlusion,
    saliency,
    smoothgrad,
    window_starts,
)


X3 = HAND_X.repeat(3, 1, 1, 1)  # the same image, explained for classes 0, 1, 2
CLASSES = [0, 1, 2]


def grid(rows):
    return torch.tensor(rows, dtype=torch.float32).view(1, 1, 2, 2)


# d y_c / d x = V[c,0]/4 where x > 0, -V[c,1]/4 where x < 0 (x > 0 in column 0, < 0 in column 1)
GRADIENT = torch.cat([grid([[0.25, -0.5], [0.25, -0.5]]),
                      grid([[-0.25, -0.25], [-0.25, -0.25]]),
                      grid([[0.125, 0.75], [0.125, 0.75]])])
# guided: channel k passes only where it was active AND V[c,k] > 0
GUIDED = torch.cat([grid([[0.25, -0.5], [0.25, -0.5]]),
                    grid([[0.0, -0.25], [0.0, -0.25]]),
                    grid([[0.125, 0.0], [0.125, 0.0]])])
# deconvnet: channel k passes everywhere when V[c,k] > 0 -> dx = V+[c,0]/4 - V+[c,1]/4
DECONV = torch.cat([grid([[-0.25, -0.25], [-0.25, -0.25]]),
                    grid([[-0.25, -0.25], [-0.25, -0.25]]),
                    grid([[0.125, 0.125], [0.125, 0.125]])])
# Grad-CAM at the ReLU: relu(V[c,0]/4 relu(x) + V[c,1]/4 relu(-x))
CAM = torch.cat([grid([[0.25, 1.0], [0.75, 0.25]]),
                 grid([[0.0, 0.5], [0.0, 0.125]]),
                 grid([[0.125, 0.0], [0.375, 0.0]])])


@pytest.mark.parametrize("inplace", [False, True])
def test_input_gradient_by_hand(inplace):
    assert torch.equal(input_gradient(hand_net(inplace), X3, CLASSES), GRADIENT)


def test_predicted_class_is_the_default_target():
    # logits (2.25, -0.375, -1.375): class 0 wins
    assert torch.equal(input_gradient(hand_net(), HAND_X), GRADIENT[:1])


def test_callable_target_scores_the_output():
    # score = y_0 - y_2: gradient is the difference of the two gradients
    got = input_gradient(hand_net(), HAND_X, lambda out: out[:, 0] - out[:, 2])
    assert torch.equal(got, GRADIENT[:1] - GRADIENT[2:])
    # max_response of these logits is y_0
    assert torch.equal(input_gradient(hand_net(), HAND_X, max_response), GRADIENT[:1])


def test_saliency_by_hand_max_and_mean_over_channels():
    # linear model: the gradient is the weight row, reshaped (2 channels, 4 x 5)
    model = linear_net(shape=(2, 4, 5))
    x = torch.zeros(1, 2, 4, 5, dtype=torch.float64)
    w = model[1].weight[2].detach().view(2, 4, 5)
    by_max = torch.maximum(w[0].abs(), w[1].abs())
    by_mean = (w[0].abs() + w[1].abs()) / 2
    assert torch.allclose(saliency(model, x, 2, reduce="max")[0, 0], by_max)
    assert torch.allclose(saliency(model, x, 2, reduce="mean")[0, 0], by_mean)
    assert torch.equal(saliency(hand_net(), X3, CLASSES), GRADIENT.abs())


@pytest.mark.parametrize("inplace", [False, True])
def test_guided_backprop_by_hand(inplace):
    assert torch.equal(guided_backprop(hand_net(inplace), X3, CLASSES), GUIDED)


@pytest.mark.parametrize("inplace", [False, True])
def test_deconvnet_by_hand(inplace):
    assert torch.equal(deconvnet(hand_net(inplace), X3, CLASSES), DECONV)


@pytest.mark.parametrize("layer", ["relu", "pool"])
def test_gradcam_by_hand(layer):
    model = hand_net()
    if layer == "relu":
        assert torch.allclose(gradcam(model, X3, CLASSES, layer="relu", upsample=False), CAM)
        # a 2x2 map upsampled to the 2x2 input is itself
        assert torch.allclose(gradcam(model, X3, CLASSES, layer=model.relu), CAM)
    else:
        # at the pooled 1x1 layer: relu(sum_k V[c,k] m_k / 1) with m = (1, 0.625) = relu(logit),
        # spread uniformly over the image by the upsampling
        logits = torch.tensor([2.25, 0.0, 0.0])  # relu of (2.25, -0.375, -1.375)
        got = gradcam(model, X3, CLASSES, layer="pool")
        assert torch.allclose(got, logits.view(3, 1, 1, 1).expand(3, 1, 2, 2))


def test_gradcam_upsamples_bilinearly_by_hand():
    # conv 1x1 on a 4x4 image, then 2x2 average pooling inside the layer chosen: read Grad-CAM
    # at 2x2 and upsample to 4x4 with align_corners=False (half-pixel centres).
    model = hand_net()
    x = HAND_X.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # 4x4, blocks of 2x2
    layer = torch.nn.AvgPool2d(2)
    seq = torch.nn.Sequential(model.conv, model.relu, layer, model.pool, model.flat, model.fc)
    raw = gradcam(seq, x, 0, layer=layer, upsample=False)
    assert torch.allclose(raw, CAM[:1])  # same values as the 2x2 hand image
    up = gradcam(seq, x, 0, layer=layer)
    # row/col interpolation weights for 2 -> 4 with half-pixel centres: 1, 3/4, 1/4, 0 (clamped)
    a = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    assert torch.allclose(up[0, 0], a @ CAM[0, 0] @ a.T)


def test_guided_gradcam_by_hand():
    got = guided_gradcam(hand_net(), X3, CLASSES, layer="relu")
    assert torch.allclose(got, GUIDED * CAM)


def test_layer_gradients_by_hand():
    model = hand_net()
    acts, grads = layer_gradients(model, X3, "relu", CLASSES)
    relu_x = torch.cat([HAND_X.clamp(min=0), (-HAND_X).clamp(min=0)], dim=1)
    assert torch.equal(acts, relu_x.expand(3, 2, 2, 2))
    # the gradient reaching channel k of the ReLU output is V[c, k] / 4 everywhere
    assert torch.equal(grads, (torch.tensor([[1.0, 2.0], [-1.0, 1.0], [0.5, -3.0]]) / 4)
                       .view(3, 2, 1, 1).expand(3, 2, 2, 2))


def test_layer_gradients_before_an_inplace_relu_see_the_conv_output():
    # The in-place ReLU after "conv" must not overwrite the activations we return, and the
    # gradient at the conv output carries the ReLU's mask 1{s > 0}.
    model = hand_net(inplace=True)
    acts, grads = layer_gradients(model, HAND_X, "conv", 2)
    assert torch.equal(acts, torch.cat([HAND_X, -HAND_X], dim=1))
    mask = torch.cat([HAND_X > 0, HAND_X < 0], dim=1)
    assert torch.equal(grads, mask * torch.tensor([0.5, -3.0]).view(1, 2, 1, 1) / 4)


@pytest.mark.parametrize("variant, expected", [("mean", 1), ("squared", 2), ("variance", 0)])
def test_smoothgrad_of_a_linear_model_by_hand(variant, expected):
    # the gradient of a linear model is its weight row, whatever the noise
    model = linear_net(shape=(2, 4, 5))
    x = torch.rand(2, 2, 4, 5, dtype=torch.float64)
    w = model[1].weight[1].detach().view(1, 2, 4, 5)
    got = smoothgrad(model, x, 1, n_samples=7, sigma=0.3, variant=variant, batch_size=4)
    assert torch.allclose(got, (w**expected).expand(2, -1, -1, -1) * (expected != 0))


class SumOfPowers(torch.nn.Module):
    """y_0 = sum_i x_i^p, y_1 = -y_0: a model whose gradients and integrals are polynomials."""

    def __init__(self, power: int) -> None:
        super().__init__()
        self.power = power
        self.unused = torch.nn.Conv2d(1, 1, 1).double()  # gives the model a device/dtype

    def forward(self, x):
        y = (x**self.power).flatten(1).sum(1, keepdim=True)
        return torch.cat([y, -y], dim=1)


def test_smoothgrad_statistics_of_a_quadratic_by_hand():
    # f = sum x^2, g = 2 (x + s eps): E g = 2x, E g^2 = 4x^2 + 4 s^2, Var g = 4 s^2, where the
    # noise std s = sigma * (max x - min x) is a fraction of the image's value range.
    x = torch.tensor([0.0, 0.5, 2.0, 1.0], dtype=torch.float64).view(1, 1, 2, 2)
    s = 0.1 * 2.0
    kw = dict(n_samples=4000, sigma=0.1, batch_size=1000, seed=3)
    mean = smoothgrad(SumOfPowers(2), x, 0, variant="mean", **kw)
    sq = smoothgrad(SumOfPowers(2), x, 0, variant="squared", **kw)
    var = smoothgrad(SumOfPowers(2), x, 0, variant="variance", **kw)
    tol = 6 * 2 * s / 4000**0.5  # 6 standard errors of the mean of g
    assert torch.allclose(mean, 2 * x, atol=tol)
    assert torch.allclose(var, torch.full_like(x, 4 * s * s), rtol=0.1)
    assert torch.allclose(sq, 4 * x**2 + 4 * s * s, atol=0.1 * 4 * s * s + 4 * x.max() * tol)


@pytest.mark.parametrize("rule", ["gauss-legendre", "trapezoid", "riemann"])
def test_integrated_gradients_of_a_linear_model_is_x_minus_baseline_times_w(rule):
    model = linear_net(shape=(2, 4, 5))
    x = torch.rand(3, 2, 4, 5, dtype=torch.float64)
    base = torch.rand(2, 4, 5, dtype=torch.float64)
    w = model[1].weight[[2, 0, 1]].detach().view(3, 2, 4, 5)
    got, delta = integrated_gradients(model, x, [2, 0, 1], baseline=base, steps=3, rule=rule,
                                      return_delta=True)
    assert torch.allclose(got, (x - base) * w)
    assert torch.allclose(delta, torch.zeros(3, dtype=torch.float64), atol=1e-12)


def test_integrated_gradients_quadrature_rules_by_hand():
    # f = sum x^3 from the zero baseline: grad f(a x) = 3 a^2 x^2, so IG = x^3 * 3 int a^2 da.
    # Gauss-Legendre with 2 nodes integrates a^2 exactly; the trapezoid rule with n intervals
    # gives 1/3 + 1/(6 n^2); the right Riemann sum with m points gives (m+1)(2m+1)/(6 m^2).
    x = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64).view(1, 1, 2, 2)
    model = SumOfPowers(3)
    gl = integrated_gradients(model, x, 0, steps=2, rule="gauss-legendre")
    assert torch.allclose(gl, x**3)
    trap = integrated_gradients(model, x, 0, steps=5, rule="trapezoid")  # 4 intervals
    assert torch.allclose(trap, x**3 * 3 * (1 / 3 + 1 / (6 * 16)))
    riem = integrated_gradients(model, x, 0, steps=4, rule="riemann")
    assert torch.allclose(riem, x**3 * 3 * (5 * 9) / (6 * 16))


def test_integrated_gradients_constant_and_blur_baselines_by_hand():
    # f = sum x^2: IG = (x - b) * int 2 (b + a (x - b)) da = (x - b)(x + b) = x^2 - b^2
    x = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64).view(1, 1, 2, 2)
    got = integrated_gradients(SumOfPowers(2), x, 0, baseline=0.5, steps=1)
    assert torch.allclose(got, x**2 - 0.25)
    flat = torch.full((1, 1, 6, 6), 0.7, dtype=torch.float64)  # blurring a flat image: itself
    assert torch.allclose(integrated_gradients(SumOfPowers(2), flat, 0, baseline="blur", steps=2),
                          torch.zeros_like(flat))


def test_occlusion_by_hand_on_the_hand_net():
    # 1x1 windows, stride 1, baseline 0: zeroing pixel (i, j) removes its share of the logit,
    # V[c,0] relu(x)/4 + V[c,1] relu(-x)/4.
    share = torch.stack([HAND_X.clamp(min=0), (-HAND_X).clamp(min=0)], dim=0) / 4  # (2,1,1,2,2)
    expected = (torch.tensor([1.0, 2.0]).view(2, 1, 1, 1, 1) * share).sum(0)
    got = occlusion(hand_net(), HAND_X, 0, window=1, stride=1)
    assert torch.allclose(got, expected)
    raw = occlusion(hand_net(), HAND_X, 0, window=1, stride=1, per_position=True)
    assert torch.allclose(raw, expected)


def test_occlusion_averages_the_windows_covering_each_pixel_by_hand():
    # Linear model on one 1x3 row with weights (1, 2, 4), x = (1, 1, 1), baseline 0.
    # Windows 1x2, stride 1: positions cover (0,1) and (1,2); drops 3 and 6.
    # Pixel 0: 3; pixel 1: (3 + 6) / 2; pixel 2: 6.
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 1, bias=False)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 2.0, 4.0]]))
    x = torch.ones(1, 1, 1, 3, dtype=torch.float64)
    got = occlusion(model, x, 0, window=(1, 2), stride=1)
    assert torch.equal(got.flatten(), torch.tensor([3.0, 4.5, 6.0], dtype=torch.float64))
    raw = occlusion(model, x, 0, window=(1, 2), stride=1, per_position=True)
    assert torch.equal(raw.flatten(), torch.tensor([3.0, 6.0], dtype=torch.float64))
    # stride 2 skips the last pixel, so a last window is added at the edge: same positions
    assert torch.equal(occlusion(model, x, 0, window=(1, 2), stride=2), got)


@pytest.mark.parametrize("size, window, stride, starts", [
    (10, 4, 3, [0, 3, 6]),  # 0, 3, 6: the last window already ends at the edge (6 + 4 = 10)
    (10, 4, 4, [0, 4, 6]),  # 0, 4 leave rows 8, 9 uncovered: one more window flush with the edge
    (10, 2, 5, [0, 5, 8]),  # a stride longer than the window leaves gaps, but reaches the edge
    (5, 5, 1, [0]),         # one window, the whole image
    (7, 1, 3, [0, 3, 6]),
])
def test_window_starts_by_hand(size, window, stride, starts):
    assert window_starts(size, window, stride).tolist() == starts


def test_max_response_is_the_largest_value_of_each_image():
    logits = torch.tensor([[1.0, 5.0, -2.0], [0.0, -1.0, -3.0]])
    assert max_response(logits).tolist() == [5.0, 0.0]
    feature_maps = torch.zeros(2, 3, 2, 2)
    feature_maps[0, 2, 1, 0], feature_maps[1, 0, 0, 1] = 7.0, -0.5
    feature_maps[1] -= 1.0  # image 1: every value negative, the largest -1
    assert max_response(feature_maps).tolist() == [7.0, -1.0]
