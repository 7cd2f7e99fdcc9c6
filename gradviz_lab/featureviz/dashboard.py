"""A dashboard: class x regularisation strength, over ``class_visualisation``.

It lives with the other dashboards (``gradviz_lab.widgets.ascent``, on the dashboards' one frame:
cache, progress, errors and PNG saving shared); this name stays for the lessons that import it
from here, and ipywidgets is imported only when a dashboard is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def activation_maximisation_dashboard(
    model: nn.Module,
    class_names: Sequence[str],
    image_shape: Sequence[int] | None = None,
    l2_range: tuple[float, float] = (1e-4, 1.0),
    **knobs: float,
):
    """An ipywidgets dashboard: pick a class and the L2 regularisation strength, see the image
    ``class_visualisation`` makes for it, with the logit it reaches.

    Returns an ``ipywidgets.VBox`` (the last expression of a cell shows it). Headless use:
    ``dash.controls["target"].value = 3`` or ``dash.controls["l2"].value = 0.1``, then read
    ``dash.last_image`` (C, H, W), ``dash.last_png``, ``dash.last_logit``, ``dash.last_error``.
    Results are cached per (class, l2), so moving back to a setting is instant.
    """
    from ..widgets.ascent import activation_maximisation_dashboard as dashboard

    return dashboard(model, class_names, image_shape, l2_range, **knobs)
