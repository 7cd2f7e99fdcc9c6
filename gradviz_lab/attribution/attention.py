"""What a vision transformer attends to: raw attention, attention rollout, gradient-weighted rollout.

In each encoder block l of a ViT every head h mixes the tokens with a row-stochastic matrix

    A_lh = softmax(q k^T / sqrt(d))      (T x T; row t: how much token t reads of each token s)

read here through ``hooks.attention_weights`` (torchvision's encoder never forms it otherwise).
A map over the image is the class token's row (token 0), its patch columns 1..N laid out on the
patch grid (``layouts.patch_grid``), upsampled to the image like a CAM.

- ``attention_map``: one layer's A (one head, or the mean over heads), the class token's row.
  It ignores the target: attention is the same whatever class you ask about.
- ``attention_rollout`` (Abnar & Zuidema 2020, "Quantifying attention flow in transformers"):
  the residual connection carries each token on, so a block mixes with  0.5 A_l + 0.5 I  (A_l the
  mean over heads), rows renormalised; the blocks compose by matrix product:

      R = Â_L ... Â_2 Â_1,    Â_l = rownorm(0.5 mean_h A_lh + 0.5 I)

  The map is R's class-token row. Also class-independent.
- ``gradient_rollout`` (Chefer, Gur & Wolf 2021, "Generic attention-model explainability for
  interpreting bi-modal and encoder-decoder transformers", their rule for self-attention):
  each head's attention weighted by the gradient of the target score w.r.t. it, only the positive
  part kept, then the same residual composition, summed rather than averaged:

      Ā_l = mean_h (dy/dA_lh ⊙ A_lh)^+,    R_0 = I,    R_l = R_{l-1} + Ā_l R_{l-1}

  The map is R_L's class-token row, patch columns. This one depends on the class.

Every function is ``@public``: the model leaves exactly as it came (modes, hooks, grads, and its
attention modules' ``forward``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import hooks
from .._boundary import public
from .._checks import check_flag
from .._forward import run_model
from ..targets import Target
from ._common import finite_map, gradients_on
from .layouts import patch_grid, tokens_to_maps

HEAD_FUSIONS = ("mean", "max", "min")


@public
def attention_per_layer(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """{attention module's name: A (B, heads, T, T)} for every attention of the model, in forward
    order (detached). Raises if the model has no ``nn.MultiheadAttention``."""
    with torch.no_grad():
        return {name: a.detach() for name, a in _attention(model, x)[0]}


def _attention(model: nn.Module, x: torch.Tensor, grad: bool = False):
    """[(name, A)] recorded in one forward pass, and the output (in the graph when grad)."""
    if not any(isinstance(m, nn.MultiheadAttention) for m in model.modules()):
        raise ValueError("the model has no nn.MultiheadAttention: attention maps are for transformers")
    with gradients_on() if grad else torch.no_grad(), hooks.attention_weights(model) as records:
        output = run_model(model, x)
    return records, output


def class_token_map(mixing: torch.Tensor, model: nn.Module, x: torch.Tensor, upsample: bool,
                    name: str) -> torch.Tensor:
    """(B, T, T) token mixing -> the class token's row, patch columns, on the patch grid
    (B, 1, rows, cols), or upsampled bilinearly to x's (B, 1, H, W)."""
    check_flag(upsample, "upsample")
    row = mixing[:, :1, :]  # (B, 1, T): token 0 as one "feature" per token
    grid = patch_grid(model, mixing.shape[-1])
    result = tokens_to_maps(row.transpose(1, 2), grid)  # (B, T, 1) tokens -> (B, 1, rows, cols)
    if upsample:
        result = F.interpolate(result, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return finite_map(result, name)


def _pick_layer(records: list, block: int) -> torch.Tensor:
    if isinstance(block, bool) or not isinstance(block, int):
        raise TypeError(f"block must be an int index of the attention layers, got {block!r}")
    if not -len(records) <= block < len(records):
        raise ValueError(f"block {block} is out of range: the model has {len(records)} attention layers "
                         f"(0..{len(records) - 1}, or negative from the end)")
    return records[block][1]


def _pick_heads(weights: torch.Tensor, head: int | None) -> torch.Tensor:
    """(B, heads, T, T) -> (B, T, T): one head, or their mean (head None)."""
    if head is None:
        return weights.mean(dim=1)
    if isinstance(head, bool) or not isinstance(head, int):
        raise TypeError(f"head must be an int or None (the mean over heads), got {head!r}")
    if not 0 <= head < weights.shape[1]:
        raise ValueError(f"head {head} is out of range: this layer has {weights.shape[1]} heads (0..{weights.shape[1] - 1})")
    return weights[:, head]


@public
def attention_map(model: nn.Module, x: torch.Tensor, target: Target = None, block: int = -1,
                  head: int | None = None, upsample: bool = True) -> torch.Tensor:
    """Raw attention of the class token to the patches in one encoder block (``block``: index
    among the attention layers, in forward order, -1 the last), one head or the mean over heads
    (head None): A_l[0, 1:] on the patch grid. ``target`` is accepted for the common call shape and ignored: attention does not
    depend on the class."""
    records, _ = _attention(model, x)
    weights = _pick_layer(records, block)
    return class_token_map(_pick_heads(weights, head), model, x, upsample, "attention")


def rollout_matrix(attentions: list[torch.Tensor], head_fusion: str = "mean") -> torch.Tensor:
    """R = Â_L ... Â_1 with Â_l = rownorm(0.5 fuse_h A_lh + 0.5 I) (Abnar & Zuidema 2020), from
    per-layer (B, heads, T, T) attention in forward order. fuse: mean (the paper), max or min."""
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    if not attentions:
        raise ValueError("rollout needs at least one attention layer, got an empty list")
    eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype, device=attentions[0].device)
    rollout = eye.expand_as(attentions[0][:, 0]).clone()
    for weights in attentions:
        fused = getattr(weights, head_fusion)(dim=1)
        fused = fused if head_fusion == "mean" else fused.values
        mixing = 0.5 * fused + 0.5 * eye  # the residual stream carries each token on
        mixing = mixing / mixing.sum(dim=-1, keepdim=True)
        rollout = mixing @ rollout  # later layers act on what earlier ones mixed
    return rollout


def gradient_rollout_matrix(attentions: list[torch.Tensor], gradients: list[torch.Tensor]) -> torch.Tensor:
    """R_L from R_0 = I, R_l = R_{l-1} + mean_h (dy/dA_lh ⊙ A_lh)^+ R_{l-1} (Chefer et al. 2021)."""
    if not attentions:
        raise ValueError("rollout needs at least one attention layer, got an empty list")
    eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype, device=attentions[0].device)
    relevance = eye.expand_as(attentions[0][:, 0]).clone()
    for weights, grad in zip(attentions, gradients):
        weighted = (grad * weights).clamp(min=0).mean(dim=1)
        relevance = relevance + weighted @ relevance
    return relevance


@public
def attention_rollout(model: nn.Module, x: torch.Tensor, target: Target = None,
                      head_fusion: str = "mean", upsample: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): the class token's row of ``rollout_matrix``,
    patch columns on the grid. Class-independent (``target`` ignored); (B, 1, H, W)."""
    records, _ = _attention(model, x)
    rollout = rollout_matrix([a for _, a in records], head_fusion)
    return class_token_map(rollout, model, x, upsample, "attention rollout")


@public
def gradient_rollout(model: nn.Module, x: torch.Tensor, target: Target = None,
                     upsample: bool = True) -> torch.Tensor:
    """Gradient-weighted attention rollout (Chefer et al. 2021) for the target class: the class
    token's row of ``gradient_rollout_matrix``, patch columns on the grid; (B, 1, H, W)."""
    with gradients_on():
        x = x.detach().clone().requires_grad_(True)  # a graph even if the weights are frozen
        records, output = _attention(model, x, grad=True)
        attentions = [a for _, a in records]
        # The images of a batch do not interact: d(sum of scores)/dA_b is image b's own gradient.
        gradients = torch.autograd.grad(target(output).sum(), attentions, allow_unused=True)
    gradients = [torch.zeros_like(a) if g is None else g for a, g in zip(attentions, gradients)]
    relevance = gradient_rollout_matrix([a.detach() for a in attentions], gradients)
    return class_token_map(relevance, model, x, upsample, "gradient rollout")
