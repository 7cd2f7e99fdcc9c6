"""Watching gradients arrive (training diagnostics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

# --- watching gradients arrive (training diagnostics) -----------------------------------------


@contextmanager
def gradient_arrivals(
    parameters: list[tuple[str, torch.Tensor]],
    on_gradient: Callable[[str, torch.Tensor], None],
) -> Iterator[None]:
    """Call ``on_gradient(name, parameter)`` each time autograd has just written a parameter's
    ``.grad`` during a backward pass (``Tensor.register_post_accumulate_grad_hook``); removed on exit."""
    handles = [
        parameter.register_post_accumulate_grad_hook(lambda p, name=name: on_gradient(name, p))
        for name, parameter in parameters
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def at_end_of_backward(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the backward pass now running has finished. Call it from inside a
    backward hook. (A private autograd call, the one PyTorch's own distributed training uses to
    learn that all gradients of a pass have arrived; there is no public equivalent.)"""
    torch.autograd.Variable._execution_engine.queue_callback(callback)
