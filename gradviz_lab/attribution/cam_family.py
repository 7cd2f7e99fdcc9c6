"""The gradient-weighted members of Grad-CAM's family, and CAM and Eigen-CAM: each reads a layer's
activation maps A (B, K, h, w) and the gradient G = dy_c/dA of the target score (``cam_inputs``),
weighs them by its own formula, and hands the weighted maps to ``cam_output`` (ReLU of the sum
over k, upsampled to the input). Side by side (sums over i, j run over the h x w positions):

    Grad-CAM   (cam.py)  L = ReLU( sum_k [1/(hw) sum_ij G^k_ij] A^k )
    CAM                  L = ReLU( sum_k w_ck A^k ),  w_ck the linear head's weight (GAP + linear)
    Grad-CAM++           L = ReLU( sum_k [sum_ij a^k_ij ReLU(G^k_ij)] A^k ),
                             a^k_ij = G^2 / (2 G^2 + sum_ab A^k_ab G^3)   (at ij; 0 where 0/0)
    XGrad-CAM            L = ReLU( sum_k [sum_ij A^k_ij G^k_ij / sum_ab A^k_ab] A^k )
    HiResCAM             L = ReLU( sum_k G^k * A^k )          (elementwise: no averaging)
    LayerCAM             L = ReLU( sum_k ReLU(G^k) * A^k )    (elementwise)
    Eigen-CAM            L = ReLU( A v_1 ),  v_1 the first right singular vector of A as (hw, K)

Every function takes the call shape of ``gradcam``: ``method(model, x, target=None, layer=None,
upsample=True)``, with ``layer=[...]`` for several layers (``cam.combined_layers``).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import hooks
from .._boundary import public
from .._checks import resolve_layer
from .._forward import run_model
from ..targets import Target
from .cam import cam_inputs, cam_output, default_cam_layer, several_layers

Layer = str | nn.Module | list | None

# what may come between a CAM layer and the global average pooling's linear head: nothing that
# changes the pooled features (dropout is the identity in eval mode, and linear in train mode)
_PASS_THROUGH = (nn.Flatten, nn.Dropout, nn.Identity)
_AVERAGE_POOLING = (nn.AdaptiveAvgPool2d, nn.AvgPool2d)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, and 0 where the denominator is 0 (a channel that is zero
    everywhere, or has no gradient, contributes nothing)."""
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator != 0, numerator / safe, torch.zeros_like(numerator))


@public
@several_layers
def gradcam_plus_plus(
    model: nn.Module, x: torch.Tensor, target: Target = None, layer: Layer = None,
    upsample: bool = True,
) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay, Sarkar, Howlader & Balasubramanian 2018, "Grad-CAM++: improved
    visual explanations for deep convolutional networks"): each position's positive gradient
    weighted by a^k_ij, so that several objects of the class each count, not only the largest.

        a^k_ij = G^k_ij^2 / (2 G^k_ij^2 + sum_ab A^k_ab G^k_ij^3)      (0 where it is 0/0)
        w_k    = sum_ij a^k_ij ReLU(G^k_ij)
        L      = ReLU( sum_k w_k A^k )

    (the paper's closed form for an exponential of the score, written with G = dy_c/dA as its
    and the usual implementations' code does). Returns (B, 1, H, W) like ``gradcam``.
    """
    activations, gradients = cam_inputs(model, x, target, layer)
    squared = gradients.pow(2)
    spread = activations.sum(dim=(2, 3), keepdim=True) * gradients.pow(3)
    alpha = _ratio(squared, 2 * squared + spread)
    weights = (alpha * torch.relu(gradients)).sum(dim=(2, 3), keepdim=True)
    return cam_output(weights * activations, x, upsample, "Grad-CAM++")


@public
@several_layers
def xgradcam(
    model: nn.Module, x: torch.Tensor, target: Target = None, layer: Layer = None,
    upsample: bool = True,
) -> torch.Tensor:
    """XGrad-CAM (Fu, Hu, Lu, Liao, Hu & Sun 2020, "Axiom-based Grad-CAM"): the gradient
    averaged with the activations' own weights, chosen so that the map satisfies the axioms of
    sensitivity and conservation (sum_ij L_ij approximates the score, for a ReLU network).

        w_k = sum_ij (A^k_ij / sum_ab A^k_ab) G^k_ij       (0 for a channel that sums to 0)
        L   = ReLU( sum_k w_k A^k )

    On a global-average-pooling + linear head G^k is constant over space, and XGrad-CAM is
    Grad-CAM. Returns (B, 1, H, W) like ``gradcam``.
    """
    activations, gradients = cam_inputs(model, x, target, layer)
    total = activations.sum(dim=(2, 3), keepdim=True)
    weights = _ratio((activations * gradients).sum(dim=(2, 3), keepdim=True), total)
    return cam_output(weights * activations, x, upsample, "XGrad-CAM")


@public
@several_layers
def hirescam(
    model: nn.Module, x: torch.Tensor, target: Target = None, layer: Layer = None,
    upsample: bool = True,
) -> torch.Tensor:
    """HiResCAM (Draelos & Carin 2020, "Use HiResCAM instead of Grad-CAM for faithful
    explanations of convolutional neural networks"): the gradient times the activation at each
    position, summed over channels, not averaged over space first.

        L = ReLU( sum_k G^k * A^k )           (* elementwise)

    Without the ReLU, sum_ij of it is the first-order term of the score in A; where the gradient
    is constant over space (global-average-pooling + linear head) it is Grad-CAM. Returns
    (B, 1, H, W) like ``gradcam``.
    """
    activations, gradients = cam_inputs(model, x, target, layer)
    return cam_output(gradients * activations, x, upsample, "HiResCAM")


@public
@several_layers
def layercam(
    model: nn.Module, x: torch.Tensor, target: Target = None, layer: Layer = None,
    upsample: bool = True,
) -> torch.Tensor:
    """LayerCAM (Jiang, Zhang, Hou, Cheng & Wei 2021, "LayerCAM: exploring hierarchical class
    activation maps for localization"): each position weighted by its own positive gradient,
    which keeps the fine detail of early layers (combine several: ``layer=[...]``).

        L = ReLU( sum_k ReLU(G^k) * A^k )     (* elementwise)

    At the last layer of a global-average-pooling + linear network it is Grad-CAM with the
    channels of negative weight left out. Returns (B, 1, H, W) like ``gradcam``.
    """
    activations, gradients = cam_inputs(model, x, target, layer)
    return cam_output(torch.relu(gradients) * activations, x, upsample, "LayerCAM")


@public
@several_layers
def eigencam(
    model: nn.Module, x: torch.Tensor, target: Target = None, layer: Layer = None,
    upsample: bool = True,
) -> torch.Tensor:
    """Eigen-CAM (Muhammad & Yeasin 2020, "Eigen-CAM: class activation map using principal
    components"): the activations projected on their first principal direction; no gradient, no
    class. The target is checked like any method's but does not change the map.

        M   = A_b as an (hw, K) matrix = U S V^T          (singular value decomposition)
        L_b = ReLU( M v_1 ) as (h, w),  v_1 the first column of V, its sign chosen so that
              sum_ij (M v_1)_ij >= 0 (the decomposition leaves it open)

    Returns (B, 1, H, W) like ``gradcam``.
    """
    activations, _ = cam_inputs(model, x, target, layer)  # the gradient checks the target
    batch, channels, height, width = activations.shape
    matrix = activations.flatten(2).transpose(1, 2)  # (B, hw, K)
    _, _, v_transposed = torch.linalg.svd(matrix, full_matrices=False)
    projection = matrix @ v_transposed[:, 0, :].unsqueeze(2)  # (B, hw, 1)
    sign = torch.where(projection.sum(dim=(1, 2), keepdim=True) < 0, -1.0, 1.0).to(projection)
    weighted = (sign * projection).transpose(1, 2).reshape(batch, 1, height, width)
    return cam_output(weighted, x, upsample, "Eigen-CAM")


@public
@several_layers
def cam(
    model: nn.Module, x: torch.Tensor, target: Target = None, layer: Layer = None,
    upsample: bool = True,
) -> torch.Tensor:
    """CAM (Zhou, Khosla, Lapedriza, Oliva & Torralba 2016, "Learning deep features for
    discriminative localization"): for a network that ends in global average pooling and one
    linear layer, y_c = sum_k w_ck mean_ij A^k_ij + b_c, the class's weights on the maps.

        L = ReLU( sum_k w_ck A^k )

    The layer must be the one pooled: what follows it is average pooling to 1 x 1, then the
    linear layer that gives the output, with only flatten/dropout/identity around them (any
    other layer: a ValueError, use Grad-CAM). w_ck is read as the gradient summed over space
    (dy_c/dA^k_ij = w_ck / (hw) at every position), so a callable target gets its own weights
    too. CAM is then Grad-CAM times h*w. Returns (B, 1, H, W) like ``gradcam``.
    """
    if layer is None:
        layer = default_cam_layer(model, x)
    _check_pooled_linear_head(model, x, layer)
    activations, gradients = cam_inputs(model, x, target, layer)
    weights = gradients.sum(dim=(2, 3), keepdim=True)
    return cam_output(weights * activations, x, upsample, "CAM")


def _check_pooled_linear_head(model: nn.Module, x: torch.Tensor, layer: str | nn.Module) -> None:
    """A ValueError unless the leaf modules that run after ``layer`` are global average pooling
    then one linear layer, with only flatten/dropout/identity around them."""
    name, _ = resolve_layer(model, layer)
    with hooks.training_mode(model, False), torch.no_grad(), \
            hooks.forward_outputs(model) as outputs:
        run_model(model, x[:1])
    modules = dict(model.named_modules())
    ends = [n for n, _, _ in outputs]
    if name not in ends:
        raise ValueError(f"layer {name!r} did not run (or returned no tensor) in the forward pass")
    after = [(n, out) for n, out, _ in outputs[ends.index(name) + 1:]
             if not list(modules[n].children())]  # the leaf modules that run after the layer
    kinds = [type(modules[n]).__name__ for n, _ in after]
    head = [(modules[n], out) for n, out in after if not isinstance(modules[n], _PASS_THROUGH)]
    fits = (
        len(head) == 2
        and isinstance(head[0][0], _AVERAGE_POOLING) and head[0][1][0, 0].numel() == 1
        and isinstance(head[1][0], nn.Linear)
    )
    if not fits:
        pooled = any(isinstance(m, _AVERAGE_POOLING) and out[0, 0].numel() == 1 for m, out in head)
        hint = ("choose the layer that is pooled (the last before the pooling), or use Grad-CAM"
                if pooled else
                "the model has no such head after it: use Grad-CAM, which needs none")
        raise ValueError(
            f"CAM needs global average pooling and one linear layer right after the layer (y_c = "
            f"sum_k w_ck mean_ij A^k_ij + b_c); after {name!r} this model runs "
            f"{', '.join(kinds) or 'nothing'}: {hint}"
        )


__all__ = ["cam", "gradcam_plus_plus", "xgradcam", "hirescam", "layercam", "eigencam"]
