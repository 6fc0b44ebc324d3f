"""Pictures of attention, shared by the Transformer, the ViT and (chapter 5) captioning:
attention matrices per layer and head, and what a [CLS] token (or a caption word) looks at,
laid over the image. Torch tensors in, (H, W, 3) uint8 pixels out; nothing here trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from dlcourse_tui.engine.events import PictureReady
from dlcourse_tui.render.images import chw_to_hwc, colormap, draw_label, to_rgb

if TYPE_CHECKING:
    from dlcourse_tui.tasks.classify import ClassifyTask

GAP = 40  # grey of the gaps between cells
CLS_IMAGES = 2  # validation images in the [CLS] attention picture
CLS_CELL = 64  # pixels per image cell


def enlarge(pixels: np.ndarray, fy: int, fx: int | None = None) -> np.ndarray:
    """Nearest-neighbour enlargement by fy rows and fx columns per pixel."""
    fx = fy if fx is None else fx
    return np.repeat(np.repeat(pixels, fy, axis=0), fx, axis=1)


def grid_of(cells: list[list[np.ndarray]], pad: int = 3) -> np.ndarray:
    """Rows of (h, w, 3) cells (rows may differ in length, cells in size) → one picture."""
    height = [max(c.shape[0] for c in row) for row in cells]
    width = max(sum(c.shape[1] for c in row) + pad * (len(row) - 1) for row in cells)
    out = np.full((sum(height) + pad * (len(cells) - 1), width, 3), GAP, dtype=np.uint8)
    y = 0
    for row, h in zip(cells, height):
        x = 0
        for c in row:
            out[y:y + c.shape[0], x:x + c.shape[1]] = c
            x += c.shape[1] + pad
        y += h + pad
    return out


def labelled(cells: list[list[np.ndarray]], rows: list[str], cols: list[str], pad: int = 3) -> np.ndarray:
    """`grid_of` cells of one size with a label over each column and before each row."""
    ch, cw = cells[0][0].shape[:2]
    left, top = 8 + 6 * max(len(r) for r in rows), 16
    body = grid_of(cells, pad)
    out = np.full((top + body.shape[0], left + body.shape[1], 3), GAP, dtype=np.uint8)
    out[top:, left:] = body
    for j, text in enumerate(cols):
        out = draw_label(out, text, (left + j * (cw + pad) + cw // 2, top // 2), anchor="mm")
    for i, text in enumerate(rows):
        out = draw_label(out, text, (left // 2, top + i * (ch + pad) + ch // 2), anchor="mm")
    return out


def attention_cell(weights: Tensor, px: int) -> np.ndarray:
    """One (T_q, T_k) attention matrix, queries down and keys across, viridis from 0 to its
    largest weight, each entry px×px pixels."""
    w = weights.detach().float().cpu().numpy()
    return enlarge(colormap(w, vmin=0.0, vmax=max(float(w.max()), 1e-6), kind="viridis"), px)


def attention_matrices(layers: list[Tensor], px: int | None = None) -> np.ndarray:
    """Rows: layers; columns: heads. `layers`: L × (heads, T_q, T_k) for one example."""
    t = max(layers[0].shape[-2:])
    px = px or max(2, min(12, 96 // t))
    cells = [[attention_cell(a, px) for a in layer] for layer in layers]
    return labelled(cells, [f"layer {l + 1}" for l in range(len(layers))], [f"head {h + 1}" for h in range(len(layers[0]))])


def overlay(image: np.ndarray, heat: np.ndarray, size: int) -> np.ndarray:
    """A (gh, gw) heat map, scaled to its own maximum, in viridis over an (H, W, 3) uint8 image,
    both enlarged to about size×size: half image, half heat."""
    h, w = image.shape[:2]
    gh, gw = heat.shape
    f_img = max(1, size // h)
    img = enlarge(image, f_img).astype(np.float32)  # (H·f, W·f, 3)
    hm = colormap(heat, vmin=0.0, vmax=max(float(heat.max()), 1e-12), kind="viridis")  # (gh, gw, 3)
    hm = enlarge(hm, img.shape[0] // gh, img.shape[1] // gw).astype(np.float32)  # (H·f, W·f, 3)
    return (0.45 * img + 0.55 * hm).round().clip(0, 255).astype(np.uint8)


def image_cell(x: Tensor, size: int) -> np.ndarray:
    """(C, H, W) uint8 → (about size, size, 3) uint8."""
    image = to_rgb(chw_to_hwc(x.cpu().numpy()))
    return enlarge(image, max(1, size // image.shape[0]))


def cls_attention_picture(images: Tensor, maps: Tensor, size: int = CLS_CELL, *, row_names: list[str] | None = None,
                          col_names: list[str] | None = None) -> np.ndarray:
    """For each image (N, C, H, W) uint8: rows = layers, first the image, then each map of
    maps (N, L, heads, gh, gw) over it; images one under the other."""
    rows, names = [], []
    for x, m in zip(images, maps):
        image = to_rgb(chw_to_hwc(x.cpu().numpy()))
        for l, layer in enumerate(m.float().cpu().numpy()):  # (heads, gh, gw)
            rows.append([image_cell(x, size)] + [overlay(image, head, size) for head in layer])
            names.append(row_names[l] if row_names else f"layer {l + 1}")
    heads = maps.shape[2]
    return labelled(rows, names, ["image"] + (col_names or [f"head {h + 1}" for h in range(heads)]))


def cls_attention_pictures(task: "ClassifyTask", epoch: int) -> list[PictureReady]:
    """The ViT's [CLS] attention per layer and head over validation images, and (with
    task.rollout = true) the attention rollout up to each layer."""
    model = task.model
    model.eval()
    x = task.data.val.x[:CLS_IMAGES]  # (N, C, H, W) uint8
    with torch.inference_mode():
        inputs = task.prepare(x)
        per_head = model.cls_attention(inputs)  # (N, L, h, gh, gw)
        out = [PictureReady("cls_attention", "what [CLS] attends to: the first row of each layer's attention without "
                            "its first element, reshaped to the patch grid and laid over the image; rows: layers "
                            "1 … L, columns: the image, then heads 1 … h (each map scaled to its own maximum)",
                            epoch, cls_attention_picture(x, per_head))]
        if task.config.task_args.get("rollout"):
            rolled = model.cls_attention(inputs, rollout=True)  # (N, L, 1, gh, gw)
            maps = rolled[:, :, 0][:, None]  # (N, 1, L, gh, gw): one row per image, a column per layer
            L = maps.shape[2]
            out.append(PictureReady("attention_rollout", "attention rollout: [CLS]'s attention followed through "
                                    "the layers (heads averaged, the residual as ½ I); one row per image, columns: "
                                    "the image, then the rollout up to layer 1 … L", epoch,
                                    cls_attention_picture(x, maps, row_names=["rollout"],
                                                          col_names=[f"to layer {l + 1}" for l in range(L)])))
    return out
