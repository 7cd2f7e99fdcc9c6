"""The notebooks the browser test writes into JupyterLab's root directory (built with nbformat).

- ``harness.ipynb``: plain ipywidgets, no gradviz_lab. Proves the test's eyes work: one slider
  redraws an ``ipywidgets.Image``, one redraws a matplotlib figure in an ``Output`` widget, and one
  (the negative control) changes nothing, so "the figure changed" is a claim that can fail; a
  last cell raises, so "no error shown" is a claim that can fail too.
- ``dashboards.ipynb``: every dashboard of ``gradviz_lab.widgets``, one per cell, as a lesson
  shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


@dataclass(frozen=True)
class WidgetCell:
    """A code cell that displays one widget, and how the test plays with it.

    The test first clicks the buttons named in ``clicks`` (e.g. a mode that enables the slider),
    then focuses the slider matched by the CSS selector ``slider`` and presses ``key`` on it:
    ArrowRight/ArrowLeft move one step, PageUp/PageDown five, Home/End to the ends.
    """

    name: str  # also the screenshot's file name
    source: str
    slider: str
    key: str = "ArrowRight"
    clicks: tuple[str, ...] = ()


def write_notebook(path: Path, setup: str, cells: list[WidgetCell], last: str | None = None) -> None:
    """A notebook of one setup cell, then ``cells`` (code cell k+1 holds ``cells[k]``), then
    the code ``last`` if given."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = KERNELSPEC
    notebook.cells = [nbformat.v4.new_code_cell(setup)]
    notebook.cells += [nbformat.v4.new_code_cell(cell.source) for cell in cells]
    if last is not None:
        notebook.cells.append(nbformat.v4.new_code_cell(last))
    nbformat.validate(notebook)
    nbformat.write(notebook, str(path))


# -- harness.ipynb ---------------------------------------------------------------------------
HARNESS_SETUP = '''\
import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image


def gradient_bar_png(width):
    """PNG bytes: a colour gradient `width` tenths of the way across a white 240x160 picture."""
    pixels = np.full((160, 240, 3), 255, dtype=np.uint8)
    columns = np.arange(24 * width)
    pixels[20:140, columns, 0] = columns % 256
    pixels[20:140, columns, 2] = 255 - columns % 256
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="png")
    return buffer.getvalue()
'''

HARNESS_CELLS = [
    WidgetCell(
        "harness-image-widget",
        '''\
bar_width = widgets.IntSlider(value=3, min=0, max=10, description="bar width")
bar_width.add_class("harness-bar-width")
bar_picture = widgets.Image(value=gradient_bar_png(3), format="png")
bar_width.observe(lambda change: setattr(bar_picture, "value", gradient_bar_png(change["new"])), "value")
widgets.VBox([bar_width, bar_picture])
''',
        ".harness-bar-width",
    ),
    WidgetCell(
        "harness-matplotlib-output",
        '''\
# Redrawn on release only (continuous_update=False), like the dashboards' sliders.
phase = widgets.FloatSlider(
    value=0.0, min=0.0, max=3.0, step=0.5, description="phase", continuous_update=False
)
phase.add_class("harness-phase")
plot_area = widgets.Output()


def draw_waves(value):
    with plot_area:
        plot_area.clear_output(wait=True)
        y, x = np.mgrid[0:1:64j, 0:1:64j]
        fig, ax = plt.subplots(figsize=(3, 3))
        ax.imshow(np.sin(6 * x + 4 * y + value), cmap="viridis")
        plt.show()


phase.observe(lambda change: draw_waves(change["new"]), "value")
draw_waves(phase.value)
widgets.VBox([phase, plot_area])
''',
        ".harness-phase",
    ),
    WidgetCell(
        "harness-negative-control",
        '''\
ignored = widgets.IntSlider(value=3, min=0, max=10, description="ignored")
ignored.add_class("harness-ignored")
# The slider is connected to nothing: moving it must leave the picture exactly as it is.
widgets.VBox([ignored, widgets.Image(value=gradient_bar_png(5), format="png")])
''',
        ".harness-ignored",
    ),
]


# The last cell raises, so the test can show that it notices an error in a cell.
PLANTED_ERROR = 'raise ValueError("planted error: the browser test must report this")'


def write_harness_notebook(path: Path) -> None:
    write_notebook(path, HARNESS_SETUP, HARNESS_CELLS, last=PLANTED_ERROR)


# -- dashboards.ipynb ------------------------------------------------------------------------
# Each dashboard as a lesson shows it (no arguments: the shapes lab model and its gallery).
# The keys are chosen so the picture changes visibly, not by one colour level: the test compares
# pixels and ignores differences of a few levels.
DASHBOARD_SETUP = """\
from gradviz_lab.widgets import (
    compare_dashboard,
    deletion_dashboard,
    gradcam_dashboard,
    image_picker,
    integrated_gradients_dashboard,
    occlusion_dashboard,
    randomisation_dashboard,
    relu_rules_dashboard,
    saliency_dashboard,
    smoothgrad_dashboard,
)
"""

DASHBOARD_CELLS = [
    WidgetCell("image_picker", "image_picker()", ".gradviz-control-image"),  # next image
    WidgetCell("occlusion", "occlusion_dashboard()", ".gradviz-control-window", "PageUp"),  # window +5 px
    WidgetCell("saliency", "saliency_dashboard()", ".gradviz-control-clip", "Home"),  # clip at 90 %
    WidgetCell("smoothgrad", "smoothgrad_dashboard()", ".gradviz-control-sigma", "End"),  # sigma 0.5
    WidgetCell(
        "relu_rules", "relu_rules_dashboard()", ".gradviz-control-channel",  # channel 0 -> 1
        clicks=("feature response",),  # the channel slider is enabled in this mode only
    ),
    WidgetCell("gradcam", "gradcam_dashboard()", ".gradviz-control-alpha", "PageUp"),  # alpha 0.5 -> 0.75
    WidgetCell(
        "integrated_gradients", "integrated_gradients_dashboard()", ".gradviz-control-steps", "Home"
    ),  # a single step: a visibly cruder path integral
    WidgetCell("compare", "compare_dashboard()", ".gradviz-control-clip", "Home"),  # clip at 90 %
    WidgetCell(
        "randomisation", "randomisation_dashboard()", ".gradviz-control-layers", "End"
    ),  # every layer random: the saliency map turns to noise
    WidgetCell(
        "deletion", "deletion_dashboard()", ".gradviz-control-fraction", "End"
    ),  # every pixel removed: a black image, the curve's marker at the right end
]


def write_dashboards_notebook(path: Path) -> None:
    write_notebook(path, DASHBOARD_SETUP, DASHBOARD_CELLS)
