"""Input gradients and saliency (Simonyan, Vedaldi & Zisserman 2014), and layer gradients."""

from __future__ import annotations

import torch
from torch import nn

from .. import hooks
from .._boundary import public
from .._checks import check_choice, resolve_layer
from .._forward import run_model
from ..targets import Target
from ._common import finite_map, gradient_of, gradients_on, score_gradient


@public
def input_gradient(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """The signed gradient of the target score with respect to the input pixels.

        grad_b = d y_c(x_b) / d x_b          (Simonyan et al. 2014, "Deep inside conv. networks")

    x: (B, C, H, W) on the model's device and dtype. target: None (each image's predicted class),
    an int, B ints, or a callable ``output -> (B,)`` scores; the score is the logit y_c (before
    softmax). Returns (B, C, H, W). The model runs in whatever mode it is in (call
    ``model.eval()`` first for dropout/batch-norm models) and is left exactly as it was.
    """
    grad, _ = score_gradient(model, x, target)
    return grad


@public
def saliency(
    model: nn.Module, x: torch.Tensor, target: Target = None, reduce: str = "max"
) -> torch.Tensor:
    """Saliency map: the magnitude of the input gradient, reduced over the colour channels.

        M_b(i, j) = max_ch |d y_c / d x_b(ch, i, j)|     (reduce="max", Simonyan et al. 2014)
        M_b(i, j) = mean_ch |d y_c / d x_b(ch, i, j)|    (reduce="mean")

    Returns (B, 1, H, W), non-negative.
    """
    check_choice(reduce, "reduce", ("max", "mean"))
    magnitude = input_gradient(model, x, target).abs()
    if reduce == "max":
        return magnitude.amax(dim=1, keepdim=True)
    return magnitude.mean(dim=1, keepdim=True)


@public
def layer_gradients(
    model: nn.Module, x: torch.Tensor, layer: str | nn.Module, target: Target = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The activations A of a layer and the gradient dy_c/dA of the target score w.r.t. them.

    layer: a submodule or its dotted name (``"features.35"``, see ``model.named_modules()``).
    Returns (activations, gradients), both shaped like the layer's output, e.g. (B, K, h, w).
    The layer must run exactly once per forward pass.
    """
    name, module = resolve_layer(model, layer)
    with gradients_on():
        x = x.detach().clone().requires_grad_(True)  # a graph even if the weights are frozen
        with hooks.captured_layer(model, name, module) as record:
            output = run_model(model, x)
        if len(record.outputs) != 1:
            raise ValueError(
                f"layer {name!r} ran {len(record.outputs)} times in one forward pass; "
                "choose a layer that runs exactly once"
            )
        (activations,) = record.outputs
        grad = gradient_of(target(output), activations, f"layer {name!r}")
    return activations.detach(), finite_map(grad, f"layer {name!r} gradient")
