"""The layers LRP knows, seen as what the rules need: an affine map z = f(a; W, b).

- ``nn.Linear`` and ``nn.Conv1d/2d/3d``: ``affine_of(module)``, with the module's own weights.
- A batch norm right after one of them: ``folded(affine, batch_norm, z)``, the two as one affine
  map (the canonizer): y = s (z - mu) + beta with s = gamma / sqrt(var + eps), so
  W' = s W, b' = s (b - mu) + beta. Nothing is written into the model: the folded weights are
  new tensors, used by the rules only, so the model cannot be left changed (the shipped lab
  models have their batch norms folded already). In eval mode mu and var are the running
  statistics; in train mode, the statistics of the batch the layer saw (then the map of an image
  depends on the rest of its batch, as the model's output does).
- Average pooling (fixed, positive weights): ``pooling(function)``; its relevance is shared in
  proportion to the inputs (LRP-0: R_j = a_j / sum a R, per window).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
AVERAGE_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
                 nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
             nn.AdaptiveMaxPool3d)
# element-wise: the relevance passes through unchanged (Montavon et al. 2019, section 10.1)
PASS_THROUGH = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
                nn.SiLU, nn.Mish, nn.Softplus, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish,
                nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
# nothing to do: they only reshape (or return their input)
NEUTRAL = (nn.Flatten, nn.Unflatten, nn.Identity)


@dataclass(frozen=True)
class Affine:
    """z = forward(a, weight, bias): one layer as the rules see it (``name`` for errors)."""

    name: str
    forward: Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor]
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    # (input, output) of the module's own forward pass, with its graph: a rule that keeps the
    # weights (LRP-0, epsilon) takes z and d(z . s)/da from them instead of recomputing the layer
    own: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        return self.forward(a, self.weight, self.bias)

    def with_weights(self, on_weight: Callable, on_bias: Callable | None) -> Affine:
        """The layer with rho(W) and rho(b) (on_bias None: the bias dropped)."""
        if self.weight is None:
            raise ValueError(f"layer {self.name!r} has no weights for a rule to change")
        bias = None if on_bias is None or self.bias is None else on_bias(self.bias)
        return replace(self, weight=on_weight(self.weight), bias=bias, own=None)


def affine_of(name: str, module: nn.Module) -> Affine:
    """A Linear or Conv module as an affine map with its own (detached) weights."""
    bias = None if module.bias is None else module.bias.detach()
    if isinstance(module, nn.Linear):
        return Affine(name, F.linear, module.weight.detach(), bias)
    return Affine(name, module._conv_forward, module.weight.detach(), bias)


def folded(affine: Affine, norm: nn.Module, z: torch.Tensor, name: str) -> Affine:
    """The affine layer followed by the batch norm ``norm`` (whose input was z), as one layer."""
    channel_dims = [d for d in range(z.dim()) if d != 1]
    use_batch = norm.training or norm.running_mean is None
    with torch.no_grad():
        mean = z.mean(channel_dims) if use_batch else norm.running_mean
        var = z.var(channel_dims, unbiased=False) if use_batch else norm.running_var
        scale = (var + norm.eps).rsqrt()
        shift = torch.zeros_like(scale)
        if norm.affine:
            scale, shift = scale * norm.weight, norm.bias.detach()
        scale = scale.detach()
        bias = affine.bias if affine.bias is not None else torch.zeros_like(mean)
        shape = (-1,) + (1,) * (affine.weight.dim() - 1)
        # recomputed by the rules (own=None): the norm's input is already the conv's rule node
        return replace(affine, name=name, weight=affine.weight * scale.view(shape),
                       bias=(bias - mean) * scale + shift, own=None)


def pooling(name: str, module: nn.Module) -> Affine:
    """An average pool as a weightless linear map."""
    return Affine(name, lambda a, _w, _b: module.forward(a), None, None)


def max_as_average(name: str, module: nn.Module) -> Affine:
    """A max pool's windows, averaged instead (the "average" choice for max pooling)."""
    if isinstance(module, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
        average = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}

        def forward(a, _w, _b):
            return average[a.dim() - 2](a, module.output_size)
    else:
        if module.dilation not in (1, (1,), (1, 1), (1, 1, 1)):
            raise ValueError(f"max pooling {name!r} is dilated: it cannot be read as an average "
                             "pool; use maxpool='winner'")
        average = {3: F.avg_pool1d, 4: F.avg_pool2d, 5: F.avg_pool3d}

        def forward(a, _w, _b):
            return average[a.dim()](a, module.kernel_size, module.stride, module.padding,
                                    module.ceil_mode, count_include_pad=False)
    return Affine(name, forward, None, None)
