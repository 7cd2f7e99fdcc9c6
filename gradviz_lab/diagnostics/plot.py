"""The gradient-flow plot: |gradient| per layer, several networks side by side."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._checks import check_choice
from .gradient_flow import STATISTICS, GradientFlow


def plot_gradient_flow(
    flows: GradientFlow | Mapping[str, GradientFlow],
    statistic: str = "mean_abs",
    font_size: float = 12.0,
) -> Figure:
    """Left: |gradient| per layer, input side first, averaged over the recorded steps (solid:
    ``statistic``, dashed: max |g|). Right: the first layer's ``statistic`` at every step.

    flows: one ``GradientFlow`` or ``{label: flow}`` to compare networks on the same axes.
    Log scale: a vanishing gradient is a straight line falling towards the input.
    """
    if isinstance(flows, GradientFlow):
        flows = {"model": flows}
    if not isinstance(flows, Mapping) or not all(
        isinstance(f, GradientFlow) for f in flows.values()
    ):
        raise TypeError("flows must be a GradientFlow or a dict {label: GradientFlow}")
    check_choice(statistic, "statistic", STATISTICS)
    empty = [label for label, f in flows.items() if f.steps == 0]
    if not flows or empty:
        raise ValueError(f"no backward pass recorded for {empty or 'any flow'}: nothing to plot")
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    per_layer, over_time = fig.subplots(1, 2)
    for colour, (label, flow) in zip(_colours(len(flows)), flows.items()):
        layer = np.arange(1, len(flow.names) + 1)
        values = np.nanmean(flow.statistic(statistic).numpy(), axis=0)
        per_layer.plot(layer, values, "o-", color=colour, label=f"{label}: {statistic}")
        if statistic != "max_abs":
            per_layer.plot(
                layer,
                np.nanmean(flow.max_abs.numpy(), axis=0),
                "--",
                color=colour,
                alpha=0.6,
                label=f"{label}: max_abs",
            )
        over_time.plot(
            np.arange(flow.steps),
            flow.statistic(statistic)[:, 0].numpy(),
            color=colour,
            label=label,
        )
    per_layer.set(
        xlabel="layer (input -> output)", ylabel=f"{statistic} of the gradient", yscale="log"
    )
    over_time.set(xlabel="training step", ylabel=f"first layer's {statistic}", yscale="log")
    per_layer.set_title("gradient per layer (mean over steps)", fontsize=font_size)
    over_time.set_title("first layer during training", fontsize=font_size)
    for ax in (per_layer, over_time):
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=font_size * 0.75)
    return fig


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    return [colormaps["tab10"](i % 10) for i in range(n)]
