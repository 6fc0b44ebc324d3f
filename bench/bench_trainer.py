"""Trainer throughput vs a bare PyTorch loop: same model, data, batch size and seed,
measured side by side in one process, alternating, several rounds.

    python bench/bench_trainer.py [--model mlp] [--epochs 3] [--rounds 5] [--threads N] [--device cuda]

Prints images per second for both and the ratio trainer/bare (median over rounds). On
the CPU, CPU time of this thread, not wall time, so that other work on a shared machine
does not swamp the comparison (both loops run on one torch thread); on a GPU, wall time
with the device synchronised before each reading, the data resident on the device. The bare
loop keeps loss and accuracy on the device like the trainer and reads nothing back,
and evaluates once at the end like the trainer, so the ratio is the cost of the trainer itself: events, read-backs every log_every
steps, the run store writing metrics.jsonl, the end-of-run checkpoint.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from dlcourse_tui.data import load_dataset
from dlcourse_tui.engine.session import execute, prepare_run
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.models.registry import create_model
from dlcourse_tui.tasks.classify import shuffled_order


def clock(device: torch.device) -> float:
    """CPU time of this thread on the CPU; wall time after a synchronisation on a GPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.thread_time()


def bare_loop(cfg, data, device: torch.device) -> float:
    """Seconds for cfg.train.epochs epochs of the plainest loop that tracks the same metrics."""
    torch.manual_seed(cfg.train.seed)
    model = create_model(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes,
                         args=cfg.model_args).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.train.lr)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    x_all, y_all, bs = data.train.x, data.train.y, cfg.train.batch_size
    t0 = clock(device)
    for epoch in range(cfg.train.epochs):
        order = shuffled_order(len(y_all), cfg.train.seed, epoch, device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for i in range(0, len(y_all), bs):
            idx = order[i:i + bs]
            x = (x_all[idx].float().div_(255) - mean) / std
            logits = model(x)
            loss = F.cross_entropy(logits, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == y_all[idx]).float().mean()
    float(loss_sum), float(correct)
    with torch.inference_mode():  # the same final evaluation the trainer does
        model.eval()
        x = (data.val.x.float().div_(255) - mean) / std
        logits = model(x)
        float(F.cross_entropy(logits, data.val.y)), float((logits.argmax(1) == data.val.y).float().mean())
    return clock(device) - t0


def trainer_run(cfg, device: torch.device) -> float:
    """Seconds of execute(): run folder, training, evaluation, pictures, checkpoint."""
    prepared = prepare_run(cfg)
    t0 = clock(device)
    execute(prepared, [])
    return clock(device) - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mlp", choices=["linear", "mlp"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads for both loops")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = p.parse_args()
    device = torch.device(args.device)
    os.environ["DLC_HOME"] = tempfile.mkdtemp(prefix="dlc-bench-")
    cfg = find_lesson("linear-classifier").config(
        sets=[f"n_train={args.n_train}", "n_val=500", f"batch_size={args.batch_size}", "lr=0.01",
              f"eval_every={args.epochs}", f"threads={args.threads}"],
        overrides={"model.name": args.model, "train.epochs": args.epochs, "train.device": args.device})
    data = load_dataset(cfg.data, seed=cfg.train.seed, args=cfg.data_args).to(device)
    torch.set_num_threads(args.threads)
    images = args.n_train * args.epochs
    bare_loop(cfg, data, device)  # warm-up
    ratios, bare_rates, trainer_rates = [], [], []
    for _ in range(args.rounds):
        b = images / bare_loop(cfg, data, device)
        t = images / trainer_run(cfg, device)
        bare_rates.append(b)
        trainer_rates.append(t)
        ratios.append(t / b)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} torch threads"
    unit = "second" if device.type == "cuda" else "CPU-second"
    print(f"model {args.model} on shapes, batch {args.batch_size}, {args.epochs} epochs × {args.n_train} images, "
          f"{args.device} ({where}), {args.rounds} rounds")
    print(f"bare loop : {statistics.median(bare_rates):10,.0f} images per {unit} (median)")
    print(f"trainer   : {statistics.median(trainer_rates):10,.0f} images per {unit} (median)")
    print(f"ratio trainer/bare: median {statistics.median(ratios):.3f}  (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
