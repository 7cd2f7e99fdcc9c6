"""Shared test setup: a headless matplotlib backend and a fixed torch thread count."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402  (after the backend is chosen)

# One thread: results do not depend on the core count, and tiny-tensor tests run fastest
# (two threads fighting over two busy cores made some tests 40x slower).
torch.set_num_threads(1)
