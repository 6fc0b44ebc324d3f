"""Exercises as a learner meets them: `dlc exercise start`, `dlc check` (the exact message for
a wrong solution, a syntax error with its line, an endless loop stopped on time), and
`dlc run LESSON --use NAME` training to the same curve as the project's own function.

Grading runs in a worker process in real use; most tests here grade in this process
(worker.grade_in_process, the same code without the process) to stay fast, and three go
through the worker for what only it does: the time limit, the import of a broken file,
and the report printed."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from dlcourse_tui.exercises.registry import all_exercises, find_exercise
from dlcourse_tui.exercises.worker import grade_in_process

EXERCISES = [ex.name for ex in all_exercises()]
CHAPTER_1_TO_3 = {"gd_step", "softmax_ce", "neuron_grad", "mlp_backward", "conv_pool", "batch_norm", "dropout", "vae",
                  "ddpm"}


def wrong_file(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """The reference solution of `name` with one deliberate mistake."""
    src = find_exercise(name).solution.read_text(encoding="utf-8")
    assert old in src, f"{name}: the solution no longer contains {old!r}"
    path = tmp_path / f"{name}.py"
    path.write_text(src.replace(old, new), encoding="utf-8")
    return path


def test_the_issue_s_exercises_are_all_there() -> None:
    assert CHAPTER_1_TO_3 <= set(EXERCISES)


@pytest.mark.parametrize("name", EXERCISES)
def test_each_starter_fails_as_not_written_and_each_reference_passes(name) -> None:
    ex = find_exercise(name)
    starter, solution = grade_in_process(ex.folder, ex.starter), grade_in_process(ex.folder, ex.solution)
    assert not starter.ok and starter.kind == "not-written" and "raises NotImplementedError" in starter.headline
    assert solution.ok and solution.passed == solution.total and solution.hidden >= 1, solution.headline
    text = ex.starter.read_text(encoding="utf-8")
    assert all(f"def {f}(" in text for f in ex.functions) and '"""' in text


WRONG = [  # (exercise, the right code, the mistake, what the learner is told)
    ("nt_xent", "F.normalize(torch.cat([z1, z2]), dim=1)", "torch.cat([z1, z2])",
     "the loss changes when the views are scaled: s is the cosine similarity"),
    ("nt_xent", '.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))', "",
     "your loss keeps k = i in the denominator"),
    ("attention", " / math.sqrt(q.shape[-1])", "",
     "check 2 of 5 (the output and weights are the reference's (no mask)) failed: weights does not match the reference."),
    ("iou_nms", "union = area_a[:, None] + area_b[None, :] - inter", "union = area_a[:, None] + area_b[None, :]",
     "check 1 of 5 (box_iou returns (N, M) and agrees with the reference on two hand-made pairs) failed: iou does not "
     "match the reference."),
    ("iou_nms", "torch.sort(scores, descending=True, stable=True).indices", "torch.arange(len(scores))",
     "nms keeps [0, 2], but greedy NMS keeps [3, 0] (best score first)"),
    ("attention", "masked_fill(~mask,", "masked_fill(mask,",
     "keys where the mask is False still get weight: the mask means True = may attend"),
    ("softmax_ce", "return loss, dscores / n", "return loss, dscores",
     "check 3 of 7 (dscores is the reference's) failed: dscores does not match the reference. "
     "It is 4 times the expected value (N = 4): a missing 1/N?"),
    ("softmax_ce", "shifted = scores - scores.max(dim=1, keepdim=True).values", "shifted = scores",
     "hidden check 5 of 7 failed: loss contains inf (1 of 1 values). exp() of large numbers overflows"),
    ("mlp_backward", '"fc1.weight": d_z1.T @ x', '"fc1.weight": x.T @ d_z1',
     "fc1.weight has shape (3, 5), but the check expected (5, 3). It is transposed"),
    ("mlp_backward", "/ n  # (N, C)", " # (N, C)",
     "gradient check fc3.bias (float64, against autograd): relative error 7.1e-01, above 1e-2: the gradient is wrong. "
     "It is 6 times the expected value (N = 6): a missing 1/N?"),
    ("gd_step", "g = dw + weight_decay * w", "g = dw", "v_new leaves out weight decay"),
    ("neuron_grad", "X.T @ err / n + alpha * w", "X.T @ err / n", "dw leaves out weight decay: with alpha = 0.5"),
    ("neuron_grad", "X.T @ err / n + alpha * w", "X.T @ err + alpha * w", "relative error"),
    ("conv_pool", "j * stride:j * stride + kw]", "j:j + kw]",
     "check 3 of 6 (conv2d_naive: stride 2, padding 1) failed: out does not match the reference."),
    ("batch_norm", "momentum * var * m / max(m - 1, 1)", "momentum * var", "running_var averages the biased σ²"),
    ("batch_norm", "dx = scale / m * (m * dout - dbeta[None, :, None, None] - x_hat * dgamma[None, :, None, None])",
     "dx = dout * scale", "dx = dout · γ/σ̂ treats μ and σ² as constants, as in evaluation"),
    ("batch_norm", "(m * dout - dbeta", "(dout - dbeta", "gradient check dx (float64, against central differences)"),
    ("dropout", "return x * keep / (1 - p)", "return x * keep", "the kept values are x itself, not x / (1 − p)"),
    ("dropout", ">= p  # same shape", "< p  # same shape", "is the mask the other way round"),
    ("vae", "return 0.5 * (mu", "return (mu", "It is 2 times the expected value: the ½ in front of the sum is missing."),
    ("vae", "(0.5 * logvar).exp() * eps", "logvar.exp() * eps", "z = μ + σ² ⊙ ε"),
    ("ddpm", "return mean + beta.sqrt() * z if i > 0 else mean", "return mean + beta.sqrt() * z",
     "at t = 1 (index 0) your step adds σ_1·z"),
    ("ddpm", "return ab.sqrt() * x0 + (1 - ab).sqrt() * eps", "return (1 - ab).sqrt() * x0 + ab.sqrt() * eps",
     "the two weights are swapped"),
]


@pytest.mark.parametrize("name,old,new,message", WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_a_deliberately_wrong_solution_fails_with_the_right_message(tmp_path, name, old, new, message) -> None:
    outcome = grade_in_process(find_exercise(name).folder, wrong_file(tmp_path, name, old, new))
    assert not outcome.ok and outcome.kind == "check"
    assert message in outcome.headline + "\n" + "\n".join(outcome.lines)


def test_a_gradient_check_judges_the_relative_error_against_the_thresholds() -> None:
    import torch

    from dlcourse_tui.exercises import checking

    want = torch.linspace(-1, 1, 10, dtype=torch.float64)
    checking.NOTES.clear()
    assert checking.grad_check("dW", want * (1 + 1e-9), want, {}) < checking.GOOD
    assert checking.notes()[-1].endswith("(< 1e-7: good)")
    with pytest.raises(checking.CheckFailed) as close:
        checking.grad_check("dW", want * (1 + 1e-4), want, {})
    assert "relative error 5.0e-05, between 1e-7 and 1e-2: close but not right. That usually means" in close.value.what
    with pytest.raises(checking.CheckFailed) as wrong:
        checking.grad_check("dW", -want, want, {})
    assert wrong.value.what.endswith("above 1e-2: the gradient is wrong. It is the expected value with its sign flipped.")
    with pytest.raises(checking.CheckFailed, match="is float32, but the inputs were float64"):
        checking.grad_check("dW", want.float(), want, {})


def test_an_exception_a_nan_and_a_missing_function_name_the_learner_s_line(tmp_path) -> None:
    folder = find_exercise("softmax_ce").folder
    raising = tmp_path / "raising.py"
    raising.write_text("import torch\n\ndef softmax_cross_entropy(scores, y):\n    w = torch.zeros(3, 7)\n"
                       "    return scores @ w, scores\n")
    outcome = grade_in_process(folder, raising)
    assert outcome.kind == "error" and outcome.line == 5
    assert outcome.headline.startswith("in check 1 of 7 (returns a 0-d loss and dscores of the scores' shape): "
                                       "your softmax_cross_entropy raised RuntimeError: ")
    assert outcome.lines == ["line 5: return scores @ w, scores"]
    nan = tmp_path / "nan.py"
    nan.write_text("import torch\n\ndef softmax_cross_entropy(scores, y):\n"
                   "    return torch.tensor(float('nan'), dtype=scores.dtype), scores * float('nan')\n")
    assert "loss contains NaN (1 of 1 values)" in grade_in_process(folder, nan).headline
    renamed = tmp_path / "renamed.py"
    renamed.write_text("def softmax_loss(scores, y):\n    return 0\n")
    assert grade_in_process(folder, renamed).headline == ("your file defines no function softmax_cross_entropy "
                                                          "(it defines softmax_loss); keep the starter's names.")


def test_start_then_check_prints_the_task_the_path_and_the_first_failure(dlc, dlc_home) -> None:
    r = dlc("exercise", "start", "softmax_ce")
    path = dlc_home / "exercises" / "softmax_ce.py"
    assert r.code == 0 and str(path) in r.out and "softmax cross-entropy" in r.out
    assert path.read_text() == find_exercise("softmax_ce").starter.read_text()
    path.write_text(path.read_text().replace("    raise NotImplementedError  # your code here\n",
                                             "    return scores.sum(), scores\n    if True\n"))  # a syntax error, line 21
    r = dlc("check", "softmax_ce")
    assert r.code == 1
    assert r.out.splitlines() == ["softmax_ce: line 21: syntax error: expected ':'",
                                  "  line 21:     if True",
                                  "                      ^",
                                  f"Your file: {path}"]
    assert "failing" in dlc("exercise", "list").out
    r = dlc("exercise", "start", "softmax_ce")
    assert "kept as it was" in r.out and "if True" in path.read_text()  # a second start keeps the learner's work


def test_a_passing_check_says_how_many_checks_were_hidden_and_the_gradient_error(dlc, dlc_home) -> None:
    dlc("exercise", "start", "softmax_ce")
    shutil.copyfile(find_exercise("softmax_ce").solution, dlc_home / "exercises" / "softmax_ce.py")
    r = dlc("check", "softmax_ce")
    lines = r.out.splitlines()
    assert r.code == 0 and lines[0] == "softmax_ce: all 7 checks pass (4 visible, 3 hidden)."
    assert lines[1].startswith("  gradient check dscores (float64, against central differences): relative error ")
    assert lines[1].endswith("(< 1e-7: good)")
    assert lines[2].startswith("Train with it: dlc run linear-classifier --use softmax_ce")
    assert "passing" in dlc("exercise", "list").out


def test_watch_checks_again_after_each_save_until_ctrl_c(dlc, dlc_home) -> None:
    import os
    import signal
    import subprocess
    import sys
    import threading

    dlc("exercise", "start", "softmax_ce")
    path = dlc_home / "exercises" / "softmax_ce.py"
    proc = subprocess.Popen([sys.executable, "-m", "dlcourse_tui.cli", "check", "softmax_ce", "--watch"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    guard = threading.Timer(60, proc.kill)  # a hang ends the output, and the test fails instead of waiting
    guard.start()
    try:
        lines = iter(proc.stdout.readline, "")
        seen = [next(lines)]
        while not seen[-1].startswith("watching "):
            seen.append(next(lines))
        assert "not written yet" in "".join(seen) or "NotImplementedError" in "".join(seen), seen
        shutil.copyfile(find_exercise("softmax_ce").solution, path)  # the learner saves a correct file
        while "all 7 checks pass" not in seen[-1]:
            seen.append(next(lines))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.kill()
    assert "stopped watching." in out
    assert "passing" in dlc("exercise", "list").out


def test_an_endless_loop_is_stopped_within_its_limit_at_its_line(tmp_path) -> None:
    from dlcourse_tui.exercises.runner import run_checks

    path = tmp_path / "loop.py"
    path.write_text("def softmax_cross_entropy(scores, y):\n    n = 0\n    while True:\n        n += 1\n")
    start = time.monotonic()
    outcome = run_checks(find_exercise("softmax_ce"), path, time_limit=1.0)
    assert time.monotonic() - start < 90  # a hang guard only: the worker's own clock stops it after 1 s of checks
    assert outcome.kind == "timeout" and outcome.line in (3, 4)
    assert outcome.headline.startswith(f"stopped after 1 s while running line {outcome.line} of your file "
                                       "(in softmax_cross_entropy): an endless loop")


def test_unknown_names_and_a_broken_results_file_are_sentences(dlc, dlc_home) -> None:
    r = dlc("check", "softmax")
    assert r.code == 2 and r.err.strip() == "dlc: no exercise 'softmax'. Did you mean: softmax_ce? See them all with: dlc exercise list"
    r = dlc("check", "softmax_ce")
    assert r.code == 2 and "does not exist: start it with: dlc exercise start softmax_ce" in r.err
    dlc("exercise", "start", "vae")
    (dlc_home / "exercises" / ".results").mkdir()
    (dlc_home / "exercises" / ".results" / "vae.json").write_text("{not json")
    r = dlc("exercise", "list")
    assert r.code == 0 and "not checked" in r.out and "not started" in r.out


def _numbers(run_dir: Path) -> list[tuple[str, float]]:
    """Every number of a run's metrics.jsonl but its clock readings, in order."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(k, v) for row in rows for k, v in sorted(row.items())
            if isinstance(v, (int, float)) and k != "time" and not k.endswith(("seconds", "per_s"))]


def _tables(run_dir: Path) -> dict[str, list]:
    """The run's tables without columns of relative errors (float noise, not a result)."""
    out = {}
    for path in sorted((run_dir / "tables").glob("*.json")):
        table = json.loads(path.read_text())
        keep = [i for i, c in enumerate(table["columns"]) if "error" not in c and "time" not in c and "/s" not in c]
        out[path.stem] = [[row[i] for i in keep] for row in table["rows"]]
    return out


IMAGES = ["--set", "n_train=100", "--set", "n_val=32", "--set", "batch_size=16"]
#: How each exercise that plugs into a lesson is trained tiny: the lesson and its settings.
USE_RUNS = {
    "gd_step": ("linear-classifier", ["--set", "n_train=128", "--set", "n_val=64", "--epochs", "2"]),
    "softmax_ce": ("linear-classifier", ["--set", "n_train=128", "--set", "n_val=64", "--epochs", "2"]),
    "mlp_backward": ("mlp-backprop", ["--set", "n_train=128", "--set", "n_val=64", "--epochs", "2"]),
    "batch_norm": ("training-techniques", [*IMAGES, "--set", "batch_norm=true", "--set", "channels=4,8", "--epochs", "2"]),
    "dropout": ("training-techniques", [*IMAGES, "--set", "dropout=0.3", "--set", "channels=4,8", "--epochs", "2"]),
    "vae": ("vae", [*IMAGES, "--set", "hidden=32", "--epochs", "2"]),
    "ddpm": ("diffusion", [*IMAGES, "--set", "timesteps=8", "--set", "quality_samples=20", "--set", "picture_samples=10",
                           "--set", "channels=8", "--epochs", "2"]),
    "nt_xent": ("self-supervised", ["--set", "n_train=100", "--set", "n_val=32", "--set", "batch_size=25",
                                    "--set", "probe_iters=2", "--set", "probe_views=1", "--set", "proj_hidden=32",
                                    "--set", "proj_dim=16", "--set", "probe_epochs=1", "--set", "channels=8,16,16,16",
                                    "--epochs", "2"]),
    "lora": ("peft", [*IMAGES, "--epochs", "2"]),  # on the tiny ViT run made first (below)
}


def test_every_exercise_that_plugs_in_has_a_tiny_run() -> None:
    assert set(USE_RUNS) == {ex.name for ex in all_exercises() if ex.use}


@pytest.mark.parametrize("name", sorted(USE_RUNS))
def test_use_trains_to_the_same_curve_as_the_built_in_and_the_run_records_it(dlc, dlc_home, name) -> None:
    from dlcourse_tui.exercises.workspace import learner_file, save_result

    ex = find_exercise(name)
    path = learner_file(ex)
    path.parent.mkdir(parents=True)
    shutil.copyfile(ex.solution, path)
    save_result(ex, path, grade_in_process(ex.folder, path))  # as `dlc check` leaves it (tested above)
    lesson, sets = USE_RUNS[name]
    if lesson == "peft":  # what it builds on: a tiny ViT on shapes
        assert dlc("run", "vision-transformer", *IMAGES, "--set", "d_model=16", "--set", "layers=1",
                   "--set", "heads=2", "--epochs", "1", "--set", "threads=1").code == 0
    tiny = [*sets, "--seed", "3", "--set", "log_every=1", "--set", "threads=1", "--json"]
    mine = dlc("run", lesson, "--use", name, *tiny)
    theirs = dlc("run", lesson, *tiny)
    assert mine.code == theirs.code == 0, mine.err + theirs.err
    a, b = Path(json.loads(mine.out)["path"]), Path(json.loads(theirs.out)["path"])
    assert json.loads((a / "config.json").read_text())["task_args"]["use"] == [name]
    assert "use" not in json.loads((b / "config.json").read_text())["task_args"]
    ours, builtin = _numbers(a), _numbers(b)
    assert [k for k, _ in ours] == [k for k, _ in builtin] and sum(k.endswith("loss") for k, _ in ours) > 4
    if name == "dropout":  # the masks come from another sampler than nn.Dropout's: close, not the same
        losses = [(x, y) for (k, x), (_, y) in zip(ours, builtin) if k.endswith("loss")]
        assert [x for x, _ in losses] == pytest.approx([y for _, y in losses], rel=0.1)
        assert [x for x, _ in losses] != [y for _, y in losses]
        return
    assert [v for _, v in ours] == pytest.approx([v for _, v in builtin], rel=1e-4, abs=1e-6)
    assert _tables(a) == _tables(b)


def test_use_refuses_a_failing_file_an_unpluggable_exercise_and_another_lesson(dlc, dlc_home) -> None:
    from dlcourse_tui.exercises.workspace import learner_file, save_result

    ex = find_exercise("softmax_ce")
    dlc("exercise", "start", "softmax_ce")
    save_result(ex, learner_file(ex), grade_in_process(ex.folder, learner_file(ex)))
    r = dlc("run", "linear", "--use", "softmax_ce")
    assert r.code == 2 and r.err.startswith("dlc: --use softmax_ce: your function does not pass its checks yet (in check 1")
    r = dlc("run", "linear", "--use", "vae")
    assert r.code == 2 and "that exercise belongs to lesson vae, not linear-classifier: dlc run vae --use vae" in r.err
    r = dlc("run", "single", "--use", "neuron_grad")
    assert r.code == 2 and "this exercise is checked only" in r.err
    r = dlc("run", "training", "--use", "dropout", "--grid")
    assert r.code == 2 and "drop --grid" in r.err


def test_lesson_check_names_a_starter_that_already_passes(tmp_path) -> None:
    from dlcourse_tui.course.check import check_lesson
    from dlcourse_tui.lessons import builtin_lessons_dir, load_lesson

    folder = tmp_path / "vae-copy"
    shutil.copytree(builtin_lessons_dir() / "07-vae", folder)
    (folder / "lesson.md").write_text((folder / "lesson.md").read_text().replace("id: vae", "id: vae-copy", 1))
    ex = folder / "exercises" / "vae"
    shutil.copyfile(ex / "solution.py", ex / "starter.py")
    shutil.move(ex, folder / "exercises" / "vae_copy")
    problems = check_lesson(load_lesson(folder)).problems
    assert problems == (f"{folder / 'exercises' / 'vae_copy' / 'starter.py'}: the starter passes every check; "
                        "leave the learner something to write.",)


def test_help_documents_the_commands_without_importing_torch(dlc_home) -> None:
    from helpers import dlc_in_a_new_interpreter

    for args, words in ((["--help"], ("exercise", "check")), (["exercise", "list"], ("softmax_ce", "not started"))):
        code, out, imported = dlc_in_a_new_interpreter(*args)
        assert code == 0 and imported == [] and all(w in out for w in words)
