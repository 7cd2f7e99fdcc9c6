"""How alike are two saliency maps? Rank correlation and structural similarity.

Used by the randomisation sanity check (Adebayo et al. 2018, "Sanity checks for saliency maps"):
if the map of a model with random weights is still very like the map of the trained model, the
map cannot be explaining what the model learned.

- ``spearman(a, b)``: Spearman rank correlation, per image.
- ``ssim(a, b)``:     structural similarity (Wang et al. 2004), per image.

Both compare *absolute values* by default (``absolute=True``): for gradient maps the sign flips
with the colour contrast of an edge, and Adebayo et al. report the absolute-value comparison as
their main measure (they show the signed one too: pass ``absolute=False``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_finite, check_flag


def _as_rows(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two batches of maps of the same shape -> two (B, n) float64 tensors, one row per map."""
    for t, name in ((a, "a"), (b, "b")):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must be a batch of maps (B, ...), got shape {tuple(t.shape)}")
        if t.is_complex():
            raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
        check_finite(t, name)
    if a.shape != b.shape:
        raise ValueError(f"the maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a.detach().flatten(1).double(), b.detach().flatten(1).double()


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Rank of each value along the last dimension, 1 = smallest; tied values share the average
    of the ranks they occupy (so [5, 7, 7, 9] -> [1, 2.5, 2.5, 4]), as Spearman's rho needs."""
    n = values.shape[-1]
    order = values.argsort(dim=-1, stable=True)
    in_order = values.gather(-1, order)
    # Sorted values that equal their left neighbour belong to the same group of ties.
    starts = torch.ones_like(in_order, dtype=torch.bool)
    starts[..., 1:] = in_order[..., 1:] != in_order[..., :-1]
    group = starts.long().cumsum(-1) - 1
    positions = torch.arange(1, n + 1, dtype=torch.float64, device=values.device).expand_as(in_order)
    group_mean = torch.zeros_like(positions).scatter_reduce(
        -1, group, positions, reduce="mean", include_self=False
    )
    ranks = torch.empty_like(positions)
    return ranks.scatter_(-1, order, group_mean.gather(-1, group))


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each map a[i] with b[i] (all its values as one row): (B, ...) -> (B,),
    in float64. A constant row has no correlation: the result is nan there."""
    a, b = _as_rows(a, b)  # type, shape and finiteness checks; (B, n) float64
    a = a - a.mean(dim=-1, keepdim=True)
    b = b - b.mean(dim=-1, keepdim=True)
    norms = a.norm(dim=-1) * b.norm(dim=-1)
    return torch.where(norms > 0, (a * b).sum(dim=-1) / norms, torch.nan)


def spearman(a: torch.Tensor, b: torch.Tensor, absolute: bool = True) -> torch.Tensor:
    """Spearman rank correlation between maps a[i] and b[i], for each i: (B, ...) -> (B,).

        rho = Pearson correlation of rank(a_i) and rank(b_i)      (ties get average ranks)

    1 = the two maps order the pixels the same way, 0 = unrelated orders, -1 = reversed.
    absolute=True compares |a| and |b|. A constant map has no ranking: its rho is nan.
    """
    rows_a, rows_b = _as_rows(a, b)
    if check_flag(absolute, "absolute"):
        rows_a, rows_b = rows_a.abs(), rows_b.abs()
    return pearson(average_ranks(rows_a), average_ranks(rows_b))


SSIM_WINDOW = 11  # Wang et al. 2004: an 11 x 11 Gaussian window of standard deviation 1.5 px
SSIM_SIGMA = 1.5


def _unit_range(maps: torch.Tensor) -> torch.Tensor:
    """Each map (all its channels together) rescaled to [0, 1] by its own min and max; a constant
    map becomes all zeros."""
    dims = tuple(range(1, maps.dim()))
    low = maps.amin(dim=dims, keepdim=True)
    span = maps.amax(dim=dims, keepdim=True) - low
    return (maps - low) / torch.where(span > 0, span, 1.0)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """(size, size) Gaussian weights summing to 1."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return torch.outer(g, g) / g.sum() ** 2


def ssim(a: torch.Tensor, b: torch.Tensor, absolute: bool = True) -> torch.Tensor:
    """Structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004) of maps a[i] and b[i]: (B,).

    Each map is first rescaled to [0, 1] (maps of different methods have arbitrary scales). In
    every 11 x 11 Gaussian window (std 1.5 px), with local means mu, variances s^2 and covariance s_ab,

        SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2)),
        C1 = 0.01^2,  C2 = 0.03^2,

    averaged over the windows that fit inside the map (no padding) and over channels.
    1 = identical structure. Maps: (B, H, W) or (B, C, H, W), H and W at least 11.
    """
    _as_rows(a, b)  # type, shape and finiteness checks
    check_flag(absolute, "absolute")
    if a.dim() not in (3, 4):
        raise ValueError(f"ssim needs maps of shape (B, H, W) or (B, C, H, W), got {tuple(a.shape)}")
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs maps of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {tuple(a.shape[-2:])}")
    batch = len(a)
    a, b = a.detach().double(), b.detach().double()
    if absolute:
        a, b = a.abs(), b.abs()
    # One single-channel picture per (image, channel), so the window never mixes channels.
    a = _unit_range(a).reshape(-1, 1, *a.shape[-2:])
    b = _unit_range(b).reshape(-1, 1, *b.shape[-2:])
    window = gaussian_window().to(a.device).view(1, 1, SSIM_WINDOW, SSIM_WINDOW)

    def local_mean(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window)

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a**2
    var_b = local_mean(b * b) - mu_b**2
    cov = local_mean(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return index.reshape(batch, -1).mean(dim=1)
