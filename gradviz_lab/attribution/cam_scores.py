"""The perturbation-weighted members of Grad-CAM's family: a channel's weight is what the model's
score does when the image is seen through that channel's map (Score-CAM) or when the channel is
switched off (Ablation-CAM). No gradient; one forward pass per channel and image, done in batches
of ``batch_size`` (channel, image) pairs:

    Score-CAM     w_k = softmax_k( y_c( x * N(up(A^k)) ) ),  N: min-max scaled to [0, 1]
    Ablation-CAM  w_k = ( y_c - y_c(A^k = 0) ) / y_c
    both          L   = ReLU( sum_k w_k A^k )                  (``cam_output``)

Row r of the pairs is (channel r // B, image r % B): every image's channel k before any image's
channel k + 1, so the weights do not depend on batch_size (``batch_size=len(x)``: one channel
per forward pass, the per-channel loop).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import hooks
from .._boundary import public
from .._checks import check_batch_memory, check_positive_int, resolve_layer
from .._forward import run_model
from ..targets import Target, TargetScore, class_indices
from ._common import chunks, copies_of
from .cam import cam_output, default_cam_layer, several_layers

Layer = str | nn.Module | list | None


def layer_activations(
    model: nn.Module, x: torch.Tensor, target: TargetScore, layer: str | nn.Module | None
) -> tuple[str, nn.Module, torch.Tensor, TargetScore, torch.Tensor]:
    """One forward pass without a graph: (the layer's name, the layer, its activations A
    (B, K, h, w), the target with None fixed to each image's predicted class, the scores (B,))."""
    name, module = resolve_layer(model, default_cam_layer(model, x) if layer is None else layer)
    with torch.no_grad(), hooks.captured_layer(model, name, module) as record:
        output = run_model(model, x)
    if len(record.outputs) != 1:
        raise ValueError(f"layer {name!r} ran {len(record.outputs)} times in one forward pass; "
                         "choose a layer that runs exactly once")
    (activations,) = record.outputs
    if activations.dim() != 4:
        raise ValueError(f"a CAM method needs a layer with (B, K, h, w) output, got "
                         f"{tuple(activations.shape)} at {name!r}")
    if target.predicted:
        target = TargetScore(class_indices(output, None), None, target.probability)
    return name, module, activations, target, target(output)


def _scores_of_pairs(
    inputs, target: TargetScore, pairs: int, batch: int, batch_size: int, copies: str
) -> torch.Tensor:
    """The scores (K, B) of the K * B (channel, image) pairs: ``inputs(channels, images)`` gives
    the rows' model inputs (with whatever the layer should do set up around the call)."""
    scores = []
    for rows in chunks(pairs, batch_size):
        images, channels = rows % batch, rows // batch
        with copies_of(images, copies), torch.no_grad():
            scores.append(target.for_copies(images)(inputs(channels, images)))
    return torch.cat(scores).view(pairs // batch, batch)


@public
@several_layers
def scorecam(
    model: nn.Module, x: torch.Tensor, target: Target = None, layer: Layer = None,
    upsample: bool = True, batch_size: int = 64,
) -> torch.Tensor:
    """Score-CAM (Wang, Wang, Du, Yang, Zhang, Ding, Mardziel & Hu 2020, "Score-CAM:
    score-weighted visual explanations for convolutional neural networks"): each channel's map,
    upsampled and scaled to [0, 1], used as a mask on the image; the channel's weight is the
    target score of the masked image, normalised over the channels by a softmax.

        H^k = N( up(A^k) ),  N(m) = (m - min m) / (max m - min m)   (0 for a constant map)
        w_k = softmax_k( y_c(x * H^k) )
        L   = ReLU( sum_k w_k A^k )

    (The paper subtracts the score of a baseline image from each y_c; the softmax over k does not
    change when the same number is subtracted from every score, so it is left out.) y_c is the
    kit's target score: the logit by default. K forward passes per image, ``batch_size`` masked
    images at a time. With a single channel the weight is 1 and the map is ReLU(A).
    Returns (B, 1, H, W) like ``gradcam``.
    """
    check_positive_int(batch_size, "batch_size")
    _, _, activations, target, _ = layer_activations(model, x, target, layer)
    batch, channels = activations.shape[:2]
    check_batch_memory(channels * batch, x, batch_size, "masked copies")

    def masked(k: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # the masks of this batch only: all K of them at the image's size may not fit in memory
        up = F.interpolate(activations[b, k].unsqueeze(1), size=x.shape[-2:], mode="bilinear",
                           align_corners=False)  # (R, 1, H, W)
        low, high = up.amin(dim=(2, 3), keepdim=True), up.amax(dim=(2, 3), keepdim=True)
        span = high - low
        masks = torch.where(span > 0, (up - low) / torch.where(span > 0, span, 1), 0)
        return run_model(model, x[b] * masks)

    scores = _scores_of_pairs(masked, target, channels * batch, batch, batch_size,
                              "Score-CAM's masked copies")
    weights = scores.softmax(dim=0).T.reshape(batch, channels, 1, 1)
    return cam_output(weights * activations, x, upsample, "Score-CAM")


@public
@several_layers
def ablationcam(
    model: nn.Module, x: torch.Tensor, target: Target = None, layer: Layer = None,
    upsample: bool = True, batch_size: int = 64,
) -> torch.Tensor:
    """Ablation-CAM (Desai & Ramaswamy 2020, "Ablation-CAM: visual explanations for deep
    convolutional network via gradient-free localization"): a channel's weight is the fraction
    of the score lost when its map is set to zero.

        w_k = ( y_c - y_c^k ) / y_c,   y_c^k: the score with A^k = 0 (y_c - y_c^k where y_c = 0)
        L   = ReLU( sum_k w_k A^k )

    K forward passes per image, ``batch_size`` at a time (a hook zeroes channel k of row r). A
    negative score y_c flips every weight's sign, as the paper's formula does: explain a class
    the model scores positively (its logit), or pass a probability as a callable target.
    Returns (B, 1, H, W) like ``gradcam``.
    """
    check_positive_int(batch_size, "batch_size")
    _, module, activations, target, clean = layer_activations(model, x, target, layer)
    batch, channels = activations.shape[:2]
    check_batch_memory(channels * batch, x, batch_size, "ablated copies")
    ablated: list[torch.Tensor] = []  # the channel of each row of the batch being run

    def zero_channel(_module: nn.Module, _input: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        output[torch.arange(len(output), device=output.device), ablated[-1]] = 0
        return output

    def without_channel(k: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ablated.append(k.to(x.device))
        return run_model(model, x[b])

    with hooks.outputs_replaced([module], zero_channel):
        scores = _scores_of_pairs(without_channel, target, channels * batch, batch, batch_size,
                                  "Ablation-CAM's ablated copies")
    drop = clean.unsqueeze(0) - scores  # (K, B)
    safe = torch.where(clean != 0, clean, torch.ones_like(clean))
    weights = torch.where(clean != 0, drop / safe, drop).T.reshape(batch, channels, 1, 1)
    return cam_output(weights * activations, x, upsample, "Ablation-CAM")


__all__ = ["scorecam", "ablationcam", "layer_activations"]
