"""The frame every dashboard shares: controls, a picture redrawn on change, a cache, progress,
errors, and the picture saved for slides.

A dashboard is an ``ipywidgets.VBox``: the last expression of a notebook cell, it shows itself.

    heading
    [controls ...]                                 <- changing any of them calls refresh()
    progress bar (only during long work)
    picture: a PNG                                 <- an ipywidgets.Image, fast in any browser
    caption
    [save PNG for slides]                          <- the picture on show, sharp, to figures/
    error: the message of an exception raised while refreshing (also logged)

``PictureDashboard`` is that frame: a subclass makes its controls, then calls ``start()``, and
says what to show in ``render()``, which returns a ``Picture`` (the PNG on screen, its caption,
and how to draw it for a slide). Everything else is here: redrawing on change (one redraw for
``set(...)``), the cache, the progress bar, errors shown in the dashboard, ``save_png``.
``Dashboard`` (base.py) is the frame for explanation maps of images; the image picker and the
class visualisation (ascent.py) show other pictures on the same frame.

Headless use (tests, benchmarks): set ``dash.controls["sigma"].value = 0.3`` (what a slider does)
or ``dash.set(sigma=0.3, n_samples=10)`` (several at once, one redraw), and read
``dash.last_png``, ``dash.last_figure``, ``dash.last_error``.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure
from torch import nn

from .. import viz
from .._checks import check_flag
from ..threads import lab_threads

logger = logging.getLogger("gradviz_lab.widgets")


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

    def __len__(self) -> int:
        return len(self.entries)


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


@dataclass
class Picture:
    """What a dashboard shows for its current settings.

    png        the picture on screen (PNG bytes)
    caption    HTML under it
    figure     the matplotlib figure it was drawn from, if any (``last_figure``)
    slide_png  ``slide_png(dpi)`` draws it for a slide; None: the figure at that dpi
    explanations  the explanations it shows (``Dashboard``; empty for other pictures)
    """

    png: bytes
    caption: str = ""
    figure: Figure | None = None
    slide_png: Callable[[float], bytes] | None = None
    explanations: list = field(default_factory=list)


class PictureDashboard(DashboardBox):
    """The frame: subclasses set ``heading`` and ``model``, make their controls, call
    ``start()``, and return a ``Picture`` from ``render()``."""

    heading = "dashboard"
    dpi = 80  # PNG resolution on screen; the picture scales to the notebook's width
    slide_dpi = 200  # as ``gradviz explain``: sharp on a projector
    model: nn.Module

    def __init__(self) -> None:
        super().__init__()
        self.static_name = type(self).__name__
        self.cache = LRUCache(maxsize=128)  # results by the settings that made them
        self.last_picture: Picture | None = None
        self.last_figure: Figure | None = None
        self.last_figure_name = ""
        self.written: set[Path] = set()  # the files save_png wrote: its own to replace
        self.last_png = b""
        self.last_error: BaseException | None = None
        self.last_seconds = 0.0
        self.renders = 0
        self._quiet = False  # True while the dashboard itself adjusts controls
        self.picture = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.progress = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, description="working",
            layout=widgets.Layout(visibility="hidden"),
        )
        self.caption = widgets.HTML()
        self.save_button = widgets.Button(
            description="save PNG for slides", icon="download", layout=widgets.Layout(width="auto")
        )
        self.save_button.on_click(self._on_save)
        self.saved = widgets.HTML()
        self.error = widgets.HTML()

    @property
    def controls(self) -> dict[str, widgets.ValueWidget]:
        """Every control by name (subclasses)."""
        return {}

    def start(self) -> None:
        """Wire the controls, lay out the dashboard and draw the first picture."""
        for name, control in self.controls.items():
            control.observe(self._on_change, names="value")
            control.add_class(f"gradviz-control-{name}")
        self.picture.add_class("gradviz-picture")
        self.save_button.add_class("gradviz-save")
        self.error.add_class("gradviz-error")
        self.add_class("gradviz-dashboard")
        self.children = self.arrange()
        self.refresh()

    def arrange(self) -> list[widgets.Widget]:
        """The dashboard's parts, top to bottom."""
        return [
            widgets.HTML(f"<h3 style='margin:4px 0'>{html.escape(self.heading)}</h3>"),
            widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap")),
            self.progress,
            self.picture,
            self.caption,
            widgets.HBox([self.save_button, self.saved]),
            self.error,
        ]

    # ---- what to show (subclasses) ------------------------------------------------------------
    def render(self) -> Picture:
        """The picture for the current settings."""
        raise NotImplementedError

    def on_knobs_changed(self) -> None:
        """Hook for dashboards whose knobs depend on each other (e.g. a layer's channel count)."""

    # ---- redrawing ------------------------------------------------------------------------------
    def _on_change(self, _change: dict) -> None:
        if not self._quiet:
            self.refresh()

    def refresh(self) -> None:
        """Recompute (or fetch from the cache) and redraw; an error is shown, never raised."""
        start = time.perf_counter()
        try:
            with lab_threads(self.model):  # one thread for a lab model: see gradviz_lab.threads
                self.on_knobs_changed()
                self.show(self.render())
            self.error.value = ""
            self.last_error = None
        except Exception as error:  # a callback must not die silently: show it in the dashboard
            self.show_error(error)
        finally:
            self.progress.layout.visibility = "hidden"
            self.last_seconds = time.perf_counter() - start

    def show(self, picture: Picture) -> None:
        """Put ``picture`` on screen and remember it (``last_png``, ``last_figure``, its name)."""
        self.picture.value = picture.png
        self.last_picture, self.last_figure, self.last_png = picture, picture.figure, picture.png
        self.remember(picture)
        self.last_figure_name = self.figure_name()  # the name travels with the figure it names
        self.renders += 1
        self.caption.value = picture.caption

    def remember(self, picture: Picture) -> None:
        """Hook: keep what a subclass reads back from the picture on show (before it is named)."""

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

    @contextmanager
    def quietly(self) -> Iterator[None]:
        """Change controls from code without triggering a refresh for each change."""
        self._quiet, before = True, self._quiet
        try:
            yield
        finally:
            self._quiet = before

    @contextmanager
    def progress_bar(self, total: int) -> Iterator[Callable[[int], None]]:
        """Show the bar; yield a function that advances it by n (images, steps, ...)."""
        seen = 0

        def advance(n: int) -> None:
            nonlocal seen
            seen += n
            self.progress.value = min(1.0, seen / max(total, 1))

        self.progress.value = 0.0
        self.progress.layout.visibility = "visible"
        try:
            yield advance
            self.progress.value = 1.0  # the count is an estimate: finish the bar when work is done
        finally:
            self.progress.layout.visibility = "hidden"

    # ---- pictures for slides ------------------------------------------------------------------
    def figure_name(self) -> str:
        """A file name saying what is on show: the dashboard and its knob values."""
        words = [type(self).__name__.removesuffix("Dashboard").lower() or "dashboard"]
        return file_name(words, [f"{n}-{c.value}" for n, c in self.controls.items()])

    def save_png(
        self, path: str | Path | None = None, dpi: float | None = None, overwrite: bool = False
    ) -> Path:
        """Write the picture on show to ``path`` at ``dpi`` (default 200, slide resolution);
        returns the path written.

        Without a path: ``figures/`` + ``last_figure_name``, or, if a file of that name exists
        that this dashboard did not write, the same name with -2, -3, ... (the button never
        replaces someone's file). A path given that exists is replaced only with
        ``overwrite=True`` or if this dashboard wrote it.
        """
        shown, figure = self.last_picture, self.last_figure
        if shown is None or (shown.slide_png is None and figure is None):
            raise RuntimeError("nothing to save: the dashboard has not drawn a figure yet")
        check_flag(overwrite, "overwrite")
        if path is None:
            path = free_path(Path("figures") / self.last_figure_name, self.written)
        dpi = dpi or self.slide_dpi
        if shown.slide_png is not None:
            draw = lambda: shown.slide_png(dpi)  # noqa: E731
        else:
            draw = lambda: viz.figure_to_png(figure, dpi=dpi)  # noqa: E731
        return write_png_file(path, draw, self.written, overwrite)

    def _on_save(self, _button: widgets.Button) -> None:
        self.saved.value = ""
        try:
            path = self.save_png()
            self.saved.value = (
                f"<span style='font-size:14px'>saved <code>{html.escape(str(path))}</code></span>"
            )
        except Exception as error:  # shown in the dashboard like any other error
            self.show_error(error)
