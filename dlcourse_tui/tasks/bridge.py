"""A BLIP-2-style bridge (chapter 5): a Q-Former (models/qformer.py) between the CLIP lesson's
frozen image encoder and a small decoder-only language model, on `scenes` captions.

One run, three phases by epoch (task.lm_epochs, task.stage1_epochs; the rest is stage 2):

1. the language model alone, trained on the training captions (next-word cross-entropy),
   each read after its bag of words (its distinct words, ascending by id, as a prefix of
   embeddings without positions; task.lm_context = "none": bare captions), then frozen;
2. stage 1: the Q-Former against the frozen image features with ITC (InfoNCE both ways on
   the best query's similarity), ITM (match or not, on the true pairs and on the hardest
   wrong caption and image of the batch by ITC) and ITG (the caption generated from the
   queries), each with its mask, their losses summed;
3. stage 2: the queries' outputs, projected, as a soft prompt before the caption in the
   frozen language model, trained by its loss.

The phase is a function of the epoch, so a resumed run resumes in its phase. Each phase has
its own optimiser and schedule. The image encoder is frozen throughout: its features of every
image are computed once, at build. It comes from the run [needs.encoder] names (the CLIP
lesson's), whose saved vocabulary this run uses too; without one (tests, every lesson's
two-step run) a random ViT of the lesson's [model] sizes stands in, and the first table says so.

Evaluation: val_lm_loss (the language model alone, teacher-forced, reading the true bag of
words: what a perfect soft prompt could reach), val_loss (the bridge's caption loss through
the soft prompt), val_itc_acc (image → caption retrieval by ITC among the first 100
validation scenes), and the captions the bridge generates greedily, scored as the
captioning lesson scores them: val_bleu4 (corpus BLEU-4) and val_exact. `phase` is logged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.data.scenes import CAPTION_WORDS
from dlcourse_tui.data.vocab import PAD_ID, Vocabulary, split_words
from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.engine.optim import make_optimizer, make_scheduler
from dlcourse_tui.errors import UserError
from dlcourse_tui.models.qformer import QFormerBridge
from dlcourse_tui.tasks.base import VocabularyTask
from dlcourse_tui.tasks.caption import captions_rows, trim
from dlcourse_tui.tasks.dense import Standardise, check_image_data, epoch_batches
from dlcourse_tui.tasks.text_metrics import corpus_bleu

ENCODER = "encoder"  # the [needs.encoder] of the lesson
LM, STAGE1, STAGE2 = 1, 2, 3  # the `phase` metric
PHASE_NAMES = {LM: "the language model", STAGE1: "stage 1 (ITC + ITM + ITG)", STAGE2: "stage 2 (soft prompt)"}
OPTIMISERS = {LM: "lm", STAGE1: "stage1", STAGE2: "stage2"}
CONTEXTS = ("bag", "none")  # what the LM reads before a caption in phase 1
EVAL_BATCH = 250
ITC_EVAL = 100  # validation scenes the retrieval accuracy ranks against each other
PICTURE_IMAGES = 4
CELL = 72
MODEL_ARGS = ("queries", "d_model", "heads", "layers", "mlp_ratio", "embed_dim", "lm_d_model", "lm_heads",
              "lm_layers", "max_length", "patch_size", "encoder_d_model", "encoder_heads", "encoder_layers")


def itc_loss(sim: Tensor) -> Tensor:
    """InfoNCE both ways on a (B, B) similarity matrix whose diagonal holds the true pairs."""
    target = torch.arange(sim.shape[0], device=sim.device)
    return (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2


def bag_of_words(tokens: Tensor, vocab_size: int) -> Tensor:
    """Captions as ids (N, T) → the distinct words of each, ascending by id, <pad> after: (N, K),
    K the most any caption has (specials left out)."""
    present = torch.zeros(tokens.shape[0], vocab_size, dtype=torch.bool, device=tokens.device)
    present.scatter_(1, tokens, True)  # (N, V)
    present[:, :3] = False  # <pad> <bos> <eos>
    K = max(1, int(present.sum(dim=1).max())) if len(tokens) else 1
    order = (~present).int().argsort(dim=1, stable=True)[:, :K]  # (N, K): present ids first, ascending
    return torch.where(present.gather(1, order), order, torch.full_like(order, PAD_ID))  # (N, K)


def hardest_negatives(sim: Tensor, same: Tensor) -> tuple[Tensor, Tensor]:
    """For each row the most similar column with another caption: (B,) indices, and whether
    the row has one (B,) bool (a batch of one caption repeated has none)."""
    s = sim.detach().masked_fill(same, float("-inf"))  # (B, B)
    best = s.max(dim=1)
    return best.indices, torch.isfinite(best.values)


class BridgeTask(VocabularyTask):
    """Three phases, three optimisers, one model: the frozen encoder, the Q-Former, the LM."""

    def build(self) -> None:
        cfg, data = self.config, self.data
        check_image_data(data, "blip2-bridge")
        for name, split in (("training", data.train), ("validation", data.val)):
            if "captions" not in split.extras:
                raise UserError(f"{data.name} has no captions ({name} split); the bridge lesson needs data that "
                                "carries them: data.name=scenes.")
        args = cfg.task_args
        self.lm_epochs, self.stage1_epochs = self._phase_epochs(args)
        self.lm_context = str(args.get("lm_context", "bag"))
        if self.lm_context not in CONTEXTS:
            raise UserError(f"task.lm_context={self.lm_context!r} is not a context; pick one of {', '.join(CONTEXTS)}.")
        self.eval_images = int(args.get("eval_images", 0)) or len(data.val)
        encoder, self.source, saved_vocab = self._encoder()
        self.vocab = (Vocabulary.from_list(saved_vocab) if saved_vocab
                      else Vocabulary.from_texts(data.train.extras["captions"], extra=CAPTION_WORDS))
        self.prompt = str(args.get("prompt", "")).strip()
        self.prompt_ids = torch.tensor(self.vocab.encode(self.prompt, bos=False, eos=False, what="task.prompt"),
                                       dtype=torch.long)
        self.length = 2 + max(len(split_words(c)) for s in (data.train, data.val) for c in s.extras["captions"])
        self.tokens = {name: self.vocab.encode_batch(split.extras["captions"], self.length,
                                                     what=f"a {name} caption").to(self.device)  # (N, T)
                       for name, split in (("train", data.train), ("val", data.val))}
        self.bags = {name: bag_of_words(t, len(self.vocab)) for name, t in self.tokens.items()}  # (N, K)
        model_args = {k: v for k, v in cfg.model_args.items() if k in MODEL_ARGS}
        model_args["max_length"] = max(int(model_args.get("max_length", 40)), self.length)
        for key in (k[6:] for k in cfg.explicit if k.startswith("model.")):
            if key not in MODEL_ARGS and key != "name":
                raise UserError(f"model qformer has no setting {key!r}; it takes: {', '.join(sorted(MODEL_ARGS))}.")
        try:
            mcfg = QFormerBridge.Config(input_shape=data.input_shape, num_classes=len(self.vocab), **model_args)
        except (TypeError, ValueError) as e:
            raise UserError(f"model qformer: {e}") from None
        self.model = QFormerBridge(mcfg, encoder).to(self.device)
        self.model.encoder.requires_grad_(False)
        self.modules = {"model": self.model}
        self.prepare = Standardise(data, self.device)
        self.features = {name: self._encode_images(split.x) for name, split in (("train", data.train), ("val", data.val))}
        m, train, spe = self.model, cfg.train, self.steps_per_epoch()
        trains = {LM: [m.lm], STAGE1: [m.qformer], STAGE2: [m.qformer, m.proj]}
        epochs = {LM: self.lm_epochs, STAGE1: self.stage1_epochs, STAGE2: self.stage2_epochs}
        self.optimizers, self.schedulers = {}, {}
        for phase, modules in trains.items():
            opt = make_optimizer(modules, train)
            self.optimizers[OPTIMISERS[phase]] = opt
            sched = make_scheduler(opt, train, spe * max(1, epochs[phase]))
            if sched is not None:
                self.schedulers[OPTIMISERS[phase]] = sched
        self.last_scores: dict[str, float] = {}

    def _phase_epochs(self, args: dict[str, Any]) -> tuple[int, int]:
        """(LM epochs, stage-1 epochs), each cut to what train.epochs leaves; UserError for a negative one."""
        epochs = self.config.train.epochs
        lm, s1 = int(args.get("lm_epochs", 2)), int(args.get("stage1_epochs", 2))
        for key, value in (("lm_epochs", lm), ("stage1_epochs", s1)):
            if value < 0:
                raise UserError(f"task.{key}={value} must be 0 or more (epochs of that phase), e.g. 2.")
        lm = min(lm, epochs)
        return lm, min(s1, epochs - lm)

    @property
    def stage2_epochs(self) -> int:
        return self.config.train.epochs - self.lm_epochs - self.stage1_epochs

    def _encoder(self) -> tuple[nn.Module | None, str, list[str] | None]:
        """The frozen image encoder (None: the model's random stand-in), where it comes from in
        words, and the upstream run's saved vocabulary (None without one)."""
        upstream = self.upstream.get(ENCODER)
        if upstream is None:
            return None, "a random ViT (no CLIP run to build on: the image features mean nothing)", None
        from dlcourse_tui.models.clip import clip_from_settings

        vocab = upstream.state.get("vocab")
        theirs = upstream.config.get("model", {})
        try:
            clip = clip_from_settings(theirs, len(vocab) if vocab else len(CAPTION_WORDS) + 3)
            clip.load_state_dict(upstream.module_state("model"))
        except (TypeError, ValueError, RuntimeError) as e:
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            first = (lines[1:] or lines or [str(e)])[0][:300]  # past "Error(s) in loading state_dict for CLIP:"
            raise UserError(f"run {upstream.run_id} (encoder) has a CLIP model that does not fit the CLIP of this "
                            f"version ({first.rstrip('. ')}); train a new one with: dlc run clip.") from None
        return clip, f"the image encoder of run {upstream.run_id} (CLIP)", (list(vocab) if vocab else None)

    @torch.no_grad()
    def _encode_images(self, x: Tensor) -> Tensor:
        """uint8 images (N, C, H, W) → the frozen encoder's features (N, S, D), once."""
        enc = self.model.encoder
        enc.eval()
        return torch.cat([self.model.image_features(self.prepare(x[i:i + EVAL_BATCH]))
                          for i in range(0, len(x), EVAL_BATCH)]) if len(x) else x.new_zeros(0)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.config.train.batch_size)

    def phase(self, epoch: int) -> int:
        """LM, STAGE1 or STAGE2 for `epoch` (0-based)."""
        if epoch < self.lm_epochs:
            return LM
        return STAGE1 if epoch < self.lm_epochs + self.stage1_epochs else STAGE2

    def train(self, mode: bool = True) -> None:
        """Training mode, but the frozen encoder always evaluates (train_step puts the LM in
        evaluation mode once it is frozen)."""
        self.model.train(mode)
        self.model.encoder.eval()

    # -- training ----------------------------------------------------------------------
    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor, int]]:
        cfg, phase = self.config.train, self.phase(epoch)
        for _, idx in epoch_batches(len(self.data.train), cfg.batch_size, cfg.seed, epoch, self.device, start,
                                    self.steps_per_epoch()):
            yield idx, trim(self.tokens["train"][idx]), phase

    def text_context(self, split: str, idx: Tensor | slice) -> tuple[Tensor | None, Tensor | None]:
        """What the LM reads before a caption in phase 1: its bag of words' embeddings (B, K, d)
        and which are real (B, K); (None, None) with task.lm_context = none."""
        if self.lm_context == "none":
            return None, None
        bag = self.bags[split][idx]  # (B, K)
        return self.model.lm.embed(bag), bag != PAD_ID

    def lm_loss(self, tokens: Tensor, prefix: Tensor | None = None, keep: Tensor | None = None) -> Tensor:
        """Next-word cross-entropy of the LM on ids (B, T) over real target words, reading
        `prefix` (B, K, d) first (a bag of words, or the soft prompt)."""
        logits = self.model.lm(tokens[:, :-1], prefix, keep)  # (B, T − 1, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten(), ignore_index=PAD_ID)

    def stage1_losses(self, feats: Tensor, tokens: Tensor) -> dict[str, Tensor]:
        """ITC, ITM and ITG on image features (B, S, D) and their captions (B, T)."""
        qf = self.model.qformer
        z, text, _ = qf(feats, tokens, "itc")  # the uni-modal mask: the two sides apart
        sim, _ = qf.similarity(z, text)  # (B, B)
        itc = itc_loss(sim)
        same = (tokens[:, None, :] == tokens[None, :, :]).all(dim=-1)  # (B, B): the same caption
        neg_text, ok_t = hardest_negatives(sim, same)  # for each image, a wrong caption
        neg_image, ok_i = hardest_negatives(sim.T, same)  # for each caption, a wrong image
        pair_feats = torch.cat([feats, feats, feats[neg_image]])  # (3B, S, D)
        pair_text = torch.cat([tokens, tokens[neg_text], tokens])  # (3B, T)
        labels = torch.cat([torch.ones_like(ok_t), torch.zeros_like(ok_t), torch.zeros_like(ok_i)]).long()
        weight = torch.cat([torch.ones_like(ok_t), ok_t, ok_i]).float()  # (3B,)
        zq, _, _ = qf(pair_feats, pair_text, "itm")  # the bi-directional mask
        itm_logits = qf.itm_head(zq).mean(dim=1)  # (3B, 2): each query's vote, averaged
        itm = (F.cross_entropy(itm_logits.float(), labels, reduction="none") * weight).sum() / weight.sum()
        _, tg, _ = qf(feats, tokens[:, :-1], "itg")  # the multi-modal causal mask
        itg = F.cross_entropy(qf.itg_head(tg).flatten(0, 1).float(), tokens[:, 1:].flatten(), ignore_index=PAD_ID)
        return {"itc": itc, "itm": itm, "itg": itg}

    def train_step(self, batch: tuple[Tensor, Tensor, int]) -> dict[str, Tensor]:
        idx, tokens, phase = batch
        self.model.lm.requires_grad_(phase == LM)  # frozen once its phase is over
        if phase != LM:
            self.model.lm.eval()
        zero = torch.zeros((), device=self.device)
        parts = {"itc": zero, "itm": zero, "itg": zero}
        if phase == LM:
            loss = self.lm_loss(tokens, *self.text_context("train", idx))
        elif phase == STAGE1:
            parts = self.stage1_losses(self.features["train"][idx], tokens)
            loss = parts["itc"] + parts["itm"] + parts["itg"]
        else:
            loss = self.lm_loss(tokens, self.model.soft_prompt(self.features["train"][idx]))
        self.update(loss, OPTIMISERS[phase])
        return {"loss": loss.detach(), **{k: v.detach() for k, v in parts.items()},
                "phase": torch.tensor(float(phase), device=self.device)}

    def examples_in(self, batch: tuple[Tensor, Tensor, int]) -> int:
        return len(batch[0])

    # -- captioning and evaluation -----------------------------------------------------
    @torch.no_grad()
    def caption_ids(self, feats: Tensor, prefix: Tensor | None = None) -> Tensor:
        """Word ids (B, ≤ T) the bridge generates greedily for image features (B, S, D)."""
        self.model.eval()
        return self.model.caption(feats, self.length - 1, prefix)

    def captions(self, feats: Tensor, prefix: Tensor | None = None) -> list[str]:
        return [self.vocab.decode(row) for row in self.caption_ids(feats, prefix)]

    @torch.no_grad()
    def scores(self, n: int) -> dict[str, float]:
        """The validation metrics (module docstring) on the first n validation scenes."""
        self.model.eval()
        feats, toks = self.features["val"], self.tokens["val"]
        lm_sum = br_sum = count = 0.0
        hyps: list[list[str]] = []
        for i in range(0, n, EVAL_BATCH):
            f, t = feats[i:i + min(EVAL_BATCH, n - i)], trim(toks[i:i + min(EVAL_BATCH, n - i)])
            real = float((t[:, 1:] != PAD_ID).sum())
            lm_sum += float(self.lm_loss(t, *self.text_context("val", slice(i, i + len(t))))) * real
            br_sum += float(self.lm_loss(t, self.model.soft_prompt(f))) * real
            count += real
            hyps += [self.vocab.decode_words(row) for row in self.caption_ids(f)]
        refs = [[split_words(c)] for c in self.data.val.extras["captions"][:n]]
        k = min(ITC_EVAL, n)
        t = trim(toks[:k])
        z, text, _ = self.model.qformer(feats[:k], t, "itc")
        sim, _ = self.model.qformer.similarity(z, text)  # (k, k)
        same = (t[:, None, :] == t[None, :, :]).all(dim=-1)  # a retrieved twin caption counts as right
        right = same[torch.arange(k, device=self.device), sim.argmax(dim=1)].float().mean() if k else torch.zeros(())
        return {"val_loss": br_sum / max(count, 1), "val_lm_loss": lm_sum / max(count, 1),
                "val_itc_acc": float(right), "val_bleu4": corpus_bleu(hyps, refs),
                "val_exact": sum(h == r[0] for h, r in zip(hyps, refs)) / max(n, 1)}

    def evaluate(self) -> dict[str, float]:
        self.last_scores = self.scores(min(self.eval_images, len(self.data.val)))
        return dict(self.last_scores)

    # -- tables and pictures -----------------------------------------------------------
    def parameter_rows(self) -> list[tuple[str, str, str, str]]:
        """(part, when it trains, parameters, share of the total) for each part of the model."""
        m = self.model
        count = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
        heads = sum(count(h) for h in (m.qformer.itc_image, m.qformer.itc_text, m.qformer.itm_head, m.qformer.itg_head))
        heads += m.qformer.log_scale.numel()
        parts = [("image encoder (the part it runs)", "never (frozen)", self.encoder_params_used()),
                 ("language model", "phase 1 only, then frozen", count(m.lm)),
                 ("Q-Former: queries, blocks", "stages 1 and 2", count(m.qformer) - heads),
                 ("Q-Former: ITC, ITM, ITG heads", "stage 1", heads),
                 ("projection to the LM", "stage 2", count(m.proj))]
        total = sum(n for _, _, n in parts)
        stage2 = count(m.qformer) - heads + count(m.proj)
        rows = [(name, when, f"{n:,}", f"{n / total:.1%}") for name, when, n in parts]
        rows.append(("total", "", f"{total:,}", "100.0%"))
        rows.append(("trainable in stage 2", "the bridge", f"{stage2:,}", f"{stage2 / total:.1%}"))
        return rows

    def encoder_params_used(self) -> int:
        """The image encoder's parameters that encode_image_tokens reaches (CLIP's text side is
        carried along but never run): those a backward pass from one image's features touches."""
        enc = self.model.encoder
        params = list(enc.parameters())
        with torch.enable_grad():
            enc.requires_grad_(True)
            try:
                self.model.image_features(self.prepare(self.data.val.x[:1])).float().sum().backward()
                used = sum(p.numel() for p in params if p.grad is not None)
            finally:
                for p in params:
                    p.grad = None
                enc.requires_grad_(False)
        return used

    def tables(self) -> list[TableReady]:
        spans, first = [], 1
        for phase, n in ((LM, self.lm_epochs), (STAGE1, self.stage1_epochs), (STAGE2, self.stage2_epochs)):
            spans.append(f"{PHASE_NAMES[phase]}: " + (f"epochs {first}–{first + n - 1}" if n else "none"))
            first += n
        return [TableReady("parameters", f"trainable vs total parameters; the image encoder is {self.source}; "
                           + "; ".join(spans), ("part", "trains in", "parameters", "share"),
                           tuple(self.parameter_rows()))]

    def pictures(self, epoch: int, final: bool) -> list[PictureReady | TableReady]:
        out: list[PictureReady | TableReady] = [
            PictureReady("captions", "validation scenes: the caption the bridge generates greedily through its soft "
                         "prompt (green: word for word right) and the true one", epoch, self.captions_picture()),
            PictureReady("query_attention", f"what each of the {self.model.cfg.queries} queries looks at: the last "
                         "Q-Former block's cross-attention (mean over heads) over one validation scene's patches, "
                         "each map scaled to its own maximum; over each, the word whose LM embedding its soft-prompt "
                         "vector is closest to",
                         epoch, self.query_picture())]
        if final:
            out.append(self.final_table())
        return out

    def captions_picture(self) -> np.ndarray:
        val = self.data.val
        k = min(PICTURE_IMAGES, len(val))
        return captions_rows(val.x[:k], self.captions(self.features["val"][:k], self.prompt_ids),
                             val.extras["captions"][:k])

    @torch.no_grad()
    def query_picture(self) -> np.ndarray:
        from dlcourse_tui.render.overlay import titled
        from dlcourse_tui.tasks.attention_pictures import grid_of, image_cell, overlay

        self.model.eval()
        x = self.data.val.x[:1]
        _, _, maps = self.model.qformer(self.features["val"][:1], need_weights=True)
        att = maps[-1][0].mean(dim=0)  # (Q, S)
        S = att.shape[-1]
        side = math.isqrt(S - 1) if math.isqrt(S - 1) ** 2 == S - 1 else math.isqrt(S)
        grid = att[:, S - side * side:]  # the patch rows ([CLS], if any, first)
        words = self.nearest_words(self.model.soft_prompt(self.features["val"][:1])[0])
        image = x[0].permute(1, 2, 0).cpu().numpy()
        cells = [titled(image_cell(x[0], CELL), "image")]
        for q in range(att.shape[0]):
            heat = grid[q].float().cpu().numpy().reshape(side, side)
            cells.append(titled(overlay(image, heat, CELL), f"{q + 1}: {words[q]}"))
        return grid_of([cells[i:i + 5] for i in range(0, len(cells), 5)])

    def nearest_words(self, prompt: Tensor) -> list[str]:
        """For each soft-prompt vector (Q, d_lm), the word whose LM embedding is closest in cosine."""
        emb = F.normalize(self.model.lm.embed.weight[3:], dim=-1)  # (V − 3, d): the words, no specials
        best = (F.normalize(prompt, dim=-1) @ emb.T).argmax(dim=-1)  # (Q,)
        return [self.vocab.words[3 + int(i)] for i in best]

    def final_table(self) -> TableReady:
        n = min(self.eval_images, len(self.data.val))
        s = self.last_scores or self.scores(n)
        theirs, where = captioner_bleu()
        rows = [("this bridge (frozen encoder and LM)", f"{s['val_bleu4']:.3f}", f"{s['val_exact']:.1%}",
                 self.parameter_rows()[-1][2])]
        if theirs is not None:
            rows.append((f"the end-to-end captioner ({where})", f"{theirs:.3f}", "", captioner_params()))
        return TableReady("bridge_scores", f"captioning on {n} validation scenes (greedy decoding)",
                          ("model", "BLEU-4", "exact", "trainable"), tuple(rows))



def captioner_params() -> str:
    """The image-captioning lesson's default model's parameters, all trained, as text."""
    try:
        from dlcourse_tui.lessons import find_lesson
        from dlcourse_tui.models.registry import count_params, create_model

        cfg = find_lesson("image-captioning").config()
        with torch.random.fork_rng(devices=[]):  # building it draws its initial weights: not from the run's stream
            model = create_model(cfg.model, input_shape=(3, cfg.data_args.get("size", 64), cfg.data_args.get("size", 64)),
                                 num_classes=len(CAPTION_WORDS) + 3, args=dict(cfg.model_args))
        return f"{count_params(model):,} (all)"
    except Exception:  # noqa: BLE001 - a comparison line, never a failed run
        return "all"


def captioner_bleu() -> tuple[float | None, str]:
    """The image-captioning lesson's BLEU-4: its newest completed run's, else its expected band's
    median after the last epoch; and which, in words (None when neither is there)."""
    try:
        from dlcourse_tui.engine.runs import list_runs

        runs = [r for r in list_runs() if r.config.get("lesson") == "image-captioning" and r.status == "completed"]
        for r in sorted(runs, key=lambda r: r.id, reverse=True):
            value = r.summary.get("metrics", {}).get("val_bleu4")
            if value is not None:
                return float(value), f"run {r.id}, on its own data settings"
    except Exception:  # noqa: BLE001 - a comparison line, never a failed run
        pass
    try:
        from dlcourse_tui.course.reference import load_reference
        from dlcourse_tui.lessons import find_lesson

        band = load_reference(find_lesson("image-captioning").folder).bands["val_bleu4"]
        return float(band.median[-1]), "its expected band's median, 1–4 objects per scene"
    except Exception:  # noqa: BLE001
        return None, ""
