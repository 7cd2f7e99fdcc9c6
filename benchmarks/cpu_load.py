"""A busy machine, made on purpose: one CPU-burning process per core, for a bounded time.

    with cpu_load():            # os.cpu_count() burners, stopped on leaving (at the latest after
        ...                     # max_seconds, even if this process is killed)

What a laptop with a video call, a browser build or a second notebook looks like to torch.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager


def _burn(deadline: float) -> None:
    """Spin until the deadline (a busy loop: no sleep, no I/O)."""
    x = 0
    while time.time() < deadline:
        for _ in range(10_000):
            x = (x * 1_103_515_245 + 12_345) & 0xFFFFFFFF


@contextmanager
def cpu_load(processes: int | None = None, max_seconds: float = 900.0) -> Iterator[int]:
    """``processes`` burners (default: one per core) for the block; yields their number."""
    count = processes or os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")  # no copy of this process's torch threads
    burners = [context.Process(target=_burn, args=(time.time() + max_seconds,), daemon=True)
               for _ in range(count)]
    for burner in burners:
        burner.start()
    time.sleep(0.5)  # let them reach the cores
    try:
        yield count
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.join(timeout=5)
