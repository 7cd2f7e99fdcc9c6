"""The dashboard of explanation maps: an image, a target class, a method's knobs, the maps.

Built on the frame of every dashboard (``frame.PictureDashboard``: controls, redraw, cache,
progress, errors, saving for slides):

    heading
    [image] [target] [knobs of the method ...]     <- changing any of them calls refresh()
    progress bar (only during long work)
    picture: a PNG drawn by gradviz_lab.viz
    caption: prediction, extra facts
    [save PNG for slides]                          <- the figure on show, at 200 dpi, to figures/
    error: the message of an exception raised while refreshing (also logged)

A subclass adds knobs in ``make_knobs`` and says which explanations to show in
``explanations(index, target)``; a picture that is not the explanations' maps side by side
(the image picker, the deletion curve) comes from ``make_figure`` or ``render``.

Headless use (tests, benchmarks): set ``dash.controls["sigma"].value = 0.3`` (what a slider does)
or ``dash.set(sigma=0.3, n_samples=10)`` (several at once, one redraw), and read
``dash.last_map``, ``dash.last_maps``, ``dash.last_figure``, ``dash.last_png``, ``dash.last_error``.
"""

from __future__ import annotations

import contextlib
import html
import warnings
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from torch import nn

from .. import hooks, methods, targets, viz
from .._forward import run_model
from ..attribution import window_starts
from .explaining import Explanation, class_names_of, explain, occlusion_window
from .figure import explanation_figure
from .frame import (  # noqa: F401  (re-exported: the frame's names, as before the split)
    MAX_NAME,
    DashboardBox,
    LRUCache,
    Picture,
    PictureDashboard,
    file_name,
    free_path,
    logger,
    static_view_line,
    write_png_file,
)
from .gallery import LAB_MODELS, gallery, gallery_defaults

PREDICTED = -1  # value of the target dropdown meaning "the predicted class"
WIDE = {"description_width": "initial"}


class CountingModel(nn.Module):
    """The model, unchanged, telling ``on_images(n)`` how many images each forward pass saw.

    Long methods (occlusion, SmoothGrad, integrated gradients) run many forward passes; counting
    the images they push through the model lets a progress bar follow them without changing them.
    """

    def __init__(self, model: nn.Module, on_images: Callable[[int], None]) -> None:
        super().__init__()
        self.model = model
        self.on_images = on_images

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.model(x)
        self.on_images(len(x))
        return output


def _checked_images(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (N, C, H, W), got {type(images).__name__}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or len(images) == 0 or not images.is_floating_point():
        raise ValueError(
            "images must be a non-empty float tensor (N, C, H, W), "
            f"got {tuple(images.shape)} {images.dtype}"
        )
    if not bool(torch.isfinite(images).all()) or images.min() < 0 or images.max() > 1:
        raise ValueError("images must hold finite values in [0, 1] (the kit's convention)")
    return images


class Dashboard(PictureDashboard):
    """Base class: subclasses set ``heading``, add knobs in ``make_knobs`` and say what to show
    in ``explanations(index, target)``; everything else (drawing, caching, errors) is here."""

    heading = "dashboard"
    long_methods = ("occlusion", "smoothgrad", "integrated-gradients")  # get a progress bar
    grid_options: dict[str, Any] = {}
    main = -1  # which of ``explanations`` is this dashboard's own map (``last_map``)

    def __init__(
        self,
        model: nn.Module | None = None,
        images: torch.Tensor | None = None,
        class_names: list[str] | None = None,
        *,
        image_names: list[str] | None = None,
        gallery_name: str = "shapes",
    ) -> None:
        super().__init__()
        self._load(model, images, class_names, image_names, gallery_name)
        self.predictions = LRUCache(maxsize=1024)  # image index -> class probabilities
        self.last_explanations: list[Explanation] = []
        self.last_maps: dict[str, np.ndarray] = {}
        self.last_map: np.ndarray | None = None
        self.image = self.make_image_control()
        self.target = widgets.Dropdown(
            description="target",
            options=[("predicted class", PREDICTED)]
            + [(n, i) for i, n in enumerate(self.class_names)],
            value=PREDICTED,
            style=WIDE,
        )
        self.knobs: dict[str, widgets.ValueWidget] = self.make_knobs()
        self.start()

    # ---- the images and the model -----------------------------------------------------------
    def _load(self, model, images, class_names, image_names, gallery_name) -> None:
        self.gallery_name = gallery_name if model is None else None  # None: the caller's model
        if model is None:
            examples = gallery(gallery_name)
            model, images = examples.model, examples.images
            class_names = class_names or examples.class_names
            image_names = image_names or examples.image_names
        elif not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if images is None:
            raise ValueError("pass images=... (N, C, H, W) in [0, 1] with your own model")
        self.model = model
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.images = _checked_images(images).to(device)  # on the model's device, e.g. a GPU
        with hooks.preserved_state(model), torch.no_grad():
            n_classes = run_model(model, self.images[:1]).shape[-1]
        self.class_names = class_names_of(model, class_names) or [
            f"class {k}" for k in range(n_classes)
        ]
        if len(self.class_names) != n_classes:
            raise ValueError(
                f"{len(self.class_names)} class names for a model with {n_classes} outputs"
            )
        self.image_names = (
            list(image_names)
            if image_names is not None
            else [f"image {i}" for i in range(len(self.images))]
        )
        if len(self.image_names) != len(self.images):
            raise ValueError(f"{len(self.image_names)} image names for {len(self.images)} images")

    def lab_model_knob(self) -> dict[str, widgets.Dropdown]:
        """{"model": the kit's lab models} for a dashboard showing a kit gallery (else {}), to put
        among its knobs. It is observed before the redraw (observers run in order), and also
        during dash.set(...): the images and classes are the new model's before other knobs are set."""
        if self.gallery_name not in LAB_MODELS:
            return {}
        knob = widgets.Dropdown(options=list(LAB_MODELS), value=self.gallery_name, description="model")
        knob.observe(self._on_model, names="value")
        return {"model": knob}

    def _on_model(self, change: dict) -> None:
        try:
            self.switch_model(change["new"])
        except Exception as error:  # shown in the dashboard like any other error
            self.show_error(error)

    def switch_model(self, name: str) -> None:
        """Load lab model ``name`` with its gallery; keep the image and class positions that
        still exist (the digits and the shapes have different images and classes), and the
        target menu's first entry (the dashboard's own words for PREDICTED)."""
        self._load(None, None, None, None, name)
        self.cache.clear()
        self.predictions.clear()
        with self.quietly():
            index, target = int(self.image.value), self.target.value
            self.image.options = [(n, i) for i, n in enumerate(self.image_names)]
            self.image.value = index if index < len(self.image_names) else 0
            self.target.options = [self.target.options[0]] + [
                (n, i) for i, n in enumerate(self.class_names)
            ]
            self.target.value = target if target < len(self.class_names) else PREDICTED

    def make_image_control(self) -> widgets.ValueWidget:
        return widgets.Dropdown(
            description="image", options=[(n, i) for i, n in enumerate(self.image_names)], value=0
        )

    @property
    def controls(self) -> dict[str, widgets.ValueWidget]:
        """Every control by name: "image", "target", then the method's knobs."""
        return {"image": self.image, "target": self.target, **self.knobs}

    def make_knobs(self) -> dict[str, widgets.ValueWidget]:
        return {}

    def probabilities(self, index: int) -> torch.Tensor:
        """Softmax of the model's output for image ``index``: one forward pass, cached."""

        def forward() -> torch.Tensor:
            with hooks.preserved_state(self.model), torch.no_grad():
                output = run_model(self.model, self.images[index : index + 1])
                return torch.softmax(output[0].float(), dim=0)

        return self.predictions.get(index, forward)

    def target_class(self, index: int) -> int:
        """The class the target control asks for: the predicted one, or the class chosen
        (``targets.class_indices`` on the cached probabilities: no forward pass per redraw)."""
        chosen = self.target.value
        if chosen != PREDICTED:
            return int(chosen)
        return int(targets.class_indices(self.probabilities(index)[None], None)[0])

    # ---- what to show (subclasses) ------------------------------------------------------------
    def explanations(self, index: int, target: int) -> list[Explanation]:
        raise NotImplementedError

    def explained(self, method: str, index: int, target: int | None, **knobs: Any) -> Explanation:
        """``explain`` for image ``index``, cached on (method, image, target, knobs); long methods
        run through a ``CountingModel`` that moves the progress bar."""
        key = (method, index, target, tuple(sorted(knobs.items())))
        return self.cache.get(key, lambda: self._explain(method, index, target, knobs))

    def _explain(
        self, method: str, index: int, target: int | None, knobs: dict, model: nn.Module | None = None
    ) -> Explanation:
        """``explain`` with a progress bar and warnings in the caption; ``model``: another model
        than the dashboard's (e.g. a randomised copy)."""
        image, model = self.images[index], self.model if model is None else model
        knobs = {**gallery_defaults(method, self.gallery_name), **knobs}  # the same in every dashboard
        # Warnings (e.g. "relu called as a function") go into the caption, not only the log.
        with warnings.catch_warnings(record=True) as caught, contextlib.ExitStack() as stack:
            warnings.simplefilter("always")
            if method in self.long_methods:
                on_images = stack.enter_context(
                    self.progress_bar(self.expected_images(method, image, knobs))
                )
                model = CountingModel(model, on_images)
            result = explain(model, image, method, target, class_names=self.class_names, **knobs)
        for message in dict.fromkeys(str(w.message) for w in caught):  # each one once
            result.note = f"{result.note}\nwarning: {message}".strip()
        return result

    @staticmethod
    def expected_images(method: str, image: torch.Tensor, knobs: dict) -> int:
        """About how many images a long method pushes through the model (for the progress bar)."""
        k = {**methods.get(method).defaults, **knobs}
        if method == "smoothgrad":
            return int(k["n_samples"]) + 2
        if method == "integrated-gradients":
            return int(k["steps"]) + 4
        height, width = image.shape[-2:]
        window, stride = occlusion_window(k, height, width)
        return (
            len(window_starts(height, window, stride)) * len(window_starts(width, window, stride))
            + 3
        )

    # ---- drawing ------------------------------------------------------------------------------
    @property
    def overlay_alpha(self) -> float:
        return float(self.knobs["alpha"].value) if "alpha" in self.knobs else 0.5

    @property
    def clip_percentile(self) -> float:
        return (
            float(self.knobs["clip"].value) if "clip" in self.knobs else viz.DEFAULT_CLIP_PERCENTILE
        )

    def render(self) -> Picture:
        """The explanations of the image and target chosen, drawn by ``make_figure``."""
        index = int(self.image.value)
        explanations = self.explanations(index, self.target_class(index))
        figure = self.make_figure(index, explanations)
        png = viz.figure_to_png(figure, dpi=self.dpi, compress_level=1)
        caption = self.caption_html(index, explanations)
        return Picture(png, caption, figure, explanations=explanations)

    def remember(self, picture: Picture) -> None:
        explanations = picture.explanations
        self.last_explanations = explanations
        self.last_maps = {t: m for e in explanations for t, m in e.maps.items()}
        self.last_map = next(iter(explanations[self.main].maps.values())) if explanations else None

    def make_figure(self, index: int, explanations: list[Explanation]):
        """The figure on show: the image and the explanations' maps side by side, drawn into the
        figure on show when its layout fits (half the time of a new figure)."""
        return explanation_figure(
            self.images[index],
            *explanations,
            alpha=self.overlay_alpha,
            clip_percentile=self.clip_percentile,
            into=self.last_figure,
            **self.grid_options,
        )

    def draw(self, index: int, explanations: list[Explanation]) -> None:
        """Draw ``explanations`` of image ``index`` without recomputing anything (benchmarks)."""
        figure = self.make_figure(index, explanations)
        png = viz.figure_to_png(figure, dpi=self.dpi, compress_level=1)
        caption = self.caption_html(index, explanations)
        self.show(Picture(png, caption, figure, explanations=explanations))

    def caption_html(self, index: int, explanations: list[Explanation]) -> str:
        p = self.probabilities(index)
        best = int(p.argmax())
        parts = [
            f"<b>{html.escape(self.image_names[index])}</b>",
            f"predicted: <b>{html.escape(self.class_names[best])}</b> ({float(p[best]):.0%})",
        ]
        if explanations:
            parts.append(f"explaining: <b>{html.escape(explanations[self.main].target_name)}</b>")
        notes = [html.escape(e.note).replace("\n", "<br>") for e in explanations if e.note]
        return (
            "<div style='font-size:15px'>"
            + " · ".join(parts)
            + "".join(f"<br>{n}" for n in notes)
            + "</div>"
        )

    # ---- figures for slides -------------------------------------------------------------------
    def figure_name(self) -> str:
        """A file name saying what is on show: dashboard, image, the class explained (if a class
        is) and the knob values, as they are now (``last_figure_name``: as when last drawn).

        Where the name is not the description itself (characters a file name should not hold
        were replaced, or it was cut to ``MAX_NAME`` characters, from the image's name, never
        from the knob values), a short hash of the full description keeps two figures apart.
        """
        words = [
            type(self).__name__.removesuffix("Dashboard").lower() or "dashboard",
            self.image_names[int(self.image.value)],
        ]
        explained = self.last_explanations[self.main] if self.last_explanations else None
        if explained is not None and explained.target is not None:
            words.append(explained.target_name)
        knobs = [f"{name}-{control.value}" for name, control in self.knobs.items()]
        return file_name(words, knobs)
