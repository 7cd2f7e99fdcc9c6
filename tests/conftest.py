"""Shared test setup: a headless matplotlib backend and a fixed torch thread count."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402  (after the backend is chosen)

# Results must not depend on how many cores the test machine has.
torch.set_num_threads(min(2, torch.get_num_threads()))
