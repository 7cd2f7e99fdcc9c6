"""Approximate occlusion: trade a little of the map for speed, in two ways that can be combined.

Both follow Krypton (Nakandala, Kumar & Papakonstantinou, SIGMOD 2019, "Incremental and
approximate inference for faster occlusion-based deep CNN explanations"); both are off unless the
caller passes ``occlusion(..., approximate=OcclusionApproximation(...))``, and each one's setting
that changes nothing gives the exact map back.

1. Capping the projected region (``cap``, Krypton's projective-field threshold tau). Deep in a
   network a window's changed region covers most of each map (VGG16 at 224, window 32: 40-63% of
   conv5's maps), so the incremental engine recomputes almost everything there. With a cap, each
   sliding-window layer recomputes at most

       n_cap = ceil(cap * map size)      rows (and the same for columns)

   of its output, centred on the changed region, and treats the rest of the region as unchanged
   (it keeps the clean activations there); the next layer's region is projected from the capped
   box. The far edges of a window's influence pass through many layers and weigh little, which
   is why the map barely changes (Krypton: a visually indistinguishable map at tau of about 0.4).
   cap = 1 (or any cap above every region's size) is the exact incremental engine.

2. Coarse-to-fine drill-down (``coarse``, ``refine``). The drops d(p) of the window positions
   form a smooth surface over the grid of positions. First only every ``coarse``-th position
   along each axis (and the last one) is computed; every other position p gets the estimate

       d~(p) = bilinear interpolation of the coarse drops, over the position indices,

   and the fraction ``refine`` of the other positions whose |d~(p)| is largest (per image: where
   the coarse map is large) is computed exactly; the rest keep their estimate. coarse = 1, or
   refine = 1, computes every position (the exact map); refine = 0 costs about 1 / coarse^2 of it.

The speed-up and the error of a few settings against the exact map (SSIM, overlap of the top 10%
of pixels) are measured in ``benchmarks/bench_attribution.py --suite fast-occlusion``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Real

import torch


@dataclass(frozen=True)
class OcclusionApproximation:
    """How ``occlusion`` may approximate (see the module's docstring for the formulas).

    cap:    in (0, 1]: the largest box each layer recomputes, as a fraction of that layer's map
            (per axis). 1 = no cap. Needs the incremental path (``occlusion_path(model)``).
    coarse: an int >= 1: compute every coarse-th window position first. 1 = every position.
    refine: in [0, 1]: the fraction of the remaining positions then computed exactly, those with
            the largest interpolated |drop|; the others keep the interpolated value.

    OcclusionApproximation() changes nothing; e.g. OcclusionApproximation(cap=0.5, coarse=2,
    refine=0.25)."""

    cap: float = 1.0
    coarse: int = 1
    refine: float = 1.0

    def __post_init__(self) -> None:
        for name in ("cap", "refine"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise TypeError(f"OcclusionApproximation: {name} must be a finite number, "
                                f"got {value!r}")
        if not 0 < self.cap <= 1:
            raise ValueError(f"OcclusionApproximation: cap is the largest share of a layer's map "
                             f"recomputed per axis, in (0, 1] (1 = exact), got {self.cap}")
        if not 0 <= self.refine <= 1:
            raise ValueError(f"OcclusionApproximation: refine is the share of the positions between "
                             f"the coarse ones computed exactly, in [0, 1] (1 = exact), "
                             f"got {self.refine}")
        if isinstance(self.coarse, bool) or not isinstance(self.coarse, int) or self.coarse < 1:
            raise ValueError(f"OcclusionApproximation: coarse must be an int >= 1 (compute every "
                             f"coarse-th window position first; 1 = all), got {self.coarse!r}")

    @property
    def drills_down(self) -> bool:
        """True when some positions may be estimated instead of computed."""
        return self.coarse > 1 and self.refine < 1


def check_approximation(approximate: object, incremental_why: str | None) -> \
        OcclusionApproximation | None:
    """The caller's ``approximate`` knob, checked. incremental_why: None when the incremental
    path runs, else why it does not (a cap needs it)."""
    if approximate is None:
        return None
    if not isinstance(approximate, OcclusionApproximation):
        raise TypeError("approximate must be None (the exact map) or an OcclusionApproximation"
                        "(cap=..., coarse=..., refine=...) from gradviz_lab.attribution, got "
                        f"{approximate!r}")
    if approximate.cap < 1 and incremental_why is not None:
        raise ValueError(f"approximate: cap={approximate.cap} caps the regions the incremental "
                         f"engine recomputes, but this call recomputes every image in full "
                         f"({incremental_why}); use cap=1 (drill-down alone works on any model)")
    return approximate


def coarse_indices(n: int, coarse: int) -> torch.Tensor:
    """0, coarse, 2 coarse, ... and n - 1: the positions computed first along one axis."""
    picked = list(range(0, n, coarse))
    if picked[-1] != n - 1:
        picked.append(n - 1)
    return torch.tensor(picked)


def interpolation_matrix(n: int, known: torch.Tensor) -> torch.Tensor:
    """(n, len(known)) weights W such that W @ values[known] interpolates linearly between the
    known indices (sorted, 0 and n - 1 among them): row i is 1 at a known index i, else the
    weights (1 - t, t) of its two known neighbours, t = the share of the way from the left one."""
    weights = torch.zeros(n, len(known), dtype=torch.float64)
    if len(known) == 1:
        return weights + 1.0
    i = torch.arange(n)
    left = (torch.searchsorted(known, i, right=True) - 1).clamp(0, len(known) - 2)
    t = (i - known[left]).double() / (known[left + 1] - known[left]).double()
    weights[i, left] = 1 - t
    weights[i, left + 1] += t
    return weights


def drill_down_chunks(approximate: OcclusionApproximation, drops: torch.Tensor, images: int,
                      rows: int, cols: int, batch_size: int) -> Iterator[torch.Tensor]:
    """The (image, position) items to compute, in chunks of batch_size, as item = image * rows *
    cols + row * cols + col (the order of ``drops``). A two-step conversation with the caller's
    loop: after each chunk the caller writes the drops of its items into ``drops``; once the
    coarse items are done, this reads their drops, yields the refined items, and at the end fills
    every other item of ``drops`` with its interpolated estimate."""
    per_image = rows * cols
    coarse_r, coarse_c = coarse_indices(rows, approximate.coarse), coarse_indices(cols,
                                                                                 approximate.coarse)
    is_coarse = torch.zeros(rows, cols, dtype=torch.bool)
    is_coarse[coarse_r[:, None], coarse_c[None, :]] = True
    position = torch.arange(per_image)
    first = torch.cat([b * per_image + position[is_coarse.flatten()] for b in range(images)])
    yield from _nonempty(first.split(batch_size))

    grid = drops.view(images, rows, cols)
    known = grid[:, coarse_r][:, :, coarse_c].double().cpu()
    estimate = (interpolation_matrix(rows, coarse_r) @ known
                @ interpolation_matrix(cols, coarse_c).T).flatten(1)  # (images, rows * cols)
    others = position[~is_coarse.flatten()]
    n_refined = math.ceil(approximate.refine * len(others))
    refined = [b * per_image + others[estimate[b, others].abs().argsort(descending=True,
                                                                         stable=True)[:n_refined]]
               for b in range(images)]
    yield from _nonempty(torch.cat(refined).split(batch_size))

    for b in range(images):
        computed = torch.zeros(per_image, dtype=torch.bool)
        computed[refined[b] - b * per_image] = True
        computed |= is_coarse.flatten()
        estimated = position[~computed]
        grid.view(images, per_image)[b, estimated] = estimate[b, estimated].to(drops)


def _nonempty(pieces) -> Iterator[torch.Tensor]:
    return (piece for piece in pieces if len(piece))
