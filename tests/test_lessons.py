"""Lessons load, validate with file-and-key errors, and each one trains two steps."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dlcourse_tui.engine.events import StepEnded
from dlcourse_tui.engine.session import execute, prepare_run
from dlcourse_tui.lessons import LessonError, broken_lessons, find_lesson, load_lessons

LESSONS = load_lessons()


def test_chapter_one_is_there_in_order() -> None:
    ch1 = [l.id for l in LESSONS if l.chapter == 1]
    assert ch1[:3] == ["linear-classifier", "single-neuron", "mlp-backprop"]
    for lesson in LESSONS:
        assert lesson.title and lesson.body.strip() and lesson.summary


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda l: l.id)
@pytest.mark.parametrize("variant", ["", "*"])
def test_every_lesson_and_variant_runs_two_steps(lesson, variant) -> None:
    variants = list(lesson.variants) if variant else [""]
    for v in variants:
        cfg = lesson.config(variant=v, sets=["n_train=100", "n_val=16", "batch_size=16", "log_every=1"],
                            overrides={"train.epochs": 1})
        steps = []
        stop = threading.Event()

        def listen(e):
            if isinstance(e, StepEnded):
                steps.append(e)
                if e.step >= 2:
                    stop.set()

        _, final = execute(prepare_run(cfg), [listen], stop_event=stop)
        assert [s.step for s in steps] == [1, 2], (lesson.id, v)
        assert all(s.metrics["loss"] == s.metrics["loss"] for s in steps)  # not NaN
        assert final.step == 2


def test_find_lesson_by_prefix_slug_and_number() -> None:
    assert find_lesson("linear").id == "linear-classifier"
    assert find_lesson("02-single-neuron").id == "single-neuron"
    assert find_lesson("mlp").id == "mlp-backprop"


def _lesson_dir(tmp_path: Path, toml: str, front: str = "id: t\ntitle: T\nchapter: 9\norder: 1", *,
                name: str = "99-t") -> Path:
    d = tmp_path / "extra" / name
    d.mkdir(parents=True)
    (d / "lesson.md").write_text(f"---\n{front}\n---\n# T\n")
    (d / "experiment.toml").write_text(toml)
    return tmp_path / "extra"


GOOD = 'task = "classify"\n[model]\nname = "linear"\n[data]\nname = "blobs"\n'


def test_a_teachers_lesson_folder_is_loaded(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DLC_LESSONS", str(_lesson_dir(tmp_path, GOOD)))
    assert "t" in [l.id for l in load_lessons()]


@pytest.mark.parametrize("toml, front, message", [
    ('task = "classify"\n[model]\nname = "linear"\n[train]\nlr = "x"\n', None, "train.lr: expected float"),
    ('task = "clasify"\n[model]\nname = "linear"\n', None, "task: must be one of classify"),
    ('task = "classify"\n[modell]\nname = "linear"\n', None, "modell: unknown key. Did you mean: model"),
    (GOOD + '[knobs]\n"train.lr" = { type = "float", min = 1.0, max = 2.0 }\n', None, "the default does not fit the knob"),
    (GOOD + '[knobs]\n"train.lr" = { type = "float", min = 2.0, max = 1.0 }\n', None,
     "knobs.'train.lr': min = 2.0 is greater than max = 1.0; swap them."),
    (GOOD + '[variants.v]\ntrain.lrr = 1\n', None, "variants.v.train.lrr: no such setting"),
    (GOOD + "[train\n", None, "not valid TOML"),
    (GOOD, "id: t\ntitle: T\nchapter: one\norder: 1", "chapter and order must be whole numbers"),
    (GOOD, "id: t\nchapter: 1\norder: 1", "front matter lacks 'title'"),
    ('task = "classify"\nmodels = ["linear", "cnnn"]\n[model]\nname = "linear"\n', None,
     "models: no model 'cnnn'. Did you mean: cnn"),
    ('task = "classify"\nmodels = ["linear", "dcgan"]\n[model]\nname = "linear"\n', None,
     "models: 'dcgan' is a gan model, but this lesson's task is classify."),
    ('task = "classify"\n[model]\nname = "lineer"\n', None, "models: no model 'lineer'. Did you mean: linear"),
])
def test_malformed_lessons_are_skipped_naming_the_file_and_the_key(tmp_path, monkeypatch, toml, front, message) -> None:
    root = _lesson_dir(tmp_path, toml, *([front] if front else []))
    monkeypatch.setenv("DLC_LESSONS", str(root))
    assert [l.id for l in load_lessons()] == [l.id for l in LESSONS]  # the built-in lessons still load
    [bad] = broken_lessons()
    assert message in bad.message and "99-t" in bad.message, bad.message


def test_non_utf8_bytes_a_byte_order_mark_and_a_duplicate_id(tmp_path, monkeypatch) -> None:
    root = _lesson_dir(tmp_path, GOOD, name="97-latin1")
    (root / "97-latin1" / "lesson.md").write_bytes(b"---\nid: latin\ntitle: Caf\xe9\nchapter: 9\norder: 1\n---\n")
    _lesson_dir(tmp_path, GOOD, "id: bom\ntitle: T\nchapter: 9\norder: 2", name="98-bom")
    md = root / "98-bom" / "lesson.md"
    md.write_bytes(b"\xef\xbb\xbf" + md.read_bytes())
    _lesson_dir(tmp_path, GOOD, "id: linear-classifier\ntitle: T\nchapter: 9\norder: 3", name="99-dup")
    monkeypatch.setenv("DLC_LESSONS", str(root))
    assert "bom" in [l.id for l in load_lessons()]  # a BOM is not "missing front matter"
    faults = {b.folder.name: b.message for b in broken_lessons()}
    assert set(faults) == {"97-latin1", "99-dup"}
    assert faults["97-latin1"].endswith("lesson.md:3: not UTF-8 text (a byte 0xe9); save the file as UTF-8.")
    assert "id 'linear-classifier' is already used by" in faults["99-dup"]
    assert find_lesson("linear-classifier").folder.name == "01-linear-classifier"
    with pytest.raises(LessonError, match="is broken and was skipped: .*not UTF-8"):
        find_lesson("97-latin1")


def test_lesson_folders_agree_with_the_model_catalog() -> None:
    from dlcourse_tui.models.catalog import MODELS

    for lesson in LESSONS:
        for name in lesson.models:
            assert MODELS[name][0] == lesson.task, (lesson.id, name)


async def test_the_app_starts_past_a_broken_lesson_and_names_it(tmp_path, monkeypatch) -> None:
    from dlcourse_tui.tui.app import DLCApp
    from dlcourse_tui.tui.screens.browser import BrowserScreen

    root = _lesson_dir(tmp_path, GOOD + "[train\n")
    monkeypatch.setenv("DLC_LESSONS", str(root))
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, BrowserScreen) and app.screen.lesson.id == "linear-classifier"
        messages = [str(n.message) for n in app._notifications]
        assert any("99-t" in m and "not valid TOML" in m for m in messages), messages
        await pilot.press("down")
        assert app.screen.lesson.id == "single-neuron"
