"""render/plot.py: the line chart the app and the CLI draw (numpy braille, axes, legend)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlcourse_tui.render.plot import (
    BRAILLE, LEGEND_BRAILLE, RAW, SERIES, chart_ansi, ema, plot, style_of,
)


def grid(chart) -> list[str]:  # noqa: ANN001
    lines = chart.lines()
    assert len(lines) == chart.height and all(len(line) == chart.width for line in lines)
    return lines


def plot_area(lines: list[str]) -> tuple[int, int, list[str]]:
    """(first row, first column, rows) of the area inside the frame."""
    top = next(i for i, line in enumerate(lines) if "┌" in line)
    bottom = next(i for i, line in enumerate(lines) if "└" in line)
    left = lines[top].index("┌") + 1
    right = lines[top].index("┐")
    return top + 1, left, [line[left:right] for line in lines[top + 1:bottom]]


def dots(cell: str) -> int:
    """How many braille dots a cell has (0 for anything else)."""
    code = ord(cell) - BRAILLE
    return bin(code).count("1") if 0 <= code < 256 else 0


def test_frame_title_ticks_and_xlabel() -> None:
    chart = plot([("train", list(range(10, 391)), [1.0 / (1 + i / 50) for i in range(381)])], 60, 14,
                 title="loss", xlabel="step")
    lines = grid(chart)
    assert lines[0].strip() == "loss"
    assert lines[-1].strip() == "step"
    top, left, area = plot_area(lines)
    assert len(area) == 14 - 5 and all(len(row) == 60 - left - 1 for row in area)
    # y ticks: the maximum on the top row, the minimum on the bottom row, marked with ┤
    first, last = lines[top], lines[top + len(area) - 1]
    assert first[left - 1] == "┤" and last[left - 1] == "┤"
    assert float(first[:left - 1]) == pytest.approx(1.0, abs=0.01)
    assert float(last[:left - 1]) == pytest.approx(1 / (1 + 380 / 50), abs=0.01)
    # x ticks: whole numbers from the first to the last step, under ┬ marks
    ticks = lines[-2].split()
    assert ticks[0] == "10" and ticks[-1] == "390" and all(t.isdigit() for t in ticks)
    bottom = lines[top + len(area)]
    assert bottom.count("┬") == len(ticks)
    for t in ticks:  # each label sits under its mark
        col = lines[-2].index(t) + (len(t) - 1) // 2
        assert "┬" in bottom[col - 1:col + 2]


def test_a_rising_line_goes_through_the_right_cells() -> None:
    chart = plot([("y", [0, 1], [0.0, 1.0])], 30, 12, title="", xlabel="")
    top, left, area = plot_area(grid(chart))
    h, w = len(area), len(area[0])
    assert area[-1][0] != " " and area[0][w - 1] != " "  # from the bottom left to the top right
    for c in range(w):  # one column of the diagonal has dots in the row its height says
        expected = round((1 - c / (w - 1)) * (h - 1))
        rows = [r for r in range(h) if dots(area[r][c])]
        assert rows and min(abs(r - expected) for r in rows) <= 1, (c, rows, expected)


def test_nan_and_inf_break_the_line_and_never_stretch_the_axes() -> None:
    xs = list(range(20))
    ys = [1.0] * 8 + [math.nan, math.inf] + [2.0] * 10
    chart = plot([("y", xs, ys)], 44, 10, title="", xlabel="")
    lines = grid(chart)
    top, left, area = plot_area(lines)
    labels = [float(line[:left - 1]) for line in lines[top:top + len(area)] if line[:left - 1].strip()]
    assert max(labels) == pytest.approx(2.0) and min(labels) == pytest.approx(1.0)  # inf is not the top
    w = len(area[0])
    gap = [c for c in range(w) if not any(dots(row[c]) for row in area)]
    lo, hi = round(7 / 19 * (w - 1)), round(10 / 19 * (w - 1))
    assert gap and all(lo <= c <= hi for c in gap)  # no dots between the last 1.0 and the first 2.0
    assert any(dots(row[0]) for row in area) and any(dots(row[w - 1]) for row in area)


def test_all_nan_series_and_no_series_give_empty_axes() -> None:
    for series in ([], [("y", [1, 2, 3], [math.nan] * 3)]):
        chart = plot(series, 40, 9, title="t")
        lines = grid(chart)
        _, _, area = plot_area(lines)
        assert all(not any(dots(c) for c in row) for row in area)
        assert "┌" in lines[1] and "└" in lines[-3]


def test_constant_series_and_single_point() -> None:
    chart = plot([("acc", [0, 1, 2, 3], [1.0, 1.0, 1.0, 1.0])], 40, 9)
    _, _, area = plot_area(grid(chart))
    rows = [r for r, row in enumerate(area) if any(dots(c) for c in row.replace(LEGEND_BRAILLE, ""))]
    assert len(rows) == 1 and 0 < rows[0] < len(area) - 1  # one flat row, inside the range
    chart = plot([("val", [5], [0.3])], 40, 9)
    lines = grid(chart)
    assert "•" in "".join(lines) and lines[-2].split() == ["5"]


def test_float_xs_get_float_ticks() -> None:
    chart = plot([("y", [0.0, 0.5, 1.0], [1, 2, 3])], 60, 8, xlabel="")
    ticks = [float(t) for t in lines_of_ticks(chart)]
    assert ticks[0] == 0.0 and ticks[-1] == 1.0 and len(ticks) >= 3
    assert np.allclose(np.diff(ticks), ticks[1] - ticks[0], atol=0.01)


def lines_of_ticks(chart) -> list[str]:  # noqa: ANN001
    return grid(chart)[-1].split()


def test_legend_names_the_series_and_avoids_the_data() -> None:
    x = list(range(100))
    falling = [1.0 - i / 100 for i in x]  # from the top left: the legend goes elsewhere
    chart = plot([("train", x, falling), ("val", x[::10], falling[::10])], 60, 14)
    lines = grid(chart)
    top, left, area = plot_area(lines)
    text = "\n".join(area)
    assert LEGEND_BRAILLE + " train" in text and " val" in text
    row = next(r for r, line in enumerate(area) if "train" in line)
    assert area[row].index("train") > len(area[0]) // 2  # top right, not over the curve's start
    assert [lab for lab, _sid, _mk in chart.curves] == ["train", "val"]


def test_without_colour_series_keep_apart_by_marker() -> None:
    x = list(range(50))
    chart = plot([("train", x, [i / 50 for i in x]), ("val", x, [1 - i / 50 for i in x])], 50, 12, mono=True)
    text = "\n".join(grid(chart))
    assert "xx val" in text and LEGEND_BRAILLE + " train" in text
    _, _, area = plot_area(grid(chart))
    assert sum(row.count("x") for row in area) > 20  # val drawn in x, a marker per cell
    assert any(dots(c) for row in area for c in row)  # train in braille
    assert chart_ansi(chart, color=False) == chart.plain() and "\x1b" not in chart.plain()


def test_colours_per_series_and_ansi() -> None:
    x = list(range(30))
    chart = plot([("a", x, x), ("b", x, x[::-1])], 40, 10)
    styles = {sid for row in chart.rows for _text, sid in row}
    assert {SERIES, SERIES + 1} <= styles
    assert style_of(SERIES, mono=False) != style_of(SERIES + 1, mono=False)
    assert style_of(SERIES, mono=True) is None
    out = chart_ansi(chart)
    assert "\x1b[" in out and len(out.split("\n")) == 10


def test_smoothing_draws_a_faint_raw_curve_under_the_ema() -> None:
    rng = np.random.default_rng(0)
    x = list(range(200))
    y = (np.linspace(1, 0, 200) + rng.normal(0, 0.1, 200)).tolist()
    chart = plot([("train", x, y)], 60, 14, smoothing=0.9)
    assert [(lab, sid) for lab, sid, _mk in chart.curves] == [(None, RAW), ("train", SERIES)]
    styles = {sid for row in chart.rows for _text, sid in row}
    assert RAW in styles and SERIES in styles
    mono = plot([("train", x, y)], 60, 14, smoothing=0.9, mono=True)
    assert "·" in mono.plain()
    assert ema([1.0, 1.0, 1.0], 0.6) == pytest.approx([1.0, 1.0, 1.0])  # debiased: a constant stays put
    assert math.isnan(ema([1.0, math.nan, 3.0], 0.5)[1])


def test_spikes_survive_downsampling() -> None:
    x = np.arange(20_000)
    y = np.zeros(20_000)
    y[12_345] = 10.0
    chart = plot([("loss", x, y)], 50, 10, title="", xlabel="")
    lines = grid(chart)
    top, left, area = plot_area(lines)
    assert float(lines[top][:left - 1]) == pytest.approx(10.0)
    assert any(dots(c) for c in area[0])  # the spike reaches the top row


def test_tiny_sizes_still_draw() -> None:
    for w, h in ((8, 3), (12, 5), (20, 6)):
        chart = plot([("y", [0, 1, 2], [0, 1, 0])], w, h, title="title", xlabel="step")
        assert len(grid(chart)) == max(3, h)


@pytest.mark.parametrize("height", range(6, 30))
def test_y_ticks_are_evenly_spread_with_both_ends_labelled(height: int) -> None:
    chart = plot([("y", [0, 1], [0.0, 1.0])], 40, height, title="t", xlabel="x")
    lines = grid(chart)
    top, left, area = plot_area(lines)
    rows = [r for r in range(len(area)) if lines[top + r][left - 1] == "┤"]
    assert rows[0] == 0 and rows[-1] == len(area) - 1
    gaps = np.diff(rows)
    assert gaps.max() - gaps.min() <= 1 and (gaps.min() >= 2 or gaps.max() == 1)  # never 1 beside 2
