"""Tiny networks the attribution tests share, and checks that they are what the tests assume.

Weights are fixed (by hand, or from a seeded generator), so every map in the tests is
reproducible. Other test files import the builders from here.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


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


def small_cnn(inplace: bool = True, seed: int = 0, classes: int = 5) -> nn.Sequential:
    """conv-ReLU-maxpool-conv-ReLU-GAP-linear on (B, 3, H, W): a lab model in miniature."""
    layers = OrderedDict(
        conv1=nn.Conv2d(3, 6, 3, padding=1),
        relu1=nn.ReLU(inplace=inplace),
        pool=nn.MaxPool2d(2),
        conv2=nn.Conv2d(6, 8, 3, padding=1),
        relu2=nn.ReLU(inplace=inplace),
        gap=nn.AdaptiveAvgPool2d(1),
        flat=nn.Flatten(),
        fc=nn.Linear(8, classes),
    )
    return seeded(nn.Sequential(layers), seed)


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
    """Calls F.relu instead of an nn.ReLU module: guided backprop cannot change it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)
        seeded(self, 1)

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


def varied_images(dtype=torch.float64):
    """Three images that small_cnn(seed=1) puts in different classes (2, 0, 0), so that
    "None = the predicted class of each image" is tested with classes that differ."""
    gen = torch.Generator().manual_seed(1)
    return (torch.randn(6, 3, 8, 8, generator=gen) * 2)[2:5].to(dtype)


# --- the nets are what the tests assume -----------------------------------------------------


def test_hand_net_logits_are_the_hand_computed_ones():
    # relu(x) = [[1, 0], [3, 0]] -> mean 1; relu(-x) = [[0, 2], [0, 0.5]] -> mean 0.625
    expected = torch.tensor([[1 * 1 + 2 * 0.625, -1 * 1 + 1 * 0.625, 0.5 * 1 - 3 * 0.625]])
    assert torch.allclose(hand_net()(HAND_X), expected)
    assert torch.allclose(hand_net(inplace=True)(HAND_X.clone()), expected)


def test_twice_relu_calls_its_relu_module_twice():
    model = TwiceReLU()
    calls = []
    handle = model.relu.register_forward_hook(lambda *_: calls.append(1))
    model(images(1))
    handle.remove()
    assert len(calls) == 2


def test_varied_images_are_predicted_as_different_classes():
    assert small_cnn(seed=1)(varied_images(torch.float32)).argmax(1).tolist() == [2, 0, 0]


def test_without_inplace_copy_computes_the_same_function():
    model = small_cnn()
    twin = without_inplace(model)
    assert all(not m.inplace for m in twin.modules() if isinstance(m, nn.ReLU))
    x = images(2)
    assert torch.equal(model(x), twin(x))
