"""The dashboards in a real browser: JupyterLab on 127.0.0.1, driven by headless Chromium.

The test writes notebooks into a temporary root directory, starts JupyterLab on them, opens each
in Debian's chromium (through Playwright, which downloads no browser), runs it with
Run > Run All Cells, moves a slider with the keyboard and checks, on the screenshot pixels, that
the figure is a real picture and that it changed. A screenshot of every widget's output is kept in
``artifacts/browser/``.

Without chromium the browser tests skip with the line that installs it; with ``CI=true`` they
fail instead, because CI installs chromium exactly as the README tells a user to.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ holds the `browser` helpers

from browser.jupyterlab_server import start_jupyterlab  # noqa: E402
from browser.lab_driver import (  # noqa: E402
    LabNotebook,
    blank_reason,
    changed_fraction,
    click_button,
    find_chromium,
    launch_chromium,
    move_slider,
    save_cell_screenshot,
    slider_in,
    slider_labels,
    wait_for_figure_change,
    wait_for_stable_figure,
)
from browser.notebooks import (  # noqa: E402
    DASHBOARD_CELLS,
    DASHBOARD_SETUP,
    HARNESS_CELLS,
    WidgetCell,
    write_dashboards_notebook,
    write_harness_notebook,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
INSTALL_CHROMIUM = "chromium not installed: run `sudo make system-deps` (apt-get install chromium)"
INSTALL_PLAYWRIGHT = "playwright not installed: run `pip install -e '.[dev]'` (no browser download needed)"


def skip_or_fail(reason: str) -> None:
    """Skip on a user's machine; under CI (CI=true) a browser test that cannot run is a failure."""
    if os.environ.get("CI", "").strip().lower() in {"true", "1"}:
        pytest.fail(f"{reason} [CI=true: the browser test must run, not skip]", pytrace=False)
    pytest.skip(reason)


# -- fixtures: one JupyterLab server and one browser for the whole module -------------------------
@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        skip_or_fail(INSTALL_CHROMIUM)
    return path


@pytest.fixture(scope="module")
def browser(chromium_path, tmp_path_factory):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail(INSTALL_PLAYWRIGHT)
    with sync_playwright() as playwright:
        context = launch_chromium(playwright, chromium_path, tmp_path_factory.mktemp("chromium-profile"))
        yield context
        context.close()


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lab-root")
    write_harness_notebook(root / "harness.ipynb")
    write_dashboards_notebook(root / "dashboards.ipynb")
    return root


@pytest.fixture(scope="module")
def lab(browser, lab_root, tmp_path_factory):
    server = start_jupyterlab(lab_root, tmp_path_factory.mktemp("lab-state"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """artifacts/browser/, emptied of earlier runs' screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


def opened_and_run(browser, lab, name: str, artifacts: Path) -> LabNotebook:
    """Open notebook ``name`` and Run All; on failure keep a screenshot of the whole page."""
    notebook = LabNotebook.open(browser, lab.notebook_url(name))
    try:
        notebook.run_all_cells()
    except Exception:
        notebook.page.screenshot(path=str(artifacts / f"{Path(name).stem}-run-all-FAILED.png"))
        raise
    return notebook


@pytest.fixture(scope="module")
def harness(browser, lab, artifacts):
    notebook = opened_and_run(browser, lab, "harness.ipynb", artifacts)
    yield notebook
    notebook.page.close()


@pytest.fixture(scope="module")
def dashboards(browser, lab, artifacts):
    notebook = opened_and_run(browser, lab, "dashboards.ipynb", artifacts)
    yield notebook
    notebook.page.close()


# -- the check every widget cell goes through -------------------------------------------------------
def check_slider_redraws_figure(
    notebook: LabNotebook, cell_index: int, widget: WidgetCell, artifacts: Path
) -> tuple[tuple[str, str], float]:
    """The cell ran cleanly and shows a figure, and moving its slider changes that figure.

    Returns the slider's readouts (before, after) and the fraction of figure pixels that changed.
    """
    cell = notebook.code_cell(cell_index)
    where = f"{widget.name} (code cell {cell_index})"
    if notebook.execution_count(cell) is None:
        earlier = [notebook.problems(notebook.code_cell(i)) for i in range(cell_index)]
        pytest.fail(f"{where} never ran; errors in earlier cells: {[p for p in earlier if p]}")
    assert not notebook.problems(cell), f"{where} shows errors: {notebook.problems(cell)}"

    before = wait_for_stable_figure(notebook, cell)
    for button in widget.clicks:  # a mode switch redraws the figure: wait for that first
        click_button(cell, button)
        before, _ = wait_for_figure_change(notebook, cell, before)
    save_cell_screenshot(cell, artifacts / f"{widget.name}-before.png")
    assert not notebook.problems(cell), f"{where} shows errors: {notebook.problems(cell)}"
    assert blank_reason(before) is None, f"{where} before the slider moved: {blank_reason(before)}"

    slider = slider_in(cell, widget.slider)
    assert slider.count() == 1, f"{where}: no slider {widget.slider!r}; sliders: {slider_labels(cell)}"
    readouts = move_slider(slider, widget.key)
    try:
        after, fraction = wait_for_figure_change(notebook, cell, before)
    except AssertionError as error:  # the browser console may say why (e.g. a widget JS error)
        raise AssertionError(f"{where}: {error}; console errors: {notebook.console_errors[-5:]}") from None
    finally:  # keep the picture of what the browser showed, pass or fail
        save_cell_screenshot(cell, artifacts / f"{widget.name}.png")
    assert not notebook.problems(cell), f"{where} after moving the slider: {notebook.problems(cell)}"
    assert blank_reason(after) is None, f"{where} after the slider moved {readouts}: {blank_reason(after)}"
    return readouts, fraction


# -- the test's eyes, without a browser -------------------------------------------------------------
def test_changed_fraction_counts_the_pixels_that_differ():
    before = Image.new("RGB", (10, 10), "white")
    after = before.copy()
    for x in range(5):  # 5 of 100 pixels turn black
        after.putpixel((x, 0), (0, 0, 0))
    after.putpixel((9, 9), (250, 250, 250))  # a 5-level wobble is noise, not a change
    assert changed_fraction([before], [after]) == pytest.approx(0.05)
    assert changed_fraction([before], [before.copy()]) == 0.0
    assert changed_fraction([before], [Image.new("RGB", (10, 11), "white")]) == 1.0  # resized
    assert changed_fraction([before], []) == 1.0  # the figure disappeared


def test_blank_reason_tells_a_figure_from_an_empty_picture():
    gradient = Image.new("RGB", (64, 64))
    gradient.putdata([(4 * x, 4 * y, 128) for y in range(64) for x in range(64)])
    assert blank_reason([gradient]) is None
    assert "no <img>" in blank_reason([])
    assert "single colour" in blank_reason([Image.new("RGB", (64, 64), "white")])
    two_colours = Image.new("RGB", (64, 64), "white")
    two_colours.paste((0, 0, 0), (0, 0, 32, 64))  # half black: only 2 colours, not a figure
    assert "single colour" in blank_reason([two_colours])
    assert blank_reason([Image.new("RGB", (64, 64), "white"), gradient]) is None  # one is enough


def test_every_dashboard_is_in_the_browser_notebook():
    import gradviz_lab.widgets as widgets

    assert sorted(cell.name for cell in DASHBOARD_CELLS) == sorted(widgets.DASHBOARDS)
    for cell in DASHBOARD_CELLS:  # each cell calls its own dashboard, imported by the setup cell
        factory = widgets.DASHBOARDS[cell.name].__name__
        assert cell.source.startswith(f"{factory}(") and factory in DASHBOARD_SETUP


# -- the harness in the browser: it sees changes, and it sees their absence ------------------------
@pytest.mark.browser
@pytest.mark.parametrize("index", [0, 1], ids=[cell.name for cell in HARNESS_CELLS[:2]])
def test_harness_sees_the_figure_follow_the_slider(harness, artifacts, index):
    widget = HARNESS_CELLS[index]
    (before, after), fraction = check_slider_redraws_figure(harness, index + 1, widget, artifacts)
    assert before != after
    assert fraction > 0.01, f"only {fraction:.4f} of the pixels changed"


@pytest.mark.browser
def test_harness_sees_a_figure_that_does_not_change(harness, artifacts):
    widget = HARNESS_CELLS[2]
    cell = harness.code_cell(3)
    before = wait_for_stable_figure(harness, cell)
    assert blank_reason(before) is None
    move_slider(slider_in(cell, widget.slider), widget.key)
    with pytest.raises(AssertionError, match="did not change"):
        wait_for_figure_change(harness, cell, before, timeout_s=4.0)
    save_cell_screenshot(cell, artifacts / f"{widget.name}.png")


@pytest.mark.browser
def test_harness_sees_an_error_in_a_cell(harness):
    planted = harness.code_cell(len(HARNESS_CELLS) + 1)
    assert any("planted error" in problem for problem in harness.problems(planted))
    assert harness.problems(harness.code_cell(1)) == []  # and none where there is none


# -- every dashboard of gradviz_lab.widgets ---------------------------------------------------------
@pytest.mark.browser
@pytest.mark.parametrize("index", range(len(DASHBOARD_CELLS)), ids=[cell.name for cell in DASHBOARD_CELLS])
def test_dashboard_shows_a_figure_that_follows_its_slider(dashboards, artifacts, index):
    """Acceptance: the dashboard renders in JupyterLab, its screenshot shows a figure, and the
    figure is redrawn (more than MIN_CHANGE of its pixels differ) when its slider moves."""
    widget = DASHBOARD_CELLS[index]
    (before, after), fraction = check_slider_redraws_figure(dashboards, index + 1, widget, artifacts)
    print(f"{widget.name}: slider {before} -> {after} ({widget.key}), {fraction:.1%} of pixels changed")


def test_save_button_writes_the_figure_next_to_the_notebook(dashboards, lab_root):
    """An instructor's click on "save PNG for slides" writes the figure on show into figures/
    beside the notebook (the kernel's working directory) and says where."""
    import time

    cell = dashboards.code_cell(1)
    before = set((lab_root / "figures").glob("*.png"))
    cell.locator(".gradviz-save").click()  # the button "save PNG for slides"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not set((lab_root / "figures").glob("*.png")) - before:
        time.sleep(0.2)
    new = sorted(set((lab_root / "figures").glob("*.png")) - before)
    assert len(new) == 1, f"no figure written in {lab_root / 'figures'}"
    assert new[0].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    cell.get_by_text(f"figures/{new[0].name}").wait_for(timeout=10_000)
    assert not dashboards.problems(cell), dashboards.problems(cell)
