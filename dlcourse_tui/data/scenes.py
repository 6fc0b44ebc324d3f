"""Scenes of several shapes: 64×64 RGB (size a knob), 1–4 objects of the 10 shape classes.

One generator serves segmentation, detection, captioning and CLIP-style lessons. Every
image has the background of `shapes` (a colour with a gentle gradient, thin clutter lines
and dots, pixel noise) and 1..max_objects objects drawn with the same signed distance
functions as `shapes` (data/shapes.py), at random positions, sizes (26–46% of the side),
rotations, aspects and colours; later objects are drawn over earlier ones, so objects may
overlap. Each image carries:

- "masks" (N, H, W) uint8, the semantic mask: 0 background, 1..10 the class + 1 of the
  object visible at each pixel;
- "instances" (N, H, W) uint8, the instance map: 0 background, k + 1 where object k is
  visible (`instance_masks` turns it into (N, K, H, W) booleans, one mask per object);
- "boxes" (N, K, 4) float32, (x0, y0, x1, y1) in pixel-edge coordinates (pixel (i, j) spans
  x in [j, j+1], y in [i, i+1]), tight around each object's visible pixels: the box of its
  instance mask; zeros for absent objects;
- "box_labels" (N, K) int64, each object's class (0..9), -1 for absent objects (present
  objects come first);
- "colours" (N, K) and "places" (N, K) int64: the palette colour each object is named by
  and the cell of the 3×3 grid its centre lies in (row · 3 + column), -1 when absent;
- "captions": N strings in a small fixed grammar (below), and `caption_tokens` /
  `decode_caption` to turn them into token ids of `CAPTION_VOCAB` and back.

The caption grammar: objects are named in reading order (by grid cell, then left to right)

    caption  := object place                                 one object
              | object relation object                       two objects
              | object place ("," object place)* "and" object place    three or four
    object   := ("a" | "an") COLOUR SHAPE                   ("an" before a vowel: "an orange ring")
    place    := "at the top left" | "at the top" | "at the top right" | "on the left"
              | "in the middle" | "on the right" | "at the bottom left" | "at the bottom"
              | "at the bottom right"                          (the 3×3 cell of its centre)
    relation := "above" | "below" | "to the left of" | "to the right of"
                (the first object seen from the second, along the axis they differ most)

e.g. "a red circle above a blue square", "a green star at the top left, a white ring in
the middle and a pink heart at the bottom right". COLOUR is one of 12 palette names,
SHAPE one of the 10 classes: 39 words in all (CAPTION_WORDS), at most 31 per caption.

Objects are drawn vectorised over the whole batch, each in a small window around it (an
object fits a disc of radius r, so its distance function is evaluated on a square of side
about 2r + 3 pixels, gathered from and scattered back into the flattened image), which
renders thousands of scenes a second on a CPU (bench/bench_data.py).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import Tensor

from dlcourse_tui.data.base import Dataset, Split, channel_stats
from dlcourse_tui.data.digits import pixel_grid, segment_distance_sq
from dlcourse_tui.data.shapes import (_CIRCLE, _ELLIPSE, _HEART, _LUMA, _PALETTE_RGB, _RING, _SDF, LIGHT_ON_DARK,
                                      PALETTE, SHAPE_CLASSES, _uniform)

# ---------------------------------------------------------------------------- captions

COLOUR_NAMES: tuple[str, ...] = tuple(name for name, _ in PALETTE)
PLACE_PHRASES: tuple[str, ...] = (
    "at the top left", "at the top", "at the top right",
    "on the left", "in the middle", "on the right",
    "at the bottom left", "at the bottom", "at the bottom right",
)
RELATION_PHRASES: tuple[str, ...] = ("above", "below", "to the left of", "to the right of")
#: Every word a caption may use, in a fixed order ("," is a word of its own).
CAPTION_WORDS: tuple[str, ...] = ("a", "an", "and", ",", "at", "on", "in", "the", "top", "bottom", "left", "right",
                                  "middle", "above", "below", "to", "of") + COLOUR_NAMES + SHAPE_CLASSES
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
#: Token ids: 0 padding, 1 start, 2 end, then the words.
CAPTION_VOCAB: tuple[str, ...] = (PAD, BOS, EOS) + CAPTION_WORDS
_TOKEN_ID = {w: i for i, w in enumerate(CAPTION_VOCAB)}
#: The longest caption in words: four objects of 7 words, two commas and an "and".
MAX_CAPTION_WORDS = 31
SCENE_CLASSES: tuple[str, ...] = ("background",) + SHAPE_CLASSES  # the classes of a semantic mask

_THIRDS = torch.tensor([1 / 3, 2 / 3])


def _object_words(colour: int, cls: int) -> str:
    name = COLOUR_NAMES[colour]
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} {SHAPE_CLASSES[cls]}"


def compose_caption(objects: list[tuple[int, int, int, float, float]]) -> str:
    """The caption of objects given as (colour, class, place, cx, cy), in any order (the
    grammar of the module docstring; cx, cy are the centres that order and relate them)."""
    if not objects:
        raise ValueError("a caption needs at least one object")
    objs = sorted(objects, key=lambda o: (o[2], o[3], o[4]))  # reading order: cell, then x, then y
    if len(objs) == 1:
        c, k, p, _, _ = objs[0]
        return f"{_object_words(c, k)} {PLACE_PHRASES[p]}"
    if len(objs) == 2:
        (c0, k0, _, x0, y0), (c1, k1, _, x1, y1) = objs
        dx, dy = x1 - x0, y1 - y0  # the second object seen from the first
        if abs(dy) >= abs(dx):
            rel = "above" if dy > 0 else "below"
        else:
            rel = "to the left of" if dx > 0 else "to the right of"
        return f"{_object_words(c0, k0)} {rel} {_object_words(c1, k1)}"
    phrases = [f"{_object_words(c, k)} {PLACE_PHRASES[p]}" for c, k, p, _, _ in objs]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def caption_words(caption: str) -> list[str]:
    """'a red circle, a …' -> ['a', 'red', 'circle', ',', 'a', …]; ValueError on a word outside CAPTION_WORDS."""
    words = re.findall(r",|[^\s,]+", caption)
    unknown = [w for w in words if w not in _TOKEN_ID or w in (PAD, BOS, EOS)]
    if unknown:
        raise ValueError(f"caption {caption!r} uses words outside the scenes vocabulary: {unknown}")
    return words


def caption_tokens(captions: list[str], length: int = MAX_CAPTION_WORDS + 2) -> Tensor:
    """Captions as token ids (N, length) int64: <bos> words <eos>, then <pad> (0)."""
    out = torch.zeros(len(captions), length, dtype=torch.int64)  # (N, L)
    for i, caption in enumerate(captions):
        ids = [_TOKEN_ID[BOS]] + [_TOKEN_ID[w] for w in caption_words(caption)] + [_TOKEN_ID[EOS]]
        if len(ids) > length:
            raise ValueError(f"caption {i} needs {len(ids)} tokens, more than length={length}")
        out[i, :len(ids)] = torch.tensor(ids)
    return out


def decode_caption(ids: Tensor | list[int]) -> str:
    """Token ids back to text, up to the first <eos> (start and padding dropped)."""
    words: list[str] = []
    for i in (ids.tolist() if isinstance(ids, Tensor) else ids):
        word = CAPTION_VOCAB[int(i)]
        if word == EOS:
            break
        if word not in (PAD, BOS):
            words.append(word)
    return " ".join(words).replace(" ,", ",")


def instance_masks(instances: Tensor, max_objects: int) -> Tensor:
    """The instance map (N, H, W) uint8 as one boolean mask per object: (N, K, H, W)."""
    k = torch.arange(1, max_objects + 1, device=instances.device, dtype=instances.dtype)  # (K,)
    return instances[:, None] == k[None, :, None, None]  # (N, K, H, W)


# ---------------------------------------------------------------------------- generator

_CHUNK = 128  # images rendered at once


class _Window:
    """side×side squares of pixels at integer corners inside the S×S image, one per image
    and mark (or object): what each mark or object is drawn in (gathered from, blended,
    scattered back), so nothing is computed for the pixels far from it."""

    def __init__(self, corner: Tensor, side: int, S: int) -> None:
        """corner (m, L, 2): the wanted top-left (x, y) in pixels, moved inside the image."""
        steps = torch.arange(side)  # (side,)
        ox = corner[..., 0].floor().clamp(0, S - side).long()  # (m, L) left column
        oy = corner[..., 1].floor().clamp(0, S - side).long()  # (m, L) top row
        self.x = ((ox[..., None] + steps).float() + 0.5)[..., None, :]  # (m, L, 1, side) pixel-centre x
        self.y = ((oy[..., None] + steps).float() + 0.5)[..., :, None]  # (m, L, side, 1) pixel-centre y
        self.idx = ((oy[..., None] + steps)[..., :, None] * S + (ox[..., None] + steps)[..., None, :]).flatten(-2)  # (m, L, side²)

    def paint(self, img: Tensor, l: int, alpha: Tensor, colour: Tensor) -> None:
        """img (m, 3, H*W) ← img + alpha (m, side, side) · (colour (m, 3, side²) − img), in window l."""
        idx3 = self.idx[:, l, None].expand(-1, 3, -1)  # (m, 3, side²)
        under = img.gather(2, idx3)  # (m, 3, side²)
        img.scatter_(2, idx3, under + alpha.flatten(1)[:, None] * (colour - under))

    def label(self, ids: Tensor, l: int, inside: Tensor, value: int) -> None:
        """ids (m, H*W) ← value where inside (m, side, side), in window l."""
        under = ids.gather(1, self.idx[:, l])  # (m, side²)
        ids.scatter_(1, self.idx[:, l], torch.where(inside.flatten(1), torch.tensor(value, dtype=ids.dtype), under))


def make_scenes(
    n: int,
    *,
    seed: int,
    size: int = 64,
    max_objects: int = 4,
    min_objects: int = 1,
    clutter: float = 0.5,
    noise: float = 0.06,
    min_size: float = 0.26,
    max_size: float = 0.46,
) -> Split:
    """Generate `n` scenes: x (n, 3, size, size) uint8, y (n,) int64 (the class of object 0);
    extras as in the module docstring. Each image holds min_objects..max_objects objects
    (uniformly), fewer when one would mostly cover another; object diameters are
    min_size..max_size of the side. `clutter` scales the background lines and dots, `noise`
    is the standard deviation of the Gaussian pixel noise on a [0, 1] scale.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 1 <= min_objects <= max_objects <= 8:
        raise ValueError(f"need 1 <= min_objects <= max_objects <= 8, got {min_objects} and {max_objects}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    if clutter < 0 or noise < 0:
        raise ValueError(f"clutter and noise must be >= 0, got {clutter} and {noise}")
    if not 0.05 <= min_size <= max_size <= 0.9:
        raise ValueError(f"need 0.05 <= min_size <= max_size <= 0.9, got {min_size} and {max_size}")
    K, S = max_objects, size
    g = torch.Generator().manual_seed(int(seed))

    # ---- objects: (n, K) parameters
    cls = torch.randint(0, len(SHAPE_CLASSES), (n, K), generator=g)  # (n, K)
    count = torch.randint(min_objects, K + 1, (n,), generator=g)  # (n,)
    present = torch.arange(K)[None, :] < count[:, None]  # (n, K)
    diam = _uniform((n, K), min_size, max_size, g)  # (n, K) as a fraction of the side
    radius = diam * S / 2  # (n, K) pixels: the object fits this disc
    angle = _uniform((n, K), 0.0, 2 * math.pi, g)  # (n, K)
    angle = torch.where(cls == _HEART, _uniform((n, K), -0.45, 0.45, g), angle)  # hearts stay roughly upright
    squeeze = _uniform((n, K), 0.78, 1.0, g)  # (n, K)
    squeeze = torch.where(cls == _CIRCLE, 0.92 + 0.08 * squeeze, squeeze)
    squeeze = torch.where((cls == _ELLIPSE) | (cls == _RING), torch.ones_like(squeeze), squeeze)
    squeeze_u = torch.rand(n, K, generator=g) < 0.5  # (n, K)
    sx = torch.where(squeeze_u, squeeze, torch.ones_like(squeeze))  # (n, K)
    sy = torch.where(squeeze_u, torch.ones_like(squeeze), squeeze)  # (n, K)
    shape_param = _uniform((n, K), 0.4, 0.58, g)  # (n, K) ellipse minor semi-axis

    # centres: object 0 anywhere it fits; each later one at the best of 8 spots (farthest
    # from the objects placed so far), and left out when even that spot mostly covers one
    lo, hi = radius + 0.5, S - radius - 0.5  # (n, K)
    cand = torch.rand(n, K, 8, 2, generator=g)  # (n, K, 8, 2)
    centre = torch.empty(n, K, 2)  # (n, K, 2) (x, y) in pixels
    centre[:, 0] = lo[:, 0, None] + (hi - lo)[:, 0, None] * cand[:, 0, 0]
    for k in range(1, K):
        spots = lo[:, k, None, None] + (hi - lo)[:, k, None, None] * cand[:, k]  # (n, 8, 2)
        gap = torch.cdist(spots, centre[:, :k]) - radius[:, None, :k] - radius[:, k, None, None]  # (n, 8, k)
        gap = torch.where(present[:, None, :k], gap, torch.full_like(gap, float("inf")))
        best_gap, best = gap.amin(dim=2).max(dim=1)  # (n,), (n,)
        centre[:, k] = spots[torch.arange(n), best]
        present[:, k] &= best_gap > -0.6 * radius[:, k]
    # present objects first, in drawing order
    order = torch.sort((~present).to(torch.int8), dim=1, stable=True).indices  # (n, K)
    cls, present, diam, radius, angle = (t.gather(1, order) for t in (cls, present, diam, radius, angle))
    sx, sy, shape_param = (t.gather(1, order) for t in (sx, sy, shape_param))
    centre = centre.gather(1, order[..., None].expand(-1, -1, 2))  # (n, K, 2)
    count = present.sum(1)  # (n,)

    # ---- background and object colours, as in `shapes`
    light_on_dark = torch.rand(n, generator=g) < LIGHT_ON_DARK  # (n,)
    bg_raw = torch.rand(n, 3, generator=g)  # (n, 3)
    bg_base = torch.where(light_on_dark[:, None], 0.6 * bg_raw, 0.45 + 0.55 * bg_raw)  # (n, 3)
    bg_grad = _uniform((n, 2, 3), -0.22, 0.22, g)  # (n, 2, 3) change across x and y
    rel = centre / S - 0.5  # (n, K, 2)
    bg_at = (bg_base[:, None] + torch.einsum("nkd,ndc->nkc", rel, bg_grad)).clamp(0, 1)  # (n, K, 3)
    diff = _PALETTE_RGB[None, None] - bg_at[:, :, None]  # (n, K, P, 3)
    dist = diff.norm(dim=-1)  # (n, K, P)
    polarity = torch.where(light_on_dark, 1.0, -1.0)[:, None, None]  # (n, 1, 1)
    ok = (dist > 0.45) & ((diff @ _LUMA) * polarity > 0.2)  # (n, K, P)
    key = torch.where(ok, 1.0 + torch.rand(dist.shape, generator=g), dist / 10)  # (n, K, P)
    colour = (_PALETTE_RGB[key.argmax(dim=-1)] + _uniform((n, K, 3), -0.06, 0.06, g)).clamp(0, 1)  # (n, K, 3)
    shade = _uniform((n, K, 2), -0.12, 0.12, g)  # (n, K, 2) brightness ramp across the object

    # ---- clutter: thin lines and small dots behind the objects
    area = (S / 64) ** 2
    n_lines, n_dots = round(10 * clutter * area), round(20 * clutter * area)
    L = n_lines + n_dots
    seg_a = torch.rand(n, L, 2, generator=g) * S  # (n, L, 2)
    seg_len = _uniform((n, L), 0.1 * S, 0.3 * S, g)  # (n, L)
    seg_len[:, n_lines:] = 0.0  # dots are zero-length segments
    seg_dir = _uniform((n, L), 0.0, 2 * math.pi, g)  # (n, L)
    seg_b = seg_a + seg_len[..., None] * torch.stack([seg_dir.cos(), seg_dir.sin()], dim=-1)  # (n, L, 2)
    seg_half = torch.cat([_uniform((n, n_lines), 0.35, 0.8, g), _uniform((n, n_dots), 0.7, 1.6, g)], dim=1)  # (n, L)
    seg_alpha = _uniform((n, L), 0.5, 1.0, g) * (torch.rand(n, L, generator=g) < torch.rand(n, 1, generator=g))
    seg_colour = torch.rand(n, L, 3, generator=g)  # (n, L, 3)

    # ---- render in chunks; each mark and object inside its own window
    gx, gy = pixel_grid(S, S)  # (1, W), (H, 1)
    ramp_x, ramp_y = gx / S - 0.5, gy / S - 0.5  # (1, W), (H, 1)
    Wn = min(S, math.ceil(max_size * S) + 3)  # an object's window: its disc and a pixel around
    Wl = min(S, math.ceil(0.3 * S + 2 * 0.8) + 5)  # a line's window: the longest line, its width and a pixel
    Wd = min(S, math.ceil(2 * 1.6) + 5)  # a dot's window
    images = torch.empty(n, 3, S, S, dtype=torch.uint8)
    instances = torch.zeros(n, S, S, dtype=torch.uint8)
    masks = torch.zeros(n, S, S, dtype=torch.uint8)
    rows = torch.zeros(n, K, S, dtype=torch.bool)  # (n, K, H) rows where each object is visible
    cols = torch.zeros(n, K, S, dtype=torch.bool)  # (n, K, W) columns where each object is visible
    for c0 in range(0, n, _CHUNK):
        c1 = min(n, c0 + _CHUNK)
        m = c1 - c0
        img = bg_base[c0:c1, :, None, None] + (
            bg_grad[c0:c1, 0, :, None, None] * ramp_x + bg_grad[c0:c1, 1, :, None, None] * ramp_y
        )  # (m, 3, H, W)
        img = img.reshape(m, 3, S * S).contiguous()  # (m, 3, H*W): windows are gathered from and scattered into it
        inst = torch.zeros(m, S * S, dtype=torch.uint8)  # (m, H*W)
        if L:  # clutter is sparse: where marks cross, the most opaque one is painted (as in `shapes`)
            best = torch.zeros(m, S * S)  # (m, H*W) the largest key: quantised coverage · L + mark index
            for first, count_, side in ((0, n_lines, Wl), (n_lines, n_dots, Wd)):  # lines, then dots
                if not count_:
                    continue
                a, b = seg_a[c0:c1, first:first + count_], seg_b[c0:c1, first:first + count_]  # (m, L', 2)
                win = _Window(torch.minimum(a, b) - 2.5, side, S)
                d = segment_distance_sq(a, b, win.x, win.y).sqrt_()  # (m, L', side, side)
                cover = (seg_half[c0:c1, first:first + count_, None, None] + 0.5 - d).clamp_(0, 1)
                cover *= seg_alpha[c0:c1, first:first + count_, None, None]  # (m, L', side, side)
                mark = torch.arange(first, first + count_, dtype=torch.float32)[None, :, None, None]  # (1, L', 1, 1)
                key = (cover * 1000).round_().mul_(L).add_(mark)  # (m, L', side, side)
                best.scatter_reduce_(1, win.idx.flatten(1), key.flatten(1), reduce="amax")
            a = (best // L / 1000)[:, None]  # (m, 1, H*W) that mark's coverage
            ink = seg_colour[c0:c1].transpose(1, 2).gather(2, (best % L).long()[:, None].expand(-1, 3, -1))  # (m, 3, H*W)
            img = img + a * (ink - img)
        # every object's window at once: (m, K, Wn, Wn), then painted in drawing order
        on = present[c0:c1, :, None, None]  # (m, K, 1, 1)
        win = _Window(centre[c0:c1] - Wn / 2, Wn, S)
        dx = win.x - centre[c0:c1, :, 0, None, None]  # (m, K, 1, Wn)
        dy = win.y - centre[c0:c1, :, 1, None, None]  # (m, K, Wn, 1)
        cos, sin = angle[c0:c1].cos()[..., None, None], angle[c0:c1].sin()[..., None, None]  # (m, K, 1, 1)
        r = radius[c0:c1, :, None, None]  # (m, K, 1, 1)
        u = (dx * cos + dy * sin) / (r * sx[c0:c1, :, None, None])  # (m, K, Wn, Wn) the object's own frame
        v = (dy * cos - dx * sin) / (r * sy[c0:c1, :, None, None])  # (m, K, Wn, Wn)
        px = (r * torch.minimum(sx, sy)[c0:c1, :, None, None]).reshape(m * K, 1, 1)  # (m*K, 1, 1) pixels per unit
        flat_u, flat_v = u.reshape(m * K, Wn, Wn), v.reshape(m * K, Wn, Wn)  # (m*K, Wn, Wn)
        kind, p = cls[c0:c1].reshape(-1), shape_param[c0:c1].reshape(-1, 1, 1)  # (m*K,), (m*K, 1, 1)
        sd = torch.full((m * K, Wn, Wn), float("inf"))  # (m*K, Wn, Wn) signed distance in pixels (absent objects: far outside)
        for j, fn in enumerate(_SDF):
            sel = ((kind == j) & present[c0:c1].reshape(-1)).nonzero().squeeze(1)  # (M,)
            if sel.numel():
                sd[sel] = fn(flat_u[sel], flat_v[sel], p[sel]) * px[sel]
        sd = sd.view(m, K, Wn, Wn)
        alpha = (0.5 - sd).clamp_(0, 1) * on  # (m, K, Wn, Wn) anti-aliased coverage
        inside = (sd < 0) & on  # (m, K, Wn, Wn)
        light = 1.0 + shade[c0:c1, :, 0, None, None] * u.clamp(-1, 1) + shade[c0:c1, :, 1, None, None] * v.clamp(-1, 1)
        obj = (colour[c0:c1, :, :, None, None] * light[:, :, None]).clamp(0, 1).flatten(3)  # (m, K, 3, Wn*Wn)
        for k in range(K):
            if present[c0:c1, k].any():
                win.paint(img, k, alpha[:, k], obj[:, k])
                win.label(inst, k, inside[:, k], k + 1)
        img = img.view(m, 3, S, S)
        if noise > 0:
            img = img + noise * torch.randn(m, 3, S, S, generator=g)  # (m, 3, H, W)
        images[c0:c1] = img.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        instances[c0:c1] = inst.view(m, S, S)
        # targets read off the instance map: the semantic mask, tight boxes of the visible pixels
        lut = torch.cat([torch.zeros(m, 1, dtype=torch.uint8), torch.where(present[c0:c1], cls[c0:c1] + 1, 0).to(torch.uint8)], 1)
        masks[c0:c1] = lut.gather(1, inst.long()).view(m, S, S)  # (m, H, W)
        visible = instance_masks(inst.view(m, S, S), K)  # (m, K, H, W)
        rows[c0:c1], cols[c0:c1] = visible.any(dim=3), visible.any(dim=2)  # (m, K, H), (m, K, W)


    # ---- boxes: tight around each object's visible pixels
    idx = torch.arange(S, dtype=torch.float32)  # (S,)
    x0 = torch.where(cols, idx, float(S)).amin(dim=2)  # (n, K)
    x1 = torch.where(cols, idx + 1, -1.0).amax(dim=2)  # (n, K)
    y0 = torch.where(rows, idx, float(S)).amin(dim=2)  # (n, K)
    y1 = torch.where(rows, idx + 1, -1.0).amax(dim=2)  # (n, K)
    seen = rows.any(dim=2)  # (n, K) an object hidden entirely (rare) counts as absent
    present &= seen
    boxes = torch.where(present[..., None], torch.stack([x0, y0, x1, y1], dim=-1), torch.zeros(n, K, 4))  # (n, K, 4)
    box_labels = torch.where(present, cls, torch.full_like(cls, -1))  # (n, K)

    # ---- captions from the true parameters
    colour_word = torch.cdist(colour.reshape(-1, 3), _PALETTE_RGB).argmin(dim=1).reshape(n, K)  # (n, K)
    cell = torch.bucketize(centre / S, _THIRDS)  # (n, K, 2) column, row
    place = cell[..., 1] * 3 + cell[..., 0]  # (n, K)
    colours = torch.where(present, colour_word, -1)  # (n, K)
    places = torch.where(present, place, -1)  # (n, K)
    table = torch.stack([colour_word.float(), cls.float(), place.float(), centre[..., 0], centre[..., 1]], -1).tolist()
    captions = [compose_caption([(int(c), int(k), int(p), x, y) for (c, k, p, x, y), on in zip(objs, flags) if on])
                for objs, flags in zip(table, present.tolist())]

    extras = {"masks": masks, "instances": instances, "boxes": boxes, "box_labels": box_labels,
              "colours": colours, "places": places, "captions": captions}
    return Split(images, torch.where(present[:, 0], cls[:, 0], 0), extras)


def scenes_dataset(*, n_train: int, n_val: int, seed: int, **kwargs: Any) -> Dataset:
    """Embedded scenes as a `Dataset` (name "scenes"); kwargs go to `make_scenes`. Its
    classes are the 10 shape classes (a semantic mask adds background as 0: SCENE_CLASSES)."""
    g = torch.Generator().manual_seed(int(seed))
    s_train, s_val = torch.randint(0, 2**62, (2,), generator=g).tolist()
    train = make_scenes(n_train, seed=s_train, **kwargs)
    val = make_scenes(n_val, seed=s_val, **kwargs)
    size = int(train.x.shape[-1])
    mean, std = channel_stats(train.x) if n_train > 1 else ((0.5,) * 3, (0.25,) * 3)
    return Dataset(name="scenes", kind="image", train=train, val=val, classes=SHAPE_CLASSES,
                   input_shape=(3, size, size), mean=mean, std=std)
