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

from .architectures import SHAPES_PLAN, vgg_features
from .data import SHAPE_CLASSES


class ShapesViT(VisionTransformer):
    """A tiny hybrid vision transformer (Dosovitskiy et al. 2021, section 3.1 "hybrid
    architecture") for ``make_shapes`` images, 3x64x64 -> 5 logits: torchvision's own
    ``VisionTransformer`` class, so every tool that works on it works on torchvision's pretrained
    ViT-B/16 too.

    conv_proj.0: the shapes CNN's convolutional trunk (``SHAPES_PLAN``: 3x3 conv-ReLU blocks, two
                 max pools) -> 64 maps of 16x16
    conv_proj.1: 2x2 conv, stride 2 -> an 8x8 grid of 64 tokens of width 64 (each token: an 8x8
                 pixel patch of the image, with the trunk's context around it)
    + class token, + learned position embeddings -> (B, 65, 64)
    encoder.layers.encoder_layer_0..3: x + MHA(LN(x)) (4 heads of 16), then x + MLP(LN(x))
                 (64-128-64, GELU)
    encoder.ln, then heads.head: linear 64 -> 5 on the class token

    Why hybrid: with torchvision's plain patch embedding (one linear map of each 8x8 patch), six
    recipes (learning rates 3e-4..3e-3, batch 32/64, with and without a GELU/BatchNorm conv stem,
    300-1000 steps) stayed at chance (loss ln 5) on these shapes: a random colour on a random
    textured background leaves nothing a linear patch feature can use, and a small ViT needs far
    more than 5 CPU minutes to find the contrast features itself. With the CNN's trunk as its patch
    embedding, initialised from the shipped ``shapes`` CNN (``train.RECIPES["shapes-vit"]``), the
    transformer trains in a minute. What is left to the transformer is *where to look*: the class
    token reads the 64 patch tokens through attention, which is what lesson 10 asks about.

    Why these sizes: an 8x8 grid of 8-pixel patches locates a shape (a shape spans a few patches;
    a 16-pixel grid of 4x4 would be too coarse to point at anything); width 64 is the trunk's; depth
    4 with 4 heads gives rollout several layers to compose at ~0.2 M parameters (~0.8 MB). No
    dropout: the task is easy and the data plentiful.
    """

    classes = SHAPE_CLASSES

    def __init__(self) -> None:
        super().__init__(
            image_size=64, patch_size=8, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128,
            num_classes=len(SHAPE_CLASSES),
        )
        trunk = vgg_features(SHAPES_PLAN, in_channels=3)  # (B, 64, 16, 16)
        self.conv_proj = nn.Sequential(trunk, nn.Conv2d(int(SHAPES_PLAN[-1]), 64, kernel_size=2, stride=2))
