"""Which way round a layer's output is, for the CAM pipeline: (B, K, h, w) maps, tokens, or
channels last.

Grad-CAM and its family weight K feature maps of shape h x w. Three layouts reach them:

- (B, K, h, w), channels first: a CNN's convolutions. Read as they are.
- (B, 1 + N, D), tokens: a vision transformer's layers. Token 0 is the class token; tokens 1..N
  are the patches in row-major order over the patch grid (rows x cols = N). ``tokens_to_maps``
  drops the class token and lays the patches out on the grid, giving (B, D, rows, cols): each of
  the D token features becomes a map. This is pytorch-grad-cam's ``reshape_transform``; here it is
  inferred (a torchvision ``VisionTransformer`` knows its grid; another model's square grid is
  taken from N) and can be overridden with ``reshape=``.
- (B, h, w, C), channels last: the layers of a torchvision ConvNeXt block between its two
  ``Permute``s (its LayerNorm, Linear and GELU layers). Read as channels first, Grad-CAM would
  average over (w, C) and weight the h axis: a wrong map without a word. ``channels_last``
  detects them and the pipeline refuses them (or accepts ``reshape=``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

Reshape = Callable[[torch.Tensor], torch.Tensor]
"""A layer's output (activations or their gradients, same shape) -> (B, K, h, w) maps."""

TO_CHANNELS_LAST, TO_CHANNELS_FIRST = [0, 2, 3, 1], [0, 3, 1, 2]


def vision_transformer(model: nn.Module) -> tuple[str, nn.Module] | None:
    """(name, module) of the first torchvision ``VisionTransformer`` in ``model`` (the model
    itself, or e.g. the ``.net`` of an ImageNet wrapper), or None. torchvision is imported only if
    the caller already has (a model built from it has)."""
    import sys

    if "torchvision.models" not in sys.modules:
        return None
    from torchvision.models import VisionTransformer

    for name, module in model.named_modules():
        if isinstance(module, VisionTransformer):
            return name, module
    return None


def patch_grid(model: nn.Module, tokens: int) -> tuple[int, int]:
    """(rows, cols) of the patch grid a (B, ``tokens``, D) layer of ``model`` lays out: from a
    torchvision ViT's image and patch size, else a square grid of ``tokens - 1`` patches (one class
    token); anything else needs an explicit ``reshape``."""
    found = vision_transformer(model)
    if found is not None:
        side = found[1].image_size // found[1].patch_size
        if tokens == 1 + side * side:
            return side, side
    side = math.isqrt(max(tokens - 1, 0))
    if tokens > 1 and side * side == tokens - 1:
        return side, side
    raise ValueError(
        f"a token layer with {tokens} tokens: {tokens - 1} patch tokens after the class token make no "
        "square grid, and the model is not a torchvision VisionTransformer whose grid is known. Pass "
        "reshape=, a function (B, T, D) -> (B, D, rows, cols), e.g. "
        "reshape=lambda t: tokens_to_maps(t, (rows, cols)) for a rows x cols grid"
    )


def tokens_to_maps(tokens: torch.Tensor, grid: tuple[int, int], class_tokens: int = 1) -> torch.Tensor:
    """(B, class_tokens + rows*cols, D) -> (B, D, rows, cols): the class token(s) dropped, each of
    the D features of the patch tokens laid out on the patch grid (row-major, as the patches were
    cut)."""
    rows, cols = grid
    if tokens.dim() != 3 or tokens.shape[1] != class_tokens + rows * cols:
        raise ValueError(
            f"expected (B, {class_tokens} + {rows}*{cols}, D) tokens for a {rows}x{cols} grid, got "
            f"{tuple(tokens.shape)}"
        )
    patches = tokens[:, class_tokens:]
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], rows, cols)


def is_permute(module: nn.Module, dims: list[int]) -> bool:
    """torchvision's ``Permute`` module (ConvNeXt, Swin) with these dims."""
    return type(module).__name__ == "Permute" and list(getattr(module, "dims", ())) == dims


def channels_last(model: nn.Module, name: str) -> bool:
    """True if layer ``name``'s 4-d output is (B, h, w, C), as far as the modules show it:

    - an ``nn.Linear`` or ``nn.LayerNorm`` acts on the *last* axis, so on a 4-d tensor that axis
      holds the channels;
    - a torchvision ``Permute([0, 2, 3, 1])`` puts them last, and every layer after it in the same
      ``nn.Sequential``, up to a ``Permute([0, 3, 1, 2])``, sees them last (ConvNeXt's CNBlock).

    A permute written inside some ``forward`` leaves no module to see: pass ``reshape=`` there.
    """
    modules = dict(model.named_modules())
    module = modules[name]
    if isinstance(module, (nn.Linear, nn.LayerNorm)) or is_permute(module, TO_CHANNELS_LAST):
        return True
    parent_name, _, child = name.rpartition(".")
    parent = modules[parent_name]  # "" is the model itself
    if not isinstance(parent, nn.Sequential):
        return False
    last = False
    for sibling_name, sibling in parent.named_children():
        if sibling_name == child:
            return last
        if is_permute(sibling, TO_CHANNELS_LAST):
            last = True
        elif is_permute(sibling, TO_CHANNELS_FIRST):
            last = False
    return False


def attention_inputs(model: nn.Module) -> list[str]:
    """For a torchvision ViT: the names of its encoder blocks' ``ln_1``, the tokens each block's
    attention reads, in forward order; [] for a model without them."""
    found = vision_transformer(model)
    if found is None:
        return []
    prefix, vit = found
    return [".".join(p for p in (prefix, "encoder.layers", block, "ln_1") if p)
            for block, _ in vit.encoder.layers.named_children()]


def last_attention_input(model: nn.Module) -> str | None:
    """For a torchvision ViT: the name of the last encoder block's ``ln_1``, the input of the last
    attention, or None for a model without one (see ``cam.default_cam_layer``)."""
    names = attention_inputs(model)
    return names[-1] if names else None


def as_maps(model: nn.Module, name: str, output: torch.Tensor, reshape: Reshape | None) -> Reshape:
    """The function that turns layer ``name``'s output (and its gradient) into (B, K, h, w) maps:
    ``reshape`` if given; tokens laid out on the patch grid; channels first as they are; a clear
    error for channels last or any other shape."""
    if reshape is not None:
        if not callable(reshape):
            raise TypeError(f"reshape must be a function (layer output) -> (B, K, h, w), got {reshape!r}")
        return reshape
    if output.dim() == 3:
        grid = patch_grid(model, output.shape[1])
        return lambda t: tokens_to_maps(t, grid)
    if output.dim() == 4:
        if channels_last(model, name):
            raise ValueError(
                f"layer {name!r} outputs (B, h, w, C) = {tuple(output.shape)}, channels last (between a "
                "ConvNeXt block's permutes, or a Linear/LayerNorm over the channels): read as "
                "(B, K, h, w) its maps would be wrong. Choose a channel-first layer (cam_layers(model, x) "
                "lists them), or pass reshape=lambda a: a.permute(0, 3, 1, 2)"
            )
        return lambda t: t
    raise ValueError(
        f"Grad-CAM needs a layer with (B, K, h, w) output or (B, 1 + N, D) tokens, got "
        f"{tuple(output.shape)} from {name!r}; pass reshape= to lay it out as (B, K, h, w)"
    )
