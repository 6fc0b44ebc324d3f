"""The `scenes` data: several shapes per image, with a semantic mask, instance masks, boxes
and a caption that all agree with the pixels; deterministic; the picture of it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from dlcourse_tui.data import load_dataset
from dlcourse_tui.data.scenes import (CAPTION_VOCAB, CAPTION_WORDS, COLOUR_NAMES, MAX_CAPTION_WORDS, PLACE_PHRASES,
                                      SCENE_CLASSES, caption_tokens, caption_words, decode_caption, instance_masks,
                                      make_scenes)
from dlcourse_tui.data.shapes import PALETTE, SHAPE_CLASSES


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(400, seed=5)


def test_types_shapes_and_counts(scenes) -> None:
    s = scenes
    assert s.x.shape == (400, 3, 64, 64) and s.x.dtype == torch.uint8
    ex = s.extras
    assert ex["masks"].shape == ex["instances"].shape == (400, 64, 64) and ex["masks"].dtype == torch.uint8
    assert ex["boxes"].shape == (400, 4, 4) and ex["boxes"].dtype == torch.float32
    for key in ("box_labels", "colours", "places"):
        assert ex[key].shape == (400, 4) and ex[key].dtype == torch.int64
    present = ex["box_labels"] >= 0
    counts = present.sum(1)
    assert set(counts.tolist()) == {1, 2, 3, 4}  # 1-4 objects
    assert (present[:, 1:].int() <= present[:, :-1].int()).all()  # present ones first
    assert ((ex["colours"] >= 0) == present).all() and ((ex["places"] >= 0) == present).all()
    assert (ex["boxes"][~present] == 0).all()
    assert torch.equal(s.y, ex["box_labels"][:, 0])
    assert set(ex["box_labels"][present].tolist()) == set(range(10))
    assert s.x.float().std(dim=(1, 2, 3)).min() > 5


def test_deterministic_from_the_seed_and_leaves_the_global_stream_alone() -> None:
    state = torch.random.get_rng_state()
    a, b, c = make_scenes(30, seed=1), make_scenes(30, seed=1), make_scenes(30, seed=2)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(a.x, b.x) and a.extras["captions"] == b.extras["captions"]
    for key in ("masks", "instances", "boxes", "box_labels"):
        assert torch.equal(a.extras[key], b.extras[key])
    assert not torch.equal(a.x, c.x)


def test_masks_instances_and_boxes_agree(scenes) -> None:
    ex = scenes.extras
    inst = instance_masks(ex["instances"], 4)  # (N, 4, H, W)
    labels, boxes = ex["box_labels"], ex["boxes"]
    present = labels >= 0
    assert (inst.flatten(2).any(2) == present).all()  # every object visible, no mask for absent ones
    # the semantic mask is each visible object's class + 1
    want = torch.zeros_like(ex["masks"], dtype=torch.int64)
    for k in range(4):
        want = torch.where(inst[:, k], labels[:, k, None, None] + 1, want)
    assert torch.equal(want, ex["masks"].long())
    # each box is tight around its instance mask, in pixel-edge coordinates
    for i in range(0, 400, 7):
        for k in range(int(present[i].sum())):
            ys, xs = inst[i, k].nonzero(as_tuple=True)
            assert boxes[i, k].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    side = (boxes[..., 2:] - boxes[..., :2]).amax(-1)[present] / 64  # (M,) the larger side
    assert side.min() > 0.1 and side.max() < 0.5 and side.mean() > 0.25


_OBJECT = rf"an? ({'|'.join(COLOUR_NAMES)}) ({'|'.join(SHAPE_CLASSES)})"
_PLACE = "|".join(PLACE_PHRASES)
_RELATION = "above|below|to the left of|to the right of"


def test_captions_follow_the_grammar_and_describe_the_pixels(scenes) -> None:
    ex = scenes.extras
    one = re.compile(rf"^{_OBJECT} ({_PLACE})$")
    two = re.compile(rf"^{_OBJECT} ({_RELATION}) {_OBJECT}$")
    many = re.compile(rf"^({_OBJECT} ({_PLACE}), )+{_OBJECT} ({_PLACE}) and {_OBJECT} ({_PLACE})$")
    palette = torch.tensor([rgb for _, rgb in PALETTE])
    colour_ok = place_ok = total = 0
    for i, caption in enumerate(ex["captions"]):
        n = int((ex["box_labels"][i] >= 0).sum())
        pattern = one if n == 1 else two if n == 2 else many
        assert pattern.match(caption), caption
        assert caption.count(" a ") + caption.count(" an ") + 1 == n and len(caption_words(caption)) <= MAX_CAPTION_WORDS
        for k in range(n):
            cls, col = SHAPE_CLASSES[int(ex["box_labels"][i, k])], COLOUR_NAMES[int(ex["colours"][i, k])]
            assert f"{col} {cls}" in caption, (caption, col, cls)
            total += 1
            # the colour word is the palette colour nearest the object's visible pixels (noise and shading aside)
            pix = scenes.x[i].float().div(255)[:, ex["instances"][i] == k + 1].mean(1)  # (3,)
            colour_ok += int((palette - pix).norm(dim=1).argmin()) == int(ex["colours"][i, k])
            # the place is the 3×3 cell of the box centre (the box is of the visible part, the place of the shape)
            x0, y0, x1, y1 = ex["boxes"][i, k].tolist()
            cell = min(2, int((y0 + y1) / 2 / (64 / 3))) * 3 + min(2, int((x0 + x1) / 2 / (64 / 3)))
            place_ok += cell == int(ex["places"][i, k])
    assert colour_ok >= 0.85 * total and place_ok >= 0.9 * total


def test_two_object_captions_relate_the_objects_by_where_they_are(scenes) -> None:
    ex = scenes.extras
    checked = 0
    for i, caption in enumerate(ex["captions"]):
        if int((ex["box_labels"][i] >= 0).sum()) != 2:
            continue
        m = re.match(rf"^{_OBJECT} ({_RELATION}) {_OBJECT}$", caption)
        first = [k for k in range(2) if f"{COLOUR_NAMES[int(ex['colours'][i, k])]} {SHAPE_CLASSES[int(ex['box_labels'][i, k])]}"
                 == f"{m.group(1)} {m.group(2)}"]
        if len(first) != 1 or ex["colours"][i, 0] == ex["colours"][i, 1] and ex["box_labels"][i, 0] == ex["box_labels"][i, 1]:
            continue
        a, b = ex["boxes"][i, first[0]], ex["boxes"][i, 1 - first[0]]
        dx = float((b[0] + b[2] - a[0] - a[2]) / 2)
        dy = float((b[1] + b[3] - a[1] - a[3]) / 2)
        want = ("above" if dy > 0 else "below") if abs(dy) >= abs(dx) else ("to the left of" if dx > 0 else "to the right of")
        checked += 1
        agree = m.group(3) == want
        if abs(abs(dx) - abs(dy)) > 6:  # the boxes' centres may differ a little from the shapes'
            assert agree, (caption, dx, dy)
    assert checked > 30


def test_caption_tokens_round_trip_over_a_closed_vocabulary(scenes) -> None:
    caps = scenes.extras["captions"]
    tokens = caption_tokens(caps)
    assert tokens.shape == (400, MAX_CAPTION_WORDS + 2) and tokens.dtype == torch.int64
    assert (tokens[:, 0] == CAPTION_VOCAB.index("<bos>")).all()
    assert all(decode_caption(t) == c for t, c in zip(tokens, caps))
    used = {w for c in caps for w in caption_words(c)}
    assert used <= set(CAPTION_WORDS) and len(CAPTION_VOCAB) == len(set(CAPTION_VOCAB)) == len(CAPTION_WORDS) + 3
    with pytest.raises(ValueError, match="outside the scenes vocabulary"):
        caption_words("a purple dragon")


def test_size_and_arguments() -> None:
    small = make_scenes(20, seed=0, size=32, max_objects=2, clutter=0.0, noise=0.0)
    assert small.x.shape == (20, 3, 32, 32) and small.extras["boxes"].shape == (20, 2, 4)
    big = make_scenes(4, seed=0, size=96)
    assert big.extras["masks"].shape == (4, 96, 96)
    for bad in (dict(size=8), dict(max_objects=0), dict(min_objects=3, max_objects=2), dict(noise=-1)):
        with pytest.raises(ValueError):
            make_scenes(4, seed=0, **bad)
    ds = load_dataset("scenes", seed=3, args={"n_train": 50, "n_val": 20, "size": 32})
    assert (ds.name, ds.input_shape, ds.classes) == ("scenes", (3, 32, 32), SHAPE_CLASSES)
    assert not torch.equal(ds.train.x[:20], ds.val.x)


def test_the_picture_of_scenes_draws_masks_boxes_and_a_legend(scenes) -> None:
    from dlcourse_tui.render.overlay import class_colors, scenes_picture

    k = 3
    ex = scenes.extras
    pic = scenes_picture(scenes.x[:k].permute(0, 2, 3, 1).numpy(), ex["masks"][:k].numpy(), ex["instances"][:k].numpy(),
                         ex["boxes"][:k].numpy(), ex["box_labels"][:k].numpy(), SCENE_CLASSES, scale=3,
                         captions=ex["captions"][:k])
    assert pic.dtype == np.uint8 and pic.ndim == 3 and pic.shape[2] == 3
    assert pic.shape[1] >= 3 * 64 * 3 and pic.shape[0] >= k * 64 * 3
    colours = class_colors(len(SCENE_CLASSES))
    # the semantic mask of the first scene sits in the second column, class colours and all
    mask_panel = pic[17:17 + 192, 196:196 + 192]  # below the 17-pixel title strip, after the image and a 4-pixel gap
    present = {tuple(c) for c in mask_panel.reshape(-1, 3).tolist()}
    for label in ex["masks"][0].unique().tolist():
        assert tuple(colours[label].tolist()) in present
    # each box of the first scene is outlined in its class colour in the third column
    panel = pic[17:17 + 192, 392:392 + 192]
    for box, label in zip(ex["boxes"][0], ex["box_labels"][0]):
        if label < 0:
            continue
        x0, y0, x1, y1 = (int(v * 3) for v in box.tolist())
        edge = panel[y0 + 1:y1 - 1, x0]  # the left side of the outline
        assert (edge == colours[label + 1]).all(1).mean() > 0.5
    with pytest.raises(ValueError):
        scenes_picture(scenes.x[:2].numpy(), ex["masks"][:2].numpy(), ex["instances"][:2].numpy(),
                       ex["boxes"][:2].numpy(), ex["box_labels"][:2].numpy(), SCENE_CLASSES)
