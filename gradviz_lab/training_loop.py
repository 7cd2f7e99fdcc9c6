"""The kit's one training loop: the lab models (``train.fit``), lesson 08's gradient-flow runs
(``diagnostics.train_steps``) and its TensorBoard runs (``diagnostics.train_with_tensorboard``)
all step through ``train_batches``; what differs between them (the optimiser, the schedule, where
the batches come from, what is logged) comes in as arguments. Per batch (x, t):

    L = cross_entropy(model(x), t),    g = dL/dtheta (backward),    theta <- optimizer.step(g)

with t the class indices (B,) or class probabilities (B, K) (mixup targets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from . import hooks

StepCallback = Callable[[int, torch.Tensor], None]


def train_batches(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    *,
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
    before_step: StepCallback | None = None,
    after_step: StepCallback | None = None,
) -> list[float]:
    """One optimiser step per (x, t) of ``batches`` on the mean cross-entropy, the model in train
    mode; returns each step's loss.

    ``batches`` is read lazily, one batch per step, so a batch may be made from the model as it is
    at that step (adversarial training). ``schedule.step()`` follows each optimiser step.
    ``before_step(number, loss)`` runs when the batch's gradients are in ``.grad`` (to log them),
    ``after_step(number, loss)`` after the step (a progress bar); ``number`` counts from 0 in
    this call. Afterwards, also when it raises, every module's train/eval flag is as it was and
    the parameters' ``.grad`` are cleared.
    """
    losses: list[float] = []
    # Only the train/eval flags are restored (hooks.training_mode): the weights, .grad and
    # batch-norm statistics a training run changes are its result, which preserved_state would undo.
    with hooks.training_mode(model, True), torch.enable_grad():
        try:
            for number, (x, target) in enumerate(batches):
                optimizer.zero_grad(set_to_none=True)  # backward() adds to what .grad holds
                loss = F.cross_entropy(model(x), target)
                loss.backward()
                if before_step is not None:
                    before_step(number, loss)
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                losses.append(loss.item())
                if after_step is not None:
                    after_step(number, loss)
        finally:
            optimizer.zero_grad(set_to_none=True)
    return losses
