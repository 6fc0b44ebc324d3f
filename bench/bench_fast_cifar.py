"""The fast CIFAR-10 model (`resnet_fast`) through dlc's trainer vs a bare PyTorch loop with
the same model and settings, side by side in one process, alternating, several rounds.

    python bench/bench_fast_cifar.py --device cuda [--data-dir ~/data] [--epochs 2] [--rounds 3]
    python bench/bench_fast_cifar.py                       # CPU: a small width and data set

Settings of both loops: ResNet-9 (channels_last; bf16 autocast on CUDA), batch 512 (64 on
CPU), SGD with Nesterov-free momentum 0.9 and weight decay 5e-4, one-cycle to lr 0.4, label
smoothing 0.1, flip and 4-pixel random crops done as batched tensor ops on the device, the
uint8 images resident on the device. With --data-dir, CIFAR-10's own files (torchvision's
layout; --download fetches them); without, the embedded `shapes` images, also 3×32×32:
images per second do not depend on what the pictures show.

Prints images per second of each (median over rounds), the ratio trainer/bare (target
0.95×) and the device. Times are wall time with synchronisation on CUDA, CPU time of this
thread on a CPU (one torch thread; other work on a shared machine does not swamp it).
The bare loop evaluates once at the end, as the trainer is told to, so the ratio is the
cost of the trainer itself: events, metric read-backs, the run store, the checkpoint.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from dlcourse_tui.data import load_dataset
from dlcourse_tui.engine.optim import make_optimizer, make_scheduler
from dlcourse_tui.engine.session import execute, prepare_run
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.models.registry import create_model
from dlcourse_tui.tasks.classify import loss_and_correct, shuffled_order
from dlcourse_tui.tasks.techniques import make_augmenter


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.thread_time()


def bare_loop(cfg, data, device: torch.device) -> float:
    """Seconds for cfg.train.epochs epochs of a plain loop doing the trainer's work."""
    torch.manual_seed(cfg.train.seed)
    model = create_model(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes,
                         args=cfg.model_args).to(device)
    opt = make_optimizer([model], cfg.train)
    bs, n = cfg.train.batch_size, len(data.train)
    steps = -(-n // bs)
    sched = make_scheduler(opt, cfg.train, steps * cfg.train.epochs)
    augment = make_augmenter(cfg, data.kind, device, None)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)  # (1, C, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    x_all, y_all = data.train.x, data.train.y  # uint8 (N, C, H, W), int64 (N,), on the device
    t0 = clock(device)
    model.train()
    loss_sum = torch.zeros((), device=device)
    for epoch in range(cfg.train.epochs):
        order = shuffled_order(n, cfg.train.seed, epoch, device)
        for i in range(steps):
            idx = order[i * bs:(i + 1) * bs]
            x = (augment(x_all[idx]).float().div_(255) - mean) / std  # (B, C, H, W)
            loss, correct = loss_and_correct(model(x), y_all[idx], cfg.train.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach()
    float(loss_sum)
    with torch.inference_mode():  # the one evaluation the trainer does at the end
        model.eval()
        for i in range(0, len(data.val), 1024):
            loss_and_correct(model((data.val.x[i:i + 1024].float().div_(255) - mean) / std), data.val.y[i:i + 1024])
    return clock(device) - t0


def trainer_run(cfg, device: torch.device) -> float:
    """Seconds of execute(): training, the evaluation, run folder, metrics, checkpoint."""
    prepared = prepare_run(cfg)
    t0 = clock(device)
    execute(prepared, [])
    return clock(device) - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--data-dir", default="", help="CIFAR-10 files here (torchvision's layout); else embedded shapes")
    p.add_argument("--download", action="store_true", help="fetch CIFAR-10 into --data-dir first")
    p.add_argument("--epochs", type=int, default=0, help="epochs per round (default: 2 on CUDA, 1 on CPU)")
    p.add_argument("--n-train", type=int, default=0, help="training images (default: all of CIFAR-10, or "
                   "50000 shapes on CUDA, 512 on CPU)")
    p.add_argument("--batch-size", type=int, default=0, help="default: 512 on CUDA, 64 on CPU")
    p.add_argument("--width", type=int, default=0, help="resnet_fast width (default: 64 on CUDA, 16 on CPU)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if not gpu:
        torch.set_num_threads(1)
    os.environ["DLC_HOME"] = tempfile.mkdtemp(prefix="dlc-bench-")
    epochs = args.epochs or (2 if gpu else 1)
    bs = args.batch_size or (512 if gpu else 64)
    sets = [f"batch_size={bs}", "optimizer=sgd", "momentum=0.9", "weight_decay=0.0005", "lr=0.4",
            "schedule=onecycle", "label_smoothing=0.1", "augment=flip,crop=4", "activation_stats=false",
            f"eval_every={epochs}", "n_val=10000" if args.data_dir else "n_val=1000"]
    n_train = args.n_train or (0 if args.data_dir else (50000 if gpu else 512))
    if n_train:
        sets.append(f"n_train={n_train}")
    overrides = {"model.name": "resnet_fast", "model.width": args.width or (64 if gpu else 16), "train.epochs": epochs,
                 "train.device": args.device, "train.threads": 0 if gpu else 1}
    if args.data_dir:
        overrides |= {"data.name": "cifar10", "data.dir": args.data_dir, "data.download": args.download or None}
    cfg = find_lesson("training-techniques").config(sets=sets, overrides=overrides)
    data = load_dataset(cfg.data, seed=cfg.train.seed, args=cfg.data_args).to(device)
    images = len(data.train) * epochs
    bare_loop(cfg, data, device)  # warm-up: kernels, autotuning, allocator
    bare, trainer = [], []
    for _ in range(args.rounds):
        bare.append(images / bare_loop(cfg, data, device))
        trainer.append(images / trainer_run(cfg, device))
    ratios = [t / b for t, b in zip(trainer, bare)]
    name = torch.cuda.get_device_name(device) if gpu else "CPU, 1 torch thread"
    print(f"resnet_fast (width {cfg.model_args.get('width')}) on {data.name} {tuple(data.input_shape)}, "
          f"{len(data.train)} images × {epochs} epochs, batch {bs}, device {name}, {args.rounds} rounds")
    unit = "images per second" if gpu else "images per CPU-second"
    print(f"bare loop : {statistics.median(bare):10,.0f} {unit} (median)")
    print(f"trainer   : {statistics.median(trainer):10,.0f} {unit} (median)")
    print(f"ratio trainer/bare: median {statistics.median(ratios):.3f}  (min {min(ratios):.3f}, max {max(ratios):.3f}); "
          "target 0.95")


if __name__ == "__main__":
    main()
