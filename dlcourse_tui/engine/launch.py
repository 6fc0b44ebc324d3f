"""Starting a run past one process, without importing torch: the launcher's options and
command line, and where a worker stands (RANK, WORLD_SIZE, LOCAL_RANK from torchrun).

Kept apart from engine/distributed.py so that `dlc run` checks launcher options, and
learns whether it is a worker, before torch (1-3 s to import) is loaded.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from dlcourse_tui.errors import UserError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a distributed run."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> DistContext | None:
    """The launcher's RANK / WORLD_SIZE / LOCAL_RANK, or None for a single process."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    return DistContext(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))


def in_torchrun_worker() -> bool:
    """Whether a launcher started this process as one of several (WORLD_SIZE > 1)."""
    return context_from_env() is not None


def check_launch(*, nproc_per_node: int, nnodes: int, node_rank: int, rdzv_endpoint: str) -> None:
    """UserError unless the launcher options describe a run torchrun can start."""
    if nproc_per_node < 1:
        raise UserError(f"--nproc-per-node {nproc_per_node}: give 1 or more processes per machine "
                        "(one per GPU, e.g. --nproc-per-node 2).")
    if nnodes < 1:
        raise UserError(f"--nnodes {nnodes}: give 1 or more machines.")
    if not 0 <= node_rank < nnodes:
        raise UserError(f"--node-rank {node_rank} is out of range for --nnodes {nnodes}: give 0 … {nnodes - 1}, "
                        "0 on the machine at --rdzv-endpoint.")
    if nnodes > 1:
        if not rdzv_endpoint:
            raise UserError(f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT, the address of node 0 "
                            "(--node-rank 0) that every node can reach.")
        host, _, port = rdzv_endpoint.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"--rdzv-endpoint {rdzv_endpoint}: give HOST:PORT of node 0, e.g. node0.example:29500.")


def launcher_command(child_args: list[str], *, nproc_per_node: int, nnodes: int, node_rank: int,
                     rdzv_endpoint: str) -> list[str]:
    """The torchrun command that starts `dlc <child_args>` in every process.

    Several machines use the static rendezvous: node `node_rank` takes global ranks
    node_rank * nproc_per_node onwards, so node 0 (which hosts the rendezvous at
    `rdzv_endpoint`) holds rank 0 and writes the run folder. (With c10d, torchrun
    ignores --node-rank and orders the nodes by their host names and process ids.)
    """
    check_launch(nproc_per_node=nproc_per_node, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}"]
    if nnodes == 1:
        cmd.append("--standalone")  # one machine: rendezvous on a free local port
    else:
        cmd += [f"--nnodes={nnodes}", f"--node-rank={node_rank}", "--rdzv-backend=static",
                f"--rdzv-endpoint={rdzv_endpoint}"]
    return cmd + ["-m", "dlcourse_tui.cli", *child_args]


def end_with_parent() -> None:
    """In a child before exec (Linux): SIGTERM it when its parent dies, even by SIGKILL.

    The launcher starts torchrun in its own session (so a terminal's Ctrl+C reaches the
    launcher alone); without this, a launcher killed outright would leave torchrun and
    its workers running.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
