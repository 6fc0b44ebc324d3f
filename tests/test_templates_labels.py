"""Text labels on pictures (render.images.draw_label) and lesson 1's labelled templates."""

from __future__ import annotations

import numpy as np
import pytest

from dlcourse_tui.engine.events import PictureReady
from dlcourse_tui.engine.session import execute, prepare_run
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.render.images import draw_label

GREY = 40


def _ink(a: np.ndarray) -> np.ndarray:
    """(rows, cols) of the pixels that are not the grey background."""
    return np.argwhere((a != GREY).any(axis=2))


def test_draw_label_draws_on_a_copy_and_keeps_the_shape() -> None:
    base = np.full((20, 80, 3), GREY, dtype=np.uint8)
    out = draw_label(base, "triangle", (2, 2))
    assert out.shape == base.shape and out.dtype == np.uint8
    assert (base == GREY).all()  # the input is untouched
    ink = _ink(out)
    assert len(ink) > 20
    assert ink[:, 0].min() >= 2 and ink[:, 1].min() >= 2  # "lt": the text's top-left at xy
    assert out.max() > 200  # light text on the dark grey


def test_draw_label_anchors_centre_and_clip() -> None:
    base = np.full((30, 100, 3), GREY, dtype=np.uint8)
    ink = _ink(draw_label(base, "ring", (50, 15), anchor="mm"))
    assert abs((ink[:, 1].min() + ink[:, 1].max()) / 2 - 50) <= 2  # centred on x
    assert abs((ink[:, 0].min() + ink[:, 0].max()) / 2 - 15) <= 2  # and on y
    right = _ink(draw_label(base, "ring", (99, 29), anchor="rb"))
    assert right[:, 1].max() <= 99 and right[:, 0].max() <= 29
    clipped = draw_label(base, "a long label running off the edge", (90, 5))
    assert clipped.shape == base.shape  # clipped, not grown


def test_draw_label_background_grey_input_and_bad_anchor() -> None:
    base = np.zeros((20, 60), dtype=np.uint8)  # grey (H, W) pixels come back RGB
    out = draw_label(base, "x", (30, 10), anchor="mm", background=(200, 0, 0), color=(255, 255, 255))
    assert out.shape == (20, 60, 3)
    assert ((out == (200, 0, 0)).all(axis=2)).sum() > 10  # the box behind the text
    assert (draw_label(base, "", (0, 0)) == 0).all()
    with pytest.raises(ValueError, match="anchor"):
        draw_label(base, "x", anchor="center")


def test_draw_label_folds_text_to_the_fonts_ascii() -> None:
    base = np.full((20, 80, 3), GREY, dtype=np.uint8)
    assert (draw_label(base, "café", (2, 2)) == draw_label(base, "cafe", (2, 2))).all()  # no missing-glyph box
    assert (draw_label(base, "猫", (2, 2)) == draw_label(base, "?", (2, 2))).all()


def _templates(sets: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    lesson = find_lesson("linear-classifier")
    cfg = lesson.config(sets=["n_train=100", "n_val=20", "batch_size=50", *sets], overrides={"train.epochs": 1})
    pictures: list[PictureReady] = []
    store, final = execute(prepare_run(cfg), [lambda e: pictures.append(e) if isinstance(e, PictureReady) else None])
    assert final.status == "completed"
    (pic,) = [p.pixels for p in pictures if p.name == "templates"]
    assert "templates" in {p.stem for p in store.record.pictures()}
    return pic, cfg.data


@pytest.mark.parametrize("data, side", [("shapes", 32), ("digits", 28)])
def test_the_templates_carry_their_class_names(data, side) -> None:
    pic, _ = _templates([f"data.name={data}"])
    cell = 3 * side  # each template enlarged 3 times
    unlabelled = (2 * cell + 6, 5 * cell + 4 * 6)  # 10 classes, 5 to a row, 6-pixel gaps
    assert pic.dtype == np.uint8 and pic.ndim == 3 and pic.shape[2] == 3
    assert pic.shape[1] == unlabelled[1]
    assert pic.shape[0] > unlabelled[0]  # taller: a label strip under each row of templates
    strip_h = (pic.shape[0] - 6) // 2 - cell
    assert 8 <= strip_h <= 40
    strips = [pic[cell:cell + strip_h, c * (cell + 6):c * (cell + 6) + cell] for c in range(5)]
    for strip in strips:
        assert len(np.unique(strip.reshape(-1, 3), axis=0)) > 2  # text, not a blank band
        assert strip.max() > 200  # light letters
    # five different class names: no two strips alike
    assert len({s.tobytes() for s in strips}) == 5
