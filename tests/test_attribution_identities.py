"""Identities every correct implementation satisfies, checked on small seeded networks."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import (
    EVERY_METHOD,
    images,
    linear_net,
    small_cnn,
    smooth_cnn,
    varied_images,
)

from gradviz_lab import hooks
from gradviz_lab.attribution import (
    deconvnet,
    gradcam,
    guided_backprop,
    guided_gradcam,
    input_gradient,
    integrated_gradients,
    occlusion,
    saliency,
    smoothgrad,
)


@pytest.mark.parametrize("variant", ["mean", "squared", "variance"])
def test_smoothgrad_with_sigma_zero_is_the_gradient(variant):
    model, x = small_cnn(), images(3)
    grad = input_gradient(model, x, [0, 1, 2])
    got = smoothgrad(model, x, [0, 1, 2], n_samples=5, sigma=0.0, variant=variant, batch_size=4)
    expected = {"mean": grad, "squared": grad**2, "variance": torch.zeros_like(grad)}[variant]
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-9)


def test_smoothgrad_wraps_other_methods_with_sigma_zero():
    model, x = small_cnn(), images(2)
    assert torch.allclose(smoothgrad(model, x, 1, n_samples=3, sigma=0.0, method=guided_backprop),
                          guided_backprop(model, x, 1), atol=1e-8)
    ig = integrated_gradients(model, x, 1, steps=4)
    got = smoothgrad(model, x, 1, n_samples=2, sigma=0.0, method=integrated_gradients, steps=4)
    assert torch.allclose(got, ig, atol=1e-8)


def test_smoothgrad_noise_changes_the_map_and_the_seed_controls_it():
    model, x = small_cnn(), images(1)
    a = smoothgrad(model, x, 0, n_samples=4, sigma=0.2, seed=1)
    assert torch.equal(a, smoothgrad(model, x, 0, n_samples=4, sigma=0.2, seed=1))
    assert not torch.allclose(a, smoothgrad(model, x, 0, n_samples=4, sigma=0.2, seed=2))
    assert not torch.allclose(a, input_gradient(model, x, 0))


@pytest.mark.parametrize("rule", ["gauss-legendre", "trapezoid", "riemann"])
def test_integrated_gradients_completeness_error_shrinks_with_steps(rule):
    model = smooth_cnn().double()
    x = images(2, size=6, dtype=torch.float64)
    deltas = []
    for steps in (2, 4, 16, 64):
        attr, delta = integrated_gradients(model, x, [0, 3], steps=steps, rule=rule,
                                           return_delta=True)
        # delta is defined as sum(IG) - (f(x) - f(x')): check it against the model itself
        f = model(x)[[0, 1], [0, 3]] - model(torch.zeros_like(x))[[0, 1], [0, 3]]
        assert torch.allclose(delta, attr.sum(dim=(1, 2, 3)) - f)
        deltas.append(delta.abs().max().item())
    # strictly smaller each time, until it reaches float64 round-off
    assert all(a > b or b < 1e-14 for a, b in zip(deltas, deltas[1:])), deltas
    # Gauss-Legendre converges fastest, then the trapezoid (O(1/n^2)), then Riemann (O(1/n))
    tolerance = {"gauss-legendre": 1e-12, "trapezoid": 1e-4, "riemann": 1e-2}[rule]
    assert deltas[-1] < tolerance * abs(f).max().item(), deltas


def test_integrated_gradients_completeness_on_a_relu_network():
    model = small_cnn().double()
    x = images(1, size=6, dtype=torch.float64)
    _, coarse = integrated_gradients(model, x, 2, steps=4, rule="trapezoid", return_delta=True)
    _, fine = integrated_gradients(model, x, 2, steps=256, rule="trapezoid", return_delta=True)
    assert fine.abs() < coarse.abs() / 10


@pytest.mark.parametrize("baseline", [0.0, 0.3, "tensor"])
def test_occlusion_with_a_full_image_window_is_the_score_drop_everywhere(baseline):
    model, x = small_cnn(), images(2)
    if baseline == "tensor":
        baseline = images(1, seed=9)[0]
    got = occlusion(model, x, [1, 4], window=(8, 8), stride=3, baseline=baseline)
    base = baseline if isinstance(baseline, torch.Tensor) else torch.full_like(x[0], baseline)
    drop = model(x)[[0, 1], [1, 4]] - model(base.expand_as(x))[[0, 1], [1, 4]]
    assert torch.allclose(got, drop.view(2, 1, 1, 1).expand(2, 1, 8, 8), atol=1e-6)


@pytest.mark.parametrize("window, stride", [((2, 3), 1), ((3, 2), (2, 3)), (4, 4), (5, 2)])
def test_occlusion_of_a_linear_model_is_analytic(window, stride):
    # For y = w.x + b, occluding window p drops the score by sum_{i in p} w_i (x_i - base_i),
    # and the map averages those drops over the windows covering each pixel. Written out with
    # explicit loops here, independently of the batched implementation.
    model = linear_net(shape=(2, 6, 7))
    x = torch.rand(2, 2, 6, 7, dtype=torch.float64)
    w = model[1].weight.detach().view(3, 2, 6, 7)
    h, wd = (window, window) if isinstance(window, int) else window
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    rows = sorted(set(range(0, 6 - h + 1, sh)) | {6 - h})
    cols = sorted(set(range(0, 7 - wd + 1, sw)) | {7 - wd})
    for b, c in ((0, 2), (1, 0)):
        total = torch.zeros(6, 7, dtype=torch.float64)
        count = torch.zeros(6, 7, dtype=torch.float64)
        for i in rows:
            for j in cols:
                contribution = w[c] * (x[b] - 0.5)
                drop = contribution[:, i:i + h, j:j + wd].sum()
                total[i:i + h, j:j + wd] += drop
                count[i:i + h, j:j + wd] += 1
        got = occlusion(model, x[b:b + 1], c, window=window, stride=stride, baseline=0.5)
        assert torch.allclose(got[0, 0], total / count.clamp(min=1))  # uncovered pixels: 0


def test_without_relus_deconvnet_and_guided_backprop_are_the_gradient():
    model, x = smooth_cnn(), images(3)
    grad = input_gradient(model, x, [0, 1, 3])
    for method in (deconvnet, guided_backprop):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert torch.equal(method(model, x, [0, 1, 3]), grad)
        # one warning, saying so: a model without any relu (not the functional-relu warning)
        assert [type(w.message) for w in caught] == [hooks.NoReLUWarning], [str(w.message) for w in caught]
        assert "no nn.ReLU module" in str(caught[0].message) and "plain gradient" in str(caught[0].message)


def test_gradcam_on_global_average_pooling_is_cam_up_to_a_positive_scale():
    # CAM (Zhou et al. 2016): M_c = sum_k w_ck A^k at the last conv layer, for a network that
    # ends with global average pooling + linear. There dy_c/dA^k_ij = w_ck / (h w), so Grad-CAM
    # is ReLU(M_c) / (h w).
    model, x = small_cnn(), images(3, size=10)
    acts = {}
    handle = model.relu2.register_forward_hook(lambda m, i, o: acts.setdefault("A", o.detach()))
    model(x)
    handle.remove()
    w = model.fc.weight.detach()[[4, 0, 2]]
    cam = torch.einsum("bk,bkhw->bhw", w, acts["A"]).unsqueeze(1)
    got = gradcam(model, x, [4, 0, 2], layer="relu2", upsample=False)
    hw = cam.shape[-1] * cam.shape[-2]
    assert torch.allclose(got * hw, cam.clamp(min=0), atol=1e-6)
    assert (cam > 0).any() and (cam < 0).any()  # the ReLU of Grad-CAM really cut something


BATCHED = [
    ("smoothgrad", lambda m, x, t, bs: smoothgrad(m, x, t, n_samples=5, sigma=0.2, batch_size=bs)),
    ("smoothgrad-var", lambda m, x, t, bs: smoothgrad(m, x, t, n_samples=5, variant="variance",
                                                      batch_size=bs)),
    ("ig", lambda m, x, t, bs: integrated_gradients(m, x, t, steps=7, batch_size=bs)),
    ("ig-blur", lambda m, x, t, bs: integrated_gradients(m, x, t, steps=5, baseline="blur",
                                                         rule="trapezoid", batch_size=bs)),
    ("occlusion", lambda m, x, t, bs: occlusion(m, x, t, window=3, stride=2, batch_size=bs)),
    ("occlusion-raw", lambda m, x, t, bs: occlusion(m, x, t, window=(2, 4), stride=(3, 1),
                                                    batch_size=bs, per_position=True)),
]


@pytest.mark.parametrize("name, method", BATCHED, ids=[n for n, _ in BATCHED])
def test_results_do_not_depend_on_batch_size(name, method):
    # float64, so that round-off (different conv algorithms per batch size) stays far below
    # the tolerance while any real mix-up of rows, samples or windows does not
    model, x = small_cnn().double(), images(3, dtype=torch.float64)
    reference = method(model, x, [0, 2, 4], 1000)
    for batch_size in (1, 2, 5, 16):
        assert torch.allclose(method(model, x, [0, 2, 4], batch_size), reference,
                              rtol=1e-9, atol=1e-12), batch_size


# conftest's registry of every method, plus the knobs it does not reach, and the batched ones
ALL_METHODS = [(n, lambda m, x, t, f=f: f(m, x, t)) for n, f in EVERY_METHOD.items()] + [
    ("saliency-mean", lambda m, x, t: saliency(m, x, t, reduce="mean")),
    ("gradcam-relu2", lambda m, x, t: gradcam(m, x, t, layer="relu2")),
    ("gradcam-raw", lambda m, x, t: gradcam(m, x, t, layer="conv2", upsample=False)),
    ("guided_gradcam-relu1", lambda m, x, t: guided_gradcam(m, x, t, layer="relu1")),
] + [(n, lambda m, x, t, f=f: f(m, x, t, 7)) for n, f in BATCHED]


@pytest.mark.parametrize("name, method", ALL_METHODS, ids=[n for n, _ in ALL_METHODS])
@pytest.mark.parametrize("target_kind", ["ints", "none", "callable"])
def test_a_batch_equals_stacked_single_image_calls(name, method, target_kind):
    model, x = small_cnn(seed=1).double(), varied_images()
    targets = [3, 0, 1]
    if target_kind == "ints":
        batch = method(model, x, targets)
        singles = [method(model, x[i:i + 1], targets[i]) for i in range(3)]
    elif target_kind == "none":
        batch = method(model, x, None)
        singles = [method(model, x[i:i + 1], None) for i in range(3)]
    else:
        def score(out):
            return out[:, 2] - out[:, 1]
        batch = method(model, x, score)
        singles = [method(model, x[i:i + 1], score) for i in range(3)]
    assert torch.allclose(batch, torch.cat(singles), rtol=1e-9, atol=1e-12)
    assert batch.abs().sum() > 0


def test_none_target_is_the_predicted_class_of_each_image():
    model, x = small_cnn(seed=1).double(), varied_images()
    predicted = model(x).argmax(1).tolist()
    assert len(set(predicted)) > 1  # the images do not all agree, so the test can fail
    assert torch.equal(input_gradient(model, x), input_gradient(model, x, predicted))
    assert torch.allclose(smoothgrad(model, x, n_samples=3), smoothgrad(model, x, predicted,
                                                                        n_samples=3))
    assert torch.allclose(occlusion(model, x, window=4, stride=4),
                          occlusion(model, x, predicted, window=4, stride=4))


def test_target_as_a_tensor_equals_target_as_a_list():
    model, x = small_cnn(), images(3)
    assert torch.equal(input_gradient(model, x, torch.tensor([4, 1, 0])),
                       input_gradient(model, x, [4, 1, 0]))


def test_layer_as_a_module_equals_layer_as_its_dotted_name():
    model, x = small_cnn(), images(2)
    assert torch.equal(gradcam(model, x, 1, layer=model.conv2), gradcam(model, x, 1, layer="conv2"))
    assert not torch.equal(gradcam(model, x, 1, layer=model.conv2),
                           gradcam(model, x, 1, layer="conv1"))
