"""Runs past one process: torch.distributed under torchrun, DistributedDataParallel.

`dlc run ... --nproc-per-node N` re-launches itself under torch's elastic launcher
(`python -m torch.distributed.run`, see engine/launch.py); each worker finds RANK, WORLD_SIZE and
LOCAL_RANK in its environment (so a run started with `torchrun ... -m
dlcourse_tui.cli run ...` works the same). Gloo on CPU, NCCL on CUDA. The global
batch is the one the user sets, split evenly across ranks; metrics are averaged
across ranks at each read-back; rank 0 alone writes the run folder.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dlcourse_tui.engine.launch import DistContext
from dlcourse_tui.errors import UserError

FAULT_ENV = "DLC_FAULT_INJECT"  # "rank=R,step=S": that rank raises at that step (for tests of failure handling)


def init_process_group(ctx: DistContext, device: torch.device) -> None:
    """Join the group (once): NCCL for CUDA, gloo otherwise."""
    if dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=5))


def distributed_device(ctx: DistContext, device: torch.device) -> torch.device:
    """Each process of a CUDA run takes the GPU of its local rank."""
    return torch.device("cuda", ctx.local_rank) if device.type == "cuda" else device


def wrap(module: nn.Module, ctx: DistContext | None, device: torch.device) -> nn.Module:
    """DDP around `module` in a distributed run (gradients averaged across ranks), else itself."""
    if ctx is None or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def average(values: Tensor, flag: float, ctx: DistContext) -> tuple[Tensor, bool]:
    """All ranks' mean of `values` and whether any rank raised `flag`, in one all-reduce."""
    packed = torch.cat([values.flatten(), torch.tensor([flag], device=values.device, dtype=values.dtype)])
    dist.all_reduce(packed)
    return (packed[:-1] / ctx.world_size).view_as(values), bool(packed[-1].item() > 0)


def broadcast_text(text: str, ctx: DistContext) -> str:
    """Rank 0's `text` on every rank."""
    box = [text if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return str(box[0])


def close_process_group() -> None:
    """Leave the group after a run that ended together on every rank.

    The barrier first: a rank that tore down its gloo connections while a peer still
    had traffic in flight made that peer's transport thread abort (SIGABRT).
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_worker(code: int) -> None:
    """End a torchrun worker now, skipping interpreter teardown.

    Everything the run keeps is on disk by then (checkpoints and the run folder are
    written atomically, the store is closed). Tearing down the interpreter with torch's
    distributed state in it aborted some workers at exit ("terminate called without an
    active exception", SIGABRT or SIGSEGV in a gloo/c10d thread; about 1 run in 10 on
    a loaded 2-core machine), so a finished run would report failure.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def fault_step(ctx: DistContext | None) -> int | None:
    """The step at which this rank must raise, per DLC_FAULT_INJECT, or None."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or ctx is None:
        return None
    parts = dict(p.split("=", 1) for p in spec.split(","))
    return int(parts["step"]) if int(parts.get("rank", -1)) == ctx.rank else None


def check_launch_device(device: torch.device, nproc_per_node: int) -> None:
    """UserError unless `device` (resolved) can take `nproc_per_node` processes on this machine."""
    if device.type == "cuda" and nproc_per_node > torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UserError(f"--nproc-per-node {nproc_per_node} takes one GPU per process, but this machine has {count}; "
                        f"use --nproc-per-node {count} or fewer, or --device cpu.")
    if device.type == "mps":
        raise UserError("--device mps does not run in several processes (torch.distributed has no MPS backend); "
                        "use --device cpu, or drop --nproc-per-node.")
