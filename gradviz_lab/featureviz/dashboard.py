"""A dashboard: class x regularisation strength, over ``class_visualisation``."""

from __future__ import annotations

import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .. import hooks
from .._checks import check_flag, check_model, check_number
from ._common import _image_shape
from .ascent import _settings, class_visualisation


def _png(image: torch.Tensor, scale: int = 4) -> bytes:
    """(C, H, W) in [0, 1] -> PNG bytes, enlarged ``scale`` times with visible pixels."""
    from PIL import Image

    array = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    array = array.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    pil = (
        Image.fromarray(array[0].numpy())
        if array.shape[0] == 1
        else Image.fromarray(array.permute(1, 2, 0).numpy())
    )
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


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
    import ipywidgets as widgets

    from ..threads import lab_threads
    from ..widgets.base import DashboardBox, file_name, free_path, write_png_file

    check_model(model)
    names = list(class_names)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError("class_names must be a non-empty sequence of strings")
    shape = _image_shape(model, image_shape)
    low, high = (check_number(v, "l2_range", 0.0) for v in l2_range)
    if not 0 < low < high:
        raise ValueError(f"l2_range must be (low, high) with 0 < low < high, got {l2_range}")
    settings = _settings(knobs)
    start_l2 = min(max(settings.l2, low), high)
    target = widgets.Dropdown(
        options=[(n, i) for i, n in enumerate(names)], value=0, description="class"
    )
    l2 = widgets.FloatLogSlider(
        value=start_l2,
        base=10,
        min=math.log10(low),
        max=math.log10(high),
        step=0.25,
        description="L2 strength",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    picture = widgets.Image(format="png", width=224)
    caption = widgets.HTML()
    save_button = widgets.Button(
        description="save PNG for slides", icon="download", layout=widgets.Layout(width="auto")
    )
    saved = widgets.HTML()
    dash = DashboardBox(
        [
            widgets.HTML(f"<b>Class visualisation</b> ({settings.steps} ascent steps)"),
            widgets.HBox([target, l2]),
            picture,
            caption,
            widgets.HBox([save_button, saved]),
        ]
    )
    save_button.add_class("gradviz-save")
    dash.static_name = "class visualisation"
    dash.controls = {"target": target, "l2": l2}
    dash.cache = {}
    dash.last_image = dash.last_png = dash.last_logit = dash.last_error = None

    def compute(c: int, strength: float) -> tuple[torch.Tensor, float]:
        image = class_visualisation(model, c, shape, **{**settings.__dict__, "l2": strength})
        with torch.no_grad(), hooks.preserved_state(model):
            model.eval()
            logit = float(model(image)[0, c])
        return image[0], logit

    def refresh(_change: object = None) -> None:
        key = (target.value, round(float(l2.value), 12))
        try:
            if key not in dash.cache:
                with lab_threads(model):  # one thread for a lab model: see gradviz_lab.threads
                    dash.cache[key] = compute(*key)
            dash.last_image, dash.last_logit = dash.cache[key]
            dash.last_png = picture.value = _png(dash.last_image)
            dash.last_error = None
            caption.value = f"{names[key[0]]}: logit {dash.last_logit:.2f} at L2 = {key[1]:.3g}"
        except Exception as error:  # shown in the dashboard instead of lost in a callback
            dash.last_error = error
            caption.value = (
                f"<span style='color:#b00'>error: {type(error).__name__}: {error}</span>"
            )

    written: set[Path] = set()

    def save_png(path: str | Path | None = None, overwrite: bool = False) -> Path:
        """The image on show, each pixel a 224/side-pixel block, to ``path`` (default
        figures/classvis_<class>_l2-<strength>.png, or -2, -3, ... beside a file this dashboard
        did not write); returns the path written. A path given that exists is replaced only
        with overwrite=True or if this dashboard wrote it."""
        if dash.last_image is None:
            raise RuntimeError("nothing to save: no class image has been made yet")
        check_flag(overwrite, "overwrite")
        if path is None:
            name = file_name(["classvis", str(names[target.value])], [f"l2-{l2.value:.3g}"])
            path = free_path(Path("figures") / name, written)
        image = dash.last_image
        return write_png_file(
            path, lambda: _png(image, scale=max(1, 224 // max(image.shape[-2:]))), written, overwrite
        )

    def on_save(_button: object) -> None:
        try:
            saved.value = f"saved <code>{html.escape(str(save_png()))}</code>"
        except Exception as error:
            saved.value = f"<span style='color:#b00'>error: {type(error).__name__}: {html.escape(str(error))}</span>"

    dash.save_png = save_png
    save_button.on_click(on_save)
    target.observe(refresh, names="value")
    l2.observe(refresh, names="value")
    refresh()
    return dash
