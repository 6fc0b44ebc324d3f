"""Chapter 3 costs, measured side by side in one process on one torch thread.

    python bench/bench_generative.py [--device cpu|cuda] [--channels 32] [--rounds 3]

1. DDPM sampling (Algorithm 2) of a 64-image grid with the diffusion lesson's U-Net at
   the lesson's default T and T = 1000 (the paper's): seconds and their ratio.
2. One training step (batch 64) of each chapter-3 lesson's default model, in
   milliseconds, and each relative to the autoencoder's.

Times are CPU time of this thread on a CPU (other work on a shared machine does not
swamp them) and wall time with synchronisation on a GPU; the median over rounds.
Weights are untrained: sampling costs the same whatever the network has learnt.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dlcourse_tui.engine.session import prepare_run
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.tasks.diffusion import DDPMSchedule


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.thread_time()


def median_time(fn, device: torch.device, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = clock(device)
        fn()
        times.append(clock(device) - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels", type=int, default=32, help="U-Net width for the sampling benchmark")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sets = ["n_train=256", "n_val=64", f"device={args.device}", f"threads={args.threads}"]

    print(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                 f", {args.threads} thread(s)"))
    cfg = find_lesson("diffusion").config(sets=sets + [f"channels={args.channels}", "quality_samples=0"])
    task = prepare_run(cfg).task
    torch.set_num_threads(args.threads)
    net = task.model.eval()
    y = torch.arange(64, device=device) % 10
    eps = lambda x, t: net(x, t, y)  # noqa: E731
    results = {}
    default_t = int(cfg.task_args.get("timesteps", 1000))
    for steps in (default_t, 1000):
        sched = DDPMSchedule(steps, device=device)
        run = lambda: sched.p_sample_loop(eps, (64, 1, 28, 28), generator=torch.Generator().manual_seed(0),  # noqa: E731
                                          device=device)
        results[steps] = median_time(run, device, 1 if steps == 1000 else args.rounds)
        print(f"DDPM sampling, 64 images, T = {steps:4d}, U-Net c={args.channels} "
              f"({sum(p.numel() for p in net.parameters()):,} params): {results[steps]:7.2f} s")
    print(f"  ratio T=1000 / T={default_t}: {results[1000] / results[default_t]:.2f}")

    print("one training step, batch 64:")
    base = None
    for lesson in ("autoencoder", "vae", "gan", "diffusion"):
        extra = ["quality_samples=0"] if lesson in ("gan", "diffusion") else []
        task = prepare_run(find_lesson(lesson).config(sets=sets + extra + ["batch_size=64"])).task
        torch.set_num_threads(args.threads)
        task.train(True)
        batch = next(task.batches(0))
        task.train_step(batch)  # warm-up
        ms = 1000 * median_time(lambda: task.train_step(batch), device, 5 * args.rounds)
        base = base or ms
        print(f"  {lesson:12s} {task.config.model:12s} {task.num_params():>10,} params  {ms:8.1f} ms  ×{ms / base:.1f}")


if __name__ == "__main__":
    main()
