"""Replacing module outputs: the rule nodes of LRP and DeepLIFT, Ablation-CAM's switched-off
channels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

# --- replacing module outputs (the rule nodes of LRP and DeepLIFT) -----------------------------


@contextmanager
def outputs_replaced(
    modules: list[nn.Module],
    replace: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
) -> Iterator[None]:
    """Inside this block, each module's output is replaced by ``replace(module, a, output)``,
    where a is the module's first input as it was when the module started (a copy when the module
    works in place, as ``relu_backward_rule`` keeps it). A module called several times gets each
    call's own input. The hooks are removed on exit, also when the block raises."""
    kept: dict[int, list[torch.Tensor]] = {}

    def keep_input(module: nn.Module, inputs: tuple) -> None:
        a = inputs[0]
        kept.setdefault(id(module), []).append(a.clone() if getattr(module, "inplace", False) else a)

    def on_output(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return replace(module, kept[id(module)].pop(), output)

    handles = []
    for module in modules:
        handles += [module.register_forward_pre_hook(keep_input),
                    module.register_forward_hook(on_output)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
