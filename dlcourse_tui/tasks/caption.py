"""Image captioning (chapter 5): a CPTR-style captioner (models/caption.py) on `scenes` captions.

The vocabulary is built from the training captions (data/vocab.py) and saved with the run.
Batches carry images (B, 3, H, W) uint8, captions as ids (B, T) (<bos> words <eos> <pad>…,
cut to the batch's longest) and the object tags (B, K): the class names of the objects
present, as words of the same vocabulary, in class order, <pad> for none. Training is
teacher forcing: cross-entropy of the decoder's next-word logits on every real (non-pad)
target word.

Evaluation: val_loss and val_word_acc teacher-forced; then every validation image is
captioned by greedy decoding (task.beam = 1) or beam search (task.beam > 1), and scored
against its one true caption: val_bleu4, corpus BLEU-4 (tasks/text_metrics.py), and
val_exact, the share of captions generated word for word. A model with tags reads the
ground-truth tags (Oscar's "tags as anchors"). Pictures: validation images with their
generated and true captions; the last decoder layer's cross-attention (mean over heads)
over the patch grid for each generated word of one image. After the last epoch a table
of this run's scores (and, for a model with tags, the same model with its tags withheld; for
beam search, the same model decoded greedily).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dlcourse_tui.data.scenes import CAPTION_WORDS
from dlcourse_tui.data.vocab import BOS_ID, PAD_ID, Vocabulary, split_words
from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.errors import UserError
from dlcourse_tui.tasks.base import VocabularyTask
from dlcourse_tui.tasks.dense import Standardise, check_image_data, epoch_batches
from dlcourse_tui.tasks.text_metrics import corpus_bleu

EVAL_BATCH = 250
PICTURE_IMAGES = 4  # validation images in the captions picture
MAX_BEAM = 16
CELL = 72  # pixels per image cell in the attention picture
WORDS_PER_ROW = 8


def tag_ids(labels: Tensor, classes: tuple[str, ...], vocab: Vocabulary) -> Tensor:
    """Object classes (N, K), −1 where no object → the class names as word ids (N, K), in
    class order with <pad> (0) last: the tags of each image as a sorted set (repeats kept)."""
    words = torch.tensor([vocab.id(c) for c in classes], dtype=torch.long, device=labels.device)  # (C,)
    ids = torch.where(labels >= 0, words[labels.clamp_min(0)], torch.full_like(labels, PAD_ID))  # (N, K)
    key = torch.where(ids == PAD_ID, torch.full_like(ids, 1 << 30), ids)
    return ids.gather(1, key.argsort(dim=1, stable=True))  # (N, K)


def trim(tokens: Tensor) -> Tensor:
    """Ids (B, T) padded with <pad> → cut after the longest row's last real token."""
    length = int((tokens != PAD_ID).sum(dim=1).max()) if len(tokens) else 1
    return tokens[:, :max(2, length)]  # (B, T')


class CaptionTask(VocabularyTask):
    """One captioner, one optimiser: teacher forcing to train, decoding to evaluate."""

    def build(self) -> None:
        cfg, data = self.config, self.data
        check_image_data(data, "image-captioning")
        for name, split in (("training", data.train), ("validation", data.val)):
            if "captions" not in split.extras or "box_labels" not in split.extras:
                raise UserError(f"{data.name} has no captions and object labels ({name} split); the captioning "
                                "lesson needs data that carries them: data.name=scenes.")
        args = cfg.task_args
        self.beam = int(args.get("beam", 1))
        if not 1 <= self.beam <= MAX_BEAM:
            raise UserError(f"task.beam={self.beam} must be between 1 (greedy decoding) and {MAX_BEAM}, e.g. 3.")
        self.eval_images = int(args.get("eval_images", 0)) or len(data.val)
        self.vocab = Vocabulary.from_texts(data.train.extras["captions"], extra=CAPTION_WORDS)
        self.prompt = str(args.get("prompt", "")).strip()
        self.prompt_ids = self.encode_prompt(self.prompt)
        self._encode_data()
        self.use_text_model(self.length)
        self.prepare = Standardise(data, self.device)
        self.last_scores: dict[str, float] = {}

    def _encode_data(self) -> None:
        """Captions as ids (N, T) and tags as ids (N, K) for both splits, on the device."""
        data, vocab = self.data, self.vocab
        self.length = 2 + max(len(split_words(c)) for s in (data.train, data.val) for c in s.extras["captions"])
        self.tokens, self.tags = {}, {}
        for name, split in (("train", data.train), ("val", data.val)):
            self.tokens[name] = vocab.encode_batch(split.extras["captions"], self.length,
                                                   what=f"a {name} caption").to(self.device)  # (N, T)
            self.tags[name] = tag_ids(split.extras["box_labels"], tuple(data.classes), vocab).to(self.device)  # (N, K)

    def encode_prompt(self, prompt: str) -> Tensor:
        """A caption's start typed by a learner → ids (P,); UserError naming unknown words."""
        return torch.tensor(self.vocab.encode(prompt, bos=False, eos=False, what="task.prompt"), dtype=torch.long)

    def encode_tags(self, words: list[str]) -> Tensor:
        """Tag words typed by a learner → ids (1, K); UserError naming unknown words."""
        return torch.tensor([self.vocab.encode(" ".join(words), bos=False, eos=False, what="the tags")],
                            dtype=torch.long, device=self.device)  # (1, K)

    @property
    def uses_tags(self) -> bool:
        return bool(getattr(self.model.cfg, "tags", False))

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.config.train.batch_size)

    # -- training ----------------------------------------------------------------------
    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        train, cfg = self.data.train, self.config.train
        for _, idx in epoch_batches(len(train), cfg.batch_size, cfg.seed, epoch, self.device, start, self.steps_per_epoch()):
            yield train.x[idx], trim(self.tokens["train"][idx]), self.tags["train"][idx]

    def loss_and_right(self, x: Tensor, tokens: Tensor, tags: Tensor,
                       smoothing: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher forcing on uint8 images x (B, 3, H, W), ids (B, T), tags (B, K): the mean
        cross-entropy over real target words, how many were predicted right, how many there were."""
        inp, tgt = tokens[:, :-1], tokens[:, 1:]  # (B, T − 1): <bos> w_1 … and w_1 … <eos>
        logits = self.model(self.prepare(x), inp, tags if self.uses_tags else None)  # (B, T − 1, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tgt.flatten(), ignore_index=PAD_ID,
                               label_smoothing=smoothing)
        real = tgt != PAD_ID  # (B, T − 1)
        right = ((logits.detach().argmax(-1) == tgt) & real).sum()
        return loss, right, real.sum()

    def train_step(self, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        x, tokens, tags = batch
        loss, right, count = self.loss_and_right(x, tokens, tags, self.config.train.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return {"loss": loss.detach(), "word_acc": right.float() / count.clamp_min(1)}

    # -- captioning and evaluation -----------------------------------------------------
    @torch.inference_mode()
    def caption_ids(self, x: Tensor, tags: Tensor | None = None, prefix: Tensor | None = None) -> Tensor:
        """Word ids (B, ≤ T) of generated captions for uint8 images x (B, 3, H, W)."""
        self.model.eval()
        return self.model.generate(self.prepare(x), tags if self.uses_tags else None, max_len=self.length - 1,
                                   beam=self.beam, prefix=prefix)

    def captions(self, x: Tensor, tags: Tensor | None = None, prefix: Tensor | None = None) -> list[str]:
        """Generated captions as text."""
        return [self.vocab.decode(row) for row in self.caption_ids(x, tags, prefix)]

    @torch.inference_mode()
    def scores(self, n: int, *, with_tags: bool = True) -> dict[str, float]:
        """val_loss, val_word_acc, val_bleu4 and val_exact on the first n validation images."""
        self.model.eval()
        val = self.data.val
        loss_sum, right, count = 0.0, 0, 0
        hyps: list[list[str]] = []
        for i in range(0, n, EVAL_BATCH):
            j = min(n, i + EVAL_BATCH)
            x, tokens = val.x[i:j], trim(self.tokens["val"][i:j])
            tags = self.tags["val"][i:j] if with_tags else self.tags["val"][i:j, :0]
            loss, r, c = self.loss_and_right(x, tokens, tags)
            loss_sum, right, count = loss_sum + float(loss) * int(c), right + int(r), count + int(c)
            hyps += [self.vocab.decode_words(row) for row in self.caption_ids(x, tags)]
        refs = [[split_words(c)] for c in val.extras["captions"][:n]]
        return {"val_loss": loss_sum / max(count, 1), "val_word_acc": right / max(count, 1),
                "val_bleu4": corpus_bleu(hyps, refs), "val_exact": sum(h == r[0] for h, r in zip(hyps, refs)) / max(n, 1)}

    def evaluate(self) -> dict[str, float]:
        self.last_scores = self.scores(min(self.eval_images, len(self.data.val)))
        return dict(self.last_scores)

    # -- pictures and tables -----------------------------------------------------------
    def pictures(self, epoch: int, final: bool) -> list[PictureReady | TableReady]:
        how = "greedy decoding" if self.beam == 1 else f"beam search ({self.beam} beams)"
        tags = " from the image and its object tags" if self.uses_tags else ""
        out: list[PictureReady | TableReady] = [
            PictureReady("captions", f"validation images: the caption generated{tags} by {how} (green: word for word "
                         "right) and the true one", epoch, self.captions_picture()),
            PictureReady("word_attention", "what the decoder looks at for each word it generates: the last layer's "
                         f"cross-attention (mean over heads) over the {self.grid_text()} patches of one validation "
                         "image, each map scaled to its own maximum (the rest of the weight is on [CLS]"
                         + (" and the tags)" if self.uses_tags else ")"), epoch, self.attention_picture())]
        if final:
            out.append(self.final_table())
        return out

    def grid_text(self) -> str:
        """The patch grid as text, e.g. '4×4'."""
        gh, gw = self.model.encoder.cfg.grid
        return f"{gh}×{gw}"

    def captions_picture(self) -> np.ndarray:
        val = self.data.val
        k = min(PICTURE_IMAGES, len(val))
        return captions_rows(val.x[:k], self.captions(val.x[:k], self.tags["val"][:k], self.prompt_ids),
                             val.extras["captions"][:k])

    @torch.inference_mode()
    def attention_picture(self) -> np.ndarray:
        from dlcourse_tui.render.overlay import titled
        from dlcourse_tui.tasks.attention_pictures import grid_of, image_cell, overlay

        val = self.data.val
        x, tags = val.x[:1], self.tags["val"][:1]
        ids = self.caption_ids(x, tags, self.prompt_ids)  # (1, T)
        words = [self.vocab.words[int(i)] for i in ids[0] if int(i) != PAD_ID]
        seq = torch.cat([torch.full_like(ids[:, :1], BOS_ID), ids[:, :len(words)]], dim=1)  # (1, 1 + T): <bos> w_1 … w_T
        self.model.eval()
        att = self.model.cross_attention(self.prepare(x), seq, tags if self.uses_tags else None)[0]  # (1 + T, S)
        gh, gw = self.model.encoder.cfg.grid
        P = gh * gw
        image = x[0].permute(1, 2, 0).cpu().numpy()
        cells = [titled(image_cell(x[0], CELL), "image")]
        for t, word in enumerate(words):  # word t was chosen at the position that read word t − 1
            heat = att[t, 1:1 + P].float().cpu().numpy().reshape(gh, gw)
            cells.append(titled(overlay(image, heat, CELL), word))
        rows = [cells[i:i + WORDS_PER_ROW] for i in range(0, len(cells), WORDS_PER_ROW)]
        return grid_of(rows)

    def final_table(self) -> TableReady:
        n = min(self.eval_images, len(self.data.val))
        rows = [self._row("with its tags (ground truth)" if self.uses_tags else "no tags", self.last_scores or self.scores(n))]
        if self.uses_tags:
            rows.append(self._row("the same model, tags withheld", self.scores(n, with_tags=False)))
        if self.beam > 1:  # the same weights decoded greedily: the search's own effect
            beam, self.beam = self.beam, 1
            try:
                rows.append(self._row("the same model, greedy decoding", self.scores(n)))
            finally:
                self.beam = beam
        how = "greedy decoding" if self.beam == 1 else f"beam search, {self.beam} beams"
        return TableReady("caption_scores", f"captioning on {n} validation scenes ({how})",
                          ("model", "BLEU-4", "exact", "word acc (teacher-forced)"), tuple(rows))

    def _row(self, name: str, s: dict[str, float]) -> tuple[str, ...]:
        return (name, f"{s['val_bleu4']:.3f}", f"{s['val_exact']:.1%}", f"{s['val_word_acc']:.1%}")



def wrap(text: str, width: int) -> list[str]:
    """Words of text in lines of at most `width` characters."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])


def captions_rows(images: Tensor, made: list[str], true: list[str]) -> np.ndarray:
    """One row per image (k, 3, H, W) uint8: the image at twice its size, its generated caption
    (green when it is the true one, orange otherwise) and its true caption."""
    from dlcourse_tui.render.images import upscale
    from dlcourse_tui.render.overlay import hstack, vstack

    rows = []
    for image, mine, theirs in zip(images, made, true):
        picture = upscale(image.permute(1, 2, 0).cpu().numpy(), 2)  # (2H, 2W, 3)
        text = caption_block([("generated", mine, (120, 220, 120) if mine == theirs else (235, 180, 90)),
                              ("true", theirs, (200, 200, 200))], height=picture.shape[0])
        rows.append(hstack([picture, text], gap=6))
    return vstack(rows, gap=6)


def caption_block(parts: list[tuple[str, str, tuple[int, int, int]]], height: int, width: int = 300) -> np.ndarray:
    """Labelled captions, wrapped, on a dark (height, width, 3) block."""
    from dlcourse_tui.render.images import draw_label

    out = np.full((height, width, 3), 24, dtype=np.uint8)
    y = 4
    for label, text, colour in parts:
        out = draw_label(out, f"{label}:", (4, y), color=(150, 150, 150))
        y += 13
        for line in wrap(text, width // 6 - 2):
            out = draw_label(out, line, (10, y), color=colour)
            y += 13
        y += 4
    return out
