"""The timing loop the dashboard benchmarks share: move one control through values not shown yet,
and time each change from ``control.value = v`` to the new PNG.

    from dashboard_timing import row, timed_changes, values_for
    times = timed_changes(dash, "gamma", [0.1, 0.2, 0.3], repeats=5)   # cache emptied before each
    line, missed = row("shapes gamma", times, goal=0.150)
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Iterable


def timed_changes(dash, control: str, values: Iterable, repeats: int, clear: bool = True,
                  skip: Callable[[BaseException], bool] | None = None) -> list[float]:
    """Wall seconds of ``repeats`` changes of ``control`` (each a fresh computation when ``clear``:
    the dashboard's result cache is emptied first). A value equal to the one on show is passed
    over; an error the dashboard shows is raised here, unless ``skip(error)`` says it is a value
    the dashboard rightly refuses (that change is not counted). The first change is not returned:
    it warms up torch and matplotlib."""
    values = list(values)
    times = []
    for value in itertools.islice(itertools.cycle(values), 3 * repeats + 2):
        if dash.controls[control].value == value:
            continue
        if clear:
            dash.cache.clear()
        renders = dash.renders
        start = time.perf_counter()
        dash.controls[control].value = value
        elapsed = time.perf_counter() - start
        if dash.last_error is not None:
            if skip is not None and skip(dash.last_error):
                continue
            raise RuntimeError(f"{control}={value!r}: {dash.last_error!r}")
        assert dash.renders == renders + 1, "the change did not redraw"
        times.append(elapsed)
        if len(times) == repeats + 1:
            break
    return times[1:]


def values_for(dash, values) -> list:
    """"classes" and "images" stand for every class and every image of the dashboard."""
    if values == "classes":
        return list(range(len(dash.class_names)))
    if values == "images":
        return list(range(len(dash.images)))
    return list(values)


def row(label: str, times: list[float], goal: float, judge: bool = True,
        width: int = 58) -> tuple[str, bool]:
    """One line of a benchmark's table (label, median, max, goal, verdict) and whether the median
    missed the goal (never when ``judge`` is False: a loaded machine is shown, not judged)."""
    median = statistics.median(times)
    missed = judge and median > goal
    verdict = ("SLOW" if missed else "ok") if judge else ""
    return (f"{label:{width}s} {1000 * median:5.0f}ms {1000 * max(times):5.0f}ms "
            f"{1000 * goal:4.0f}ms {verdict}"), missed


def print_table(header: str, rows: Iterable[tuple[str, list[float], float]], judge: bool = True) -> int:
    """Print a table of (label, times, goal) rows under ``header``; returns the goals missed."""
    print(f"{header:58s} {'median':>7s} {'max':>7s} {'goal':>6s}")
    missed = 0
    for label, times, goal in rows:
        line, slow = row(label, times, goal, judge=judge)
        missed += slow
        print(line)
    return missed
