"""Lessons that build on earlier runs ([needs.NAME] in experiment.toml): with nothing to build
on, the other lesson's default trains first, in its own run folder, and the run records which
run it used; later runs reuse it; `--from` names one, and a run that does not fit is one
sentence and exit 2; a resumed run keeps the run it was built on; the app does the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dlcourse_tui.engine.runs import find_run, list_runs
from dlcourse_tui.lessons import LessonError, builtin_lessons_dir, find_lesson, load_lesson

NEEDS = '\n[needs.init]\nlesson = "single-neuron"\nmatch = { "model.degree" = 1, "data.name" = "blobs" }\n' \
        'help = "a neuron trained on blobs, fine-tuned here"\n'
TINY = ["--set", "epochs=1", "--set", "n_train=40", "--set", "lr=0.00001", "--set", "threads=1"]


def make_finetune(root: Path, needs: str = NEEDS) -> Path:
    """A copy of the single-neuron lesson, id 'finetune', that starts from a single-neuron run."""
    dst = root / "91-finetune"
    dst.mkdir(parents=True)
    toml = (builtin_lessons_dir() / "02-single-neuron" / "experiment.toml").read_text()
    head, _, variants = toml.partition("[variants.")
    (dst / "experiment.toml").write_text(head + needs + "\n[variants." + variants)
    (dst / "lesson.md").write_text("---\nid: finetune\ntitle: Fine-tune\nchapter: 9\norder: 2\nsummary: s\n---\n# F\n")
    return root


@pytest.fixture
def finetune(tmp_path, monkeypatch):
    monkeypatch.setenv("DLC_LESSONS", str(make_finetune(tmp_path / "extra")))
    return find_lesson("finetune")


def weights(run_id: str) -> dict[str, torch.Tensor]:
    return torch.load(find_run(run_id).checkpoint, weights_only=True)["task"]["modules"]["model"]


def test_with_nothing_to_build_on_the_other_lessons_default_trains_first(finetune, dlc) -> None:
    r = dlc("run", "finetune", "--json", *TINY)
    assert r.code == 0, r.err
    summary = json.loads(r.out)  # one JSON document: the first run's summary is not printed
    assert "Lesson finetune builds on a completed single-neuron run (model.degree=1, data.name=blobs) (init: " \
           "a neuron trained on blobs, fine-tuned here). You have none yet" in " ".join(r.err.split())
    assert len(list_runs()) == 2
    first, second = (next(r for r in list_runs() if r.config["lesson"] == name) for name in ("single-neuron", "finetune"))
    assert first.config["lesson"] == "single-neuron" and first.status == "completed"
    assert first.config["train"]["epochs"] == 30  # its lesson's default, not this run's settings
    assert second.id == summary["run_id"] and second.config["upstream"] == {"init": first.id}
    assert f"init: builds on run {first.id}" in r.err
    # it started from the earlier run's weights: at lr 1e-5 one epoch barely moves them
    a, b = weights(first.id), weights(second.id)
    assert all(torch.allclose(a[k], b[k], atol=1e-3) for k in a) and any(a[k].abs().max() > 0.5 for k in a)
    again = dlc("run", "finetune", "--json", *TINY)  # the next run reuses it: nothing more is trained
    assert again.code == 0 and len(list_runs()) == 3 and "You have none yet" not in again.err
    assert find_run(json.loads(again.out)["run_id"]).config["upstream"] == {"init": first.id}


def test_from_names_the_run_and_one_that_does_not_fit_is_one_sentence(finetune, dlc) -> None:
    assert dlc("run", "single-neuron", *TINY).code == 0
    assert dlc("run", "single-neuron", *TINY, "--set", "degree=3").code == 0
    fits, cubic = sorted(list_runs(), key=lambda r: r.config["model"]["degree"])
    r = dlc("run", "finetune", "--from", cubic.id, *TINY)
    assert r.code == 2
    assert " ".join(r.err.split()) == (f"dlc: --from {cubic.id}: run {cubic.id} cannot be the init of lesson finetune: "
                                       "its model.degree is 3, not 1. Name a completed single-neuron run (model.degree=1, "
                                       "data.name=blobs), or drop --from to use (or train) one.")
    r = dlc("run", "finetune", "--from", fits.id, *TINY)
    assert r.code == 0, r.err
    other = next(r for r in list_runs() if r.config["lesson"] == "finetune")  # no single-neuron run
    assert other.config["upstream"] == {"init": fits.id}
    r = dlc("run", "finetune", "--from", other.id, *TINY)
    assert r.code == 2 and f"run {other.id} is a finetune run; lesson finetune builds on a single-neuron run." in r.err
    assert len(list_runs()) == 3  # refused runs wrote nothing
    r = dlc("run", "single-neuron", "--from", fits.id, *TINY)
    assert r.code == 2 and "lesson single-neuron builds on no earlier run; drop --from." in r.err


def test_a_resumed_run_keeps_the_run_it_was_built_on(finetune, dlc) -> None:
    from helpers import run_to_end

    assert dlc("run", "single-neuron", *TINY).code == 0
    base = list_runs()[0]
    r = dlc("run", "finetune", "--set", "epochs=3", "--set", "n_train=40", "--set", "batch_size=8", "--set", "log_every=1",
            "--set", "threads=1")
    assert r.code == 0
    # a newer single-neuron run
    assert dlc("run", "single-neuron", *TINY).code == 0
    from dlcourse_tui.engine.upstream import resolve_upstream

    config, missing = resolve_upstream(finetune.config(sets=["epochs=3", "n_train=40", "batch_size=8", "threads=1"]),
                                       finetune.needs)
    assert missing == [] and config.upstream["init"] != base.id  # a new run would use the newest
    store, final, _ = run_to_end(config, stop_after_step=6)
    assert final.status == "stopped"
    newest = config.upstream["init"]
    shutil.rmtree(find_run(base.id).path)  # resuming must not go looking for another run
    r = dlc("run", "finetune", "--resume", store.id)
    assert r.code == 0 and find_run(store.id).config["upstream"] == {"init": newest}
    assert dlc("run", "finetune", "--resume", store.id, "--from", newest).code == 2


def test_a_bad_needs_table_is_a_sentence_and_lesson_check_names_a_missing_lesson(tmp_path) -> None:
    root = make_finetune(tmp_path / "a", '\n[needs.init]\nmatch = { "model.degree" = 1 }\n')
    with pytest.raises(LessonError, match=r"needs.init: give the lesson it builds on, e\.g\. lesson = "):
        load_lesson(root / "91-finetune")
    root = make_finetune(tmp_path / "b", '\n[needs.init]\nlesson = "single-neuron"\nfrom = "x"\n')
    with pytest.raises(LessonError, match=r"needs.init.from: unknown key; allowed: help, lesson, match\."):
        load_lesson(root / "91-finetune")
    from dlcourse_tui.course.check import check_lesson

    root = make_finetune(tmp_path / "c", '\n[needs.init]\nlesson = "no-such-lesson"\n')
    report = check_lesson(load_lesson(root / "91-finetune"))
    assert any("needs.init: no lesson 'no-such-lesson'" in p for p in report.problems), report.problems


async def test_the_app_trains_what_a_lesson_builds_on_then_starts_it(finetune) -> None:
    from test_tui_walkthrough import wait_for

    from dlcourse_tui.tui.app import DLCApp
    from dlcourse_tui.tui.screens.dashboard import DashboardScreen

    app = DLCApp(preload_torch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        config = finetune.config(sets=["epochs=1", "n_train=40", "lr=0.00001", "threads=1"])
        first = app.start_run(config, finetune)
        assert first.config.lesson == "single-neuron" and first.then is not None
        await wait_for(pilot, lambda: len(app.runs) == 2, what="the run that builds on it")
        second = app.runs[1]
        assert isinstance(app.screen, DashboardScreen) and app.screen.handle is second
        await wait_for(pilot, lambda: second.phase == "completed", what="the second run")
        assert second.config.upstream == {"init": first.run_id}
        assert find_run(second.run_id).config["upstream"] == {"init": first.run_id}
        await wait_for(pilot, lambda: app.screen._diagnosed, what="the log to settle")
        from textual.widgets import RichLog

        log = "".join("".join(line.text for line in app.screen.query_one("#log", RichLog).lines).split())
        assert f"init:buildsonrun{first.run_id}" in log  # (compared without the wrapping's spaces)
