"""Drive JupyterLab in headless Chromium with Playwright, the way a student uses it.

Open a notebook, choose Run > Run All Cells, wait for the kernel, move a slider with the keyboard
and look at the pictures. "Look" means pixels: each ``<img>``/``<canvas>`` in a cell's output is
screenshot and compared, so the check does not care whether a dashboard draws with matplotlib
inside an ``Output`` widget, an ``ipywidgets.Image`` (a new blob URL on every update, even for the
same picture) or a canvas.
"""

from __future__ import annotations

import io
import re
import shutil
import time
from pathlib import Path

from PIL import Image, ImageChops

try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # the test skips (or, under CI, fails) before anything here is used
    PlaywrightError = Exception

# Debian's chromium; Playwright is pointed at it and never downloads a browser of its own.
DEBIAN_CHROMIUM = "/usr/bin/chromium"
# Without these flags chromium waits on network connections that a sandbox blocks.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1400, "height": 1000}

# Where a picture can be in an output: matplotlib inline, ipywidgets.Image, HTML <img>, canvas.
FIGURE_SELECTOR = ".jp-OutputArea-output img, .jp-OutputArea-output canvas"
MIN_FIGURE_PX = 48  # smaller images are icons, not figures
MIN_CHANGE = 0.002  # a redrawn figure differs in more than this fraction of its pixels
# Text that means the widget frontend failed (a widget stuck at "Loading widget..." shows up as
# "no figure appeared" instead: that text is also there, briefly, when all is well).
WIDGET_FAILURES = ("Error displaying widget", "Failed to load model class")
# An exception in a cell, and a logged exception, both print a traceback (a warning does not).
ERROR_TEXT = "Traceback"
# Where a gradviz dashboard shows an exception raised while redrawing (it never raises it).
DASHBOARD_ERROR_SELECTOR = ".gradviz-error"


def find_chromium() -> str | None:
    """Path of the chromium executable, or None when it is not installed."""
    if Path(DEBIAN_CHROMIUM).exists():
        return DEBIAN_CHROMIUM
    return shutil.which("chromium")


def launch_chromium(playwright, executable: str, user_data_dir: Path):
    """A headless Chromium with a fresh profile (a persistent context in an empty directory)."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=executable,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=VIEWPORT,
    )


class LabNotebook:
    """One browser tab with one notebook open in JupyterLab."""

    def __init__(self, page):
        self.page = page
        self.console_errors: list[str] = []
        page.on(
            "console",
            lambda message: message.type == "error" and self.console_errors.append(message.text),
        )
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))

    @classmethod
    def open(cls, context, url: str, timeout_s: float = 120.0) -> LabNotebook:
        """Load JupyterLab at ``url`` and wait until the notebook is shown and its kernel idle."""
        notebook = cls(context.new_page())
        notebook.page.goto(url, timeout=timeout_s * 1000)
        notebook.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=timeout_s * 1000)
        notebook.wait_until_kernel_idle(timeout_s)
        return notebook

    # -- the kernel -------------------------------------------------------------------------
    def kernel_status(self) -> str:
        """'idle', 'busy', ... as the notebook toolbar's execution indicator shows it."""
        indicator = self.page.locator(".jp-Notebook-ExecutionIndicator").first
        return indicator.get_attribute("data-status") or "unknown"

    def wait_until_kernel_idle(self, timeout_s: float) -> None:
        """Wait until the status bar reads "<kernel> | Idle".

        The toolbar's indicator already says "idle" while the status bar still reads
        "No Kernel | Initializing"; a Run All clicked then does nothing, so wait for both.
        """
        self.page.wait_for_function(
            r"""() => {
                const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
                const bar = document.querySelector('.jp-StatusBar-Widget');
                return indicator && indicator.dataset.status === 'idle' && bar
                    && /^(?!No Kernel).+ \| Idle$/m.test(bar.innerText);
            }""",
            timeout=timeout_s * 1000,
            polling=250,
        )

    # -- running ----------------------------------------------------------------------------
    def prompts(self) -> list[str]:
        """The ``[n]:`` prompts of the code cells, in order."""
        return self.page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt").all_inner_texts()

    def run_all_cells(self, timeout_s: float = 300.0) -> None:
        """Run > Run All Cells from the menu bar, then wait until no cell is queued or running.

        A cell's prompt reads ``[ ]:`` before it ever ran, ``[*]:`` while queued or running and
        ``[n]:`` after. Run All is finished when the first cell shows a number and none a star
        (cells after one that raised are dequeued and go back to ``[ ]:``).
        """
        # The menu acts on the *active* notebook: click into it first, so that it is.
        self.code_cell(0).locator(".jp-InputArea-prompt").click()
        self.page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        self.page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        deadline = time.monotonic() + 30.0
        while not re.search(r"\*|\d", self.prompts()[0]):  # started: queued, running or done
            if time.monotonic() > deadline:
                raise AssertionError(f"Run > Run All Cells started nothing; prompts: {self.prompts()}")
            time.sleep(0.2)
        self.page.wait_for_function(
            r"""() => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                    .map(p => p.textContent);
                return prompts.length > 0 && /\[\d+\]/.test(prompts[0])
                    && prompts.every(text => !text.includes('*'));
            }""",
            timeout=timeout_s * 1000,
            polling=500,
        )
        self.wait_until_kernel_idle(timeout_s)

    def code_cell(self, index: int):
        """The ``index``-th code cell (0-based, markdown cells not counted)."""
        return self.page.locator(".jp-Notebook .jp-CodeCell").nth(index)

    def execution_count(self, cell) -> int | None:
        """The number in the cell's ``[n]:`` prompt, None if it never ran."""
        match = re.search(r"\[(\d+)\]", cell.locator(".jp-InputArea-prompt").first.inner_text())
        return int(match.group(1)) if match else None

    def problems(self, cell) -> list[str]:
        """Error outputs (tracebacks) and widget-frontend failures shown in ``cell``."""
        found = []
        stderr = cell.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
        for i in range(stderr.count()):
            text = stderr.nth(i).inner_text()
            if ERROR_TEXT in text:
                found.append(text.strip()[-2000:])
        outputs = cell.locator(".jp-Cell-outputArea").first.inner_text()
        found += [f"widget frontend: {failure!r}" for failure in WIDGET_FAILURES if failure in outputs]
        shown = cell.locator(DASHBOARD_ERROR_SELECTOR).all_inner_texts()
        found += [f"dashboard error: {text.strip()}" for text in shown if text.strip()]
        return found


# -- controls ------------------------------------------------------------------------------
def slider_in(cell, selector: str):
    """The ipywidgets slider in ``cell`` matched by the CSS ``selector`` (a class it was given)."""
    return cell.locator(f"{selector}.widget-slider")


def slider_labels(cell) -> list[str]:
    """The descriptions and classes of every slider in ``cell`` (to name them in an error)."""
    sliders = cell.locator(".widget-slider")
    return [
        f"{sliders.nth(i).locator('.widget-label').inner_text().strip()!r} "
        f"(class {sliders.nth(i).get_attribute('class')})"
        for i in range(sliders.count())
    ]


def click_button(cell, text: str) -> None:
    """Click the button (e.g. one of a ToggleButtons) whose text is exactly ``text``."""
    cell.get_by_role("button", name=text, exact=True).click()


def move_slider(slider, key: str = "ArrowRight", timeout_s: float = 10.0) -> tuple[str, str]:
    """Focus the slider's handle and press ``key``, as a keyboard user would.

    ArrowRight/Left move one step, PageUp/Down five, Home/End to the ends (noUiSlider's keys);
    ArrowRight on a handle already at its maximum presses ArrowLeft instead.
    Returns the readout before and after; raises if the readout does not change.
    """
    handle = slider.locator(".noUi-handle").first
    readout = slider.locator(".widget-readout").first
    # A disabled slider ignores keys; one enabled by another control may still be on its way.
    slider.locator(".noUi-target:not([disabled])").wait_for(timeout=timeout_s * 1000)
    before = readout.inner_text().strip()
    value, top = (float(handle.get_attribute(a)) for a in ("aria-valuenow", "aria-valuemax"))
    if key == "ArrowRight" and value >= top:
        key = "ArrowLeft"
    handle.focus()
    handle.press(key)
    deadline = time.monotonic() + timeout_s
    while (after := readout.inner_text().strip()) == before:
        if time.monotonic() > deadline:
            raise AssertionError(f"slider readout stayed at {before!r} after pressing {key}")
        time.sleep(0.1)
    return before, after


# -- pictures ------------------------------------------------------------------------------
def figure_snapshot(cell) -> list[Image.Image]:
    """Screenshots (as RGB pixels) of every figure-sized <img>/<canvas> in the cell's outputs."""
    elements = cell.locator(FIGURE_SELECTOR)
    shots = []
    for i in range(elements.count()):
        element = elements.nth(i)
        box = element.bounding_box()
        if box is None or min(box["width"], box["height"]) < MIN_FIGURE_PX:
            continue
        png = element.screenshot(animations="disabled", timeout=10_000)
        shots.append(Image.open(io.BytesIO(png)).convert("RGB"))
    return shots


def changed_fraction(before: list[Image.Image], after: list[Image.Image]) -> float:
    """Fraction of pixels that differ (by more than anti-aliasing noise) between two snapshots.

    A different number of figures, or figures of different sizes, count as fully changed.
    """
    if len(before) != len(after) or any(a.size != b.size for a, b in zip(before, after)):
        return 1.0
    changed = total = 0
    for a, b in zip(before, after):
        difference = ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > 8 else 0)
        changed += difference.histogram()[255]
        total += a.width * a.height
    return changed / total if total else 0.0


def blank_reason(snapshot: list[Image.Image]) -> str | None:
    """Why ``snapshot`` does not show a figure (None when it does).

    A figure is at least one picture with many colours, none of them covering nearly all of it:
    a blank, single-colour or text-only image fails.
    """
    if not snapshot:
        return "no <img> or <canvas> of figure size in the output"
    for image in snapshot:
        colours = image.getcolors(maxcolors=4096)  # None: more than 4096 colours, surely a picture
        if colours is None:
            return None
        most_common = max(count for count, _ in colours)
        if len(colours) >= 16 and most_common < 0.97 * image.width * image.height:
            return None
    sizes = ", ".join(f"{image.width}x{image.height}" for image in snapshot)
    return f"every picture is (nearly) a single colour ({sizes})"


def _snapshot_or_none(cell) -> list[Image.Image] | None:
    # While an Output widget is cleared and redrawn an element can vanish mid-screenshot.
    try:
        return figure_snapshot(cell)
    except PlaywrightError:
        return None


def wait_for_stable_figure(notebook: LabNotebook, cell, timeout_s: float = 60.0, settle_s: float = 0.6):
    """The cell's figures once the kernel is idle and two snapshots ``settle_s`` apart agree."""
    deadline = time.monotonic() + timeout_s
    previous, seen_any = None, False
    while time.monotonic() < deadline:
        current = _snapshot_or_none(cell)
        seen_any = seen_any or bool(current)
        if (
            current
            and previous
            and notebook.kernel_status() == "idle"
            and changed_fraction(previous, current) == 0.0
        ):
            return current
        previous = current
        time.sleep(settle_s)
    if not seen_any:
        text = cell.locator(".jp-Cell-outputArea").first.inner_text().strip()
        raise AssertionError(f"no figure appeared within {timeout_s:.0f} s; the output reads {text[:300]!r}")
    raise AssertionError(f"the figure did not settle within {timeout_s:.0f} s (kept changing or kernel busy)")


def wait_for_figure_change(
    notebook: LabNotebook,
    cell,
    before: list[Image.Image],
    timeout_s: float = 60.0,
    min_change: float = MIN_CHANGE,
) -> tuple[list[Image.Image], float]:
    """Wait until more than ``min_change`` of the figure's pixels differ from ``before`` and the
    figure settles; return it and the fraction changed.

    A few pixels flickering while the page re-lays out do not count: only a settled figure that
    really differs ends the wait. Raises AssertionError when none came within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    largest = 0.0
    while time.monotonic() < deadline:
        current = _snapshot_or_none(cell)
        if current and changed_fraction(before, current) > min_change:
            settled = wait_for_stable_figure(notebook, cell, max(deadline - time.monotonic(), 5.0))
            fraction = changed_fraction(before, settled)
            if fraction > min_change:
                return settled, fraction
        largest = max(largest, changed_fraction(before, current) if current else 0.0)
        time.sleep(0.25)
    raise AssertionError(
        f"the figure did not change within {timeout_s:.0f} s of moving the slider "
        f"(largest change seen: {largest:.3%} of its pixels; needed more than {min_change:.1%})"
    )


def save_cell_screenshot(cell, path: Path) -> None:
    """Keep a picture of the cell's whole output (controls and figures) as a test artifact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cell.locator(".jp-Cell-outputArea").first.screenshot(path=str(path), animations="disabled")
