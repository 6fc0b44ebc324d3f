"""A lesson's expected band: the median and the 10–90 % range of its headline metrics per
epoch over several seeds of its default config, shipped beside experiment.toml as
reference.json and made by bench/make_references.py (which says how in the file).

    {"made_by": "python bench/make_references.py linear-classifier --seeds 0 1 2 3 4",
     "seeds": [0, 1, 2, 3, 4], "config": {...the default config...},
     "metrics": {"val_acc": {"epochs": [1, 2, ...], "median": [...], "p10": [...], "p90": [...]}}}
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "reference.json"


@dataclass(frozen=True)
class Band:
    """One metric's expected values per epoch."""

    epochs: tuple[int, ...]
    median: tuple[float, ...]
    p10: tuple[float, ...]
    p90: tuple[float, ...]

    def at(self, epoch: int) -> tuple[float, float, float] | None:
        """(p10, median, p90) at `epoch`, or None where the band has no value."""
        if epoch not in self.epochs:
            return None
        i = self.epochs.index(epoch)
        return self.p10[i], self.median[i], self.p90[i]


@dataclass(frozen=True)
class Reference:
    """The bands of one lesson's default run, and how they were made."""

    made_by: str
    seeds: tuple[int, ...]
    config: dict[str, Any]
    bands: dict[str, Band]


def load_reference(folder: Path) -> Reference | None:
    """The lesson folder's reference.json, or None when it has none (or it is unreadable)."""
    try:
        data = json.loads((folder / FILE).read_text(encoding="utf-8"))
        bands = {name: Band(tuple(int(e) for e in b["epochs"]), tuple(map(float, b["median"])),
                            tuple(map(float, b["p10"])), tuple(map(float, b["p90"])))
                 for name, b in data["metrics"].items()}
        return Reference(str(data.get("made_by", "")), tuple(data.get("seeds", ())), dict(data.get("config", {})), bands)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of `values`, linearly interpolated (numpy's default method)."""
    v = sorted(values)
    if len(v) == 1:
        return v[0]
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def make_band(per_seed: list[dict[int, float]]) -> Band:
    """A band from each seed's {epoch: value}; epochs every seed has."""
    epochs = sorted(set.intersection(*(set(s) for s in per_seed))) if per_seed else []
    cols = [[s[e] for s in per_seed] for e in epochs]
    return Band(tuple(epochs), tuple(statistics.median(c) for c in cols), tuple(quantile(c, 0.1) for c in cols),
                tuple(quantile(c, 0.9) for c in cols))


def band_series(reference: Reference | None, name: str, steps_per_epoch: int,
                epochs: int | None = None) -> dict[str, tuple[list[float], list[float]]]:
    """The band of metric `name` as two chart series, "expected p10" and "expected p90", at
    the steps its epochs end, up to `epochs` (the run's own length: a shorter run's curve is
    not squeezed by a band drawn past its end); {} when there is no band to draw."""
    band = reference.bands.get(name) if reference is not None else None
    if band is None or steps_per_epoch <= 0:
        return {}
    keep = [i for i, e in enumerate(band.epochs) if epochs is None or e <= epochs]
    if not keep:
        return {}
    xs = [float(band.epochs[i] * steps_per_epoch) for i in keep]
    return {"expected p10": (xs, [band.p10[i] for i in keep]), "expected p90": (xs, [band.p90[i] for i in keep])}
