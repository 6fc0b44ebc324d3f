"""render/: pixels to terminal cells, PNGs, colour maps, charts (no torch)."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from dlcourse_tui.render import chart, halfblock, images
from dlcourse_tui.render.chart import downsample, line_chart, sparkline
from dlcourse_tui.render.halfblock import ASCII_RAMP, UPPER_HALF, HalfBlockImage
from dlcourse_tui.render.images import (
    boundary_picture,
    chw_to_hwc,
    colormap,
    normalize_to_uint8,
    save_png,
    tile,
    to_rgb,
    upscale,
)

REPO = Path(__file__).resolve().parents[1]


def _random_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _cells(text) -> dict[tuple[int, int], tuple]:
    """(line, column) → (fg triplet, bg triplet or None) from a half-block Text."""
    lines = text.plain.split("\n")
    starts = np.cumsum([0] + [len(line) + 1 for line in lines[:-1]])
    out = {}
    for span in text.spans:
        for off in range(span.start, span.end):
            line = int(np.searchsorted(starts, off, side="right") - 1)
            col = off - int(starts[line])
            bg = span.style.bgcolor.triplet if span.style.bgcolor else None
            out[(line, col)] = (tuple(span.style.color.triplet), bg and tuple(bg))
    return out


def _render(renderable, **console_kw) -> str:
    buf = io.StringIO()
    console_kw.setdefault("no_color", False)  # the suite runs with NO_COLOR set; these tests choose
    Console(file=buf, force_terminal=True, **console_kw).print(renderable)
    return buf.getvalue()


# --- half blocks -------------------------------------------------------------------------


@pytest.mark.parametrize("h,w", [(8, 5), (7, 5), (1, 3), (64, 64)])
def test_halfblock_has_half_the_lines_and_one_cell_per_column(h: int, w: int) -> None:
    text = halfblock.halfblock(_random_rgb(h, w))
    lines = text.plain.split("\n")
    assert len(lines) == math.ceil(h / 2)
    assert all(line == UPPER_HALF * w for line in lines)


def test_halfblock_cell_colours_are_top_and_bottom_pixels() -> None:
    pix = _random_rgb(7, 6, seed=1)  # odd height: the last line has no bottom pixel
    cells = _cells(halfblock.halfblock(pix))
    assert cells[(0, 0)] == (tuple(pix[0, 0]), tuple(pix[1, 0]))
    assert len(cells) == 4 * 6
    for (line, col), (fg, bg) in cells.items():
        assert fg == tuple(pix[2 * line, col])
        if 2 * line + 1 < 7:
            assert bg == tuple(pix[2 * line + 1, col])
        else:
            assert bg is None


def test_halfblock_lines_are_the_same_cells_as_the_text() -> None:
    rng = np.random.default_rng(1)
    px = rng.integers(0, 4, (7, 9, 3), dtype=np.uint8) * 60  # few colours: runs of equal cells
    text = halfblock.halfblock(px, color=True)
    lines = halfblock.halfblock_lines(px, color=True)
    assert len(lines) == 4 and all(sum(seg.cell_length for seg in line) == 9 for line in lines)
    console = Console(width=20, color_system="truecolor", force_terminal=True)
    from_text = console.render_lines(text, console.options.update(width=9), pad=False)
    cells = lambda rows: [[(ch, seg.style) for seg in row for ch in seg.text] for row in rows]  # noqa: E731
    assert cells(lines) == cells(from_text)
    mono = halfblock.halfblock_lines(px, color=False)
    assert ["".join(s.text for s in line) for line in mono] == text_plain(halfblock.halfblock(px, color=False))


def text_plain(text) -> list[str]:  # noqa: ANN001
    return text.plain.split("\n")


def test_halfblock_merges_runs_of_equal_cells() -> None:
    pix = np.zeros((4, 10, 3), dtype=np.uint8)
    pix[:, 5:] = 200
    text = halfblock.halfblock(pix)
    assert len(text.spans) == 4  # two runs per line, two lines
    assert _cells(text)[(1, 9)] == ((200, 200, 200), (200, 200, 200))


def test_grayscale_input_is_rendered_as_grey() -> None:
    pix = np.array([[0, 255], [100, 7]], dtype=np.uint8)
    cells = _cells(halfblock.halfblock(pix))
    assert cells[(0, 0)] == ((0, 0, 0), (100, 100, 100))
    assert cells[(0, 1)] == ((255, 255, 255), (7, 7, 7))


@pytest.mark.parametrize("width", [1, 7, 20, 63])
def test_width_fitting_keeps_at_most_width_cells_and_the_aspect(width: int) -> None:
    text = halfblock.halfblock(_random_rgb(64, 64), width)
    lines = text.plain.split("\n")
    assert all(len(line) <= width for line in lines)
    assert len(lines[0]) == width
    assert len(lines) == math.ceil(max(1, round(64 * width / 64)) / 2)


def test_width_fitting_averages_boxes() -> None:
    pix = np.zeros((4, 8, 3), dtype=np.uint8)
    pix[:, 1::2] = 255  # alternating black and white columns
    fitted = halfblock.fit_width(pix, 4)
    assert fitted.shape == (2, 4, 3)
    assert np.all(np.abs(fitted.astype(int) - 128) <= 1)


def test_wider_width_leaves_image_alone_unless_grow() -> None:
    pix = _random_rgb(4, 10)
    assert len(halfblock.halfblock(pix, 50).plain.split("\n")[0]) == 10
    grown = halfblock.halfblock(pix, 35, grow=True).plain.split("\n")
    assert len(grown[0]) == 30 and len(grown) == 6  # factor 3


def test_no_colour_output_has_no_styles_and_follows_brightness() -> None:
    pix = np.zeros((4, 4), dtype=np.uint8)
    pix[:, 2:] = 255
    text = halfblock.halfblock(pix, color=False)
    assert text.spans == [] and not text.style
    assert text.plain.split("\n") == [" " * 2 + "@" * 2] * 2
    out = _render(text, color_system="truecolor")
    assert "\x1b" not in out and UPPER_HALF not in out
    assert set(halfblock.halfblock(_random_rgb(9, 9), color=False).plain) <= set(ASCII_RAMP + "\n")


def test_halfblock_image_fits_the_console_width() -> None:
    out = _render(HalfBlockImage(_random_rgb(40, 100)), width=30, color_system="truecolor")
    lines = out.rstrip("\n").split("\n")
    assert len(lines) == math.ceil(round(40 * 30 / 100) / 2)
    assert "\x1b[" in out and "38;2;" in out  # truecolour fg
    plain = Console(file=io.StringIO(), width=30)
    with plain.capture() as cap:
        plain.print(HalfBlockImage(_random_rgb(40, 100)))
    assert all(len(line) <= 30 for line in cap.get().splitlines())


@pytest.mark.parametrize("kw", [{"no_color": True, "color_system": "truecolor"}, {"color_system": None}])
def test_halfblock_image_without_colour_uses_the_ramp(kw: dict) -> None:
    out = _render(HalfBlockImage(_random_rgb(10, 12)), width=80, **kw)
    assert UPPER_HALF not in out and "38;2;" not in out
    assert len(out.rstrip("\n").split("\n")) == 5


def test_64x64_render_with_cold_caches_gives_a_style_per_cell() -> None:
    # every cell a new colour pair: the worst case (its speed is a benchmark's business, not a test's)
    pix = _random_rgb(64, 64, seed=3)
    halfblock._STYLE_CACHE.clear()
    halfblock._COLOR_CACHE.clear()
    text = halfblock.halfblock(pix)
    assert len(text.plain.split("\n")) == 32 and len(text.spans) == 32 * 64
    assert len(halfblock._STYLE_CACHE) == len({(tuple(pix[2 * r, c]), tuple(pix[2 * r + 1, c]))
                                               for r in range(32) for c in range(64)})


# --- images ------------------------------------------------------------------------------


def test_to_rgb_and_chw_to_hwc() -> None:
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    rgb = to_rgb(gray)
    assert rgb.shape == (2, 3, 3) and np.all(rgb[..., 2] == gray)
    chw = np.arange(24, dtype=np.uint8).reshape(3, 2, 4)
    hwc = chw_to_hwc(chw)
    assert hwc.shape == (2, 4, 3) and hwc[1, 2, 0] == chw[0, 1, 2] and hwc[0, 3, 2] == chw[2, 0, 3]
    assert chw_to_hwc(np.zeros((5, 1, 8, 9))).shape == (5, 8, 9, 1)
    assert to_rgb(np.array([[0.0, 1.0]])).tolist() == [[[0] * 3, [255] * 3]]


@pytest.mark.parametrize(
    "n,ncols,expect_shape",
    [(5, None, (2 * 4 + 1, 3 * 3 + 2, 3)), (5, 5, (4, 5 * 3 + 4, 3)), (1, None, (4, 3, 3)), (4, 2, (9, 7, 3))],
)
def test_tile_shape_arithmetic(n: int, ncols: int | None, expect_shape: tuple) -> None:
    imgs = np.stack([np.full((4, 3), 10 * (i + 1), dtype=np.uint8) for i in range(n)])
    grid = tile(imgs, ncols=ncols, pad=1, pad_value=40)
    assert grid.shape == expect_shape and grid.dtype == np.uint8
    cols = ncols or math.ceil(math.sqrt(n))
    for i in range(n):
        r, c = divmod(i, cols)
        assert np.all(grid[r * 5 : r * 5 + 4, c * 4 : c * 4 + 3] == 10 * (i + 1))
    if grid.shape[1] > 3:
        assert np.all(grid[:, 3] == 40)  # the gap after the first column


def test_upscale_repeats_pixels() -> None:
    pix = _random_rgb(3, 2)
    big = upscale(pix, 3)
    assert big.shape == (9, 6, 3)
    assert np.array_equal(big[::3, ::3], pix) and np.array_equal(big[2::3, 2::3], pix)


def test_colormap_diverging_is_symmetric_around_zero() -> None:
    ext = colormap(np.array([[-2.0, 0.0, 1.0]]))  # scale = max |value| = 2
    assert tuple(ext[0, 0]) == (33, 102, 172)  # full blue at -2
    assert tuple(ext[0, 1]) == (247, 247, 247)  # white at 0 even though data is skewed
    assert tuple(ext[0, 2]) == (244, 165, 130)  # +1 is half-way to red, like -1 to blue
    sym = colormap(np.array([[-1.0, 1.0]]), vmin=-2, vmax=2)
    assert tuple(sym[0, 0]) == (146, 197, 222) and tuple(sym[0, 1]) == (244, 165, 130)
    flipped = colormap(np.array([[2.0, 0.0, -1.0]]))  # negating the data mirrors the stops
    assert tuple(flipped[0, 0]) == (178, 24, 43) and tuple(flipped[0, 2]) == (146, 197, 222)
    c = colormap(np.linspace(-3, 3, 13).reshape(1, -1)).astype(int)
    assert np.all(c[0, :6, 2] > c[0, :6, 0]) and np.all(c[0, 7:, 0] > c[0, 7:, 2])


def test_colormap_sequential_and_nan() -> None:
    v = np.array([[0.0, 0.5, 1.0, np.nan]])
    c = colormap(v, kind="viridis")
    assert tuple(c[0, 0]) == (68, 1, 84) and tuple(c[0, 2]) == (253, 231, 37)
    assert tuple(c[0, 3]) == (40, 40, 40)
    assert colormap(np.ones((2, 2)), kind="viridis").shape == (2, 2, 3)
    with pytest.raises(ValueError):
        colormap(v, kind="rainbow")


def test_normalize_to_uint8() -> None:
    out = normalize_to_uint8(np.array([[-1.0, 0.0, 3.0]]))
    assert out.dtype == np.uint8 and out.tolist() == [[0, 64, 255]]
    assert np.all(normalize_to_uint8(np.full((3, 3), 7.5)) == 128)
    with np.errstate(all="raise"):
        assert normalize_to_uint8(np.array([np.nan, 1.0, 2.0])).tolist() == [0, 0, 255]


@pytest.mark.parametrize("shape", [(5, 7, 3), (6, 4)])
def test_save_png_round_trips_exactly_and_leaves_no_temp_files(tmp_path: Path, shape: tuple) -> None:
    from PIL import Image

    pix = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    target = tmp_path / "a" / "b" / "pic.png"
    returned = save_png(pix, target)
    assert returned == target and target.is_file()
    with Image.open(target) as img:
        assert np.array_equal(np.asarray(img), pix)
    assert sorted(p.name for p in target.parent.iterdir()) == ["pic.png"]


def test_save_png_failure_leaves_no_temp_and_keeps_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "pic.png"
    save_png(np.zeros((2, 2), np.uint8), target)
    before = target.read_bytes()

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(images.os, "replace", boom)
    with pytest.raises(OSError):
        save_png(np.full((2, 2), 255, np.uint8), target)
    assert [p.name for p in tmp_path.iterdir()] == ["pic.png"]
    assert target.read_bytes() == before


def test_boundary_picture_regions_contour_and_points() -> None:
    g = 20
    probs = np.zeros((g, g))
    probs[:, g // 2 :] = 1.0  # left half class 0, right half class 1
    points = np.array([[2.0, 3.0], [15.0, 15.0]])
    pic = boundary_picture(probs, points, np.array([0, 1]), 100)
    assert pic.shape == (100, 100, 3) and pic.dtype == np.uint8
    left, right = pic[50, 20].astype(int), pic[50, 80].astype(int)
    assert left[2] > left[0] and right[0] > right[2]  # blue-ish vs orange-ish tint
    row = pic[90].astype(int).sum(axis=1)
    assert row[45:55].min() < 300 and row[40] > 500  # a dark contour near the middle
    px = lambda v: int(round((v + 0.5) * 100 / g - 0.5))  # noqa: E731
    assert tuple(pic[px(3.0), px(2.0)]) == images.CLASS_COLORS[0]
    assert tuple(pic[px(15.0), px(15.0)]) == images.CLASS_COLORS[1]


def test_data_to_grid_puts_y_up() -> None:
    pts = images.data_to_grid(np.array([[0.0, 0.0], [1.0, 1.0]]), (0.0, 1.0), (0.0, 1.0), 11)
    assert pts.tolist() == [[0.0, 10.0], [10.0, 0.0]]


# --- charts ------------------------------------------------------------------------------


def test_downsample_bounds_count_and_keeps_first_last_and_spikes() -> None:
    x = np.arange(10_000)
    y = np.sin(x / 300.0)
    y[4321] = 50.0
    y[777] = -50.0
    y[5000] = np.nan
    dx, dy = downsample(x, y, 100)
    assert len(dx) == len(dy) <= 100
    assert dx[0] == 0 and dx[-1] == 9999
    assert 50.0 in dy and -50.0 in dy
    assert not any(math.isnan(v) for v in dy)
    assert dx == sorted(dx)
    assert downsample([1, 2, 3], [4, 5, 6], 10) == ([1, 2, 3], [4.0, 5.0, 6.0])


def test_line_chart_plain_and_coloured() -> None:
    x = list(range(500))
    series = {"train": (x, [1 / (i + 1) for i in x]), "val": (x[::50], [0.5] * 10)}
    plain = line_chart(series, width=50, height=12, title="Loss curve", color=False)
    assert isinstance(plain, str) and "Loss curve" in plain and "\x1b" not in plain
    assert "train" in plain and "val" in plain
    assert len(plain.rstrip("\n").split("\n")) == 12
    coloured = line_chart(series, width=50, height=12, title="Loss curve")
    assert "\x1b[" in coloured


def test_line_chart_downsamples_long_series_and_survives_nan() -> None:
    n = 200_000
    y = np.random.default_rng(0).random(n)
    y[10] = np.nan
    out = line_chart({"loss": (np.arange(n), y)}, width=60, height=15, color=False)
    lines = out.split("\n")
    assert "loss" in out and len(lines) == 15 and all(len(line) == 60 for line in lines)
    assert lines[-2].split()[0] == "0" and lines[-2].split()[-1] == str(n - 1)  # whole-number ticks, all points


def test_sparkline() -> None:
    s = sparkline([0, 1, 2, 3, 4, 5, 6, 7])
    assert s == chart.SPARK_CHARS
    assert sparkline([1.0, float("nan"), 3.0]) == "▁ █"
    assert sparkline([2, 2, 2]) == "▄▄▄"
    assert sparkline([]) == ""
    assert len(sparkline(range(1000), width=30)) == 30


# --- import hygiene ----------------------------------------------------------------------


def test_render_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import dlcourse_tui.render, dlcourse_tui.render.halfblock, "
        "dlcourse_tui.render.images, dlcourse_tui.render.chart\n"
        "from dlcourse_tui.render import HalfBlockImage, line_chart, tile\n"
        "from dlcourse_tui.render.halfblock import halfblock\n"
        "import numpy as np\n"
        "halfblock(np.zeros((4, 4, 3), np.uint8)); line_chart({'a': ([0, 1], [0, 1])})\n"
        "print('torch' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
