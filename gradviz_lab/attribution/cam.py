"""Grad-CAM and Guided Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: visual explanations from deep
networks via gradient-based localization")."""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from .. import hooks
from .._checks import Target, check_images
from ._common import target_per_image
from .gradients import layer_gradients
from .relu_rules import guided_backprop


def default_cam_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The layer Grad-CAM reads when none is given: the last module (in the order their forward
    passes end) that runs once and outputs a (B, K, h, w) map with h*w > 1, adaptive pooling
    left out since it only resizes. The kit's ImageNet models: "net.features" for VGG and AlexNet,
    "net.layer4" for ResNet (at 224x224 input). For VGG that is the output of the last max pool
    (7x7); pass layer="net.features.35" (VGG19) for the lecture's 14x14 maps before it. The lab
    CNNs: "features" (digits: after its last max pool, 7x7; shapes: the last ReLU, 16x16)."""
    check_images(model, x)
    with hooks.preserved_state(model), torch.no_grad(), hooks.forward_shapes(model) as shapes:
        model(x[:1])
    runs = Counter(name for name, _ in shapes)
    modules = dict(model.named_modules())
    resizers = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    candidates = [
        name
        for name, shape in shapes
        if len(shape) == 4 and shape[2] * shape[3] > 1 and runs[name] == 1
        and not isinstance(modules[name], resizers)
    ]
    if not candidates:
        raise ValueError("no layer of the model outputs a (B, K, h, w) map; pass layer=...")
    return candidates[-1]


def gradcam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    layer: str | nn.Module | None = None,
    upsample: bool = True,
) -> torch.Tensor:
    """Grad-CAM: the layer's activation maps weighted by their mean gradient, then a ReLU.

        alpha_k = 1/(h w) sum_ij d y_c / d A^k_ij
        L       = ReLU( sum_k alpha_k A^k )

    The gradient is taken w.r.t. the layer's *activations* A (not its weights). layer: a module,
    its dotted name, or None for ``default_cam_layer(model, x)``. Returns (B, 1, H, W), upsampled
    bilinearly to the input size, or (B, 1, h, w) at the layer's resolution with upsample=False.
    """
    if layer is None:
        layer = default_cam_layer(model, x)
    activations, gradients = layer_gradients(model, x, layer, target)
    if activations.dim() != 4:
        raise ValueError(
            f"Grad-CAM needs a layer with (B, K, h, w) output, got {tuple(activations.shape)}"
        )
    alpha = gradients.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * activations).sum(dim=1, keepdim=True))
    if upsample:
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return cam


def guided_gradcam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    layer: str | nn.Module | None = None,
) -> torch.Tensor:
    """Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map.

        G_b = guided_backprop_b (B, C, H, W)  *  L_b (B, 1, H, W, broadcast over channels)

    Both maps explain the same class (None is resolved once, to the predicted class).
    """
    check_images(model, x)
    with hooks.preserved_state(model):
        target = target_per_image(model, x, target)
        cam = gradcam(model, x, target, layer=layer, upsample=True)
        return guided_backprop(model, x, target) * cam
