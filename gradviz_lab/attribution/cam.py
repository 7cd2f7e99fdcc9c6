"""Grad-CAM and Guided Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: visual explanations from deep
networks via gradient-based localization"), and the pipeline every class activation map shares.

A CAM method is its weighting of a layer's maps, between two shared steps:

    activations, gradients = cam_inputs(model, x, target, layer)   # A (B, K, h, w), dy/dA
                                                                   # (tokens, channels last: layouts.py)
    weighted = <the method's own formula>                          # (B, K, h, w)
    return cam_output(weighted, x, upsample, "its name")           # ReLU(sum_k), upsampled

so a variant (Grad-CAM++, ...) is a ``@public`` function of a few lines written like ``gradcam``
(``cam_family.py``, ``cam_scores.py``). ``@several_layers`` (under ``@public``) lets each of them
take ``layer=[...]``: one map per layer, combined by the rule of ``combined_layers``.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections import Counter
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import hooks
from .._boundary import public
from .._checks import check_flag, resolve_layer
from .._forward import run_model
from ..targets import Target, TargetScore
from ._common import finite_map
from .gradients import layer_gradients
from .layouts import Reshape, as_maps, channels_last, last_attention_input, vision_transformer
from .relu_rules import guided_backprop


POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@public
def cam_layers(model: nn.Module, x: torch.Tensor) -> list[str]:
    """The layers Grad-CAM can read, in forward order: each runs once per forward pass and
    outputs a (B, K, h, w) map with h*w > 1, channels first, that no pooling layer made (pooling
    only shrinks the maps). A container that passes on its last child's output unchanged is listed
    under the child's name. Channels-last layers (ConvNeXt's, ``layouts.channels_last``) are left
    out. In a torchvision ViT the token layers (B, 1 + N, D) are listed too, up to the input of
    the last attention (``default_cam_layer`` says why not beyond)."""
    # eval mode: one image is enough to see the layers; batch norm in train mode needs two
    with hooks.training_mode(model, False), torch.no_grad(), hooks.forward_outputs(model) as outputs:
        run_model(model, x[:1])
    runs = Counter(name for name, _, _ in outputs)
    modules = dict(model.named_modules())
    pooled = [out for name, out, _ in outputs if isinstance(modules[name], POOLING)]
    last_token_layer = last_attention_input(model)
    tokens_listed = last_token_layer is not None
    names: list[str] = []
    listed: list[tuple[torch.Tensor, int]] = []
    for name, out, version in outputs:  # a child's pass ends before its container's
        if runs[name] != 1:
            continue
        if out.dim() == 3 and out.shape[1] > 1:  # tokens: listed in a torchvision ViT (grid known)
            if not tokens_listed:
                continue
            tokens_listed = name != last_token_layer
        elif out.dim() != 4 or out.shape[2] * out.shape[3] <= 1 or channels_last(model, name):
            continue
        elif isinstance(modules[name], POOLING) or any(out is p for p in pooled):
            continue
        if any(out is seen and version == seen_version for seen, seen_version in listed):
            continue  # a container passing on a listed child's output, unchanged
        names.append(name)
        listed.append((out, version))
    return names


# model -> {(image shape, dtype, device, ids of its modules): its default layer}. Weak keys: the
# cache never keeps a model alive; its values are names, which hold no reference to the model.
_DEFAULT_LAYERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@public
def default_cam_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The layer Grad-CAM reads when none is given: the last of ``cam_layers``, i.e. the output
    of the last convolutional stage before any pooling. VGG19 in the kit's ImageNet wrapper:
    "net.features.35" (14x14 at 224x224, the lecture's choice); ResNet-18: "net.layer4.1" (its
    last block, 7x7); the digits model: "features.4"; the shapes model: "features.9".

    Finding it costs a forward pass (``cam_layers``), so the answer is remembered per model, image
    shape, dtype and device, and for the model's current modules (replacing a layer asks again).

    A torchvision vision transformer (``shapes-vit``: "encoder.layers.encoder_layer_3.ln_1"):
    the last encoder block's first LayerNorm, the tokens the last attention reads. Only the class
    token of the last block's output reaches the classifier, so at any layer after the last
    attention the patch tokens' gradients are zero (an empty map); this is the last layer where
    the patch tokens still matter, and the first LayerNorm makes the token features comparable
    (pytorch-grad-cam's advice for ViTs, ``blocks[-1].norm1``). ConvNeXt: its last block's
    output, channels first (the layers inside a block are channels last).
    """
    key = (tuple(x.shape[1:]), x.dtype, x.device.type, tuple(id(m) for m in model.modules()))
    remembered = _DEFAULT_LAYERS.setdefault(model, {})
    if key not in remembered:
        layers = cam_layers(model, x)
        if vision_transformer(model) is not None:
            layers = [name for name in layers if name == last_attention_input(model)] or layers
        if not layers:
            raise ValueError("no layer of the model outputs a (B, K, h, w) map; pass layer=...")
        remembered.clear()  # one shape at a time: a model explained at many sizes stays small
        remembered[key] = layers[-1]
    return remembered[key]


def cam_inputs(
    model: nn.Module, x: torch.Tensor, target: TargetScore, layer: str | nn.Module | None,
    reshape: Reshape | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's activation maps A (B, K, h, w) and the gradient dy/dA of the target score
    (``layer_gradients``); layer None is ``default_cam_layer(model, x)``.

    A layer whose output is not (B, K, h, w) is laid out first (``layouts.as_maps``): tokens
    (B, 1 + N, D) -> the class token dropped, the patches on their grid, (B, D, rows, cols);
    channels last -> refused with a clear error. ``reshape`` (a function applied to the output
    and to its gradient alike) overrides that, like pytorch-grad-cam's ``reshape_transform``.
    """
    if layer is None:
        layer = default_cam_layer(model, x)
    activations, gradients = layer_gradients(model, x, layer, target)
    to_maps = as_maps(model, resolve_layer(model, layer)[0], activations, reshape)
    activations, gradients = to_maps(activations), to_maps(gradients)
    if activations.dim() != 4 or gradients.shape != activations.shape:
        raise ValueError(
            f"reshape must give (B, K, h, w) maps, got {tuple(activations.shape)}"
        )
    return activations, gradients


def cam_output(weighted: torch.Tensor, x: torch.Tensor, upsample: bool, name: str) -> torch.Tensor:
    """ReLU(sum_k weighted_k): (B, 1, h, w) at the layer's resolution, or upsampled bilinearly
    to x's (B, 1, H, W) when upsample is True."""
    check_flag(upsample, "upsample")
    cam = torch.relu(weighted.sum(dim=1, keepdim=True))
    if upsample:
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return finite_map(cam, name)


def several_layers(method: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Let a CAM method (model, x, target, layer, upsample, ...) take a list of layers: with
    ``layer=[...]`` it returns ``combined_layers`` of its maps at each of them."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def call(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        layers = bound.arguments.get("layer")
        if not isinstance(layers, (list, tuple)):
            return method(*args, **kwargs)
        if not layers:
            raise ValueError("layer=[] names no layer: give one layer, a list of layers, or None "
                             "for the default layer")
        if not bound.arguments.get("upsample", True):
            raise ValueError("several layers are combined at the input's resolution (their own "
                             "resolutions differ): upsample=False needs a single layer")
        model, x = bound.arguments["model"], bound.arguments["x"]
        if isinstance(bound.arguments.get("target"), TargetScore):  # one class for every layer
            bound.arguments["target"] = bound.arguments["target"].fixed(model, x)
        maps = []
        for layer in layers:
            bound.arguments["layer"] = layer
            maps.append(method(*bound.args, **bound.kwargs))
        return combined_layers(maps)

    return call


def combined_layers(maps: list[torch.Tensor]) -> torch.Tensor:
    """Several layers' maps of the same images, (B, 1, H, W) each at the input's resolution, as
    one: each image's map divided by its maximum (a map that is zero everywhere stays zero), then
    the mean over the layers. Each layer counts the same, whatever the scale of its activations
    (deep layers' maps are coarse and strong, early ones fine and weak); the result lies in [0, 1].

        L_b = 1/n sum_l  L^l_b / max_ij L^l_b(i, j)
    """
    total = torch.zeros_like(maps[0])
    for cam in maps:
        peak = cam.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
        total += torch.where(peak > 0, cam / torch.where(peak > 0, peak, 1), 0)
    return total / len(maps)


@public
@several_layers
def gradcam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    layer: str | nn.Module | list | None = None,
    upsample: bool = True,
    reshape: Reshape | None = None,
) -> torch.Tensor:
    """Grad-CAM: the layer's activation maps weighted by their mean gradient, then a ReLU.

        alpha_k = 1/(h w) sum_ij d y_c / d A^k_ij
        L       = ReLU( sum_k alpha_k A^k )

    The gradient is taken w.r.t. the layer's *activations* A (not its weights). layer: a module,
    its dotted name, or None for ``default_cam_layer(model, x)``; or a list of layers, whose maps
    are combined (``combined_layers``: each normalised to max 1, then averaged). Returns
    (B, 1, H, W), upsampled bilinearly to the input size, or (B, 1, h, w) at the layer's
    resolution with upsample=False.
    A token layer of a vision transformer is laid out on its patch grid (``cam_inputs``; override
    with ``reshape``).
    """
    activations, gradients = cam_inputs(model, x, target, layer, reshape)
    alpha = gradients.mean(dim=(2, 3), keepdim=True)
    return cam_output(alpha * activations, x, upsample, "Grad-CAM")


@public
def guided_gradcam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    layer: str | nn.Module | list | None = None,
    reshape: Reshape | None = None,
) -> torch.Tensor:
    """Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map.

        G_b = guided_backprop_b (B, C, H, W)  *  L_b (B, 1, H, W, broadcast over channels)

    Both maps explain the same class (None is resolved once, to the predicted class).
    """
    target = target.fixed(model, x)
    cam = gradcam(model, x, target, layer=layer, upsample=True, reshape=reshape)
    return finite_map(guided_backprop(model, x, target) * cam, "guided Grad-CAM")
