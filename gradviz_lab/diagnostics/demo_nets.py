"""The demo networks of lesson 08: deep MLPs whose gradient vanishes (sigmoid) or does not
(ReLU with He initialisation, batch normalisation, residual connections)."""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_choice, check_positive_int

MLP_KINDS = ("sigmoid", "relu", "batchnorm", "residual")


class ResidualBlock(nn.Module):
    """h -> h + act(W h + b): the identity path carries the gradient past the activation."""

    def __init__(self, width: int, activation: nn.Module) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.activation = activation

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.activation(self.linear(h))


def _activation(name: str) -> nn.Module:
    return nn.Sigmoid() if name == "sigmoid" else nn.ReLU()


def _hidden_layer(kind: str, act: str, fan_in: int, width: int, first: bool) -> list[nn.Module]:
    """One hidden layer of ``deep_mlp``; the first is never residual (its input is the image)."""
    if kind == "residual" and not first:
        return [ResidualBlock(width, _activation(act))]
    norm = [nn.BatchNorm1d(width)] if kind == "batchnorm" else []
    return [nn.Linear(fan_in, width), *norm, _activation(act)]


def deep_mlp(
    kind: str = "sigmoid",
    depth: int = 10,
    width: int = 64,
    *,
    activation: str | None = None,
    in_features: int = 28 * 28,
    num_classes: int = 10,
    init: str = "default",
    seed: int = 0,
) -> nn.Sequential:
    """A deep fully connected classifier for (B, 1, 28, 28) digits: ``depth`` hidden layers.

    kind        "sigmoid"    Linear -> Sigmoid, repeated: the gradient vanishes
                "relu"       Linear -> ReLU
                "batchnorm"  Linear -> BatchNorm1d -> activation
                "residual"   the first layer, then blocks h + activation(Linear(h))
    activation  for "batchnorm" / "residual": "relu" (default) or "sigmoid", to show that the fix,
                not the activation, is what keeps a sigmoid network's gradient alive.
    init        "default": PyTorch's own initialisation, under which a deep plain ReLU network's
                gradient also shrinks, more slowly; "kaiming": He et al. (2015) weights, std
                sqrt(2 / fan_in), made for ReLU, and zero biases.
    The weights come from ``seed`` (the caller's random state is left alone): the same arguments
    always give the same network. Returns an ``nn.Sequential`` in train mode.
    """
    check_choice(kind, "kind", MLP_KINDS)
    check_positive_int(depth, "depth")
    check_positive_int(width, "width")
    check_positive_int(in_features, "in_features")
    check_positive_int(num_classes, "num_classes")
    check_choice(init, "init", ("default", "kaiming"))
    if activation is not None and kind in ("sigmoid", "relu"):
        raise ValueError(
            f"activation is set by kind={kind!r}; pass activation only with 'batchnorm' or 'residual'"
        )
    act = (
        kind
        if kind in ("sigmoid", "relu")
        else check_choice(activation or "relu", "activation", ("relu", "sigmoid"))
    )
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
        torch.manual_seed(seed)
        layers = [nn.Flatten(), *_hidden_layer(kind, act, in_features, width, first=True)]
        for _ in range(depth - 1):
            layers += _hidden_layer(kind, act, width, width, first=False)
        model = nn.Sequential(*layers, nn.Linear(width, num_classes))
        if init == "kaiming":
            for module in model.modules():
                if isinstance(module, nn.Linear):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    nn.init.zeros_(module.bias)
    return model
