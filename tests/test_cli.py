"""The `dlc` command as a learner types it: output, exit codes and the exact messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import dlc_in_a_new_interpreter

TINY = ["--set", "n_train=64", "--set", "n_val=32", "--epochs", "1"]


def test_help_lists_the_commands_and_imports_no_torch() -> None:
    code, out, imported = dlc_in_a_new_interpreter("--help")
    assert code == 0 and imported == []
    for command in ("lessons", "lesson", "models", "run", "runs", "doctor"):
        assert command in out


def test_help_asked_again_is_printed_from_the_cache_without_typer(tmp_path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    code = ("import sys; sys.argv=['dlc', *sys.argv[1:]]\n"
            "from dlcourse_tui.cli.entry import main\n"
            "try: main()\nexcept SystemExit: pass\n"
            "sys.stderr.write('TYPER' if 'typer' in sys.modules else 'NO-TYPER')")

    def help_of(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60)

    first, again = help_of("--help"), help_of("--help")
    assert first.stderr == "TYPER" and again.stderr == "NO-TYPER"
    assert again.stdout == first.stdout and "Usage: dlc" in again.stdout
    run_help = help_of("run", "-h")
    assert run_help.stderr == "TYPER" and "--resume" in run_help.stdout  # another command: another entry
    assert help_of("run", "-h").stdout == run_help.stdout
    assert len(list((tmp_path / "dlc" / "help").iterdir())) == 2


@pytest.mark.parametrize("args", [["run", "nosuchlesson"], ["run", "linear", "--set", "lrr=1"],
                                  ["run", "linear", "--nproc-per-node", "0"]])
def test_a_mistyped_run_is_answered_before_torch_is_imported(args, dlc_home) -> None:
    assert dlc_in_a_new_interpreter(*args)[::2] == (2, [])


def test_lessons_lists_chapter_one(dlc) -> None:
    r = dlc("lessons")
    assert r.code == 0
    for lesson_id in ("linear-classifier", "single-neuron", "mlp-backprop"):
        assert lesson_id in r.out


def test_lesson_show_renders_text_and_knobs(dlc) -> None:
    r = dlc("lesson", "show", "single")
    assert r.code == 0
    assert "weight_decay" in r.out and "--variant overfit" in r.out and "0 … 1" in r.out


def test_models_for_a_lesson_count_parameters_for_its_data(dlc) -> None:
    r = dlc("models", "--lesson", "linear-classifier")
    assert r.code == 0
    assert "30,730" in r.out  # 3*32*32*10 + 10: W and b of the linear classifier on shapes


def test_doctor_reports_torch_and_devices(dlc) -> None:
    r = dlc("doctor")
    assert r.code == 0 and "torch" in r.out and "device cpu" in r.out


def test_run_prints_plain_progress_and_a_final_table_when_piped(dlc) -> None:
    r = dlc("run", "single", *TINY)
    assert r.code == 0, r.err
    assert "\x1b" not in r.out and "\r" not in r.out
    assert "epoch 1/1" in r.out and "val_acc" in r.out and "dlc runs show" in r.out
    assert "1 epoch × " in r.out  # not "1 epochs"


def test_piped_output_keeps_one_record_per_line_however_narrow_the_console(dlc_home) -> None:
    env = {**os.environ, "DLC_HOME": str(dlc_home), "COLUMNS": "40"}
    cmd = [sys.executable, "-m", "dlcourse_tui.cli", "run", "single", *TINY]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    epoch = [line for line in r.stdout.splitlines() if line.startswith("epoch 1/1")]
    assert len(epoch) == 1 and "val_acc" in epoch[0] and len(epoch[0]) > 40
    bad = subprocess.run(cmd + ["--set", "lr=100"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_runs_live_in_the_per_user_data_folder_unless_dlc_home_says_otherwise(dlc, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DLC_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    run_id = json.loads(dlc("run", "single", *TINY, "--json").out)["run_id"]
    assert (tmp_path / "xdg" / "dlc" / "runs" / run_id / "summary.json").is_file()
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run_id = json.loads(dlc("run", "single", *TINY, "--json").out)["run_id"]
    assert (tmp_path / "home" / ".local" / "share" / "dlc" / "runs" / run_id / "summary.json").is_file()
    assert run_id in dlc("runs", "list").out


def test_runs_show_draws_pictures_in_half_blocks_on_a_colour_terminal(dlc, dlc_home) -> None:
    run_id = json.loads(dlc("run", "single", *TINY, "--json").out)["run_id"]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"FORCE_COLOR": "1", "COLORTERM": "truecolor",
                                                                       "COLUMNS": "100"}
    r = subprocess.run([sys.executable, "-m", "dlcourse_tui.cli", "runs", "show", run_id],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "boundary" in r.stdout and r.stdout.count("▀") > 100 and "\x1b[38;2;" in r.stdout  # 24-bit colour cells
    assert "\x1b\n" not in r.stdout and "\n[0m" not in r.stdout  # no escape sequence cut in two (the charts')


def test_run_json_prints_one_summary(dlc) -> None:
    r = dlc("run", "mlp", *TINY, "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["status"] == "completed" and summary["lesson"] == "mlp-backprop"
    assert 0.0 <= summary["metrics"]["val_acc"] <= 1.0
    assert Path(summary["path"], "metrics.jsonl").is_file()


def test_runs_list_show_and_compare(dlc) -> None:
    a = json.loads(dlc("run", "single", *TINY, "--json").out)["run_id"]
    b = json.loads(dlc("run", "single", *TINY, "--set", "weight_decay=0.5", "--json").out)["run_id"]
    listing = dlc("runs", "list")
    assert a in listing.out and b in listing.out
    show = dlc("runs", "show", a)
    assert show.code == 0 and "boundary" in show.out and "train.weight_decay" in show.out
    cmp = dlc("runs", "compare", a, b)
    assert cmp.code == 0 and "train.weight_decay" in cmp.out and "0.5" in cmp.out
    assert "train.lr" not in cmp.out  # only keys that differ


@pytest.mark.parametrize("args, message", [
    (["run", "nosuchlesson"], "no lesson 'nosuchlesson'"),
    (["run", "linaer-classifier"], "Did you mean: linear-classifier?"),
    (["run", "linear", "--model", "mlpp"], "no model 'mlpp'. Did you mean: mlp"),
    (["run", "linear", "--model", "neuron"], "lesson linear-classifier offers the models linear, mlp, not 'neuron'"),
    (["run", "linear", "--data", "shpaes"], "--data shpaes: no such dataset. Did you mean: shapes"),
    (["run", "linear", "--set", "lrr=0.1"], "--set lrr: no such setting in this experiment. Did you mean: lr"),
    (["run", "linear", "--set", "lr=fast"], "train.lr='fast' is not a number"),
    (["run", "linear", "--set", "lr=100"], "train.lr=100 is out of range: allowed 1e-05 … 10."),
    (["run", "linear", "--set", "optimizer=rmsprop"], "train.optimizer='rmsprop' is not allowed: choose one of sgd | adam | adamw."),
    (["run", "linear", "--set", "lr"], "--set lr: write it as key=value"),
    (["run", "linear", "--epochs", "-3"], "epochs=-3 is out of range: allowed 1 … 1000."),
    (["run", "linear", "--variant", "fullbatch"], "--variant fullbatch: this lesson has no such variant"),
    (["run", "linear", "--device", "cuda"], "--device cuda: CUDA is not available here"),
    (["run", "linear", "--resume", "nosuchrun"], "no run 'nosuchrun'"),
    (["run", "linear", "--nproc-per-node", "0"], "--nproc-per-node 0: give 1 or more processes per machine"),
    (["run", "linear", "--nproc-per-node", "-1"], "--nproc-per-node -1: give 1 or more processes per machine"),
    (["run", "linear", "--device", "cuda", "--nproc-per-node", "2"], "--device cuda: CUDA is not available here"),
    (["run", "linear", "--nnodes", "2", "--node-rank", "5", "--rdzv-endpoint", "127.0.0.1:29500"],
     "--node-rank 5 is out of range for --nnodes 2: give 0 … 1"),
    (["run", "linear", "--nnodes", "2"], "--nnodes 2 needs --rdzv-endpoint HOST:PORT"),
    (["run", "linear", "--nnodes", "2", "--rdzv-endpoint", "node0"], "--rdzv-endpoint node0: give HOST:PORT of node 0"),
    (["runs", "show", "nosuchrun"], "no run 'nosuchrun'"),
    (["lesson", "show", "zzz"], "no lesson 'zzz'"),
    (["run", "linear", "--seed", "99999999999999999999"], "seed=99999999999999999999 is out of range: give a whole number from 0 to 2147483647"),
    (["run", "linear", "--seed", "20000000000000"], "seed=20000000000000 is out of range"),
    (["run", "linear", "--seed", "-1"], "seed=-1 is out of range"),
    (["run", "linear", "--resume", ""], "--resume needs the id of the run to continue"),
    (["run", "linear", "--set", "model.name=cnn"], "lesson linear-classifier offers the models linear, mlp, not 'cnn'"),
    (["run", "linear", "--set", "n_train=100000000"], "data.n_train=100000000 is out of range: allowed 100 … 50000."),
    (["run", "training", "--set", "channels=[16,x]"],
     "model.channels='[16,x]' is not a list of integers: give them separated by commas, e.g. model.channels=16,32."),
])
def test_bad_input_is_one_sentence_and_exit_2(dlc, dlc_home, args, message) -> None:
    if "--device" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    r = dlc(*args)
    assert r.code == 2, (r.out, r.err)
    assert message in r.err
    assert "Traceback" not in r.err + r.out
    assert len(r.err.strip().splitlines()) == 1
    assert not (dlc_home / "runs").exists() or not any((dlc_home / "runs").iterdir())


@pytest.mark.parametrize("fault, message", [
    ("nan", "The training loss became nan at step 3"),
    ("raise", "The run failed at step 3: ValueError: boom [3]"),
])
def test_a_failed_run_exits_1_with_the_step_and_keeps_its_record(dlc, dlc_home, monkeypatch, fault, message) -> None:
    from dlcourse_tui.tasks.classify import ClassifyTask

    real, calls = ClassifyTask.train_step, {"n": 0}

    def faulty(self, batch):
        calls["n"] += 1
        metrics = real(self, batch)
        if calls["n"] == 3:
            if fault == "raise":
                raise ValueError("boom [3]")
            metrics = {**metrics, "loss": metrics["loss"] * float("nan")}
        return metrics

    monkeypatch.setattr(ClassifyTask, "train_step", faulty)
    r = dlc("run", "single", "--set", "n_train=256", "--set", "batch_size=32", "--set", "log_every=1", "--epochs", "2",
            "--set", "threads=1")  # no steps timed to choose the threads: the third call is step 3
    assert r.code == 1, (r.out, r.err)
    assert message in r.err and "Traceback" not in r.err + r.out
    run_dir = next((dlc_home / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["step"] == 3  # the step the sentence names
    assert (run_dir / "traceback.txt").is_file() == (fault == "raise")


def test_truncated_checkpoint_cannot_be_resumed_and_the_run_is_left_as_it_was(dlc) -> None:
    run_id = json.loads(dlc("run", "single", *TINY, "--json").out)["run_id"]
    run_dir = Path(os.environ["DLC_HOME"], "runs", run_id)
    ckpt = run_dir / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    r = dlc("run", "single", "--resume", run_id, "--epochs", "2")
    assert r.code == 2 and "is damaged" in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    assert [p.name for p in run_dir.parent.iterdir()] == [run_id]


def _broken_lesson(tmp_path, monkeypatch) -> Path:
    bad = tmp_path / "lessons" / "99-bad"
    bad.mkdir(parents=True)
    (bad / "lesson.md").write_text("---\nid: bad\ntitle: Bad\nchapter: 9\norder: 1\n---\n# Bad\n")
    (bad / "experiment.toml").write_text('task = "classify"\n[model]\nname = "linear"\n[train]\nlr = "fast"\n')
    monkeypatch.setenv("DLC_LESSONS", str(tmp_path / "lessons"))
    return bad


FAULT = "99-bad/experiment.toml: train.lr: expected float, got 'fast'"


def test_a_broken_lesson_is_one_sentence_when_asked_for(dlc, dlc_home, tmp_path, monkeypatch) -> None:
    _broken_lesson(tmp_path, monkeypatch)
    for command in (["run", "bad"], ["lesson", "show", "bad"]):
        r = dlc(*command)
        assert r.code == 2 and FAULT in r.err and "broken" in r.err
        assert "Traceback" not in r.err + r.out and len(r.err.strip().splitlines()) == 1
    assert not (dlc_home / "runs").exists()


def test_a_broken_lesson_is_skipped_with_a_warning_and_the_rest_works(dlc, dlc_home, tmp_path, monkeypatch) -> None:
    _broken_lesson(tmp_path, monkeypatch)
    listed = dlc("lessons")
    assert listed.code == 0 and "linear-classifier" in listed.out
    assert "broken, skipped" in listed.out and FAULT in listed.err
    doctor = dlc("doctor")
    assert doctor.code == 0 and "1 broken" in doctor.out
    r = dlc("run", "single", *TINY)
    assert r.code == 0, r.err
    assert r.err.strip().splitlines() == [f"dlc: warning: skipped a broken lesson: {tmp_path / 'lessons' / FAULT}."]


def test_ctrl_c_stops_gracefully_saves_a_checkpoint_and_exits_130(dlc_home) -> None:
    env = {**os.environ, "DLC_HOME": str(dlc_home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlcourse_tui.cli", "run", "single", "--variant", "overfit", "--epochs", "5000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(dlc_home.glob("runs/*/metrics.jsonl")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in out and "--resume" in out
    run_dir = next(dlc_home.glob("runs/*"))
    assert (run_dir / "checkpoint.pt").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "stopped"


def test_run_on_an_imagefolder_of_pngs(dlc, tmp_path) -> None:
    from PIL import Image

    colours = {"red": (220, 30, 30), "blue": (30, 30, 220)}
    for name, rgb in colours.items():
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (20 + i, 24), rgb).save(tmp_path / "imgs" / name / f"{i}.png")
    r = dlc("run", "linear", "--data", "imagefolder", "--data-dir", str(tmp_path / "imgs"), "--epochs", "3", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["data"] == "imagefolder" and summary["metrics"]["val_acc"] == 1.0


def test_missing_real_dataset_names_the_files_and_the_download_command(dlc, tmp_path) -> None:
    r = dlc("run", "linear", "--data", "mnist", "--data-dir", str(tmp_path / "mnist"))
    assert r.code == 2
    assert "train-images-idx3-ubyte" in r.err
    assert f"dlc run linear-classifier --data mnist --data-dir {tmp_path / 'mnist'} --download" in r.err
    assert "Traceback" not in r.err and not (Path(os.environ["DLC_HOME"]) / "runs").exists()


def test_live_progress_on_a_terminal_shows_a_bar_with_rate_and_eta(tmp_path) -> None:
    import io

    from rich.console import Console

    from dlcourse_tui.cli.report import HeadlessReport
    from dlcourse_tui.engine.session import execute, prepare_run
    from dlcourse_tui.lessons import find_lesson

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100, no_color=False)
    report = HeadlessReport(console, live=True)
    cfg = find_lesson("single").config(sets=["n_train=256", "n_val=32", "batch_size=16"], overrides={"train.epochs": 2})
    execute(prepare_run(cfg), [report])
    text = buf.getvalue()
    assert "ex/s" in text and "/32" in text and "epoch 2/2" in text


@pytest.mark.parametrize("layout", ["home is a file", "runs is a file", "read-only home"])
def test_a_store_that_cannot_be_written_is_one_sentence_before_any_data_is_made(dlc, tmp_path, monkeypatch, layout) -> None:
    home = tmp_path / "home"
    if layout == "home is a file":
        home.write_text("not a folder")
        expected = f"{home} is a file, but dlc keeps its runs in a folder there"
    elif layout == "runs is a file":
        home.mkdir()
        (home / "runs").write_text("not a folder")
        expected = f"{home / 'runs'} is a file"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes to read-only folders")
        home.mkdir()
        home.chmod(0o500)
        expected = "is not writable by this user"
    monkeypatch.setenv("DLC_HOME", str(home))
    import dlcourse_tui.engine.session as session

    monkeypatch.setattr(session, "load_dataset", lambda *a, **k: pytest.fail("data was made before the check"))
    r = dlc("run", "single", *TINY)
    assert r.code == 2 and expected in r.err and "DLC_HOME" in r.err, r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1


def test_a_read_only_store_is_refused(dlc, tmp_path, monkeypatch) -> None:
    """The check does not rely on a permission bit root ignores: os.access is asked."""
    import dlcourse_tui.engine.session as session

    monkeypatch.setattr(session.os, "access", lambda path, mode: False)
    r = dlc("run", "single", *TINY)
    assert r.code == 2 and "is not writable by this user" in r.err


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_a_run_like_ctrl_c(dlc_home, signum, code) -> None:
    env = {**os.environ, "DLC_HOME": str(dlc_home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlcourse_tui.cli", "run", "single", "--variant", "overfit", "--epochs", "5000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(dlc_home.glob("runs/*/metrics.jsonl")):
        time.sleep(0.2)
    time.sleep(0.5)  # some steps into an epoch
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    name = signal.Signals(signum).name
    assert f"{name}: stopping after this step" in err
    assert "checkpoint saved" in out and "Resume with: dlc run single-neuron --resume" in out
    run_dir = next(dlc_home.glob("runs/*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["step"] > 0
    import torch

    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["trainer"]["step"] == summary["step"]  # the checkpoint is of the stop, not the last epoch's end


def test_the_stop_message_names_the_epoch_the_run_was_in() -> None:
    from dlcourse_tui.cli.run import where_stopped

    assert where_stopped(144, 64) == "step 144, 16 of 64 steps into epoch 3"
    assert where_stopped(128, 64) == "step 128, the end of epoch 2"
    assert where_stopped(0, 64) == "step 0, before the first step"


def test_lesson_text_in_a_pipe_wraps_without_losing_words() -> None:
    env = {**os.environ, "COLUMNS": "80"}
    r = subprocess.run([sys.executable, "-m", "dlcourse_tui.cli", "lesson", "show", "convolutional-networks"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(line == line.rstrip() for line in lines)
    words = " ".join(lines).split()
    from dlcourse_tui.lessons import find_lesson

    body = find_lesson("convolutional-networks").body
    # every word of the first bullet item arrives, in order (it was cut at 80 columns)
    first_item = next(l for l in body.splitlines() if l.startswith("- ")).removeprefix("- ").replace("**", "").split()
    joined = " ".join(words)
    assert " ".join(first_item[-6:]) in joined, first_item


def _imagefolder(root: Path, counts: dict[str, int]) -> Path:
    from PIL import Image

    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (16, 16), (40 * k, 200 - 40 * k, 30)).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("counts, message", [
    ({"only": 6}, "has one class (only): a classifier needs two or more"),
    ({"a": 1}, "has one class (a)"),
    ({"a": 1, "b": 0}, "no images in"),
])
def test_an_imagefolder_that_cannot_train_a_classifier_is_one_sentence(dlc, dlc_home, tmp_path, counts, message) -> None:
    root = _imagefolder(tmp_path / "imgs", counts)
    r = dlc("run", "linear", "--data", "imagefolder", "--data-dir", str(root), "--epochs", "1")
    assert r.code == 2 and message in r.err, r.err
    assert "Traceback" not in r.err and not (dlc_home / "runs").exists()


def test_an_imagefolder_with_an_empty_validation_split_is_one_sentence(dlc, dlc_home, tmp_path) -> None:
    _imagefolder(tmp_path / "imgs" / "train", {"a": 3, "b": 3})
    (tmp_path / "imgs" / "val" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "val" / "b").mkdir(parents=True)
    r = dlc("run", "linear", "--data", "imagefolder", "--data-dir", str(tmp_path / "imgs"), "--epochs", "1")
    assert r.code == 2 and "the validation split is empty, so there is nothing to measure on" in r.err, r.err
    assert not (dlc_home / "runs").exists()


def test_a_list_setting_takes_integers_separated_by_commas() -> None:
    from dlcourse_tui.lessons import find_lesson

    for text in ("8,16", "[8, 16]", "8 16"):
        config = find_lesson("training-techniques").config(sets=[f"channels={text}"])
        assert config.model_args["channels"] == [8, 16]
