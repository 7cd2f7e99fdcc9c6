"""The figure of one or more explanations: the image, then each map, drawn by ``viz.show_grid``.

The dashboards and ``gradviz explain`` both draw with ``explanation_figure``, so the live picture
and the one on a slide agree for the same settings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ..viz import show_grid
from .explaining import Explanation


def explanation_figure(
    image: torch.Tensor,
    *explanations: Explanation,
    alpha: float = 0.5,
    into: Figure | None = None,
    **grid_options: Any,
) -> Figure:
    """The image and every map of the explanations side by side (``viz.show_grid``).

    Maps listed in an explanation's ``overlay`` are drawn over the image with ``alpha``; the
    image panel is labelled with the target. ``into``: the figure an earlier call returned, redrawn
    in place when its layout fits (``viz.show_grid``), as a dashboard does on every change."""
    if not explanations:
        raise ValueError("explanation_figure needs at least one Explanation")
    maps: dict[str, np.ndarray] = {}
    alphas: dict[str, float | None] = {}
    for e in explanations:
        for title, m in e.maps.items():
            maps[title] = m
            alphas[title] = alpha if title in e.overlay else None
    label = f"target: {explanations[0].target_name}"
    return show_grid(image, maps, alpha=alphas, row_titles=[label], into=into, **grid_options)
