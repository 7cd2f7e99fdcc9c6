"""Our maps against independent references written here the lecture's way (hooks on nn.ReLU,
stored activations and gradients, explicit loops), on the same models; in-place ReLU models
against their inplace=False copies; torchvision's VGG11 and ResNet18 with every method."""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import (
    TwiceReLU,
    assert_same_state,
    images,
    small_cnn,
    smooth_cnn,
    snapshot,
    without_inplace,
)
from torch import nn

from gradviz_lab import hooks
from gradviz_lab.attribution import (
    cam_layers,
    deconvnet,
    default_cam_layer,
    gradcam,
    guided_backprop,
    guided_gradcam,
    input_gradient,
    integrated_gradients,
    occlusion,
    saliency,
    smoothgrad,
)


# --- references, the lecture's way ----------------------------------------------------------


def reference_relu_backprop(model: nn.Module, x: torch.Tensor, classes: list[int], mode: str):
    """Deconvnet / guided backprop with backward hooks on every nn.ReLU module (needs
    inplace=False). For a ReLU the incoming grad_input is 1{s>0} g, so guided backprop is
    relu(grad_input) and the deconvnet is relu(grad_output) -- no stored input needed, which
    also holds when one ReLU module runs several times."""

    def deconv_hook(module, grad_input, grad_output):
        return (F.relu(grad_output[0]),)

    def guided_hook(module, grad_input, grad_output):
        return (F.relu(grad_input[0]),)

    hook = deconv_hook if mode == "deconvnet" else guided_hook
    handles = [m.register_full_backward_hook(hook) for m in model.modules()
               if isinstance(m, nn.ReLU)]
    try:
        maps = []
        for i, c in enumerate(classes):
            inp = x[i:i + 1].clone().requires_grad_()
            (g,) = torch.autograd.grad(model(inp)[0, c], inp)
            maps.append(g)
        return torch.cat(maps)
    finally:
        for h in handles:
            h.remove()


def reference_gradcam(model: nn.Module, x: torch.Tensor, classes: list[int], layer: nn.Module):
    """Grad-CAM: store A in a forward hook and dy/dA in a backward hook, one image at a time."""
    store = {}
    fwd = layer.register_forward_hook(lambda m, i, o: store.__setitem__("A", o))
    bwd = layer.register_full_backward_hook(lambda m, gi, go: store.__setitem__("dA", go[0]))
    try:
        maps = []
        for i, c in enumerate(classes):
            inp = x[i:i + 1].clone().requires_grad_()  # so the backward hook fires on layer 1
            out = model(inp)
            torch.autograd.grad(out[0, c], inp)
            alpha = store["dA"].mean((2, 3), keepdim=True)
            maps.append(torch.relu((alpha * store["A"]).sum(1, keepdim=True)).detach())
        return torch.cat(maps)
    finally:
        fwd.remove()
        bwd.remove()


def reference_smoothgrad(model, x, c, n, sigma, seed):
    """The lecture's loop over noisy copies, one image, one copy at a time. The noise follows
    smoothgrad's documented protocol: a CPU generator seeded with `seed`, one (C, H, W)
    standard normal draw per sample, scaled by sigma * (max - min) of the image."""
    gen = torch.Generator().manual_seed(seed)
    std = sigma * (x.max() - x.min())
    acc = torch.zeros_like(x)
    for _ in range(n):
        noisy = (x + std * torch.randn(x.shape[1:], generator=gen).to(x.dtype)).requires_grad_()
        (g,) = torch.autograd.grad(model(noisy)[0, c], noisy)
        acc += g
    return acc / n


def reference_integrated_gradients(model, x, c, n=2000):
    """Midpoint rule with many steps from a zero baseline, one step at a time."""
    total = torch.zeros_like(x)
    for k in range(n):
        point = ((k + 0.5) / n * x).requires_grad_()
        (g,) = torch.autograd.grad(model(point)[0, c], point)
        total += g
    return x * total / n


def reference_occlusion(model, x, c, window, stride, value):
    """The lecture's loop: one forward pass per window position, accumulated per pixel."""
    _, _, height, width = x.shape
    total, count = torch.zeros(height, width), torch.zeros(height, width)
    with torch.no_grad():
        clean = model(x)[0, c]
        for i in range(0, height - window + 1, stride):
            for j in range(0, width - window + 1, stride):
                hidden = x.clone()
                hidden[:, :, i:i + window, j:j + window] = value
                total[i:i + window, j:j + window] += clean - model(hidden)[0, c]
                count[i:i + window, j:j + window] += 1
    return (total / count).view(1, 1, height, width)


@pytest.mark.parametrize("mode", ["deconvnet", "guided"])
@pytest.mark.parametrize("make", [small_cnn, TwiceReLU], ids=["cnn", "relu-twice"])
def test_relu_rules_match_lecture_style_backward_hooks(mode, make):
    model = make()  # in-place ReLUs: ours must cope; the reference runs on an inplace=False copy
    x = images(3, size=8, seed=4)
    ours = (deconvnet if mode == "deconvnet" else guided_backprop)(model, x, [0, 1, 2])
    reference = reference_relu_backprop(without_inplace(model), x, [0, 1, 2], mode)
    assert torch.allclose(ours, reference, atol=1e-7)
    assert not torch.allclose(ours, input_gradient(model, x, [0, 1, 2]), atol=1e-7)


@pytest.mark.parametrize("layer", ["conv1", "relu1", "pool", "conv2", "relu2"])
def test_gradcam_matches_stored_activations_and_gradients(layer):
    model = without_inplace(small_cnn())
    x = images(3, size=8, seed=5)
    module = dict(model.named_modules())[layer]
    ours = gradcam(model, x, [4, 1, 3], layer=layer, upsample=False)
    reference = reference_gradcam(model, x, [4, 1, 3], module)
    assert torch.allclose(ours, reference, atol=1e-7)
    assert ours.abs().sum() > 0


def test_smoothgrad_matches_an_explicit_loop_over_noisy_copies():
    model = small_cnn().double()
    x = images(2, dtype=torch.float64, seed=6)
    ours = smoothgrad(model, x, [3, 0], n_samples=6, sigma=0.25, seed=11, batch_size=5)
    for i, c in enumerate([3, 0]):
        reference = reference_smoothgrad(model, x[i:i + 1], c, 6, 0.25, 11)
        assert torch.allclose(ours[i:i + 1], reference, rtol=1e-10, atol=1e-12)


def test_integrated_gradients_matches_a_fine_explicit_loop():
    model = smooth_cnn().double()  # smooth, so both quadratures converge fast
    x = images(1, size=6, dtype=torch.float64, seed=7)
    ours = integrated_gradients(model, x, 1, steps=16)
    reference = reference_integrated_gradients(model, x, 1, n=400)
    assert torch.allclose(ours, reference, rtol=0, atol=1e-5 * reference.abs().max().item())


def test_occlusion_matches_the_per_position_loop():
    model = small_cnn()
    x = images(1, size=10, seed=8)
    for window, stride in ((4, 2), (3, 1), (10, 1)):
        ours = occlusion(model, x, 2, window=window, stride=stride, baseline=0.25, batch_size=9)
        assert torch.allclose(ours, reference_occlusion(model, x, 2, window, stride, 0.25),
                              atol=1e-6)


# --- in-place ReLU models give the maps of their inplace=False copies ------------------------

def test_inplace_relu_model_gives_the_maps_of_its_inplace_false_copy(method_name, every_method):
    method = every_method[method_name]
    model = small_cnn(inplace=True)
    x = images(2, seed=9)
    ours = method(model, x, [1, 2])
    assert torch.equal(ours, method(without_inplace(model), x, [1, 2]))
    assert ours.abs().sum() > 0


# --- torchvision models (random weights) ------------------------------------------------------


@pytest.fixture(scope="module")
def torchvision_models():
    torch.manual_seed(0)
    return {
        "vgg11": torchvision.models.vgg11(weights=None).eval(),
        "resnet18": torchvision.models.resnet18(weights=None).eval(),
    }


TORCHVISION_CALLS = {
    "input_gradient": lambda m, x: input_gradient(m, x),
    "saliency": lambda m, x: saliency(m, x),
    "smoothgrad": lambda m, x: smoothgrad(m, x, 7, n_samples=2, batch_size=4),
    "integrated_gradients": lambda m, x: integrated_gradients(m, x, 7, steps=2, batch_size=4),
    "occlusion": lambda m, x: occlusion(m, x, 7, window=16, stride=16, batch_size=8),
    "deconvnet": lambda m, x: deconvnet(m, x, 7),
    "guided_backprop": lambda m, x: guided_backprop(m, x, 7),
    "gradcam": lambda m, x: gradcam(m, x, 7),
    "guided_gradcam": lambda m, x: guided_gradcam(m, x, 7),
}


@pytest.mark.parametrize("arch", ["vgg11", "resnet18"])
def test_torchvision_models_work_with_every_method(torchvision_models, arch):
    """A smoke test: every method runs and gives finite, non-zero maps of the right shape (the
    values are checked against references in the tests below)."""
    model = torchvision_models[arch]
    x = images(2, size=32, seed=10)
    before = hooks.count_hooks(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no functional-relu warning: both use nn.ReLU modules
        for name, call in TORCHVISION_CALLS.items():
            out = call(model, x)
            channels = 1 if name in ("saliency", "occlusion", "gradcam") else 3
            assert out.shape == (2, channels, 32, 32), name
            assert torch.isfinite(out).all() and out.abs().sum() > 0, name
    assert hooks.count_hooks(model) == before


def hand_gradcam(model: nn.Module, x: torch.Tensor, classes: torch.Tensor, layer: str):
    """Grad-CAM by hand: A from a forward hook, dy_c/dA from autograd.grad, upsampled bilinearly."""
    store = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: store.update(A=o))
    try:
        score = model(x)[torch.arange(len(x)), classes].sum()  # images independent in eval mode
        (grad,) = torch.autograd.grad(score, store["A"])
    finally:
        handle.remove()
    cam = torch.relu((grad.mean((2, 3), keepdim=True) * store["A"]).sum(1, keepdim=True))
    return F.interpolate(cam.detach(), size=x.shape[-2:], mode="bilinear", align_corners=False)


@pytest.mark.parametrize("arch", ["vgg11", "resnet18"])
def test_torchvision_maps_equal_their_definitions(torchvision_models, arch):
    # ResNet18 is the hard case: each block's in-place ReLU module runs twice.
    model = torchvision_models[arch]
    x = images(2, size=32, seed=10)
    with torch.no_grad():
        logits = model(x)
        drop = logits[:, 7] - model(torch.zeros_like(x))[:, 7]  # F(x) - F(black), class 7
    predicted = logits.argmax(1)
    inp = x.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(model(inp)[torch.arange(2), predicted].sum(), inp)
    torch.testing.assert_close(input_gradient(model, x), gradient)
    torch.testing.assert_close(saliency(model, x), gradient.abs().amax(1, keepdim=True))
    # completeness: the integrated gradients add up to F(x) - F(x') (a black baseline)
    ig = integrated_gradients(model, x, 7, steps=64, batch_size=32)
    assert bool(((ig.flatten(1).sum(1) - drop).abs() < 1e-2 * drop.abs()).all()), (ig.sum(), drop)
    # one window covering the whole image: the map is the score drop, everywhere
    torch.testing.assert_close(occlusion(model, x, 7, window=32, stride=32),
                               drop.view(2, 1, 1, 1).expand(2, 1, 32, 32))
    layer = default_cam_layer(model, x)
    torch.testing.assert_close(gradcam(model, x, 7), hand_gradcam(model, x, torch.tensor([7, 7]), layer))


def test_resnet_in_train_mode_comes_back_with_its_modes_and_statistics(torchvision_models):
    model = torchvision_models["resnet18"]
    x = images(2, size=32, seed=13)
    try:
        model.train()  # a mixed state: train mode, one eval stage, a frozen weight, a .grad
        model.layer1.eval()
        model.fc.weight.requires_grad_(False)
        model.conv1.weight.grad = torch.ones_like(model.conv1.weight)
        before = snapshot(model)
        for name in ("input_gradient", "guided_backprop", "smoothgrad"):
            TORCHVISION_CALLS[name](model, x)
        gradcam(model, x, 7, layer="layer3.1")
        # the default layer is found with one image, in eval mode (batch norm in train mode
        # refuses a single image once the maps are 1x1): the model must still come back as it was
        assert default_cam_layer(model, x) == "layer3.1"
        torch.testing.assert_close(gradcam(model, x, 7), gradcam(model, x, 7, layer="layer3.1"))
        assert_same_state(before, snapshot(model))  # modes, flags, .grad, BatchNorm statistics
    finally:
        model.eval()
        model.fc.weight.requires_grad_(True)
        model.conv1.weight.grad = None


@pytest.mark.parametrize("arch, size, layer", [
    ("vgg11", 64, "features.19"),  # the last conv stage's ReLU, before the final max pool
    ("resnet18", 64, "layer4.1"),  # the last block (its relu runs twice: not a layer to read)
    ("vgg11", 32, "features.19"),
    ("resnet18", 32, "layer3.1"),
])
def test_default_cam_layer_is_the_last_spatial_stage(torchvision_models, arch, size, layer):
    # at 32x32 input ResNet's last stage is 1x1 (nothing to localise), so the one before is chosen
    assert default_cam_layer(torchvision_models[arch], images(1, size=size)) == layer


def test_cam_layers_skip_pooling_and_containers_that_pass_on_a_childs_output(torchvision_models):
    vgg = torchvision_models["vgg11"]
    layers = cam_layers(vgg, images(1, size=64))
    pools = {name for name, m in vgg.named_modules() if isinstance(m, nn.MaxPool2d)}
    assert not pools & set(layers) and "features" not in layers  # "features" ends in a max pool
    # an in-place ReLU is its own layer, though it returns the conv's tensor (changed in place)
    assert layers[-2:] == ["features.18", "features.19"]
    resnet = cam_layers(torchvision_models["resnet18"], images(1, size=64))
    assert "layer4.1" in resnet and "layer4" not in resnet and "layer4.1.relu" not in resnet


@contextmanager
def relus_not_inplace(model):
    """The lecture's backward hooks need inplace=False; flip the flags for a while (a deepcopy
    of VGG would cost half a gigabyte)."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU) and m.inplace]
    for m in relus:
        m.inplace = False
    try:
        yield model
    finally:
        for m in relus:
            m.inplace = True


@pytest.mark.parametrize("arch", ["vgg11", "resnet18"])
def test_torchvision_guided_backprop_matches_the_lecture_style_reference(torchvision_models,
                                                                        arch):
    # ResNet18 calls each block's in-place ReLU module twice: the hard case for hooks.
    model = torchvision_models[arch]
    x = images(1, size=32, seed=12)
    for mode, ours in (("guided", guided_backprop(model, x, 3)),
                       ("deconvnet", deconvnet(model, x, 3))):
        with relus_not_inplace(model):
            reference = reference_relu_backprop(model, x, [3], mode)
        assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-6 * reference.abs().max())
