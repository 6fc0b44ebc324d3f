"""CLIP (chapter 5): contrastive image-text pretraining on `scenes`, then zero-shot classification.

Some (colour, shape) pairs are held out: every training scene holding one of them is dropped
(task.holdout, a share of the 12 × 10 pairs, chosen so that every shape keeps most of its
colours and every colour most of its shapes), so no training caption ever names "a red
circle" when that pair is held out. The vocabulary is built from the training captions
(data/vocab.py), plus the few words of the prompt templates that captions never use ("photo",
"picture"), and saved with the run. A batch is B images and their B captions; the loss is the
symmetric InfoNCE of models/clip.py. A share of the captions (task.partial), drawn anew each
batch, says less: no colour, no place, or the shape alone; with task.grey, an image whose
caption does not name its colour is given in grey.

Evaluation: val_loss and val_retrieval (an image picks its own caption among the batch's) on
validation scenes in batches of the training size; then the validation scenes of one object
of a held-out pair are split in two halves. Zero-shot: each image of the second half is given
the shape whose prompt (task.prompt, e.g. "a photo of a {shape}", one per class; with
{colour} too, the mean of its 12 coloured prompts) its embedding is most similar to:
val_zeroshot. Linear probe: logistic regression on the frozen
image embeddings of the first half, with their labels, scored on the second: val_probe. The
lesson's target is val_ratio = val_zeroshot / val_probe. Pictures: the similarity matrix of a
batch of validation scenes and their captions; the top captions retrieved for a few images.
After the last epoch: the zero-shot accuracy of several prompt templates, on the held-out and
on the seen pairs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dlcourse_tui.data.scenes import CAPTION_WORDS, COLOUR_NAMES, PLACE_PHRASES
from dlcourse_tui.data.shapes import SHAPE_CLASSES
from dlcourse_tui.data.vocab import Vocabulary, split_words
from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.errors import UserError
from dlcourse_tui.models.clip import clip_loss
from dlcourse_tui.tasks.base import VocabularyTask
from dlcourse_tui.tasks.dense import Standardise, batch_generator, check_image_data, epoch_batches

#: The prompt templates of the final table; their words are in the vocabulary.
TEMPLATES: tuple[str, ...] = ("a photo of a {shape}", "a {shape}", "{shape}", "a picture of a {shape} in the middle",
                              "a red {shape}", "a {shape} at the top left", "a {colour} {shape}")
PROMPT_WORDS: tuple[str, ...] = ("photo", "picture")  # in the vocabulary, never in a caption
EVAL_BATCH = 500
PROBE_STEPS = 100  # L-BFGS iterations of the linear probe
PROBE_DECAY = 1e-3  # its L2 penalty
MATRIX_IMAGES = 8  # scenes in the similarity-matrix picture
RETRIEVAL_IMAGES = 4
TOP_K = 3
MAX_HOLDOUT = 0.5


def held_out_pairs(share: float, colours: int, shapes: int) -> set[tuple[int, int]]:
    """round(share · colours · shapes) (colour, shape) pairs: shape s's first held-out colour is
    5s mod colours, its next one the colour after it, and so on, diagonal by diagonal, so each
    shape loses at most ⌈share · colours⌉ colours and each colour at most as many shapes."""
    n = round(share * colours * shapes)
    order = sorted(((c, s) for c in range(colours) for s in range(shapes)),
                   key=lambda p: ((p[0] - 5 * p[1]) % colours, p[1]))
    return set(order[:n])


LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601
SHORT_FORMS = ("no colour", "no place", "the shape alone")


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def shortened(split, i: int) -> list[str]:
    """Scene i's caption with less said: without its colour, without its place, the shape
    alone (for a scene of one object; a scene of several keeps its whole caption)."""
    labels = split.extras["box_labels"][i]
    if int((labels >= 0).sum()) != 1:
        return [split.extras["captions"][i]] * len(SHORT_FORMS)
    shape = SHAPE_CLASSES[int(labels[0])]
    colour = COLOUR_NAMES[int(split.extras["colours"][i, 0])]
    place = PLACE_PHRASES[int(split.extras["places"][i, 0])]
    return [f"{article(shape)} {shape} {place}", f"{article(colour)} {colour} {shape}", f"{article(shape)} {shape}"]


def greyscale(x: Tensor) -> Tensor:
    """uint8 images (B, 3, H, W) → their luminance in all three channels (B, 3, H, W) uint8."""
    y = (x.float() * LUMA.to(x.device).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)  # (B, 1, H, W)
    return y.round().clamp(0, 255).to(torch.uint8).expand_as(x)


def fill(template: str, shape: str, colour: str = "") -> str:
    """The template with the class (and colour) put in, "a" before a vowel made "an"."""
    text = template.replace("{shape}", shape).replace("{colour}", colour)
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


class ContrastiveTask(VocabularyTask):
    """One CLIP, one optimiser: symmetric InfoNCE to train, zero-shot prompts and a probe to evaluate."""

    def build(self) -> None:
        cfg, data = self.config, self.data
        check_image_data(data, "CLIP")
        for name, split in (("training", data.train), ("validation", data.val)):
            if not {"captions", "box_labels", "colours"} <= set(split.extras):
                raise UserError(f"{data.name} has no captions with object colours and classes ({name} split); the "
                                "CLIP lesson needs data that carries them: data.name=scenes.")
        args = cfg.task_args
        self.holdout = float(args.get("holdout", 0.2))
        if not 0.0 < self.holdout <= MAX_HOLDOUT:
            raise UserError(f"task.holdout={self.holdout} must be above 0 and at most {MAX_HOLDOUT} (a share of the "
                            "colour-shape pairs kept out of training), e.g. 0.2.")
        self.classes = tuple(data.classes)
        self.held = held_out_pairs(self.holdout, len(COLOUR_NAMES), len(self.classes))
        self.train_idx = self._seen(data.train).nonzero().squeeze(1)  # (N',) scenes with no held-out pair
        if len(self.train_idx) < 2:
            raise UserError(f"only {len(self.train_idx)} training scenes hold no held-out pair; contrastive "
                            "learning needs at least 2: raise data.n_train.")
        captions = [data.train.extras["captions"][i] for i in self.train_idx.tolist()]
        self.train_idx = self.train_idx.to(self.device)
        self.vocab = Vocabulary.from_texts(captions, extra=CAPTION_WORDS + PROMPT_WORDS)
        self.prompt = str(args.get("prompt", TEMPLATES[0])).strip()
        self.prompt_ids = self.encode_prompts(self.prompt, "task.prompt")  # (C, L)
        self._split_eval()
        self.length = 2 + max(len(split_words(c)) for s in (data.train, data.val) for c in s.extras["captions"])
        self.tokens = {name: self.vocab.encode_batch(split.extras["captions"], self.length,
                                                     what=f"a {name} caption").to(self.device)  # (N, L)
                       for name, split in (("train", data.train), ("val", data.val))}
        self.partial = float(args.get("partial", 0.0))
        if not 0.0 <= self.partial <= 1.0:
            raise UserError(f"task.partial={self.partial} must be between 0 (every caption whole) and 1 (every "
                            "caption shortened), e.g. 0.5.")
        self.grey = bool(args.get("grey", False))
        self.short_tokens = self.vocab.encode_batch([v for i in self.train_idx.tolist() for v in shortened(data.train, i)],
                                                    self.length, what="a shortened caption").view(
                                                        len(self.train_idx), len(SHORT_FORMS), -1).to(self.device)  # (N', 3, L)
        self.use_text_model(max(self.length, self.prompt_ids.shape[1]))
        self.prepare = Standardise(data, self.device)
        self.last_scores: dict[str, float] = {}

    def _pairs(self, split) -> tuple[Tensor, Tensor]:
        return split.extras["colours"], split.extras["box_labels"]  # (N, K) each, −1 where no object

    def _seen(self, split) -> Tensor:
        """(N,) bool: the scenes none of whose objects is of a held-out pair."""
        colours, labels = self._pairs(split)
        held = torch.zeros(len(COLOUR_NAMES), len(self.classes), dtype=torch.bool, device=colours.device)
        for c, s in self.held:
            held[c, s] = True
        present = labels >= 0
        hit = held[colours.clamp_min(0), labels.clamp_min(0)] & present  # (N, K)
        return ~hit.any(dim=1)

    def _split_eval(self) -> None:
        """Validation scenes of one object: held-out pairs split into probe-train and test
        halves (in order), and the seen pairs (for the table). With fewer than 2 held-out scenes
        (a tiny data.n_val) zero-shot and the probe are not scored: NaN."""
        val = self.data.val
        colours, labels = self._pairs(val)
        one = (labels >= 0).sum(dim=1) == 1  # (N,)
        seen = self._seen(val)
        held = (one & ~seen).nonzero().squeeze(1)  # (M,)
        half = len(held) // 2
        self.probe_idx, self.test_idx = held[:half].to(self.device), held[half:].to(self.device)
        self.seen_idx = (one & seen).nonzero().squeeze(1).to(self.device)
        self.val_labels = labels[:, 0].clamp_min(0).to(self.device)  # (N,) the one object's class

    def encode_prompts(self, template: str, what: str = "the template") -> Tensor:
        """A template with {shape} (and maybe {colour}) → ids (C · K, L) of its prompts, class by
        class, K = 12 with {colour} (one prompt per colour, averaged: prompt ensembling), else 1;
        UserError in one sentence for a template without {shape} or with words the vocabulary
        does not hold."""
        if template.count("{shape}") != 1 or template.count("{colour}") > 1:
            raise UserError(f"{what}={template!r} must hold {{shape}} exactly once, where each class's name goes "
                            "(and {colour} at most once), e.g. 'a photo of a {shape}'.")
        words = template.replace("{shape}", "").replace("{colour}", "")
        try:
            self.vocab.check(words, what)
        except UserError as e:  # quote the template as typed
            raise UserError(str(e).replace(repr(words), repr(template), 1)) from None
        colours = COLOUR_NAMES if "{colour}" in template else ("",)
        return self.vocab.encode_batch([fill(template, c, k) for c in self.classes for k in colours], what=what)

    def class_embeddings(self, prompts: Tensor) -> Tensor:
        """Prompt ids (C · K, L) → one unit embedding per class (C, E), the mean of its K prompts'."""
        emb = self.text_embeddings(prompts)  # (C · K, E)
        return F.normalize(emb.view(len(self.classes), -1, emb.shape[1]).mean(dim=1), dim=-1)  # (C, E)

    def steps_per_epoch(self) -> int:
        return max(1, len(self.train_idx) // self.config.train.batch_size)

    # -- training ----------------------------------------------------------------------
    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        bs = min(self.config.train.batch_size, len(self.train_idx))
        for i, pos in epoch_batches(len(self.train_idx), bs, self.config.train.seed, epoch, self.device, start,
                                    self.steps_per_epoch()):  # pos (B,): positions in train_idx; the negatives are the batch
            tokens = self.tokens["train"][self.train_idx[pos]]  # (B, L)
            if self.partial > 0:
                g = batch_generator(self.config.train.seed, epoch, i)
                cut = torch.rand(len(pos), generator=g) < self.partial  # (B,) which captions say less
                form = torch.randint(0, len(SHORT_FORMS), (len(pos),), generator=g)  # (B,) and how
                short = self.short_tokens[pos, form.to(self.device)]  # (B, L)
                tokens = torch.where(cut.to(self.device)[:, None], short, tokens)
            x = self.data.train.x[self.train_idx[pos]]  # (B, 3, H, W) uint8
            if self.partial > 0 and self.grey:  # a caption that does not name the colour: the image without it
                x = torch.where((cut & (form != 1)).to(self.device)[:, None, None, None], greyscale(x), x)
            yield x, tokens

    def train_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, tokens = batch
        img, txt = self.model.encode_image(self.prepare(x)), self.model.encode_text(tokens)  # (B, E) each
        scale = self.model.scale()
        loss = clip_loss(img, txt, scale)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        with torch.no_grad():
            right = ((img @ txt.T).argmax(dim=1) == torch.arange(len(x), device=x.device)).float().mean()
        return {"loss": loss.detach(), "retrieval": right, "scale": scale.detach()}

    # -- evaluation --------------------------------------------------------------------
    @torch.no_grad()
    def image_embeddings(self, idx: Tensor | None = None) -> Tensor:
        """Unit embeddings (N, E) of validation scenes (all, or those of idx)."""
        self.model.eval()
        x = self.data.val.x if idx is None else self.data.val.x[idx.to(self.data.val.x.device)]
        return torch.cat([self.model.encode_image(self.prepare(x[i:i + EVAL_BATCH].to(self.device)))
                          for i in range(0, len(x), EVAL_BATCH)]) if len(x) else torch.zeros(0, self.model.cfg.embed_dim, device=self.device)

    @torch.no_grad()
    def text_embeddings(self, tokens: Tensor) -> Tensor:
        self.model.eval()
        return torch.cat([self.model.encode_text(tokens[i:i + EVAL_BATCH].to(self.device))
                          for i in range(0, len(tokens), EVAL_BATCH)])  # (N, E)

    def zero_shot(self, emb: Tensor, labels: Tensor, prompts: Tensor) -> float:
        """The share of images (N, E) whose most similar class prompt (C, L) is their label."""
        if not len(emb):
            return float("nan")
        return float(((emb @ self.class_embeddings(prompts).T).argmax(dim=1) == labels).float().mean())

    def probe(self, train: Tensor, train_y: Tensor, test: Tensor, test_y: Tensor) -> float:
        """Logistic regression (multinomial, L2) on frozen embeddings, fitted by L-BFGS: test accuracy."""
        w = torch.zeros(train.shape[1], len(self.classes), device=train.device, requires_grad=True)  # (E, C)
        b = torch.zeros(len(self.classes), device=train.device, requires_grad=True)  # (C,)
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=PROBE_STEPS, line_search_fn="strong_wolfe")
        scale = math.sqrt(train.shape[1])  # unit vectors → features of about unit size each

        def closure() -> Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(train * scale @ w + b, train_y) + PROBE_DECAY * w.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        with torch.no_grad():
            return float(((test * scale @ w + b).argmax(dim=1) == test_y).float().mean())

    @torch.no_grad()
    def batch_scores(self) -> dict[str, float]:
        """val_loss and val_retrieval on validation batches of the training size."""
        self.model.eval()
        val, bs = self.data.val, max(2, min(self.config.train.batch_size, len(self.data.val)))
        loss_sum, right, count = 0.0, 0, 0
        for i in range(0, len(val) - bs + 1, bs):
            img = self.model.encode_image(self.prepare(val.x[i:i + bs].to(self.device)))
            txt = self.model.encode_text(self.tokens["val"][i:i + bs])
            loss_sum += float(clip_loss(img, txt, self.model.scale())) * bs
            right += int(((img @ txt.T).argmax(dim=1) == torch.arange(bs, device=img.device)).sum())
            count += bs
        return {"val_loss": loss_sum / max(count, 1), "val_retrieval": right / max(count, 1)}

    def evaluate(self) -> dict[str, float]:
        scores = self.batch_scores()
        probe_x, test_x = self.image_embeddings(self.probe_idx), self.image_embeddings(self.test_idx)
        test_y = self.val_labels[self.test_idx]
        zs = self.zero_shot(test_x, test_y, self.prompt_ids)
        pr = self.probe(probe_x, self.val_labels[self.probe_idx], test_x, test_y) if len(probe_x) else float("nan")
        scores.update(val_zeroshot=zs, val_probe=pr, val_ratio=zs / pr if pr > 0 else float("nan"))
        self.last_scores = scores
        return dict(scores)

    # -- pictures and tables -----------------------------------------------------------
    def pictures(self, epoch: int, final: bool) -> list[PictureReady | TableReady]:
        out: list[PictureReady | TableReady] = [
            PictureReady("similarity", f"cosine similarity of {min(MATRIX_IMAGES, len(self.data.val))} validation "
                         "scenes (rows) and their captions (columns, listed below): the true pairs lie on the "
                         "diagonal", epoch, self.similarity_picture()),
            PictureReady("retrieval", f"the top {TOP_K} captions retrieved for validation scenes among every "
                         "distinct validation caption (green: the image's own), with their cosine similarity",
                         epoch, self.retrieval_picture())]
        if final:
            out += [self.prompt_table(), self.score_table()]
        return out

    @torch.no_grad()
    def similarity_picture(self) -> np.ndarray:
        from dlcourse_tui.render.images import colormap, draw_label
        from dlcourse_tui.tasks.attention_pictures import enlarge, image_cell

        val = self.data.val
        n = min(MATRIX_IMAGES, len(val))
        idx = torch.arange(n)
        sim = (self.image_embeddings(idx) @ self.text_embeddings(self.tokens["val"][:n]).T).float().cpu().numpy()  # (n, n)
        cell = 32
        heat = enlarge(colormap(sim, vmin=float(sim.min()), vmax=float(sim.max()), kind="viridis"), cell)
        left, top = cell + 6, 16
        caps = [f"{j + 1}: {val.extras['captions'][j]}" for j in range(n)]
        width = max(left + heat.shape[1] + 4, 6 * max(len(c) for c in caps) + 12)
        height = top + heat.shape[0] + 6 + 13 * n + 4
        out = np.full((height, width, 3), 24, dtype=np.uint8)
        out[top:top + heat.shape[0], left:left + heat.shape[1]] = heat
        for i in range(n):
            thumb = image_cell(val.x[i], cell)[:cell, :cell]
            out[top + i * cell:top + i * cell + thumb.shape[0], :thumb.shape[1]] = thumb
            out = draw_label(out, str(i + 1), (left + i * cell + cell // 2, top // 2), anchor="mm")
            out = draw_label(out, f"{sim[i, i]:.2f}", (left + i * cell + cell // 2, top + i * cell + cell // 2),
                             anchor="mm", color=(0, 0, 0) if sim[i, i] > (sim.min() + sim.max()) / 2 else (235, 235, 235))
        y = top + heat.shape[0] + 6
        for c in caps:
            out = draw_label(out, c, (4, y), color=(200, 200, 200))
            y += 13
        return out

    @torch.no_grad()
    def retrieval_picture(self) -> np.ndarray:
        from dlcourse_tui.render.images import upscale
        from dlcourse_tui.render.overlay import hstack, vstack
        from dlcourse_tui.tasks.caption import caption_block

        val = self.data.val
        gallery = sorted(set(val.extras["captions"]))
        txt = self.text_embeddings(self.vocab.encode_batch(gallery, what="a validation caption"))  # (G, E)
        picks = torch.cat([self.test_idx[:RETRIEVAL_IMAGES // 2].cpu(), self.seen_idx[:RETRIEVAL_IMAGES // 2].cpu()])
        picks = picks if len(picks) else torch.arange(min(RETRIEVAL_IMAGES, len(val)))
        sim = self.image_embeddings(picks) @ txt.T  # (k, G)
        top = sim.topk(min(TOP_K, len(gallery)), dim=1)
        rows = []
        for r, i in enumerate(picks.tolist()):
            true = val.extras["captions"][i]
            image = upscale(val.x[i].permute(1, 2, 0).cpu().numpy(), max(1, 64 // val.x.shape[-1]) * 2)
            kind = "held-out pair" if self.test_idx.eq(i).any() else "seen pair"
            parts = [(f"{kind}, true", true, (200, 200, 200))]
            parts += [(f"{k + 1} ({float(s):.2f})", gallery[j], (120, 220, 120) if gallery[j] == true else (235, 180, 90))
                      for k, (s, j) in enumerate(zip(top.values[r].tolist(), top.indices[r].tolist()))]
            rows.append(hstack([image, caption_block(parts, height=max(image.shape[0], 17 * (TOP_K + 1) + 10))], gap=6))
        return vstack(rows, gap=6)

    def prompt_table(self) -> TableReady:
        """Zero-shot accuracy of each template (and task.prompt) on held-out and seen pairs."""
        test_x, seen_x = self.image_embeddings(self.test_idx), self.image_embeddings(self.seen_idx)
        test_y, seen_y = self.val_labels[self.test_idx], self.val_labels[self.seen_idx]
        rows = []
        for template in dict.fromkeys((self.prompt,) + TEMPLATES):
            ids = self.encode_prompts(template)
            rows.append((template, f"{self.zero_shot(test_x, test_y, ids):.1%}", f"{self.zero_shot(seen_x, seen_y, ids):.1%}"))
        return TableReady("prompts", f"zero-shot accuracy by prompt template, 10 shapes: {len(test_y)} validation "
                          f"scenes of held-out colour-shape pairs and {len(seen_y)} of seen pairs",
                          ("template", "held-out pairs", "seen pairs"), tuple(rows))

    def score_table(self) -> TableReady:
        s = self.last_scores or self.evaluate()
        return TableReady("zero_shot_vs_probe", f"held-out pairs ({len(self.test_idx)} test scenes; the probe "
                          f"trained on {len(self.probe_idx)} others): zero-shot against a linear probe; target "
                          "ratio ≥ 0.8", ("prompt", "zero-shot", "linear probe", "ratio"),
                          ((self.prompt, f"{s['val_zeroshot']:.1%}", f"{s['val_probe']:.1%}", f"{s['val_ratio']:.2f}"),))

