"""Grad-CAM's family (attribution/cam_family.py, cam_scores.py) and layer=[...]: maps computed by
hand on networks whose layer is the input itself, the identities between the variants, batches,
the batched perturbation methods against a per-channel loop written here, state and errors."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import assert_same_state, prepared_model, small_cnn, snapshot, varied_images
from gradviz_lab import attribution as a

VARIANTS = {
    "gradcam": a.gradcam, "cam": a.cam, "gradcam_plus_plus": a.gradcam_plus_plus,
    "xgradcam": a.xgradcam, "hirescam": a.hirescam, "layercam": a.layercam,
    "scorecam": a.scorecam, "ablationcam": a.ablationcam, "eigencam": a.eigencam,
}


def dense_net(weights: torch.Tensor) -> nn.Sequential:
    """y = sum_kij W[c, k, i, j] x[k, i, j]: the layer "maps" is the input itself (A = x), and
    the gradient dy_c/dA = W[c] varies over space."""
    fc = nn.Linear(weights[0].numel(), len(weights), bias=False)
    with torch.no_grad():
        fc.weight.copy_(weights.flatten(1))
    return nn.Sequential(OrderedDict(maps=nn.Identity(), flat=nn.Flatten(), fc=fc)).double().eval()


def gap_net(weights: torch.Tensor) -> nn.Sequential:
    """y_c = sum_k V[c, k] mean_ij x[k, i, j]: global average pooling + linear head, A = x."""
    fc = nn.Linear(weights.shape[1], weights.shape[0], bias=False)
    with torch.no_grad():
        fc.weight.copy_(weights)
    layers = OrderedDict(maps=nn.Identity(), pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=fc)
    return nn.Sequential(layers).double().eval()


# A^0 = [1, 2], A^1 = [3, 1] (1 x 2 maps); the gradient of the one class: G^0 = [1, -1], G^1 = [2, 1]
DENSE_A = torch.tensor([[[[1.0, 2.0]], [[3.0, 1.0]]]], dtype=torch.float64)
DENSE_G = torch.tensor([[[[1.0, -1.0]], [[2.0, 1.0]]]], dtype=torch.float64)


def on_dense(method, **knobs) -> list[float]:
    cam = method(dense_net(DENSE_G), DENSE_A, 0, layer="maps", upsample=False, **knobs)
    assert cam.shape == (1, 1, 1, 2)
    return cam.flatten().tolist()


# ---------------------------------------------------------------- maps computed by hand
def test_gradient_weighted_variants_by_hand():
    # Grad-CAM: alpha = mean G = (0, 1.5) -> 1.5 A^1
    assert on_dense(a.gradcam) == pytest.approx([4.5, 1.5])
    # HiResCAM: G^0 A^0 + G^1 A^1 = [1 + 6, -2 + 1] -> ReLU
    assert on_dense(a.hirescam) == pytest.approx([7.0, 0.0])
    # LayerCAM: ReLU(G^0) A^0 + ReLU(G^1) A^1 = [1 + 6, 0 + 1]
    assert on_dense(a.layercam) == pytest.approx([7.0, 1.0])
    # XGrad-CAM: w0 = (1 - 2) / 3, w1 = (6 + 1) / 4
    assert on_dense(a.xgradcam) == pytest.approx([-1 / 3 + 21 / 4, -2 / 3 + 7 / 4])
    # Grad-CAM++: sum A^0 = 3: a = 1/(2+3) at G=1, -1/(2-3)... weighted by ReLU(G): w0 = 1/5;
    # sum A^1 = 4: a = 4/(8+32) at G=2, 1/(2+4) at G=1: w1 = 2/10 + 1/6
    w0, w1 = 1 / 5, 2 / 10 + 1 / 6
    assert on_dense(a.gradcam_plus_plus) == pytest.approx([w0 * 1 + w1 * 3, w0 * 2 + w1 * 1])


def test_score_cam_by_hand():
    # masks at the input's resolution: N(A^0) = [0, 1], N(A^1) = [1, 0]; y(x * H^0) = -2 + 1,
    # y(x * H^1) = 1 + 6; weights softmax(-1, 7)
    e0, e1 = math.exp(-1), math.exp(7)
    w0, w1 = e0 / (e0 + e1), e1 / (e0 + e1)
    for batch_size in (1, 2, 64):
        assert on_dense(a.scorecam, batch_size=batch_size) == pytest.approx(
            [w0 * 1 + w1 * 3, w0 * 2 + w1 * 1])


def test_ablation_cam_by_hand():
    # y = (1 - 2) + (6 + 1) = 6; without A^0: 7, without A^1: -1
    w0, w1 = (6 - 7) / 6, (6 + 1) / 6
    for batch_size in (1, 2, 64):
        assert on_dense(a.ablationcam, batch_size=batch_size) == pytest.approx(
            [w0 * 1 + w1 * 3, w0 * 2 + w1 * 1])


def test_eigen_cam_by_hand():
    # M (positions x channels) = [[1, 3], [2, 1]]; M^T M = [[5, 5], [5, 10]], whose largest
    # eigenvalue is (15 + sqrt(125)) / 2 with eigenvector (5, lambda - 5)
    lam = (15 + math.sqrt(125)) / 2
    v = torch.tensor([5.0, lam - 5], dtype=torch.float64)
    v = v / v.norm()
    expected = torch.tensor([[1.0, 3.0], [2.0, 1.0]], dtype=torch.float64) @ v
    assert on_dense(a.eigencam) == pytest.approx(expected.tolist())
    # class-agnostic: the same map whatever the class
    model, x = gap_net(torch.tensor([[1.0, -2.0], [-1.0, 3.0]])), images(2, k=2)
    torch.testing.assert_close(a.eigencam(model, x, 0), a.eigencam(model, x, 1))


def test_eigen_cam_sign_is_fixed_so_the_projection_sums_to_a_positive_number():
    # all activations negative: the map is the projection with the sign that makes it positive
    x = -images(1, k=3)
    model = gap_net(torch.ones(2, 3))
    cam = a.eigencam(model, x, 0, layer="maps", upsample=False)
    matrix = x[0].flatten(1).T  # (hw, K)
    v = torch.linalg.svd(matrix, full_matrices=False)[2][0]
    projection = matrix @ v
    projection = projection if projection.sum() >= 0 else -projection
    torch.testing.assert_close(cam.flatten(), torch.relu(projection))
    assert float(cam.sum()) > 0


def test_cam_by_hand_reads_the_linear_weights():
    v = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 3.0, 2.0]])
    model, x = gap_net(v), images(2, k=3)
    for c in (0, 1):
        expected = torch.relu((v[c].double().view(1, 3, 1, 1) * x).sum(dim=1, keepdim=True))
        torch.testing.assert_close(a.cam(model, x, c, layer="maps", upsample=False), expected)


# ---------------------------------------------------------------- identities
def images(n: int, k: int = 3, size: int = 4, seed: int = 0) -> torch.Tensor:
    """Positive activations (as after a ReLU), float64."""
    return torch.rand(n, k, size, size, generator=torch.Generator().manual_seed(seed)).double() + 0.1


GAP_V = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 3.0, 2.0], [0.5, 0.25, 1.0]])


@pytest.mark.parametrize("c", [0, 1, 2])
def test_on_a_pooled_linear_head_cam_is_gradcam_scaled_and_xgradcam_hirescam_are_gradcam(c):
    model, x = gap_net(GAP_V), images(2)
    grad = a.gradcam(model, x, c, layer="maps", upsample=False)
    torch.testing.assert_close(a.cam(model, x, c, layer="maps", upsample=False), 16 * grad)
    torch.testing.assert_close(a.xgradcam(model, x, c, layer="maps", upsample=False), grad)
    torch.testing.assert_close(a.hirescam(model, x, c, layer="maps", upsample=False), grad)
    # LayerCAM: Grad-CAM with the channels of negative weight left out
    alpha = torch.relu(GAP_V[c].double() / 16).view(1, 3, 1, 1)
    expected = torch.relu((alpha * x).sum(dim=1, keepdim=True))
    torch.testing.assert_close(a.layercam(model, x, c, layer="maps", upsample=False), expected)
    # Grad-CAM++: g = V/16 everywhere, a = g^2 / (2 g^2 + S g^3), w = 16 a ReLU(g)
    g, total = GAP_V[c].double().view(1, 3, 1, 1) / 16, x.sum(dim=(2, 3), keepdim=True)
    w = 16 * g**2 / (2 * g**2 + total * g**3) * torch.relu(g)
    expected = torch.relu((w * x).sum(dim=1, keepdim=True))
    torch.testing.assert_close(a.gradcam_plus_plus(model, x, c, layer="maps", upsample=False), expected)


def test_layercam_is_gradcam_at_the_last_layer_when_the_class_weights_are_positive():
    model, x = gap_net(GAP_V), images(2)
    torch.testing.assert_close(a.layercam(model, x, 2), a.gradcam(model, x, 2, layer="maps"))


def test_on_a_small_cnn_the_pooled_layer_gives_the_same_identities():
    model, x = small_cnn(seed=1).double(), varied_images()
    grad = a.gradcam(model, x, layer="relu2")
    torch.testing.assert_close(a.cam(model, x), 16 * grad)  # default layer relu2, 4 x 4
    torch.testing.assert_close(a.xgradcam(model, x, layer="relu2"), grad)
    torch.testing.assert_close(a.hirescam(model, x, layer="relu2"), grad)


def test_score_cam_with_a_single_channel_is_the_relu_of_the_map():
    model, x = gap_net(torch.tensor([[2.0], [-1.0]])), images(2, k=1) - 0.5
    expected = F.interpolate(torch.relu(x), size=(4, 4), mode="bilinear", align_corners=False)
    for c in (0, 1):
        torch.testing.assert_close(a.scorecam(model, x, c, layer="maps"), expected)


# ---------------------------------------------------------------- batches and the per-channel loop
@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_batch_is_its_images_stacked(name):
    method, model, x = VARIANTS[name], small_cnn(seed=1).double(), varied_images()
    batch = method(model, x, [1, 0, 3])
    singles = torch.cat([method(model, x[i : i + 1], c) for i, c in enumerate([1, 0, 3])])
    torch.testing.assert_close(batch, singles)
    assert batch.shape == (3, 1, 8, 8) and bool((batch >= 0).all())


def per_channel_weights(model, x, classes, kind: str) -> torch.Tensor:
    """Score-CAM's or Ablation-CAM's weights (B, K), one image and one channel at a time."""
    layer = model.relu2
    record = []
    handle = layer.register_forward_hook(lambda m, i, o: record.append(o.clone()))
    with torch.no_grad():
        clean = model(x)
    handle.remove()
    acts = record[0]
    weights = torch.zeros(acts.shape[:2], dtype=x.dtype)
    for b, c in enumerate(classes):
        scores = []
        for k in range(acts.shape[1]):
            if kind == "score":
                up = F.interpolate(acts[b : b + 1, k : k + 1], size=x.shape[-2:], mode="bilinear")
                lo, hi = up.min(), up.max()
                mask = (up - lo) / (hi - lo) if hi > lo else torch.zeros_like(up)
                with torch.no_grad():
                    scores.append(model(x[b : b + 1] * mask)[0, c])
            else:
                def zero(m, i, o, k=k):
                    o = o.clone()
                    o[:, k] = 0
                    return o
                handle = layer.register_forward_hook(zero)
                with torch.no_grad():
                    scores.append(model(x[b : b + 1])[0, c])
                handle.remove()
        scores = torch.stack(scores)
        y = clean[b, c]
        weights[b] = scores.softmax(0) if kind == "score" else (y - scores) / y
    return weights, acts


@pytest.mark.parametrize("kind", ["score", "ablation"])
def test_the_batched_perturbation_methods_equal_a_per_channel_loop(kind):
    model, x, classes = small_cnn(seed=1, inplace=False).double(), varied_images(), [1, 0, 3]
    weights, acts = per_channel_weights(model, x, classes, kind)
    expected = torch.relu((weights[:, :, None, None] * acts).sum(dim=1, keepdim=True))
    method = a.scorecam if kind == "score" else a.ablationcam
    for batch_size in (1, 3, 7, 24, 1000):
        got = method(model, x, classes, layer="relu2", upsample=False, batch_size=batch_size)
        torch.testing.assert_close(got, expected)


# ---------------------------------------------------------------- several layers
def test_several_layers_are_normalised_to_max_one_and_averaged():
    model, x = small_cnn(seed=1).double(), varied_images()
    for method in (a.gradcam, a.layercam, a.scorecam):
        maps = [method(model, x, 0, layer=name) for name in ("conv1", "relu2")]
        peaks = [m.flatten(1).amax(dim=1).view(-1, 1, 1, 1) for m in maps]
        expected = (maps[0] / peaks[0] + maps[1] / peaks[1]) / 2
        torch.testing.assert_close(method(model, x, 0, layer=["conv1", "relu2"]), expected)
        torch.testing.assert_close(method(model, x, 0, layer=("relu2",)), maps[1] / peaks[1])


def test_several_layers_with_none_fix_each_images_class_once():
    model, x = small_cnn(seed=1).double(), varied_images()
    classes = model(x).argmax(dim=1)
    torch.testing.assert_close(a.gradcam(model, x, layer=["conv1", "relu2"]),
                               a.gradcam(model, x, classes, layer=["conv1", "relu2"]))


def test_a_map_that_is_zero_everywhere_stays_zero_when_combined():
    model, x = gap_net(torch.tensor([[-1.0, -1.0, -1.0]])), images(1)
    assert float(a.gradcam(model, x, 0, layer=["maps", "maps"]).abs().max()) == 0.0


def test_layer_lists_that_cannot_be_combined_are_refused():
    model, x = small_cnn(), torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="names no layer"):
        a.gradcam(model, x, layer=[])
    with pytest.raises(ValueError, match="upsample=False needs a single layer"):
        a.hirescam(model, x, layer=["conv1", "conv2"], upsample=False)
    with pytest.raises(ValueError, match="unknown layer 'conv9'.*Valid layer names"):
        a.layercam(model, x, layer=["conv1", "conv9"])
    guided = a.guided_gradcam(model, x, 0, layer=["conv1", "conv2"])  # passes its list on
    assert guided.shape == (1, 3, 8, 8)


# ---------------------------------------------------------------- errors and state
def test_cam_refuses_a_layer_that_is_not_the_pooled_one_and_says_what_follows_it():
    model, x = small_cnn(), torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="after 'conv1' this model runs ReLU, MaxPool2d, Conv2d.*"
                       "choose the layer that is pooled"):
        a.cam(model, x, layer="conv1")
    with pytest.raises(ValueError, match="runs Flatten, Linear: the model has no such head after "
                       "it: use Grad-CAM"):
        a.cam(dense_net(DENSE_G), DENSE_A, layer="maps")


@pytest.mark.parametrize("name", ["scorecam", "ablationcam"])
def test_batch_size_must_be_a_positive_int(name):
    model, x = small_cnn(), torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        VARIANTS[name](model, x, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        VARIANTS[name](model, x, batch_size=2.0)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_layer_without_maps_is_refused(name):
    model, x = small_cnn(), torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)|global average pooling"):
        VARIANTS[name](model, x, layer="fc")


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_model_is_left_as_it_was_also_when_the_call_raises(name):
    model, _ = prepared_model()
    x = torch.rand(2, 3, 8, 8)
    before = snapshot(model)
    VARIANTS[name](model, x, [0, 2])
    assert_same_state(before, snapshot(model))
    with pytest.raises(ValueError, match="out of range"):
        VARIANTS[name](model, x, [0, 7])
    assert_same_state(before, snapshot(model))

    def failing(output):  # a score that fails after the first batch of Score-/Ablation-CAM
        failing.calls += 1
        if failing.calls > 2:
            raise RuntimeError("the caller's score failed")
        return output[:, 0]

    failing.calls = 0
    knobs = {"batch_size": 2} if name in ("scorecam", "ablationcam") else {}
    with pytest.raises(RuntimeError, match="the caller's score failed"):
        for _ in range(3):  # the single-pass methods fail on their third call
            VARIANTS[name](model, x, failing, **knobs)
    assert_same_state(before, snapshot(model))


# ---------------------------------------------------------------- the Grad-CAM dashboard's variants
def test_the_gradcam_dashboard_shows_each_variant_as_its_function_computes_it():
    import numpy as np

    from gradviz_lab import methods
    from gradviz_lab.widgets import gradcam_dashboard

    model = small_cnn(seed=1)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    dash = gradcam_dashboard(model, x, ["a", "b", "c", "d", "e"])
    assert dash.controls["variant"].value == "gradcam"  # the default: Grad-CAM, as before
    assert list(dash.last_maps) == ["Grad-CAM relu2", "guided Grad-CAM relu2"]
    dash.controls["target"].value = 2
    for name in methods.CAM_FAMILY:
        dash.controls["variant"].value = name
        assert dash.last_error is None, dash.last_error
        function = methods.get(name).load()
        expected = function(model, x[:1], 2, layer="relu2")[0, 0].numpy()
        np.testing.assert_allclose(dash.last_map, expected, rtol=1e-5, atol=1e-7)
        title = next(iter(dash.last_maps))
        assert title.endswith(" relu2") and f"guided {title}" in dash.last_maps


# ---------------------------------------------------------------- the Grad-CAM++ exercise's checker
def test_the_grad_cam_plus_plus_checker_passes_a_fresh_implementation_and_names_each_mistake(capsys):
    from gradviz_lab import check
    from gradviz_lab.check.attribution import _gradcam_plus_plus_variant

    def written_afresh(model, x, target, layer):  # the exercise's solution, with a hook
        kept = {}
        handle = layer.register_forward_hook(lambda m, i, o: kept.update(A=o) or o.clone())
        try:
            x = x.detach().clone().requires_grad_(True)
            score = model(x).gather(1, target[:, None]).sum()
        finally:
            handle.remove()
        (g,) = torch.autograd.grad(score, kept["A"])
        a_ = kept["A"]
        denominator = 2 * g**2 + a_.sum(dim=(2, 3), keepdim=True) * g**3
        alpha = torch.where(denominator != 0, g**2 / torch.where(denominator != 0, denominator, 1), 0)
        w = (alpha * torch.relu(g)).sum(dim=(2, 3), keepdim=True)
        cam = torch.relu((w * a_).sum(dim=1, keepdim=True)).detach()
        return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)

    assert check.check_gradcam_plus_plus(written_afresh).passed
    hints = {
        "left out the factor 2": _gradcam_plus_plus_variant(factor=1.0),
        "the positive part of the gradient": _gradcam_plus_plus_variant(relu=False),
        "the sum of the whole map k": _gradcam_plus_plus_variant(whole_map=False),
        "you computed Grad-CAM": lambda m, x, t, layer: a.gradcam(m, x, t, layer=layer),
    }
    for hint, mistaken in hints.items():
        capsys.readouterr()
        assert not check.check_gradcam_plus_plus(mistaken).passed
        assert capsys.readouterr().out.count(hint) == 3, hint
