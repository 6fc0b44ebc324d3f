"""The peft lesson's table, measured: every method (full fine-tuning, linear probe, adapters,
shallow and deep visual prompt tuning, LoRA) and LoRA at r = 1, 2, 4, 8, each a headless
default run (`dlc run peft --json`) from the same upstream ViT run, one after the other; with
its trainable parameters, their share of full fine-tuning's, validation accuracy, training
time (the run's own) and the whole command's wall time, also as a ratio to the whole
`dlc run convolutional-networks` timed in the same sitting.

    python bench/bench_peft.py                        # the CNN lesson, then every method and rank
    python bench/bench_peft.py --from RUN --no-unit   # from that vision-transformer run, no CNN timing
    python bench/bench_peft.py --epochs 1 --n-train 500 --no-unit   # a quick look that it works

Without --from, the first run uses the newest fitting vision-transformer run of DLC_HOME
(or trains one first: not counted), and every later run names the one it used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

UNIT = "convolutional-networks"
RANKS = (1, 2, 4, 8)  # beside the lesson's own rank, which is always run


def dlc_run(args: list[str], env: dict[str, str]) -> tuple[float, dict | None, str]:
    """(wall seconds, the --json summary or None, the tail of stderr)."""
    cmd = [sys.executable, "-m", "dlcourse_tui.cli", "run", *args, "--json"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        return wall, None, r.stderr.strip()[-300:]
    return wall, json.loads(r.stdout), ""


def trainable_counts(run_id: str, rows: list[tuple[str, str, int]], classes: int) -> dict[tuple[str, int], int]:
    """Trainable parameters of each (method, rank) for the ViT of upstream run `run_id`."""
    from dlcourse_tui.engine.runs import find_run
    from dlcourse_tui.lessons import find_lesson
    from dlcourse_tui.models.peft import PEFTViT, adapt, trainable
    from dlcourse_tui.tasks.peft import VIT_INPUT, VIT_SETTINGS, method_from

    model = find_run(run_id).config["model"]
    settings = {k: model[k] for k in VIT_SETTINGS if k in model}
    base = find_lesson("peft").config().task_args
    out = {}
    for _, method, rank in rows:
        m = method_from({**base, "method": method, "rank": rank})
        out[(method, rank)] = trainable(adapt(PEFTViT(PEFTViT.Config(input_shape=VIT_INPUT, num_classes=classes,
                                                                      **settings)), m))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="upstream", default="", help="the vision-transformer run to build on")
    p.add_argument("--epochs", type=int, default=0, help="epochs of every run (default: the lesson's)")
    p.add_argument("--n-train", type=int, default=0, help="training images of every run (default: the lesson's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-unit", action="store_true", help=f"do not time {UNIT} first")
    args = p.parse_args()
    sys.path.insert(0, os.getcwd())
    from dlcourse_tui.lessons import find_lesson

    lesson = find_lesson("peft")
    rank0 = int(lesson.config().task_args.get("rank", 4))
    rows = [(v, v, rank0) for v in ("full", "probe", "adapter", "vpt_shallow", "vpt_deep")]
    rows += [("lora" + ("" if r == rank0 else f" r={r}"), "lora", r) for r in sorted({*RANKS, rank0})]
    extra = ["--seed", str(args.seed)] + (["--epochs", str(args.epochs)] if args.epochs else [])
    extra += ["--set", f"n_train={args.n_train}"] if args.n_train else []
    env = dict(os.environ)
    try:
        load = "load average %.2f" % os.getloadavg()[0]
    except OSError:
        load = ""
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, {load}, threads {env.get('DLC_THREADS', 'auto')}")
    unit = None
    if not args.no_unit:
        unit, summary, err = dlc_run([UNIT, "--seed", str(args.seed)], env)
        print(f"{UNIT}: {unit:.1f} s" if summary else f"{UNIT} failed: {err}", flush=True)
        unit = unit if summary else None
    upstream = args.upstream
    results: dict[str, tuple[float, float, float]] = {}  # label -> (val_acc, training s, whole command s)
    classes = 10
    for label, method, rank in rows:
        cmd = ["peft", "--set", f"method={method}", "--set", f"rank={rank}", *extra]
        if method != "lora":
            cmd = ["peft", "--variant", method, *extra]
        if upstream:
            cmd += ["--from", upstream]
        wall, summary, err = dlc_run(cmd, env)
        if summary is None:
            print(f"{label}: failed: {err}", flush=True)
            continue
        if not upstream:
            from dlcourse_tui.engine.runs import find_run

            upstream = find_run(summary["run_id"]).config.get("upstream", {}).get("backbone", "")
            print(f"building on run {upstream}", flush=True)
        results[label] = (summary["metrics"]["val_acc"], float(summary.get("elapsed", wall)), wall)
        print(f"  {label}: val_acc {100 * results[label][0]:.1f}%, {results[label][1]:.1f} s of training "
              f"({wall:.1f} s in all)", flush=True)
    if not upstream:
        return
    counts = trainable_counts(upstream, rows, classes)
    full = counts[("full", rank0)]
    print(f"\n{'method':<12} {'trainable':>10} {'% of full':>10} {'val_acc':>8} {'train s':>8} {'wall s':>7} {'× CNN':>6}")
    for label, method, rank in rows:
        if label not in results:
            continue
        acc, training, wall = results[label]
        ratio = f"{wall / unit:6.2f}" if unit else "     -"  # whole commands against each other
        n = counts[(method, rank)]
        print(f"{label:<12} {n:>10,} {100 * n / full:>9.2f}% {100 * acc:>7.1f}% {training:>8.1f} {wall:>7.1f} {ratio}")
    if "lora" in results and "full" in results:
        gap = 100 * (results["full"][0] - results["lora"][0])
        share = 100 * counts[("lora", rank0)] / full
        print(f"\nLoRA (r = {rank0}) is {gap:.1f} points behind full fine-tuning with {share:.2f}% of its trainable "
              f"parameters; the target: within 2 points with under 5%.")


if __name__ == "__main__":
    main()
