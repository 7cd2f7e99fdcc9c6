"""How many CPU threads torch uses for the lab models.

The lab models are tiny (0.06 to 0.2 million weights, 28-96 px images): one of their convolutions
is too small to split among threads with profit. On a quiet machine one thread is as fast as
torch's default (one per core); on a busy one, where another job holds the cores, torch's threads
wait for each other and a dashboard or a lesson gets several times slower (benchmarks/
bench_widgets.py --load, bench_course.py --load; the README gives the numbers). So the kit runs
the lab models on one thread, and leaves larger models (the ImageNet ones) to torch's default.

    with threads.lab_threads(model):   # one thread for a lab-size model, the caller's after
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

LAB_THREADS = 1
# Up to this many weights a model counts as lab-size (digits has 0.2 M, shapes 0.06 M, ResNet-18 11 M).
LAB_SIZE_WEIGHTS = 5_000_000


def is_lab_size(model: nn.Module) -> bool:
    """A model small enough that one CPU thread runs it as fast as several."""
    return sum(p.numel() for p in model.parameters()) <= LAB_SIZE_WEIGHTS


@contextmanager
def lab_threads(model: nn.Module | None = None, threads: int | None = None) -> Iterator[None]:
    """Run the block with ``threads`` (default ``LAB_THREADS``) torch CPU threads when ``model`` is
    lab-size (or None), and restore the caller's setting after it, also when the block raises."""
    before = torch.get_num_threads()
    change = model is None or is_lab_size(model)
    if change:
        torch.set_num_threads(threads or LAB_THREADS)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)
