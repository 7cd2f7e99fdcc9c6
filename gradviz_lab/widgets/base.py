"""What every dashboard shares: controls, a picture redrawn on change, a cache, progress, errors.

A dashboard is an ``ipywidgets.VBox``: the last expression of a notebook cell, it shows itself.

    heading
    [image] [target] [knobs of the method ...]     <- changing any of them calls refresh()
    progress bar (only during long work)
    picture: a PNG drawn by gradviz_lab.viz        <- an ipywidgets.Image, fast in any browser
    caption: prediction, extra facts
    [save PNG for slides]                          <- the figure on show, at 200 dpi, to figures/
    error: the message of an exception raised while refreshing (also logged)

Headless use (tests, benchmarks): set ``dash.controls["sigma"].value = 0.3`` (what a slider does)
or ``dash.set(sigma=0.3, n_samples=10)`` (several at once, one redraw), and read
``dash.last_map``, ``dash.last_maps``, ``dash.last_figure``, ``dash.last_png``, ``dash.last_error``.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import logging
import re
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from torch import nn

from .. import hooks, viz
from .._checks import check_flag
from .._forward import run_model
from ..attribution import window_starts
from ..threads import lab_threads
from .recipes import (
    METHODS,
    Explanation,
    class_names_of,
    explain,
    explanation_figure,
    gallery,
    gallery_defaults,
    occlusion_window,
)

logger = logging.getLogger("gradviz_lab.widgets")

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


class LRUCache:
    """A small dict that forgets the least recently used entry beyond ``maxsize`` entries."""

    def __init__(self, maxsize: int = 64) -> None:
        self.maxsize = maxsize
        self.entries: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        if key in self.entries:
            self.hits += 1
            self.entries.move_to_end(key)
            return self.entries[key]
        self.misses += 1
        value = self.entries[key] = compute()
        if len(self.entries) > self.maxsize:
            self.entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self.entries.clear()


MAX_NAME = 150  # characters of a figure's file name, before ".png"


def file_name(words: list[str], knobs: list[str], limit: int = MAX_NAME) -> str:
    """"word_word_knob-value_....png", made of letters, digits and . = - _ only.

    When that changes the description (other characters replaced by _) or must be cut to
    ``limit`` characters (the words are cut, the knobs kept), an 8-character hash of the full
    description is added: names that differ only in punctuation, or beyond the cut, stay apart.
    """
    description = "_".join(words + knobs)
    slug = _slug(description)
    if slug == description and len(slug) <= limit:
        return f"{slug}.png"
    digest = hashlib.sha256(description.encode()).hexdigest()[:8]
    tail = _slug("_".join(knobs))
    head = _slug("_".join(words))[: max(limit - len(tail) - 1, 16)].rstrip("_")
    name = "_".join(part for part in (head, tail) if part)[:limit].rstrip("_")
    return f"{name}_{digest}.png"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")


def free_path(path: Path, written: set[Path]) -> Path:
    """path, or path with -2, -3, ... before its suffix: the first that does not exist or that
    is in ``written`` (a file the caller wrote itself, which it may replace)."""
    candidate, number = path, 1
    while candidate.exists() and candidate.resolve() not in written:
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def write_png_file(
    path: str | Path, png: Callable[[], bytes], written: set[Path], overwrite: bool = False
) -> Path:
    """Write png() to path (a .png; its folders are made) and add it to ``written``. An existing
    file is replaced only with overwrite=True or if it is in ``written``: it may be someone's work."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"the figure is saved as PNG: give a path ending in .png, got {str(path)!r}")
    if path.exists() and not overwrite and path.resolve() not in written:
        raise FileExistsError(
            f"{str(path)!r} exists and was not written here; pass overwrite=True to replace "
            "it, or choose another name"
        )
    data = png()  # drawn before the file is opened: an error leaves no empty file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    written.add(path.resolve())
    return path


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


def static_view_line(name: str) -> str:
    """What a dashboard shows where no kernel runs: a notebook not yet run, a file viewer."""
    return f"{name}: run this cell in JupyterLab to see the dashboard (a static view shows no widgets)."


class DashboardBox(widgets.VBox):
    """A VBox whose plain-text form, the only part of it a static view can show, is one line
    saying how to see it, instead of ipywidgets' raw Python repr of every child widget."""

    static_name = "dashboard"

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)  # the widget view, for a live kernel
        bundle["text/plain"] = static_view_line(self.static_name)
        return bundle


class Dashboard(DashboardBox):
    """Base class: subclasses set ``heading``, add knobs in ``make_knobs`` and say what to show
    in ``explanations(index, target)``; everything else (drawing, caching, errors) is here."""

    heading = "dashboard"
    dpi = 80  # PNG resolution on screen; the picture scales to the notebook's width
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
        self.static_name = type(self).__name__
        self._load(model, images, class_names, image_names, gallery_name)
        self.cache = LRUCache(maxsize=128)  # (method, image, target, knobs) -> Explanation
        self.predictions = LRUCache(maxsize=1024)  # image index -> class probabilities
        self.last_explanations: list[Explanation] = []
        self.last_maps: dict[str, np.ndarray] = {}
        self.last_map: np.ndarray | None = None
        self.last_figure = None
        self.last_figure_name = ""
        self.written: set[Path] = set()  # the files save_png wrote: its own to replace
        self.last_png = b""
        self.last_error: BaseException | None = None
        self.last_seconds = 0.0
        self.renders = 0
        self._quiet = False  # True while the dashboard itself adjusts controls

        self.image = self.make_image_control()
        self.target = widgets.Dropdown(
            description="target",
            options=[("predicted class", PREDICTED)]
            + [(n, i) for i, n in enumerate(self.class_names)],
            value=PREDICTED,
            style=WIDE,
        )
        self.knobs: dict[str, widgets.ValueWidget] = self.make_knobs()
        self.picture = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.progress = widgets.FloatProgress(
            value=0.0,
            min=0.0,
            max=1.0,
            description="working",
            layout=widgets.Layout(visibility="hidden"),
        )
        self.caption = widgets.HTML()
        self.save_button = widgets.Button(
            description="save PNG for slides", icon="download", layout=widgets.Layout(width="auto")
        )
        self.save_button.on_click(self._on_save)
        self.saved = widgets.HTML()
        self.error = widgets.HTML()
        for name, control in self.controls.items():
            control.observe(self._on_change, names="value")
            control.add_class(f"gradviz-control-{name}")
        self.picture.add_class("gradviz-picture")
        self.save_button.add_class("gradviz-save")
        self.error.add_class("gradviz-error")
        self.add_class("gradviz-dashboard")
        self.children = [
            widgets.HTML(f"<h3 style='margin:4px 0'>{html.escape(self.heading)}</h3>"),
            widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap")),
            self.progress,
            self.picture,
            self.caption,
            widgets.HBox([self.save_button, self.saved]),
            self.error,
        ]
        self.refresh()

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
        chosen = self.target.value
        return int(self.probabilities(index).argmax()) if chosen == PREDICTED else int(chosen)

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
        k = {**METHODS[method], **knobs}
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

    @contextmanager
    def progress_bar(self, total: int) -> Iterator[Callable[[int], None]]:
        """Show the bar; yield a function that advances it by n images."""
        seen = 0

        def on_images(n: int) -> None:
            nonlocal seen
            seen += n
            self.progress.value = min(1.0, seen / max(total, 1))

        self.progress.value = 0.0
        self.progress.layout.visibility = "visible"
        try:
            yield on_images
            self.progress.value = (
                1.0  # the count is an estimate: finish the bar when the work is done
            )
        finally:
            self.progress.layout.visibility = "hidden"

    # ---- drawing ------------------------------------------------------------------------------
    @property
    def overlay_alpha(self) -> float:
        return float(self.knobs["alpha"].value) if "alpha" in self.knobs else 0.5

    @property
    def clip_percentile(self) -> float:
        return (
            float(self.knobs["clip"].value) if "clip" in self.knobs else viz.DEFAULT_CLIP_PERCENTILE
        )

    def _on_change(self, _change: dict) -> None:
        if not self._quiet:
            self.refresh()

    def refresh(self) -> None:
        """Recompute (or fetch from the cache) and redraw; an error is shown, never raised."""
        start = time.perf_counter()
        try:
            with lab_threads(self.model):  # one thread for a lab model: see gradviz_lab.threads
                self.on_knobs_changed()
                index = int(self.image.value)
                explanations = self.explanations(index, self.target_class(index))
                self.draw(index, explanations)
            self.error.value = ""
            self.last_error = None
        except Exception as error:  # a callback must not die silently: show it in the dashboard
            self.show_error(error)
        finally:
            self.progress.layout.visibility = "hidden"
            self.last_seconds = time.perf_counter() - start

    def on_knobs_changed(self) -> None:
        """Hook for dashboards whose knobs depend on each other (e.g. a layer's channel count)."""

    def make_figure(self, index: int, explanations: list[Explanation]):
        """The figure on show: the image and the explanations' maps side by side."""
        return explanation_figure(
            self.images[index],
            *explanations,
            alpha=self.overlay_alpha,
            clip_percentile=self.clip_percentile,
            **self.grid_options,
        )

    def draw(self, index: int, explanations: list[Explanation]) -> None:
        figure = self.make_figure(index, explanations)
        png = viz.figure_to_png(figure, dpi=self.dpi, compress_level=1)
        self.picture.value = png
        self.last_explanations = explanations
        self.last_maps = {t: m for e in explanations for t, m in e.maps.items()}
        self.last_map = next(iter(explanations[self.main].maps.values())) if explanations else None
        self.last_figure, self.last_png = figure, png
        self.last_figure_name = self.figure_name()  # the name travels with the figure it names
        self.renders += 1
        self.caption.value = self.caption_html(index, explanations)

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

    def show_error(self, error: BaseException) -> None:
        self.last_error = error
        self.error.value = (
            "<div style='color:#b00020;font-size:15px;white-space:pre-wrap;border-left:4px solid "
            f"#b00020;padding-left:8px'><b>{html.escape(type(error).__name__)}</b>: "
            f"{html.escape(str(error))}</div>"
        )
        logger.error("%s: %s: %s", self.heading, type(error).__name__, error, exc_info=error)

    def set(self, **values: Any) -> None:
        """Set several controls (``dash.set(sigma=0.2, n_samples=10)``), then redraw once."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(
                f"no control named {', '.join(sorted(unknown))}; "
                f"controls are {', '.join(self.controls)}"
            )
        with self.quietly():
            for name, value in values.items():
                self.controls[name].value = value
        self.refresh()

    # ---- figures for slides -------------------------------------------------------------------
    slide_dpi = 200  # as ``gradviz explain``: sharp on a projector

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

    def save_png(
        self, path: str | Path | None = None, dpi: float | None = None, overwrite: bool = False
    ) -> Path:
        """Write the figure on show to ``path`` at ``dpi`` (default 200, slide resolution);
        returns the path written.

        Without a path: ``figures/`` + ``last_figure_name``, or, if a file of that name exists
        that this dashboard did not write, the same name with -2, -3, ... (the button never
        replaces someone's file). A path given that exists is replaced only with
        ``overwrite=True`` or if this dashboard wrote it.
        """
        if self.last_figure is None:
            raise RuntimeError("nothing to save: the dashboard has not drawn a figure yet")
        check_flag(overwrite, "overwrite")
        if path is None:
            path = free_path(Path("figures") / self.last_figure_name, self.written)
        return write_png_file(
            path, lambda: viz.figure_to_png(self.last_figure, dpi=dpi or self.slide_dpi),
            self.written, overwrite,
        )

    def _on_save(self, _button: widgets.Button) -> None:
        self.saved.value = ""
        try:
            path = self.save_png()
            self.saved.value = f"<span style='font-size:14px'>saved <code>{html.escape(str(path))}</code></span>"
        except Exception as error:  # shown in the dashboard like any other error
            self.show_error(error)

    @contextmanager
    def quietly(self) -> Iterator[None]:
        """Change controls from code without triggering a refresh for each change."""
        self._quiet, before = True, self._quiet
        try:
            yield
        finally:
            self._quiet = before
