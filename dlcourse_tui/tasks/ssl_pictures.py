"""The self-supervised lesson's pictures and its table.

- views: what the pretext task shows the network (two views side by side; the four
  rotations; the shuffled puzzle; the grey input and its colours);
- pca: the validation images' frozen features projected on their first two principal
  components, each point in its true class's colour;
- collapse: the collapse monitor over the pretraining steps;
- the comparison table: method | pretraining time | probe on h | probe on z | vs random-init |
  vs supervised on the same labels | vs supervised on all labels, from this run and the newest
  completed runs of the lesson's other variants with the same data, seed and labels.

Pictures draw from their own generator (never the training one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from dlcourse_tui.data.views import make_view
from dlcourse_tui.engine.events import TableReady
from dlcourse_tui.render.images import chw_to_hwc, draw_label, tile, upscale
from dlcourse_tui.tasks.ssl_pretext import jigsaw_tiles, luma, rotate_all, shuffle_tiles

if TYPE_CHECKING:
    from dlcourse_tui.tasks.ssl import SSLTask

N_IMAGES = 6
# ten distinct class colours (Tableau 10)
PALETTE = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)], dtype=np.uint8)
BACKGROUND = 24


def _pixels(x: Tensor) -> np.ndarray:
    """(N, 3, H, W) uint8 or floats in [0, 1] -> (N, H, W, 3) uint8."""
    if x.dtype != torch.uint8:
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return chw_to_hwc(x.cpu().numpy())


@torch.inference_mode()
def views_picture(task: "SSLTask") -> tuple[str, np.ndarray]:
    """One row per image: what the method makes of it."""
    g = torch.Generator(device=task.device).manual_seed(7)
    x = task.data.val.x[:N_IMAGES]  # (n, C, H, W) uint8
    m = task.method
    if m in ("simclr", "byol", "barlow"):
        cols = [x, make_view(x, task.views, g), make_view(x, task.views, g)]
        title = "two random views of each image (left: the image): the network learns to match them"
    elif m == "rotnet":
        r, _ = rotate_all(x)
        cols = list(r.chunk(4))
        title = "each image at 0°, 90°, 180°, 270°: the network names the rotation"
    elif m == "jigsaw":
        tiles = jigsaw_tiles(x, task.grid, g)  # (n, T, C, 16, 16), standardised per tile
        shown, k = shuffle_tiles(tiles, task.perms, g)
        lo = shown.amin(dim=(2, 3, 4), keepdim=True)
        hi = shown.amax(dim=(2, 3, 4), keepdim=True)
        shown = (shown - lo) / (hi - lo).clamp_min(1e-6)  # each tile to [0, 1] for display
        n, T, C, t, _ = shown.shape
        gap = 2
        side = task.grid * t + (task.grid - 1) * gap
        puzzle = torch.full((n, C, side, side), 0.15, device=shown.device)
        for i in range(T):
            r, c = divmod(i, task.grid)
            puzzle[:, :, r * (t + gap):r * (t + gap) + t, c * (t + gap):c * (t + gap) + t] = shown[:, i]
        big = torch.nn.functional.interpolate(x.float() / 255, size=(side, side), mode="nearest")
        cols = [big, puzzle]
        title = (f"each image and its {task.grid}×{task.grid} tiles, cropped apart, standardised and shuffled by one of "
                 f"{task.n_perms} permutations: the network names which")
    else:  # colorization
        cols = [luma(x).expand(-1, 3, -1, -1), x]
        title = "the grey image the network sees, and the colours it must predict"
    cells = [_pixels(c) for c in cols]  # each (n, H, W, 3)
    h = max(c.shape[1] for c in cells)
    grid = np.stack([cells[j][i] if cells[j].shape[1] == h else np.pad(cells[j][i], ((0, h - cells[j].shape[1]),) * 2 + ((0, 0),))
                     for i in range(len(x)) for j in range(len(cells))])
    return title, upscale(tile(grid, ncols=len(cells), pad=2), 3)


def pca_2d(h: Tensor) -> np.ndarray:
    """The rows of h (N, D) on their first two principal components: (N, 2)."""
    centred = h.float() - h.float().mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)  # rows of v: the principal directions
    return (centred @ v[:2].T).cpu().numpy()


def pca_picture(h: Tensor, y: Tensor, classes: tuple[str, ...], size: int = 240) -> np.ndarray:
    """A scatter of the 2-D projection, one colour per class, with a legend on the right."""
    p = pca_2d(h)
    lo, hi = np.percentile(p, 1, axis=0), np.percentile(p, 99, axis=0)
    span = np.maximum(hi - lo, 1e-9)
    xy = np.clip((p - lo) / span, 0, 1) * (size - 9) + 4  # (N, 2) pixels, a margin of 4
    canvas = np.full((size, size, 3), BACKGROUND, dtype=np.uint8)
    labels = y.cpu().numpy()
    order = np.random.default_rng(0).permutation(len(xy))  # no class always drawn on top
    for i in order:
        cx, cy = int(xy[i, 0]), int(size - 1 - xy[i, 1])
        canvas[max(0, cy - 1):cy + 2, max(0, cx - 1):cx + 2] = PALETTE[labels[i] % len(PALETTE)]
    legend = np.full((size, 84, 3), BACKGROUND, dtype=np.uint8)
    for k, name in enumerate(classes[:len(PALETTE)]):
        top = 6 + k * 16
        legend[top:top + 9, 4:13] = PALETTE[k]
        legend = draw_label(legend, name[:10], (17, top), size=11)
    return np.concatenate([canvas, legend], axis=1)


def collapse_chart(values: list[float], d: int, width: int = 360, height: int = 120) -> np.ndarray:
    """The collapse monitor as a line over the steps, the 1/√d level dashed, 0 at the bottom."""
    ref = 1 / np.sqrt(d)
    v = np.asarray(values, dtype=np.float64)
    if len(v) > 4 * width:  # a long run: every k-th step is enough for a line this wide
        v = v[np.linspace(0, len(v) - 1, 4 * width).round().astype(int)]
    top = max(float(np.nanmax(v)) if len(v) else 0.0, ref) * 1.15
    left, right, pad = 44, 6, 8
    canvas = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    w = width - left - right

    def row(value: float) -> int:
        return int(round(pad + (1 - value / top) * (height - 2 * pad)))

    canvas[row(0), left:left + w] = 110  # the 0 line
    canvas[pad:height - pad, left] = 110
    for x in range(left, left + w, 6):  # 1/√d, dashed
        canvas[row(ref), x:x + 3] = (120, 200, 120)
    if len(v):
        xs = np.linspace(left, left + w - 1, len(v)) if len(v) > 1 else np.array([left + w / 2])
        pts = [(int(round(x)), row(float(y))) for x, y in zip(xs, v) if np.isfinite(y)]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:] or pts):
            n = max(abs(x1 - x0), abs(y1 - y0), 1)
            for t in np.linspace(0, 1, n + 1):
                canvas[int(round(y0 + (y1 - y0) * t)), int(round(x0 + (x1 - x0) * t))] = (240, 160, 60)
    canvas = draw_label(canvas, f"{top:.3f}", (2, pad), size=10)
    canvas = draw_label(canvas, "0", (2, row(0) - 5), size=10)
    canvas = draw_label(canvas, f"1/sqrt(d) {ref:.3f}", (left + 4, max(0, row(ref) - 12)), size=10,
                        color=(120, 200, 120))
    return upscale(canvas, 2)


# ---------------------------------------------------------------------------- the table
def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def _points(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None else f"{(a - b) * 100:+.1f}"


def _same_setting(cfg: dict[str, Any], mine: dict[str, Any]) -> bool:
    return (cfg.get("lesson") == mine["lesson"] and cfg.get("data") == mine["data"]
            and cfg.get("train", {}).get("seed") == mine["train"]["seed"]
            and cfg.get("model") == mine["model"])


def _key(cfg: dict[str, Any]) -> str:
    return cfg.get("variant") or cfg.get("task_args", {}).get("method", "?")


def comparison_table(task: "SSLTask") -> TableReady:
    """This run's row and the newest matching completed run of every other variant."""
    from dlcourse_tui.engine.runs import list_runs

    mine = task.config.to_dict()
    frac = task.label_fraction
    rows: dict[str, tuple[dict[str, Any], dict[str, float], str]] = {}
    sup_few = sup_all = None
    try:
        records = list_runs()
    except OSError:
        records = []
    for r in records:
        try:
            cfg = r.config
            if not _same_setting(cfg, mine) or r.status != "completed":
                continue
            metrics = r.summary.get("metrics", {})
        except (OSError, ValueError):
            continue
        args = cfg.get("task_args", {})
        if args.get("method") == "supervised":
            if args.get("label_fraction") == 1.0:
                sup_all = (metrics.get("val_acc"), r.summary.get("elapsed"))
            if args.get("label_fraction") == frac:
                sup_few = (metrics.get("val_acc"), r.summary.get("elapsed"))
            if args.get("label_fraction") not in (1.0, frac):
                continue
        elif args.get("label_fraction") != frac:
            continue
        rows[_key(cfg)] = (cfg, metrics, r.id)
    rows[_key(mine)] = (mine, task.last_eval, "this run")  # this run, newest of all
    if task.method == "supervised":
        result = (task.last_eval.get("val_acc"), task.pretrain_seconds)
        if frac == 1.0:
            sup_all = result
        else:
            sup_few = result
    n, k = len(task.data.train), len(task.labelled)
    table_rows = []
    for name, (cfg, m, run) in rows.items():
        args = cfg.get("task_args", {})
        method = args.get("method", "?")
        h, z, rnd = m.get("val_acc"), m.get("val_z_acc"), m.get("val_random_acc")
        seconds = m.get("val_pretrain_seconds")
        if method == "supervised":
            labels = "all" if args.get("label_fraction") == 1.0 else f"{round(args.get('label_fraction', 0) * n)}"
            table_rows.append((f"sup. {labels}" + (" *" if run == "this run" else ""),
                               "—" if seconds is None else f"{seconds:.0f} s",
                               _pct(h), "—", "—", "—", "—"))
            continue
        if method == "random":
            rnd = h
        table_rows.append((name + (" *" if run == "this run" else ""), "—" if seconds is None else f"{seconds:.0f} s",
                           _pct(h), _pct(z), _points(h, rnd), _points(h, sup_few[0] if sup_few else None),
                           _points(h, sup_all[0] if sup_all else None)))
    missing = [v for v, f in (("supervised_few", sup_few), ("supervised_all", sup_all)) if f is None]
    hint = (f" (run --variant {' and --variant '.join(missing)}, or --grid, to fill the supervised columns)"
            if missing else "")
    title = (f"linear probes on {k} labelled images ({frac:.0%} of {n}) after pretraining on all {n} without labels; "
             "same data, seed and encoder in every row; vs: points of probe-on-h accuracy, random = this row's "
             f"encoder before pretraining; sup. N: the encoder trained with N labels (its time: that training); "
             f"*: this run{hint}")
    columns = ("method", "pretrain", "probe h", "probe z", "vs random", f"vs sup. {k}", "vs sup. all")
    return TableReady("comparison", title, columns, tuple(table_rows))
