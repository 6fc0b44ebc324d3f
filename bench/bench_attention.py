"""Training steps per second of the chapter-4 Transformer and ViT with the hand-written
attention and with F.scaled_dot_product_attention (`use_sdpa`), measured side by side, in
turns, on one device: the ratio is what to read (the absolute numbers move with the load).

    python bench/bench_attention.py                    # CPU
    python bench/bench_attention.py --device cuda      # a GPU (add --batch 512 to fill it)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.getcwd())


def models(batch: int, device: torch.device):
    """(name, build(use_sdpa) → model, one training step) for the lessons' default models."""
    from dlcourse_tui.lessons import find_lesson
    from dlcourse_tui.models.registry import create_model

    def lesson_args(lesson: str, sdpa: bool) -> dict:
        return {**find_lesson(lesson).config().model_args, "use_sdpa": sdpa}

    src = torch.randint(1, 11, (batch, 8), device=device)
    tgt = src.flip(1)
    images = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)

    def transformer(sdpa: bool):
        return create_model("transformer", input_shape=(8,), num_classes=11,
                            args=lesson_args("transformer", sdpa)).to(device)

    def vit(sdpa: bool):
        return create_model("vit", input_shape=(3, 32, 32), num_classes=10,
                            args=lesson_args("vision-transformer", sdpa)).to(device)

    def step_transformer(m, opt):
        loss = F.cross_entropy(m(src, tgt).flatten(0, 1), tgt.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def step_vit(m, opt):
        loss = F.cross_entropy(m(images), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return [("transformer (reverse, 8 tokens)", transformer, step_transformer),
            ("vit (shapes, 65 tokens)", vit, step_vit)]


def steps_per_second(model, step, device: torch.device, seconds: float) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(3):
        step(model, opt)
    if device.type == "cuda":
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(model, opt)
        n += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    p.add_argument("--rounds", type=int, default=3, help="turns of hand-written, fused (the best of each is kept)")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("DLC_THREADS", "1")))
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, device {device}, batch {args.batch}, threads {torch.get_num_threads()}")
    print(f"{'model':<34} {'hand steps/s':>12} {'sdpa steps/s':>12} {'sdpa / hand':>11}")
    for name, build, step in models(args.batch, device):
        torch.manual_seed(0)
        hand, fused = build(False), build(True)
        fused.load_state_dict(hand.state_dict())
        best = {"hand": 0.0, "sdpa": 0.0}
        for _ in range(args.rounds):
            best["hand"] = max(best["hand"], steps_per_second(hand, step, device, args.seconds))
            best["sdpa"] = max(best["sdpa"], steps_per_second(fused, step, device, args.seconds))
        print(f"{name:<34} {best['hand']:>12.1f} {best['sdpa']:>12.1f} {best['sdpa'] / best['hand']:>10.2f}x")


if __name__ == "__main__":
    main()
