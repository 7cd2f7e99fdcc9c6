"""Class visualisation, live: pick a class and the L2 strength, see the image gradient ascent
makes for it (``featureviz.class_visualisation``, Simonyan et al. 2014), with the logit it reaches.

    from gradviz_lab.widgets.ascent import activation_maximisation_dashboard
    dash = activation_maximisation_dashboard(model, data.DIGIT_CLASSES, (1, 28, 28), steps=100)
    dash.controls["l2"].value = 0.1           # what the slider does; the image is made again
    dash.last_image, dash.last_logit          # (C, H, W) on show, and its logit

The picture is not an explanation map, so the dashboard is built on the frame every dashboard
shares (``frame.PictureDashboard``): the cache, the progress bar, errors shown in the dashboard
and the "save PNG for slides" button come from there.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Sequence

import ipywidgets as widgets
import torch
from torch import nn

from .. import hooks
from .._checks import check_model, check_number
from .frame import Picture, PictureDashboard, file_name

SLIDE_SIDE = 224  # a saved class image is enlarged to about this many pixels a side


def image_png(image: torch.Tensor, scale: int = 4) -> bytes:
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


class ActivationMaximisationDashboard(PictureDashboard):
    """The class image of ``class_visualisation`` for the class and L2 strength chosen."""

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str],
        image_shape: Sequence[int] | None = None,
        l2_range: tuple[float, float] = (1e-4, 1.0),
        **knobs: float,
    ) -> None:
        from ..featureviz._common import _image_shape  # the checks of class_visualisation
        from ..featureviz.ascent import _settings

        check_model(model)
        names = list(class_names)
        if not names or not all(isinstance(n, str) for n in names):
            raise TypeError("class_names must be a non-empty sequence of strings")
        shape = _image_shape(model, image_shape)
        low, high = (check_number(v, "l2_range", 0.0) for v in l2_range)
        if not 0 < low < high:
            raise ValueError(f"l2_range must be (low, high) with 0 < low < high, got {l2_range}")
        settings = _settings(knobs)
        super().__init__()
        self.model, self.class_names, self.image_shape, self.settings = model, names, shape, settings
        self.static_name = "class visualisation"
        self.heading = f"Class visualisation ({settings.steps} ascent steps)"
        self.last_image: torch.Tensor | None = None
        self.last_logit: float | None = None
        self.target = widgets.Dropdown(
            options=[(n, i) for i, n in enumerate(names)], value=0, description="class"
        )
        self.l2 = widgets.FloatLogSlider(
            value=min(max(settings.l2, low), high),
            base=10,
            min=math.log10(low),
            max=math.log10(high),
            step=0.25,
            description="L2 strength",
            continuous_update=False,
            style={"description_width": "initial"},
        )
        self.picture.width = 224  # as before the frame: a small picture, enlarged pixels
        self.start()

    @property
    def controls(self) -> dict[str, widgets.ValueWidget]:
        return {"target": self.target, "l2": self.l2}

    def arrange(self) -> list[widgets.Widget]:
        return [
            widgets.HTML(f"<b>Class visualisation</b> ({self.settings.steps} ascent steps)"),
            widgets.HBox([self.target, self.l2]),
            self.picture,
            self.caption,
            self.progress,
            self.error,
            widgets.HBox([self.save_button, self.saved]),
        ]

    def class_image(self, c: int, strength: float) -> tuple[torch.Tensor, float]:
        """The class image (C, H, W) for class c at L2 ``strength``, and the logit y_c it reaches."""
        from ..featureviz.ascent import class_visualisation

        knobs = {**self.settings.__dict__, "l2": strength}
        image = class_visualisation(self.model, c, self.image_shape, **knobs)
        with torch.no_grad(), hooks.preserved_state(self.model):
            self.model.eval()
            logit = float(self.model(image)[0, c])
        return image[0], logit

    def render(self) -> Picture:
        key = (self.target.value, round(float(self.l2.value), 12))
        image, logit = self.cache.get(key, lambda: self.class_image(*key))
        self.last_image, self.last_logit = image, logit
        scale = max(1, SLIDE_SIDE // max(image.shape[-2:]))
        return Picture(
            image_png(image),
            f"{html.escape(self.class_names[key[0]])}: logit {logit:.2f} at L2 = {key[1]:.3g}",
            slide_png=lambda _dpi: image_png(image, scale=scale),  # pixels, not a figure: no dpi
        )

    def figure_name(self) -> str:
        return file_name(["classvis", self.class_names[self.target.value]],
                         [f"l2-{self.l2.value:.3g}"])


def activation_maximisation_dashboard(
    model: nn.Module,
    class_names: Sequence[str],
    image_shape: Sequence[int] | None = None,
    l2_range: tuple[float, float] = (1e-4, 1.0),
    **knobs: float,
) -> ActivationMaximisationDashboard:
    """An ipywidgets dashboard: pick a class and the L2 regularisation strength, see the image
    ``class_visualisation`` makes for it, with the logit it reaches.

    Returns an ``ipywidgets.VBox`` (the last expression of a cell shows it). Headless use:
    ``dash.controls["target"].value = 3`` or ``dash.controls["l2"].value = 0.1``, then read
    ``dash.last_image`` (C, H, W), ``dash.last_png``, ``dash.last_logit``, ``dash.last_error``.
    Results are cached per (class, l2), so moving back to a setting is instant.
    """
    return ActivationMaximisationDashboard(model, class_names, image_shape, l2_range, **knobs)
