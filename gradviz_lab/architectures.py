"""The lab models' architectures (``gradviz_lab.models`` re-exports them, loads their shipped
weights and adds the ImageNet models).

- ``DigitsCNN``: a LeNet-style CNN for the shipped MNIST digits, 1x28x28 -> 10 logits.
- ``ShapesCNN``: a small VGG-like CNN for ``make_shapes`` images, 3x64x64 -> 5 logits, written
  as a plan (``SHAPES_PLAN``) for ``vgg_features``.
- ``SoftplusShapesCNN``: the same with a smooth softplus (``Softplus4``) in place of every ReLU.
- ``ShapesViT``: a tiny vision transformer for the same images, torchvision's ``VisionTransformer``
  (in ``gradviz_lab.vision_transformer``, imported only when built).

``LAB_MODELS`` maps each lab model's name to its architecture (a class, or for the ViT a function
that builds one).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .data import DIGIT_CLASSES, SHAPE_CLASSES


class DigitsCNN(nn.Module):
    """Two conv-ReLU-maxpool blocks, then a two-layer classifier (LeNet's layout, ReLU era).

    features.0 conv 5x5 1->16 (28x28)   features.1 ReLU   features.2 maxpool -> 14x14
    features.3 conv 3x3 16->32 (14x14)  features.4 ReLU   features.5 maxpool -> 7x7
    classifier: flatten, linear 1568->128, ReLU, linear 128->10 (logits)
    """

    classes = DIGIT_CLASSES

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
            nn.Linear(128, len(DIGIT_CLASSES)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# VGG's way of writing an architecture: output channels of each 3x3 conv, "M" for a 2x2 max pool.
SHAPES_PLAN: tuple[int | str, ...] = (16, "M", 32, "M", 64, 64)


def vgg_features(
    plan: tuple[int | str, ...],
    in_channels: int,
    batch_norm: bool = False,
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """conv-(BatchNorm)-activation (ReLU by default) for each number in ``plan``, a max pool for
    each "M"."""
    layers: list[nn.Module] = []
    for step in plan:
        if step == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        layers.append(nn.Conv2d(in_channels, int(step), kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(step)))
        layers.append(activation())
        in_channels = int(step)
    return nn.Sequential(*layers)


class ShapesCNN(nn.Module):
    """VGG in miniature: 3x3 conv-ReLU blocks and max pooling, then global average pooling + linear.

    features.0 conv 3->16 (64x64)   .1 ReLU   .2 maxpool -> 32x32
    features.3 conv 16->32 (32x32)  .4 ReLU   .5 maxpool -> 16x16
    features.6 conv 32->64 (16x16)  .7 ReLU
    features.8 conv 64->64 (16x16)  .9 ReLU   <- the last feature maps A^k (Grad-CAM's layer)
    pool: global average -> 64 numbers;  classifier: linear 64 -> 5 logits

    Because the head is GAP + linear, y_c = sum_k w_ck mean(A^k) + b_c: CAM's weights w_ck are
    Grad-CAM's alpha_k up to the factor 1/(H W).

    ``batch_norm=True`` adds BatchNorm after each conv: used only while training (it gets the
    optimisation off its plateau); the shipped model has it folded into the convs (see train.py).
    """

    classes = SHAPE_CLASSES
    activation: type[nn.Module] = nn.ReLU

    def __init__(self, batch_norm: bool = False) -> None:
        super().__init__()
        self.features = vgg_features(
            SHAPES_PLAN, in_channels=3, batch_norm=batch_norm, activation=self.activation
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(int(SHAPES_PLAN[-1]), len(SHAPE_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class Softplus4(nn.Softplus):
    """softplus(z) = log(1 + exp(4 z)) / 4: a ReLU with its kink at 0 rounded off (over |z| < ~0.5),
    smooth everywhere, with derivative sigmoid(4 z) instead of the step 1{z > 0}."""

    def __init__(self) -> None:
        super().__init__(beta=4.0)


class SoftplusShapesCNN(ShapesCNN):
    """``ShapesCNN`` with every ReLU replaced by ``Softplus4``; everything else is the same.

    Why it exists: along the integrated-gradients path x' + alpha (x - x') a ReLU network is
    piecewise linear in alpha, so the integrand dF/dalpha jumps wherever a unit switches and every
    quadrature rule converges only like 1/steps. Softplus removes those jumps (the max pools still
    switch, with much smaller jumps), so the same 64 Gauss-Legendre steps give a ~20x smaller
    completeness error (lesson 06). Guided backprop and deconvnet, defined on ReLUs, do not apply.
    """

    activation = Softplus4


def _shapes_vit() -> nn.Module:
    """A fresh ``ShapesViT`` (``gradviz_lab.vision_transformer``), imported on first use: importing
    torchvision takes seconds, which every lesson not about transformers should not pay."""
    from .vision_transformer import ShapesViT

    return ShapesViT()


LAB_MODELS: dict[str, Callable[[], nn.Module]] = {
    "digits": DigitsCNN,
    "digits-robust": DigitsCNN,  # the same architecture, trained on PGD attacks (train.py)
    "shapes": ShapesCNN,
    "shapes-tagged": ShapesCNN,
    "shapes-softplus": SoftplusShapesCNN,
    "shapes-vit": _shapes_vit,
}
