"""Vision transformers in the kit: the ``shapes-vit`` lab model, and what the CAM pipeline and the
attention maps need to know about a torchvision ``VisionTransformer`` (its token layout).

A ViT (Dosovitskiy et al. 2021) cuts the image into p x p patches, embeds each as a token, prepends
a learned class token and runs a stack of encoder blocks over the 1 + N tokens; the class token's
final state is classified. Inside the encoder a layer's output is (B, 1 + N, D): token 0 is the
class token, tokens 1..N the patches in row-major order over the (H/p) x (W/p) patch grid.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import VisionTransformer

from .data import SHAPE_CLASSES


class ShapesViT(VisionTransformer):
    """A tiny vision transformer (Dosovitskiy et al. 2021) for ``make_shapes`` images, 3x64x64 -> 5
    logits: torchvision's own ``VisionTransformer`` class, so every tool that works on it works on
    torchvision's pretrained ViT-B/16 too.

    conv_proj: 8x8 patches, stride 8 -> an 8x8 grid of 64 patch tokens of width 64
    + class token, + learned position embeddings -> (B, 65, 64)
    encoder.layers.encoder_layer_0..3: x + MHA(LN(x)) (4 heads of 16), then x + MLP(LN(x)) (64-128-64, GELU)
    encoder.ln, then heads.head: linear 64 -> 5 on the class token

    Why these sizes: a patch of 8 pixels is about a third of a shape, so a shape spans a few
    patches and the 8x8 grid still locates it (patch 4 would give 256 tokens and 16x the attention
    cost; patch 16 a 4x4 grid too coarse to point at anything). Width 64 with 4 heads and depth 4
    (~0.14 M parameters, ~0.6 MB) is the smallest that learned the shapes within the 5-minute
    training budget on one core; a deeper stack gives rollout more layers to compose. No dropout:
    the task is easy and the data plentiful.
    """

    classes = SHAPE_CLASSES

    def __init__(self) -> None:
        super().__init__(
            image_size=64, patch_size=8, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128,
            num_classes=len(SHAPE_CLASSES),
        )


def patch_grid(model: nn.Module) -> tuple[int, int] | None:
    """(rows, cols) of the patch grid of a torchvision ``VisionTransformer`` (found anywhere in
    ``model``, e.g. inside ``ImageNetClassifier``), or None for a model without one."""
    for module in model.modules():
        if isinstance(module, VisionTransformer):
            side = module.image_size // module.patch_size
            return side, side
    return None
