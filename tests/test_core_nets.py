"""The tiny networks the tests share (built in conftest.py) are what the tests assume."""

from __future__ import annotations

import torch
from conftest import HAND_X, TwiceReLU, hand_net, images, small_cnn, varied_images, without_inplace
from torch import nn


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
