"""Recording the gradient flow: per-layer statistics of each parameter's gradient at every
backward pass, for one batch (``measure_gradient_flow``) or along a short training run
(``train_steps``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .. import hooks
from .._checks import check_choice, check_finite, check_model, check_number, check_positive_int
from ..training_loop import train_batches

STATISTICS = ("mean_abs", "max_abs", "norm")


@dataclass
class GradientFlow:
    """Per-layer gradient statistics, one row per backward pass, one column per parameter.

    For the gradient g of each recorded parameter (its ``.grad`` after the backward pass):
    ``mean_abs`` = mean |g|, ``max_abs`` = max |g|, ``norm`` = ||g||_2. Each is a (steps, layers)
    tensor; ``names`` are the parameters' names, input side first. NaN marks a parameter that
    got no gradient in that pass.
    """

    names: list[str]
    rows: list[dict[str, tuple[float, float, float]]] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.rows)

    def _column(self, index: int) -> torch.Tensor:
        nan = (float("nan"),) * 3
        values = [[row.get(name, nan)[index] for name in self.names] for row in self.rows]
        return torch.tensor(values, dtype=torch.float64).reshape(len(self.rows), len(self.names))

    @property
    def mean_abs(self) -> torch.Tensor:
        return self._column(0)

    @property
    def max_abs(self) -> torch.Tensor:
        return self._column(1)

    @property
    def norm(self) -> torch.Tensor:
        return self._column(2)

    def statistic(self, name: str) -> torch.Tensor:
        """``mean_abs``, ``max_abs`` or ``norm`` by name."""
        return getattr(self, check_choice(name, "statistic", STATISTICS))


def _recorded_parameters(model: nn.Module, weights_only: bool) -> list[tuple[str, nn.Parameter]]:
    """The parameters whose gradient is watched: by default one weight matrix/kernel per layer
    (biases and batch-norm scales, which are 1-D, are left out, as in the usual plot)."""
    chosen = [
        (name, p)
        for name, p in model.named_parameters()
        if p.requires_grad and (p.dim() > 1 or not weights_only)
    ]
    if not chosen:
        raise ValueError(
            "the model has no trainable parameters to record (requires_grad=False everywhere?)"
        )
    return chosen


def _gradient_statistics(grad: torch.Tensor) -> tuple[float, float, float]:
    g = grad.detach().abs().double()
    return g.mean().item(), g.max().item(), g.pow(2).sum().sqrt().item()


@contextmanager
def record_gradient_flow(model: nn.Module, weights_only: bool = True) -> Iterator[GradientFlow]:
    """Inside this block, every backward pass adds one row of per-layer gradient statistics.

        with record_gradient_flow(model) as flow:
            for images, labels in batches:
                optimizer.zero_grad()
                F.cross_entropy(model(images), labels).backward()   # one row recorded here
                optimizer.step()
        flow.mean_abs   # (steps, layers)

    How: a hook on each watched parameter runs right after autograd has written its ``.grad``
    (``hooks.gradient_arrivals``) and reads that ``.grad``; the row is closed when the backward
    pass ends (``hooks.at_end_of_backward``). The hooks are removed when the block ends, also on an
    exception. Without ``zero_grad`` between passes ``.grad`` accumulates, and so do the
    recorded numbers.
    """
    check_model(model)
    watched = _recorded_parameters(model, weights_only)
    flow = GradientFlow(names=[name for name, _ in watched])
    pending: dict[str, tuple[float, float, float]] = {}

    def close_row() -> None:
        if pending:
            flow.rows.append(dict(pending))
            pending.clear()

    def on_gradient(name: str, param: torch.Tensor) -> None:
        if name in pending:  # a pass that failed half-way never ran its callback
            close_row()
        if not pending:  # the first watched gradient of this backward pass:
            hooks.at_end_of_backward(close_row)  # its row is complete when the pass ends
        pending[name] = _gradient_statistics(param.grad)

    try:
        with hooks.gradient_arrivals(watched, on_gradient):
            yield flow
    finally:
        close_row()


def _check_batch(images: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("images and labels must be torch tensors")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor, got dtype {images.dtype}")
    if labels.dim() != 1 or labels.dtype != torch.int64:
        raise TypeError(
            f"labels must be a 1-D int64 tensor, got shape {tuple(labels.shape)} and dtype {labels.dtype}"
        )
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(
            f"images ({len(images)}) and labels ({len(labels)}) must be non-empty and of equal length"
        )
    check_finite(images, "images")


def measure_gradient_flow(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    weights_only: bool = True,
) -> GradientFlow:
    """The gradient flow of one backward pass of ``loss_fn(model(images), labels)``.

    The model runs in whatever mode it is in (a fresh network is in train mode) and is left
    exactly as it was: parameters' ``.grad``, batch-norm statistics, modes. Returns a
    ``GradientFlow`` with one row.
    """
    check_model(model)
    _check_batch(images, labels)
    with hooks.preserved_state(model), torch.enable_grad():
        for p in model.parameters():
            p.grad = None  # measure this batch's gradient alone (restored on exit)
        with record_gradient_flow(model, weights_only) as flow:
            loss_fn(model(images), labels).backward()
    return flow


@dataclass
class TrainingRun:
    """What ``train_steps`` returns: the loss at every step and the recorded gradient flow."""

    losses: list[float]
    flow: GradientFlow


def _batches(n: int, batch_size: int, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """``steps`` index batches drawn from seeded random permutations of range(n)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    start = 0
    for _ in range(steps):
        if start + batch_size > n:
            order, start = torch.randperm(n, generator=generator), 0
        yield order[start : start + batch_size]
        start += batch_size


def train_steps(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int = 300,
    *,
    batch_size: int = 64,
    lr: float = 0.05,
    momentum: float = 0.9,
    seed: int = 0,
    weights_only: bool = True,
) -> TrainingRun:
    """Train with SGD for ``steps`` mini-batches of cross-entropy and record the gradient flow.

    The model's weights change (that is the point); its train/eval flags are restored and the
    parameters' ``.grad`` are cleared afterwards. Mini-batches come from a seeded permutation, so
    a run is reproducible. Returns ``TrainingRun(losses, flow)``.
    """
    check_model(model)
    _check_batch(images, labels)
    check_positive_int(steps, "steps")
    batch_size = min(check_positive_int(batch_size, "batch_size"), len(images))
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=check_number(lr, "lr", 0.0),
        momentum=check_number(momentum, "momentum", 0.0),
    )
    with record_gradient_flow(model, weights_only) as flow:
        batches = ((images[i], labels[i]) for i in _batches(len(images), batch_size, steps, seed))
        losses = train_batches(model, batches, optimizer)
    return TrainingRun(losses, flow)
