"""Walkthrough steps and prediction questions: the block format, `dlc lesson check`,
steps ticking from the run store, hints, progress that survives, predictions marked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dlcourse_tui.course.blocks import BlockError
from dlcourse_tui.course.walkthrough import Walkthrough
from dlcourse_tui.lessons import builtin_lessons_dir, find_lesson, load_lessons

STEPS = '''
Some text before.

```step
id = "first-run"
do = "Run the experiment as it is."
command = "dlc run walk"
done = "run completed"
hints = ["Press r in the browser.", "Or run it headless."]
notice = "Blobs are easy for a straight line."
```

```question
id = "overfit-gap"
ask = "With degree-8 features on 40 moons, will val accuracy be above or below the blobs run's?"
choices = ["above", "below"]
answer = "below"
explain = "Forty noisy points and many features: the boundary follows the noise."
before = "variant overfit"
observed = { below = "metric val_acc < previous", above = "metric val_acc >= previous" }
```

```step
id = "overfit"
do = "Now run the overfit variant."
command = "dlc run walk --variant overfit"
done = "run completed with variant overfit and metric val_acc < previous"
```

```step
id = "decay"
do = "Turn weight decay up and run again."
done = "run completed with knob weight_decay > 0"
```

```question
id = "sigmoid-half"
ask = "What is sigmoid(0)?"
answer = 0.5
tolerance = 0.01
explain = "e^0 = 1, so 1 / (1 + 1)."
```
'''


def make_lesson(root: Path, body: str = STEPS, name: str = "90-walk") -> Path:
    """A copy of the single-neuron lesson with `body` as its text, id 'walk'."""
    src = builtin_lessons_dir() / "02-single-neuron"
    dst = root / name
    dst.mkdir(parents=True)
    shutil.copy(src / "experiment.toml", dst / "experiment.toml")
    (dst / "lesson.md").write_text("---\nid: walk\ntitle: A walk\nchapter: 9\norder: 1\nsummary: s\n---\n# Walk\n" + body)
    return root


@pytest.fixture
def walk_lesson(tmp_path, monkeypatch):
    monkeypatch.setenv("DLC_LESSONS", str(make_lesson(tmp_path / "extra")))
    return find_lesson("walk")


def tiny_run(lesson, *sets: str, variant: str = "", epochs: int = 2):
    """A run of 40 points; the default (blobs) for 30 epochs is all but perfect on its val
    points, the overfit variant's 2 epochs on moons are far from it."""
    from dlcourse_tui.engine.session import execute, prepare_run

    epochs = 30 if not variant and epochs == 2 else epochs
    base = ["n_train=40", "n_val=40", "batch_size=40", f"epochs={epochs}", "eval_every=1", "log_every=1", "threads=1"]
    store, final = execute(prepare_run(lesson.config(variant=variant, sets=[*base, *sets])), [])
    assert final.status == "completed"
    return store.id


def test_blocks_parse_and_read_as_paragraphs(walk_lesson) -> None:
    walk = Walkthrough(walk_lesson)
    assert [s.id for s in walk.steps] == ["first-run", "overfit", "decay"]
    assert [q.id for q in walk.blocks.questions] == ["overfit-gap", "sigmoid-half"]
    assert walk.steps[0].line == 12  # the fence's line in the file: 7 of front matter, the title, 3 more
    text = walk_lesson.reading
    assert "```step" not in text and "**Step 1.** Run the experiment as it is. Headless: `dlc run walk`." in text
    assert "**Predict.** With degree-8" in text and "(above / below)" in text and "Forty noisy" not in text


def test_steps_tick_in_order_from_the_run_store_and_progress_survives(walk_lesson) -> None:
    walk = Walkthrough(walk_lesson)
    assert walk.advance_while_done() == [] and walk.current.id == "first-run"
    assert walk.views()[0].unmet == ("run completed",)
    tiny_run(walk_lesson)
    assert walk.check() == ["first-run"]
    assert walk.next().id == "overfit"
    assert walk.views()[1].unmet == ("run completed with variant overfit", "metric val_acc < previous")
    tiny_run(walk_lesson, variant="overfit")
    assert Walkthrough(walk_lesson).progress.done == ["first-run"]  # saved; the new step waits for a check
    again = Walkthrough(walk_lesson)  # a restart: position and ticks come back from the file
    assert again.current.id == "overfit" and again.check() == ["overfit"]
    again.next()
    assert again.current.id == "decay" and again.check() == []
    tiny_run(walk_lesson, "weight_decay=0.1")
    assert again.check() == ["decay"] and again.next() is None and again.finished


def test_hints_come_one_at_a_time_and_reset_forgets_everything(walk_lesson) -> None:
    walk = Walkthrough(walk_lesson)
    assert walk.hint() == "Press r in the browser."
    assert Walkthrough(walk_lesson).views()[0].hints_shown == ("Press r in the browser.",)
    assert walk.hint() == "Or run it headless." and walk.hint() is None
    walk.reset()
    fresh = Walkthrough(walk_lesson)
    assert fresh.views()[0].hints_shown == () and not fresh.progress.path.exists()


def test_a_prediction_is_asked_before_its_run_and_marked_after_it(walk_lesson) -> None:
    walk = Walkthrough(walk_lesson)
    plain = walk_lesson.config().to_dict()
    overfit = walk_lesson.config(variant="overfit").to_dict()
    assert walk.questions_before(plain) == []
    [q] = walk.questions_before(overfit)
    assert q.id == "overfit-gap"
    tiny_run(walk_lesson)
    walk.answer(q, "above")
    assert walk.progress.answers["overfit-gap"].right is None  # hidden until the run ends
    assert walk.questions_before(overfit) == []  # asked once
    run_id = tiny_run(walk_lesson, variant="overfit")
    [(marked, answer)] = Walkthrough(walk_lesson).reveal_after(run_id)
    assert marked.id == "overfit-gap" and answer.right is False and answer.run == run_id
    assert answer.observed in ("below", "above")  # what the learner's own runs showed


def test_a_question_not_tied_to_a_run_is_marked_at_once(walk_lesson) -> None:
    walk = Walkthrough(walk_lesson)
    q = walk.blocks.questions[1]
    assert walk.answer(q, "0.505").right is True
    assert not q.is_right("0.6") and not q.is_right("half")


def test_dlc_tutorial_without_and_with_the_runs_a_step_needs(dlc, walk_lesson) -> None:
    r = dlc("tutorial", "walk")
    assert r.code == 0, r.err
    assert "→ 1. Run the experiment as it is." in r.out and "still to do: run completed" in r.out
    assert "run: dlc run walk" in r.out and "(a hint: dlc tutorial walk --hint)" in r.out
    tiny_run(walk_lesson)
    r = dlc("tutorial", "walk", "--hint")
    assert "✓ 1. Run the experiment as it is. (just now)" in r.out
    assert "notice: Blobs are easy" in r.out
    assert "Now: Now run the overfit variant." in r.out and "run: dlc run walk --variant overfit" in r.out
    state = json.loads(dlc("tutorial", "walk", "--json").out)
    assert [s["state"] for s in state["steps"]] == ["done", "current", "todo"]
    assert state["steps"][1]["unmet"] == ["run completed with variant overfit", "metric val_acc < previous"]
    assert state["questions"][0] == {"id": "overfit-gap", "ask": state["questions"][0]["ask"], "choices": ["above", "below"],
                                     "before": "variant overfit", "answered": False}
    r = dlc("tutorial", "walk", "--answer", "sigmoid-half=0.5", "--json")
    revealed = json.loads(r.out)["questions"][1]
    assert revealed["right"] is True and revealed["answer"] == 0.5
    assert dlc("tutorial", "walk", "--answer", "overfit-gap=maybe").err.strip() == \
        "dlc: --answer overfit-gap=maybe: choose one of above, below."
    assert dlc("tutorial", "walk", "--reset", "--yes").code == 0
    assert json.loads(dlc("tutorial", "walk", "--json").out)["steps"][0]["state"] == "done"  # the run is still there


def test_dlc_run_predict_asks_then_marks(dlc, walk_lesson, monkeypatch) -> None:
    import sys

    import typer

    tiny_run(walk_lesson)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    answers = iter(["sideways", "below"])  # a wrong word is asked again
    monkeypatch.setattr(typer, "prompt", lambda *a, **k: next(answers))
    r = dlc("run", "walk", "--variant", "overfit", "--predict", "--set", "n_train=40", "--set", "epochs=2",
            "--set", "eval_every=1", "--set", "threads=1")
    assert r.code == 0, r.err
    assert "Predict: With degree-8" in r.err
    assert "you said 'below': right" in r.out and "your run showed:" in r.out


def test_dlc_run_predict_without_a_terminal_is_one_sentence(dlc, walk_lesson) -> None:
    r = dlc("run", "walk", "--variant", "overfit", "--predict")
    assert r.code == 2 and "--predict asks its questions on a terminal" in r.err


MALFORMED = [
    ("```step\nid = \"a\"\ndo = \"x\"\ndone = \"run completed\"\n[oops\n```\n", "step: not valid TOML"),
    ("```step\ndo = \"x\"\ndone = \"run completed\"\n```\n", "step: needs id = \"a-stable-name\""),
    ("```step\nid = \"A b\"\ndo = \"x\"\ndone = \"run completed\"\n```\n", "needs id = \"a-stable-name\""),
    ("```step\nid = \"a\"\ndo = \"x\"\ndone = \"run completed\"\n```\n```step\nid = \"a\"\ndo = \"y\"\n"
     "done = \"run failed\"\n```\n", "step 'a': the id is already used by the block at line"),
    ("```step\nid = \"a\"\ndo = \"x\"\ndone = \"run completed\"\nhint = [\"h\"]\n```\n", "step 'a': unknown key 'hint'"),
    ("```step\nid = \"a\"\ndo = \"x\"\n```\n", "step 'a': needs done = \"...\""),
    ("```step\nid = \"a\"\ndo = \"x\"\ndone = \"run finished\"\n```\n", "step 'a': done: 'run finished': write it as 'run STATE'"),
    ("```step\nid = \"a\"\ndo = \"x\"\ndone = \"knob lrr > 1\"\n```\n", "step 'a': done: lesson walk has no setting 'lrr'"),
    ("```step\nid = \"a\"\ndo = \"x\"\ndone = \"screen charts viewed\"\n```\n", "done: 'screen charts viewed': no screen 'charts'"),
    ("```step\nid = \"a\"\ndo = \"x\"\ndone = \"run completed with model cnn\"\n```\n",
     "step 'a': done: the lesson has no model 'cnn' (it has neuron)."),
    ("```step\nid = \"a\"\ndo = \"x\"\ndone = \"variant overfitt chosen\"\n```\n", "the lesson has no variant 'overfitt'"),
    ("```step\nid = \"a\"\ndo = \"x\"\ndone = \"model neuron picked\"\n```\n",
     "'model neuron picked' is already true when the lesson is opened"),
    ("```step\nid = \"a\"\ndo = \"x\"\ndone = \"metric accuracy > 0.5\"\n```\n", "metric 'accuracy': a run's metrics are named"),
    ("```question\nid = \"q\"\nask = \"?\"\nchoices = [\"a\", \"b\"]\nanswer = \"c\"\nexplain = \"e\"\n```\n",
     "question 'q': the answer 'c' is not one of the choices"),
    ("```question\nid = \"q\"\nask = \"?\"\nexplain = \"e\"\n```\n", "question 'q': needs an answer"),
    ("```question\nid = \"q\"\nask = \"?\"\nanswer = \"x\"\nexplain = \"e\"\n```\n", "without choices the answer is a number"),
    ("```question\nid = \"q\"\nask = \"?\"\nchoices = [\"a\", \"b\"]\nanswer = \"a\"\nexplain = \"e\"\n"
     "before = \"variant nope\"\n```\n", "question 'q': before: the lesson has no variant 'nope'"),
]


@pytest.mark.parametrize("block, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_lesson_check_rejects_each_malformed_block_naming_file_block_and_fault(dlc, tmp_path, block, message) -> None:
    root = make_lesson(tmp_path / "extra", body="\n" + block)
    r = dlc("lesson", "check", str(root / "90-walk"))
    assert r.code == 1, (r.out, r.err)
    assert f"{root / '90-walk' / 'lesson.md'}:" in r.err and message in r.err, r.err
    assert "Traceback" not in r.err


def test_lesson_check_passes_a_good_walkthrough_and_checks_by_running(dlc, walk_lesson, tmp_path) -> None:
    r = dlc("lesson", "check", str(walk_lesson.folder), "--run")
    assert r.code == 0, r.err
    assert "walk: 3 steps, 2 questions — ok" in r.out
    bad = make_lesson(tmp_path / "other", body='\n```step\nid = "a"\ndo = "x"\ndone = "metric val_bleu > 0.5"\n```\n')
    r = dlc("lesson", "check", str(bad / "90-walk"), "--run")
    assert r.code == 1 and "a run of this lesson reports no metric 'val_bleu'" in r.err


def test_every_built_in_lesson_passes_lesson_check(dlc) -> None:
    r = dlc("lesson", "check")
    assert r.code == 0, r.err
    assert len(r.out.strip().splitlines()) == len(load_lessons())


def test_a_run_without_a_variant_is_one_of_the_default_variant(walk_lesson) -> None:
    from dlcourse_tui.course.conditions import parse_condition

    walk = Walkthrough(walk_lesson)
    tiny_run(walk_lesson)
    assert parse_condition("run completed with variant separable").holds(walk.facts())  # it changes nothing
    assert not parse_condition("run completed with variant overfit").holds(walk.facts())


def test_an_answer_given_headless_is_marked_by_the_first_run_after_it(dlc, walk_lesson) -> None:
    tiny_run(walk_lesson, variant="overfit")  # before the answer: not its run
    assert dlc("tutorial", "walk", "--answer", "overfit-gap=below").code == 0
    state = json.loads(dlc("tutorial", "walk", "--json").out)["questions"][0]
    assert state["answered"] and "right" not in state  # hidden: no run after the answer yet
    import time

    time.sleep(1.1)  # run ids and answers are stamped to the second
    tiny_run(walk_lesson, variant="overfit")
    r = dlc("tutorial", "walk")
    assert "you said 'below': right" in r.out
    assert json.loads(dlc("tutorial", "walk", "--json").out)["questions"][0]["right"] is True


def test_next_moves_past_a_step_done_in_the_app(dlc, tmp_path, monkeypatch) -> None:
    body = ('\n```step\nid = "look"\ndo = "Look at the boundary."\ndone = "picture boundary viewed"\n```\n'
            '\n```step\nid = "run"\ndo = "Run it."\ndone = "run completed"\n```\n')
    monkeypatch.setenv("DLC_LESSONS", str(make_lesson(tmp_path / "extra", body=body)))
    r = dlc("tutorial", "walk")
    assert "this step is done in the app" in r.out and "dlc tutorial walk --next" in r.out
    state = json.loads(dlc("tutorial", "walk", "--next", "--json").out)
    assert state["current"] == "run" and [s["state"] for s in state["steps"]] == ["todo", "current"]


def test_every_screen_of_the_app_can_be_named_in_a_condition() -> None:
    """A step may wait for any screen the app records as viewed (its walk_name)."""
    import importlib
    import pkgutil

    import dlcourse_tui.tui.screens as screens
    from dlcourse_tui.course.conditions import SCREENS, parse_condition

    names = set()
    for info in pkgutil.iter_modules(screens.__path__):
        module = importlib.import_module(f"dlcourse_tui.tui.screens.{info.name}")
        names |= {v.walk_name for v in vars(module).values() if isinstance(getattr(v, "walk_name", None), str) and v.walk_name}
    assert {"exercises", "dashboard", "picker"} <= names
    assert names <= set(SCREENS)
    for name in names:
        parse_condition(f"screen {name} viewed")
