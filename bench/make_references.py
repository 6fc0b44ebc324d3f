"""Make a lesson's expected band: its default run over several seeds, the median and the
10–90 % range of its headline metric (and validation loss) per epoch, written to
lessons/NN-slug/reference.json, which the dashboard and `dlc runs show` draw a run over.

    python bench/make_references.py linear-classifier [more lessons] [--seeds 0 1 2 3 4] [--out DIR]

Each run uses the lesson's default config on the CPU, exactly as `dlc run LESSON --seed S`
would; the file records the command, the seeds and the config. Prints each run's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("DLC_HOME", tempfile.mkdtemp(prefix="dlc-ref-"))

from dlcourse_tui.course.reference import FILE, make_band  # noqa: E402
from dlcourse_tui.engine.session import execute, prepare_run  # noqa: E402
from dlcourse_tui.engine.upstream import resolve_upstream, upstream_config  # noqa: E402
from dlcourse_tui.lessons import find_lesson  # noqa: E402


def per_epoch(store, names: list[str]) -> dict[str, dict[int, float]]:
    """{metric: {epoch: value}} of a finished run's evaluations."""
    out: dict[str, dict[int, float]] = {n: {} for n in names}
    for line in store.record.metrics():
        if line.get("type") == "eval":
            for n in names:
                if isinstance(line.get(n), (int, float)):
                    out[n][line["epoch"]] = float(line[n])
    return out


def upstream_runs(lesson) -> dict[str, str]:  # noqa: ANN001 - a Lesson
    """The runs `lesson` builds on (need name → run id), trained first, once, as `dlc run` does:
    the other lesson's default with the need's match laid over it, seed 0."""
    config, missing = resolve_upstream(lesson.config(), lesson.needs)
    for need in missing:
        t0 = time.perf_counter()
        _, final = execute(prepare_run(upstream_config(need)), [])
        print(f"{lesson.id} builds on {need.lesson}: {final.status} in {time.perf_counter() - t0:.1f} s", flush=True)
        if final.status != "completed":
            sys.exit(f"the {need.lesson} run {lesson.id} builds on did not complete")
        config, _ = resolve_upstream(config, [need])
    return dict(config.upstream)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lessons", nargs="+")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--out", type=Path, default=None, help="write here instead of the lesson's folder")
    args = p.parse_args()
    for query in args.lessons:
        lesson = find_lesson(query)
        target = lesson.target.metric if lesson.target else "val_acc"
        names = list(dict.fromkeys([target, "val_loss"]))
        runs: dict[str, list[dict[int, float]]] = {n: [] for n in names}
        built_on = upstream_runs(lesson)
        for seed in args.seeds:
            config = lesson.config(overrides={"train.seed": seed, "train.device": "cpu"})
            config = replace(config, upstream=built_on)
            t0 = time.perf_counter()
            store, final = execute(prepare_run(config), [])
            print(f"{lesson.id} seed {seed}: {final.status} in {time.perf_counter() - t0:.1f} s, "
                  f"{target} {final.metrics.get(target, float('nan')):.4g}", flush=True)
            if final.status != "completed":
                sys.exit(f"{lesson.id} seed {seed} did not complete: {getattr(final, 'message', final.status)}")
            for n, values in per_epoch(store, names).items():
                if values:
                    runs[n].append(values)
        bands = {}
        for n, per_seed in runs.items():
            if len(per_seed) == len(args.seeds):
                b = make_band(per_seed)
                bands[n] = {"epochs": list(b.epochs), "median": list(b.median), "p10": list(b.p10), "p90": list(b.p90)}
        folder = args.out or lesson.folder
        folder.mkdir(parents=True, exist_ok=True)
        seeds = " ".join(map(str, args.seeds))
        data = {"made_by": f"python bench/make_references.py {lesson.id} --seeds {seeds}",
                "made_on": time.strftime("%Y-%m-%d"), "seeds": args.seeds,
                "config": lesson.config().to_dict(), "metrics": bands,
                "built_on": {name: f"the default {need.lesson} run (seed 0), {', '.join(f'{k}={v}' for k, v in need.match.items())}"
                             for name, need in ((n.name, n) for n in lesson.needs)}}
        (folder / FILE).write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {folder / FILE}: {', '.join(bands)} over {len(args.seeds)} seeds")


if __name__ == "__main__":
    main()
