"""Shared test setup and helpers: a headless matplotlib backend, a fixed torch thread count, the
tiny networks and images the tests share (every conv-ReLU-pool-conv-ReLU-GAP-linear CNN is built
by ``relu_cnn``), the shipped lab models (or a skip), a model in a mixed state and its snapshot,
and the registry of every attribution method with small knobs.

Tests take these as fixtures (``nets``, ``model_state``, ``every_method``; a test with a
``method_name`` argument runs once per method), or import them by name where a module-level
table needs them (``from conftest import small_cnn``). Weights are fixed (by hand, from a seeded
generator, or default-initialised after ``torch.manual_seed``), so every map in the tests is
reproducible.
"""

from __future__ import annotations

import copy
import os
import types
from collections import OrderedDict

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402  (after the backend is chosen)
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

# One thread: results do not depend on the core count, and tiny-tensor tests run fastest
# (two threads fighting over two busy cores made some tests 40x slower).
torch.set_num_threads(1)


# --- the hand network --------------------------------------------------------------------------
# conv 1x1 with weights (+1, -1): channel 0 = x, channel 1 = -x; ReLU; global average pooling;
# a linear layer V. So y_c = V[c,0] mean(relu(x)) + V[c,1] mean(relu(-x)).
HAND_V = torch.tensor([[1.0, 2.0], [-1.0, 1.0], [0.5, -3.0]])
HAND_X = torch.tensor([[[[1.0, -2.0], [3.0, -0.5]]]])  # (1, 1, 2, 2)


def hand_net(inplace: bool = False, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    conv = nn.Conv2d(1, 2, kernel_size=1)
    fc = nn.Linear(2, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.zero_()
        fc.weight.copy_(HAND_V)
        fc.bias.zero_()
    layers = OrderedDict(
        conv=conv,
        relu=nn.ReLU(inplace=inplace),
        pool=nn.AdaptiveAvgPool2d(1),
        flat=nn.Flatten(),
        fc=fc,
    )
    return nn.Sequential(layers).to(dtype).eval()


def linear_net(shape=(2, 4, 5), classes: int = 3, seed: int = 0) -> nn.Sequential:
    """y = W flatten(x) + b: every attribution of it has a closed form."""
    gen = torch.Generator().manual_seed(seed)
    fc = nn.Linear(int(torch.tensor(shape).prod()), classes)
    with torch.no_grad():
        fc.weight.copy_(torch.randn(fc.weight.shape, generator=gen))
        fc.bias.copy_(torch.randn(fc.bias.shape, generator=gen))
    return nn.Sequential(nn.Flatten(), fc).double().eval()


def seeded(model: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / max(1, p[0].numel()) ** 0.5))
    return model.eval()


def relu_cnn(in_channels: int = 3, widths: tuple[int, int] = (6, 8), classes: int = 5, *,
             pool: bool = True, pool_dilation: int = 1, inplace: tuple[str, ...] = ()
             ) -> nn.Sequential:
    """conv1-relu1-pool-conv2-relu2-gap-flat-fc, the one layout of the tests' ReLU CNNs: 3x3
    convolutions (padding 1) of ``widths`` channels, a 2x2 max pool (left out with
    ``pool=False``), global average pooling and a linear layer to ``classes`` logits; the ReLUs
    named in ``inplace`` work in place.

    Default-initialised from torch's global random stream, in layer order (conv1, conv2, fc), and
    left in train mode: each caller seeds and sets the mode the way its tests rely on.
    ``nn.Sequential(*relu_cnn(...))`` is the same network with its layers named "0", "1", ...
    """
    layers = OrderedDict(
        conv1=nn.Conv2d(in_channels, widths[0], 3, padding=1),
        relu1=nn.ReLU(inplace="relu1" in inplace),
        pool=nn.MaxPool2d(2, dilation=pool_dilation),
        conv2=nn.Conv2d(widths[0], widths[1], 3, padding=1),
        relu2=nn.ReLU(inplace="relu2" in inplace),
        gap=nn.AdaptiveAvgPool2d(1),
        flat=nn.Flatten(),
        fc=nn.Linear(widths[1], classes),
    )
    if not pool:
        del layers["pool"]
    return nn.Sequential(layers)


def small_cnn(inplace: bool = True, seed: int = 0, classes: int = 5) -> nn.Sequential:
    """conv-ReLU-maxpool-conv-ReLU-GAP-linear on (B, 3, H, W): a lab model in miniature."""
    return seeded(relu_cnn(classes=classes, inplace=("relu1", "relu2") if inplace else ()), seed)


def tiny_cnn(seed: int = 0, *, in_channels: int = 3, pool: bool = True, pool_dilation: int = 1,
             inplace: tuple[str, ...] = ()) -> nn.Sequential:
    """The dashboards' tests' model: relu_cnn with 4 and 6 channels and 3 classes, in eval mode,
    default-initialised after ``torch.manual_seed(seed)`` (so a seed gives the same weights
    whichever knobs are set: the pool has no weights)."""
    torch.manual_seed(seed)
    return relu_cnn(in_channels, (4, 6), 3, pool=pool, pool_dilation=pool_dilation,
                    inplace=inplace).eval()


def indexed_cnn(seed: int = 0, channels: int = 1) -> nn.Sequential:
    """The feature-visualisation tests' model: relu_cnn with ``channels`` input channels, 6 and
    8 channels and 4 classes, its layers named "0" ... "7", in eval mode, default-initialised
    after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return nn.Sequential(*relu_cnn(channels, (6, 8), 4)).eval()


def smooth_cnn(seed: int = 0, classes: int = 4) -> nn.Sequential:
    """No ReLU anywhere (softplus, tanh, average pooling): smooth along any path."""
    layers = OrderedDict(
        conv1=nn.Conv2d(3, 6, 3, padding=1),
        act1=nn.Softplus(),
        pool=nn.AvgPool2d(2),
        conv2=nn.Conv2d(6, 8, 3, padding=1),
        act2=nn.Tanh(),
        gap=nn.AdaptiveAvgPool2d(1),
        flat=nn.Flatten(),
        fc=nn.Linear(8, classes),
    )
    return seeded(nn.Sequential(layers), seed)


class TwiceReLU(nn.Module):
    """One in-place nn.ReLU module called twice per forward pass (like torchvision's ResNet)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(6, 4)
        seeded(self, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu(self.conv1(x))
        b = self.relu(self.conv2(a) + a)
        return self.fc(b.mean(dim=(2, 3)))


class FunctionalReLU(nn.Module):
    """Calls F.relu instead of an nn.ReLU module: deconvnet and guided backprop cannot change it.
    Weights seeded(seed); ``seed=None`` keeps the default initialisation (torch's global random
    stream)."""

    def __init__(self, seed: int | None = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)
        if seed is not None:
            seeded(self, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).mean(dim=(2, 3)))


def without_inplace(model: nn.Module) -> nn.Module:
    """A copy of the model whose ReLUs do not work in place."""
    twin = copy.deepcopy(model)
    for m in twin.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    return twin


def images(n: int, channels: int = 3, size: int = 8, seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=gen).to(dtype)


def squares(n: int, size: int = 16, seed: int = 0, dtype: torch.dtype = torch.float32):
    """(images, labels, masks): dim noise (in [0, 0.4)) with one bright 5x5 square per image at
    a seeded place, labels 0, 1, 2, 0, ... in turn, and the squares as (n, 1, size, size) masks."""
    generator = torch.Generator().manual_seed(seed)
    x = 0.4 * torch.rand(n, 3, size, size, generator=generator, dtype=dtype)
    masks = torch.zeros(n, 1, size, size, dtype=torch.bool)
    for i, (top, left) in enumerate(torch.randint(0, size - 5, (n, 2), generator=generator).tolist()):
        masks[i, :, top : top + 5, left : left + 5] = True
    return torch.where(masks, 1.0, x), torch.arange(n) % 3, masks


def varied_images(dtype=torch.float64):
    """Three images that small_cnn(seed=1) puts in different classes (2, 0, 0), so that
    "None = the predicted class of each image" is tested with classes that differ."""
    gen = torch.Generator().manual_seed(1)
    return (torch.randn(6, 3, 8, 8, generator=gen) * 2)[2:5].to(dtype)


def lab_model(name: str) -> nn.Module:
    """The shipped lab model ``name``, or the test skipped (saying how to train it) while its
    weights file is missing."""
    from gradviz_lab.models import lab_weights_path, load_lab_model

    path = lab_weights_path(name)
    if not path.is_file():
        pytest.skip(f"no weights for lab model {name!r} at {path}; run `gradviz train {name}`")
    return load_lab_model(name)


# --- a model in a mixed state, and what "left exactly as it was" compares --------------------


def batchnorm_net() -> nn.Sequential:
    """Tiny, with everything that can go wrong: batch norm statistics, dropout, in-place ReLU."""
    layers = OrderedDict(
        conv1=nn.Conv2d(3, 4, 3, padding=1),
        bn=nn.BatchNorm2d(4),
        relu1=nn.ReLU(inplace=True),
        conv2=nn.Conv2d(4, 4, 3, padding=1),
        relu2=nn.ReLU(),
        drop=nn.Dropout(0.2),
        gap=nn.AdaptiveAvgPool2d(1),
        flat=nn.Flatten(),
        fc=nn.Linear(4, 3),
    )
    return seeded(nn.Sequential(layers), 0)


def snapshot(model: nn.Module) -> dict:
    return {
        "modes": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad_ids": [id(p.grad) if p.grad is not None else None for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "buffers": [b.clone() for b in model.buffers()],
        "params": [p.detach().clone() for p in model.parameters()],
        "hooks": [(id(m), {d: dict(getattr(m, d)) for d in ("_forward_hooks", "_forward_pre_hooks",
                                                            "_backward_hooks",
                                                            "_backward_pre_hooks")})
                  for m in model.modules()],
    }


def assert_same_state(before: dict, after: dict) -> None:
    assert after["modes"] == before["modes"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["grad_ids"] == before["grad_ids"]
    for a, b in zip(after["grads"], before["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
    for key in ("buffers", "params"):
        assert all(torch.equal(a, b) for a, b in zip(after[key], before[key])), key
    assert after["hooks"] == before["hooks"]


def prepared_model() -> tuple[nn.Sequential, list]:
    """A model in a mixed state: train mode with eval submodules, a frozen layer, some grads set,
    some None, and two hooks of the user's own."""
    model = batchnorm_net().train()
    model.conv2.eval()
    model.fc.weight.requires_grad_(False)
    model.conv1.weight.grad = torch.full_like(model.conv1.weight, 0.5)
    model.bn.bias.grad = torch.arange(4.0)
    calls = []
    model.relu2.register_forward_hook(lambda m, i, o: calls.append("relu2"))
    model.conv1.register_forward_pre_hook(lambda m, i: calls.append("conv1"))
    return model, calls


# --- every attribution method, with small knobs -----------------------------------------------


def last_conv(model: nn.Module) -> str:
    """The name of the model's last nn.Conv2d ("no-conv" when it has none, or is no module:
    the method then says what is wrong with it)."""
    modules = model.named_modules() if isinstance(model, nn.Module) else []
    convs = [n for n, m in modules if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else "no-conv"


def _every_method() -> dict:
    from gradviz_lab import attribution as a  # here: importing the kit is the tests' business

    return {
        "input_gradient": lambda m, x, t=None: a.input_gradient(m, x, t),
        "saliency": lambda m, x, t=None: a.saliency(m, x, t),
        "layer_gradients": lambda m, x, t=None: a.layer_gradients(m, x, last_conv(m), t)[1],
        "smoothgrad": lambda m, x, t=None: a.smoothgrad(m, x, t, n_samples=2),
        "integrated_gradients": lambda m, x, t=None: a.integrated_gradients(m, x, t, steps=2),
        "occlusion": lambda m, x, t=None: a.occlusion(m, x, t, window=4, stride=4),
        "deconvnet": lambda m, x, t=None: a.deconvnet(m, x, t),
        "guided_backprop": lambda m, x, t=None: a.guided_backprop(m, x, t),
        "gradcam": lambda m, x, t=None: a.gradcam(m, x, t, layer=last_conv(m)),
        "guided_gradcam": lambda m, x, t=None: a.guided_gradcam(m, x, t),  # the default layer
        # Grad-CAM's family, at the default layer (CAM needs the layer that is pooled)
        "cam": lambda m, x, t=None: a.cam(m, x, t),
        "gradcam_plus_plus": lambda m, x, t=None: a.gradcam_plus_plus(m, x, t, layer=last_conv(m)),
        "xgradcam": lambda m, x, t=None: a.xgradcam(m, x, t, layer=last_conv(m)),
        "hirescam": lambda m, x, t=None: a.hirescam(m, x, t, layer=last_conv(m)),
        "layercam": lambda m, x, t=None: a.layercam(m, x, t, layer=last_conv(m)),
        "scorecam": lambda m, x, t=None: a.scorecam(m, x, t, batch_size=5),
        "ablationcam": lambda m, x, t=None: a.ablationcam(m, x, t, batch_size=5),
        "eigencam": lambda m, x, t=None: a.eigencam(m, x, t),
        "lrp": lambda m, x, t=None: a.lrp(m, x, t),  # epsilon-plus
        "lrp_epsilon_gamma_box": lambda m, x, t=None: a.lrp(m, x, t, composite="epsilon-gamma-box"),
        "input_x_gradient": lambda m, x, t=None: a.input_x_gradient(m, x, t),
        "deeplift": lambda m, x, t=None: a.deeplift(m, x, t, baseline="blur"),
    }


def with_registry_methods(listed: dict) -> dict:
    """``listed`` and, after it, every method of the kit's registry (gradviz_lab.methods) whose
    function it does not list, called with the registry's light knobs: a method added to the
    registry is in every registry-based test without a line here. (Left out: the methods the
    registry keeps out of the evaluation view because they need another kind of model, such as
    a transformer's attention maps; their own tests cover them.)"""
    from gradviz_lab import methods

    found = dict(listed)
    for name in methods.names("evaluation"):
        method = methods.get(name)
        function_name = method.function.rpartition(":")[2]
        if function_name not in found:
            found[function_name] = (lambda f, knobs: lambda m, x, t=None: f(m, x, t, **knobs))(
                method.load(), dict(method.light))
    return found


# name of the attribution function -> method(model, x, target=None) -> its map (layer_gradients:
# the gradients at the model's last convolution; gradcam and the gradient-weighted variants: at
# that layer; guided_gradcam, CAM, Score-CAM, Ablation-CAM, Eigen-CAM: at default_cam_layer;
# Score-/Ablation-CAM in batches of 5 pairs, so that the batches split the channels unevenly). Small knobs: a call on a small CNN and 8x8 images takes milliseconds.
EVERY_METHOD = with_registry_methods(_every_method())


@pytest.fixture
def every_method() -> dict:
    return EVERY_METHOD


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test with a ``method_name`` argument runs once per method of EVERY_METHOD."""
    if "method_name" in metafunc.fixturenames:
        metafunc.parametrize("method_name", list(EVERY_METHOD))


@pytest.fixture
def nets() -> types.SimpleNamespace:
    """The tiny networks and images: nets.small_cnn(), nets.images(2), ..."""
    return types.SimpleNamespace(
        hand_net=hand_net, HAND_X=HAND_X, HAND_V=HAND_V, linear_net=linear_net, seeded=seeded,
        small_cnn=small_cnn, smooth_cnn=smooth_cnn, TwiceReLU=TwiceReLU,
        FunctionalReLU=FunctionalReLU, without_inplace=without_inplace, images=images,
        varied_images=varied_images, batchnorm_net=batchnorm_net,
    )


@pytest.fixture
def model_state() -> types.SimpleNamespace:
    """prepared_model(), snapshot(model) and assert_same_state(before, after)."""
    return types.SimpleNamespace(prepared_model=prepared_model, snapshot=snapshot,
                                 assert_same_state=assert_same_state)
