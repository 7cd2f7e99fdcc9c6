"""The attention-rollout checker (exercise 10): a student's ``rollout(attentions)`` against the
kit's ``attribution.attention_rollout``, on seeded tiny torchvision ViTs, with a hint for each of the
typical mistakes.

The student's function takes what ``attribution.attention_per_layer(model, x)`` gives, as a list in
forward order: one (B, heads, T, T) row-stochastic attention per block, T = 1 + N tokens (the class
token first, then N patches), and returns the class token's rollout over the patches, (B, N):

    Â_l = rownorm(0.5 mean_h A_lh + 0.5 I),    R = Â_L ... Â_2 Â_1,    map = R[0, 1:]

(Abnar & Zuidema 2020). The typical mistakes, each replayed on the same attention to name it:

- the residual identity forgotten: R = Ā_L ... Ā_1;
- the rows not renormalised: (Ā_l + I) composed as it is, 2^L times the rollout;
- the heads averaged after the product (one rollout per head, then their mean), not before;
- the class token kept in the map: R[0, :] (T values) or R[0, :-1] (N values, shifted by one);
- the product in the wrong order: R = Â_1 Â_2 ... Â_L.

The cases are tiny ``VisionTransformer``s whose query/key weights are scaled up, so that each head
attends sharply and differently (with near-uniform attention every one of the mistakes above would
give almost the right numbers, and a check could not tell them apart).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .. import attribution
from ..threads import lab_threads
from .harness import Case, CheckReport, _not_a_function, run_checks, seeded

Rollout = Callable[[list[torch.Tensor]], torch.Tensor]
SHARPNESS = 4.0  # query/key weights times this: attention far from uniform, heads far apart
ATOL = 1e-10  # float64 throughout: a right answer agrees to rounding


def tiny_vit(seed: int, layers: int, heads: int, image_size: int = 12, patch_size: int = 4,
             classes: int = 5) -> nn.Module:
    """A seeded torchvision ``VisionTransformer`` in small: (image_size / patch_size)^2 patches,
    width 4 per head, float64, eval mode. (Seeded on a forked random state: the notebook's own
    random stream is left as it was.)"""
    from torchvision.models import VisionTransformer

    model = seeded(seed, lambda: VisionTransformer(image_size, patch_size, layers, heads,
                                                   hidden_dim=4 * heads, mlp_dim=8 * heads,
                                                   num_classes=classes))
    with torch.no_grad():
        for block in model.encoder.layers:
            block.self_attention.in_proj_weight.mul_(SHARPNESS)
    return model.double().eval()


def attention_cases() -> list[Case]:
    """Three seeded cases: 1 to 3 images, 2 or 3 blocks, 2 to 4 heads. (One block would not do:
    there the class token's row of Ā + I is Ā's, and one rollout per head averaged is the mean.)"""
    cases = []
    for seed, (batch, layers, heads) in enumerate([(1, 2, 2), (3, 3, 4), (2, 2, 3)]):
        model = tiny_vit(seed, layers, heads)
        generator = torch.Generator().manual_seed(300 + seed)
        x = torch.rand(batch, 3, 12, 12, generator=generator, dtype=torch.float64)
        target = torch.randint(0, 5, (batch,), generator=generator)  # rollout ignores it
        cases.append(Case(f"{batch} image(s), {layers} block(s) of {heads} heads, 9 patches",
                          model, x, target))
    return cases


def _on_attention(rollout: Rollout) -> Callable[..., torch.Tensor]:
    """rollout(attentions) as a method f(model, x, target) of the harness: the attention of each
    block read afresh (and given as copies: a function that changes its input spoils nothing)."""

    def method(model, x, target):
        attentions = attribution.attention_per_layer(model, x).values()
        return rollout([a.clone() for a in attentions])

    return method


def _kit_rollout(model, x, target):
    """The reference: the kit's map on the patch grid, flattened in the patches' row-major order."""
    return attribution.attention_rollout(model, x, upsample=False).flatten(1)


# ---- the typical mistakes, each on the same attention ------------------------------------------

def _identity(attentions: list[torch.Tensor], per_head: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype)
    start = attentions[0] if per_head else attentions[0][:, 0]
    return eye, eye.expand_as(start).clone()


def _rollout_matrix(attentions, residual: bool = True, renormalise: bool = True,
                    heads_after: bool = False, reversed_order: bool = False) -> torch.Tensor:
    """R (B, T, T), right or with one mistake."""
    eye, product = _identity(attentions, per_head=heads_after)
    for weights in attentions:
        mixed = weights if heads_after else weights.mean(dim=1)
        if not residual:
            mixing = mixed
        elif renormalise:
            mixing = 0.5 * mixed + 0.5 * eye
            mixing = mixing / mixing.sum(dim=-1, keepdim=True)
        else:
            mixing = mixed + eye
        product = product @ mixing if reversed_order else mixing @ product
    return product.mean(dim=1) if heads_after else product


MISTAKES: dict[str, Rollout] = {
    "the residual connection is missing: each block mixes with 0.5 Ā_l + 0.5 I, not Ā_l alone "
    "(the skip connection carries every token on).":
        lambda a: _rollout_matrix(a, residual=False)[:, 0, 1:],
    "renormalise each row of the mixing matrix to sum to 1: your map is 2^L times the rollout "
    "(the rows of Ā_l + I sum to 2).":
        lambda a: _rollout_matrix(a, renormalise=False)[:, 0, 1:],
    "average the heads before the product (Ā_l = mean_h A_lh, then compose the blocks), not one "
    "rollout per head averaged at the end: a product of means is not a mean of products.":
        lambda a: _rollout_matrix(a, heads_after=True)[:, 0, 1:],
    "drop the class token from the map: take row 0 of R, columns 1..N (the patches), not column 0.":
        lambda a: _rollout_matrix(a)[:, 0, :],
    "drop the class token from the map: columns 1..N of row 0 are the patches; 0..N-1 keeps the "
    "class token and loses the last patch.":
        lambda a: _rollout_matrix(a)[:, 0, :-1],
    "compose later blocks on the left: R = Â_L ... Â_2 Â_1 (R = Â_l R at block l), not R Â_l.":
        lambda a: _rollout_matrix(a, reversed_order=True)[:, 0, 1:],
}


def check_attention_rollout(student: Rollout) -> CheckReport:
    """rollout(attentions) -> (B, N): the class token's attention rollout over the patches
    (Abnar & Zuidema 2020), from one (B, heads, T, T) attention per block in forward order:
    R = Â_L ... Â_1 with Â_l = rownorm(0.5 mean_h A_lh + 0.5 I), the map R[:, 0, 1:]."""
    if not callable(student):
        return _not_a_function("attention rollout", student)
    mistakes = {hint: _on_attention(wrong) for hint, wrong in MISTAKES.items()}
    with lab_threads():  # tiny models: on a busy machine several threads only wait for each other
        return run_checks("attention rollout", _on_attention(student), _kit_rollout,
                          attention_cases(), mistakes, atol=ATOL)


__all__ = ["MISTAKES", "attention_cases", "check_attention_rollout", "tiny_vit"]
