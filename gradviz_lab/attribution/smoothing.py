"""SmoothGrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise") and its
variants SmoothGrad^2 (Hooker et al. 2019) and VarGrad (Adebayo et al. 2018)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._boundary import public
from .._checks import (
    check_batch_memory,
    check_choice,
    check_number,
    check_positive_int,
)
from ..targets import Target
from ._common import finite_map, sum_over_copies
from .gradients import input_gradient


class UnitNoise:
    """N(0, 1) images of one (C, H, W) shape, drawn on the CPU from a seeded generator (the same
    numbers on every device), one draw per sample: sample n is the n-th draw.

    ``images(samples)`` gives the noise of the requested samples, which must come in order (as
    SmoothGrad's batches do); samples before the first requested are forgotten, so memory holds
    one batch of noise, not all n_samples images.
    """

    def __init__(self, shape: torch.Size, seed: int) -> None:
        self.shape = shape
        self.generator = torch.Generator().manual_seed(seed)
        self.first = 0  # the sample number of kept[0]
        self.kept: list[torch.Tensor] = []

    def images(self, samples: torch.Tensor) -> torch.Tensor:
        first, last = int(samples.min()), int(samples.max())
        if first < self.first:
            raise ValueError(f"sample {first} was already forgotten: ask for samples in order")
        self.kept = self.kept[first - self.first :]
        self.first = first
        while self.first + len(self.kept) <= last:
            self.kept.append(torch.randn(self.shape, generator=self.generator))
        return torch.stack(self.kept)[samples.cpu() - first]


def _attribution(method: Callable, model: nn.Module, x: torch.Tensor, target, kwargs: dict):
    g = method(model, x, target, **kwargs)
    if not isinstance(g, torch.Tensor) or len(g) != len(x):
        raise TypeError(
            f"method {getattr(method, '__name__', method)!r} must return one map per image "
            "(a tensor with B rows); did you pass return_delta=True?"
        )
    return g


@public
def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    n_samples: int = 25,
    sigma: float = 0.15,
    variant: str = "mean",
    method: Callable[..., torch.Tensor] = input_gradient,
    seed: int = 0,
    batch_size: int = 32,
    **method_kwargs,
) -> torch.Tensor:
    """Average an attribution over noisy copies of each image.

        g_n = method(x + eps_n),  eps_n ~ N(0, s^2 I),  s = sigma * (max(x_b) - min(x_b))
        mean      (SmoothGrad)    1/N sum_n g_n
        squared   (SmoothGrad^2)  1/N sum_n g_n^2
        variance  (VarGrad)       1/N sum_n g_n^2 - (1/N sum_n g_n)^2

    sigma is a fraction of each image's value range (the lecture uses 1/4; the paper suggests
    0.10-0.20). method: any input-space method with the common call shape (input_gradient,
    guided_backprop, integrated_gradients, ...); extra keyword arguments go to it. The noisy
    copies are evaluated batch_size at a time. The N noise images come from ``seed`` and are the
    same for every image of the batch (scaled to its range), so a batch gives exactly the maps of
    its images computed one by one, whatever batch_size. The target is fixed on the clean image
    (None = its predicted class), not re-chosen for each noisy copy. Returns a map shaped like
    method's, (B, C, H, W) for input-space methods.
    """
    check_positive_int(n_samples, "n_samples")
    sigma = check_number(sigma, "sigma", minimum=0.0)
    check_choice(variant, "variant", ("mean", "squared", "variance"))
    check_positive_int(batch_size, "batch_size")
    check_positive_int(seed, "seed", minimum=0)
    if not callable(method):
        raise TypeError(f"method must be an attribution function, got {type(method).__name__}")
    check_batch_memory(n_samples * len(x), x, batch_size, "noisy copies")
    x = x.detach()
    value_range = x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3))
    noise_std = (sigma * value_range).view(-1, 1, 1, 1)
    noise = UnitNoise(x.shape[1:], seed)
    target = target.fixed(model, x)  # image b's class for every noisy copy of it

    def g_and_g_squared(n: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """g_n and g_n^2 for noisy copy n of each image, in float64: VarGrad subtracts two close
        numbers."""
        noisy = x[images] + noise_std[images] * noise.images(n).to(x.device, x.dtype)
        g = _attribution(method, model, noisy, target.for_copies(images).target, method_kwargs)
        g = g.double()
        return g, g * g

    total, total_sq = sum_over_copies(g_and_g_squared, n_samples, x, batch_size, "noisy copies")
    mean, mean_sq = total / n_samples, total_sq / n_samples
    result = {"mean": mean, "squared": mean_sq, "variance": (mean_sq - mean**2).clamp(min=0)}
    return finite_map(result[variant].to(x.dtype), "SmoothGrad")
