"""Pick the torch device a run asks for, or say plainly why it cannot have it."""

from __future__ import annotations

import torch

from dlcourse_tui.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda, then mps, then cpu; "cuda[:N]", "mps", "cpu" as asked if present."""
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no NVIDIA GPU is visible"
            raise UserError(f"--device {name}: CUDA is not available here ({why}); use --device cpu or --device auto.")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0 …).")
        return dev
    if name == "mps":
        if not _mps_available():
            raise UserError("--device mps: Apple's MPS backend is not available here; use --device cpu or --device auto.")
        return torch.device("mps")
    raise UserError(f"--device {name!r} is not a device: choose one of {', '.join(DEVICE_CHOICES)} (or cuda:N).")


def describe_devices() -> list[tuple[str, str]]:
    """(device, description) for every device torch can use here."""
    from dlcourse_tui.engine.threads import CORES

    how = (f"a run times its first steps on 1 and on {CORES} threads and keeps the faster (train.threads sets it)"
           if CORES > 1 else "1 thread")
    found = [("cpu", f"{CORES} cores; {how}")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            found.append((f"cuda:{i}", f"{p.name}, {p.total_memory / 2**30:.0f} GiB"))
    if _mps_available():
        found.append(("mps", "Apple GPU"))
    return found
