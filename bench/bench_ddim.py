"""DDIM against DDPM on one trained diffusion run, side by side in one process.

    DLC_HOME=/tmp/ddim dlc run diffusion --set threads=1      # train once (about 2½ min)
    DLC_HOME=/tmp/ddim python bench/bench_ddim.py [RUN] [--steps 10 20 50] [--etas 0]
                                                  [--samples 200] [--rounds 3] [--device cpu]

Loads the run's checkpoint (the latest diffusion run when RUN is left out) and samples
it with Algorithm 2 over all T steps, then with DDIM over S of them for each S and η
asked for; the weights, labels and starting noise x_T are the same for every row. Per
row: the time to draw a 64-image grid (CPU time of this thread on a CPU, so that other
work on a shared machine does not swamp it; wall time with synchronisation on a GPU;
the median over rounds), its ratio to DDPM's, and the judge's class match on
`--samples` samples (200, salt 1 and DDPM reproduce the run's own val_class_match).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from bench_generative import median_time
from dlcourse_tui.engine.checkpoint import load_checkpoint
from dlcourse_tui.engine.config import RunConfig
from dlcourse_tui.engine.runs import find_run, list_runs
from dlcourse_tui.engine.session import prepare_run
from dlcourse_tui.errors import UserError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default="", help="run id (unique part); default: the latest diffusion run")
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50], help="DDIM sample_steps S to try")
    ap.add_argument("--etas", type=float, nargs="+", default=[0.0], help="DDIM η values to try")
    ap.add_argument("--samples", type=int, default=200, help="samples the judge labels per row")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    if args.run:
        record = find_run(args.run)
    else:
        runs = [r for r in list_runs() if r.config.get("lesson") == "diffusion" and r.checkpoint.exists()]
        if not runs:
            raise SystemExit("no diffusion run with a checkpoint here; first: dlc run diffusion --set threads=1")
        record = max(runs, key=lambda r: r.id)  # ids start with the date and time
    cfg = RunConfig.from_dict(record.config)
    cfg = replace(cfg, train=replace(cfg.train, device=args.device, threads=args.threads))
    task = prepare_run(cfg).task
    task.load_state_dict(load_checkpoint(record.checkpoint, map_location=task.device)["task"])
    torch.set_num_threads(args.threads)
    device = task.device
    T = task.schedule.T
    print(f"run {record.id}: T = {T}, {task.num_params():,} params; device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f", {args.threads} thread(s)"))
    print(f"run's own val_class_match (DDPM, {task.quality_samples} samples): "
          f"{record.summary.get('metrics', {}).get('val_class_match', float('nan')):.3f}")

    rows = [("ddpm", T, 1.0)] + [("ddim", s, eta) for s in args.steps for eta in args.etas]
    base = None
    print(f"{'sampler':8s} {'steps':>5s} {'η':>4s} {'s / 64 images':>14s} {'speed-up':>9s} "
          f"{'class match':>12s} (of {args.samples})")
    for sampler, steps, eta in rows:
        task.sampling, task.sample_steps, task.ddim_eta = sampler, steps, eta
        try:
            task.schedule.ddim_timesteps(steps)
        except UserError as e:
            print(f"{sampler:8s} {steps:5d}  skipped: {e}")
            continue
        task.sample(2)  # warm-up
        seconds = median_time(lambda: task.sample(64, salt=1), device, args.rounds)
        base = base or seconds
        samples, labels = task.sample(args.samples, salt=1)
        match = task.judge().score(samples, labels if task.conditional else None).get("class_match", float("nan"))
        print(f"{sampler:8s} {steps:5d} {'' if sampler == 'ddpm' else f'{eta:g}':>4s} {seconds:14.2f} "
              f"{base / seconds:8.1f}× {match:12.3f}")


if __name__ == "__main__":
    main()
