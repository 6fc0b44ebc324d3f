"""Sequences (chapter 4): many-to-one classification with recurrent networks, and
sequence-to-sequence learning with the Transformer.

- sequence (SequenceTask): read x_1 … x_T, one step at a time, classify from the last
  hidden state. Images are read row by row (digits: 28 steps of 28 pixels); the `memory`
  data asks for one symbol seen near the start of 100 steps. Cross-entropy as in classify,
  batches sharded the same way (so it runs under --nproc-per-node); pictures: the hidden
  state over time for one input, and the gradient norm that reaches each time step,
  ‖∂L/∂h_t‖, on a log scale (vanishing gradients made visible). Evaluation adds
  val_grad_decades_lost, log10(‖∂L/∂h_T‖ / ‖∂L/∂h_1‖) on 256 validation sequences: how many
  factors of 10 the gradient loses on its way from the last step back to the first.
- seq2seq (Seq2SeqTask): an encoder-decoder trained with teacher forcing (the decoder reads
  <bos> y_1 … y_{T−1} and predicts y_1 … y_T), evaluated by greedy decoding: val_exact_acc is
  the share of validation sequences generated exactly right. val_loss and val_acc are
  teacher-forced, so a decoder that peeks at the future (no causal mask) shows a near-zero
  val_loss beside a val_exact_acc near 0. Pictures: the attention matrices per layer and
  head (encoder self-attention, the decoder's masked self-attention, cross-attention).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.errors import UserError
from dlcourse_tui.models.attention import scaled_dot_product_attention
from dlcourse_tui.render.images import chw_to_hwc, colormap, to_rgb
from dlcourse_tui.tasks.attention_pictures import attention_matrices, enlarge, grid_of
from dlcourse_tui.tasks.classify import ClassifyTask, loss_and_correct

GRAD_BATCH = 256  # validation sequences the gradient norms are measured on
MAX_UNITS = 64  # hidden units drawn in the heat map
PICTURE_WIDTH = 320  # about this many pixels across the time axis
EVAL_BATCH = 1000


# ---------------------------------------------------------------------------- many-to-one


class SequenceTask(ClassifyTask):
    """A recurrent classifier over sequences (or images read row by row)."""

    def build(self) -> None:
        if self.data.kind not in ("sequence", "image"):
            raise UserError(f"the sequence task reads sequences or images row by row, but {self.data.name} is "
                            f"{self.data.kind} data; pick --data memory or --data digits.")
        super().build()

    def tables(self) -> list[TableReady]:
        return []

    def train_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Cross-entropy on the class read from h_T; the gradient rescaled to norm ≤ task.clip
        (a long sequence's gradient can also explode: the same product of Jacobians, > 1)."""
        x, y = batch
        loss, correct = loss_and_correct(self.net(self.prepare(x)), y, self.config.train.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = float(self.config.task_args.get("clip", 0.0))
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return {"loss": loss.detach(), "acc": correct.float().mean()}

    def evaluate(self) -> dict[str, float]:
        metrics = super().evaluate()
        norms = self._step_gradients()  # (T,)
        ratio = norms[-1].clamp_min(1e-30) / norms[0].clamp_min(1e-30)
        metrics["val_grad_decades_lost"] = math.log10(ratio.item())  # 5: ‖∂L/∂h_1‖ is 10⁵ times smaller than ‖∂L/∂h_T‖
        return metrics

    def _step_gradients(self) -> Tensor:
        """‖∂L/∂h_t‖ for every step t, on GRAD_BATCH validation sequences (evaluation mode)."""
        self.model.eval()
        x, y = self.data.val.x[:GRAD_BATCH], self.data.val.y[:GRAD_BATCH]
        with torch.inference_mode(False):
            return self.model.step_gradients(self.prepare(x), lambda logits: F.cross_entropy(logits, y)).cpu()  # (T,)

    def pictures(self, epoch: int, final: bool) -> list[PictureReady]:
        norms = self._step_gradients().clamp_min(1e-30)  # (T,)
        T = len(norms)
        return [
            PictureReady("hidden_states", f"one validation input (top, time left to right) and its hidden state h_t "
                         f"over the {T} steps (below: one row per unit, first {MAX_UNITS}; blue −1, white 0, red +1)",
                         epoch, self._hidden_picture()),
            PictureReady("step_gradients", f"‖∂L/∂h_t‖, the gradient reaching step t = 1 … {T}, on a log scale "
                         f"(a grey line every factor of 10): {norms[0]:.1e} at t = 1, {norms[-1]:.1e} at t = {T}",
                         epoch, gradient_bars(norms.numpy())),
        ]

    @torch.inference_mode()
    def _hidden_picture(self) -> np.ndarray:
        self.model.eval()
        x = self.data.val.x[:1]
        hs = self.model.hidden_states(self.prepare(x))[0, :, :MAX_UNITS].float().cpu().numpy()  # (T, H)
        T = hs.shape[0]
        fx = max(1, PICTURE_WIDTH // T)
        if x.dim() == 4:  # an image read row by row: step t is row t, so turn it on its side
            top = to_rgb(chw_to_hwc(x[0].cpu().numpy()))  # (H, W, 3)
            top = np.ascontiguousarray(top.transpose(1, 0, 2))  # (W, H, 3): column t = row t of the image
            top = enlarge(top, max(1, 96 // top.shape[0]), fx)
        else:  # one-hot symbols and the marker: one row per channel
            top = enlarge(colormap(x[0].float().cpu().numpy().T, vmin=0.0, vmax=1.0, kind="gray"), 6, fx)
        heat = enlarge(colormap(hs.T, vmin=-1.0, vmax=1.0, kind="diverging"), 3, fx)  # (H·3, T·fx, 3)
        return grid_of([[top], [heat]], pad=4)


def gradient_bars(norms: np.ndarray, height: int = 120) -> np.ndarray:
    """One bar per time step, log10 of its norm from the smallest decade to the largest, with a
    grey line at every power of 10."""
    logs = np.log10(norms.astype(np.float64))
    lo, hi = math.floor(logs.min()), math.ceil(logs.max())
    if hi == lo:
        hi = lo + 1
    T = len(norms)
    fx = max(2, PICTURE_WIDTH // T)
    out = np.full((height, T * fx, 3), 24, dtype=np.uint8)
    for d in range(lo, hi + 1):
        y = round((hi - d) / (hi - lo) * (height - 1))
        out[y, :] = 90
    tops = np.round((hi - logs) / (hi - lo) * (height - 1)).astype(int)  # (T,)
    for t, top in enumerate(tops):
        out[top:, t * fx:(t + 1) * fx - (1 if fx > 2 else 0)] = (230, 140, 40)
    return out


# ---------------------------------------------------------------------------- sequence to sequence


class Seq2SeqTask(ClassifyTask):
    """Teacher-forced cross-entropy over target tokens; greedy decoding for exact match."""

    def build(self) -> None:
        if self.data.kind != "tokens":
            raise UserError(f"the seq2seq task reads token sequences, but {self.data.name} is {self.data.kind} data; "
                            "pick --data reverse or --data sort.")
        super().build()
        self.bos = self.data.classes.index("<bos>")

    def shifted(self, tgt: Tensor) -> Tensor:
        """The decoder's input under teacher forcing: <bos> y_1 … y_{T−1}, (B, T)."""
        return torch.cat([torch.full_like(tgt[:, :1], self.bos), tgt[:, :-1]], dim=1)  # (B, T)

    def train_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        src, tgt = batch  # (B, S), (B, T)
        logits = self.net(src, self.shifted(tgt))  # (B, T, vocab)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tgt.flatten(), label_smoothing=self.config.train.label_smoothing)
        self.update(loss)
        right = logits.detach().argmax(-1) == tgt  # (B, T)
        return {"loss": loss.detach(), "acc": right.float().mean(), "exact_acc": right.all(dim=1).float().mean()}

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        val = self.data.val
        sums = torch.zeros(4, device=self.device)  # loss, teacher-forced tokens right, greedy tokens right, exact
        for i in range(0, len(val), EVAL_BATCH):
            src, tgt = val.x[i:i + EVAL_BATCH], val.y[i:i + EVAL_BATCH]
            logits = self.model(src, self.shifted(tgt))  # (B, T, vocab)
            out = self.model.generate(src, tgt.shape[1], self.bos)  # (B, T)
            sums += torch.stack([
                F.cross_entropy(logits.flatten(0, 1).float(), tgt.flatten(), reduction="sum") / tgt.shape[1],
                (logits.argmax(-1) == tgt).float().mean(1).sum(),
                (out == tgt).float().mean(1).sum(),
                (out == tgt).all(dim=1).float().sum(),
            ])
        loss, acc, greedy, exact = (sums / len(val)).tolist()
        return {"val_loss": loss, "val_acc": acc, "val_greedy_acc": greedy, "val_exact_acc": exact}

    def tables(self) -> list[TableReady]:
        return [attention_worked_example()]

    def pictures(self, epoch: int, final: bool) -> list[PictureReady]:
        from dlcourse_tui.data.sequences import decode

        self.model.eval()
        src, tgt = self.data.val.x[:1], self.data.val.y[:1]  # (1, S), (1, T)
        with torch.inference_mode():
            maps = self.model.attention_maps(src, self.shifted(tgt))  # {"encoder", "decoder", "cross"}: L × (1, h, ·, ·)
            out = self.model.generate(src, tgt.shape[1], self.bos)  # (1, T)
        words = self.data.classes
        example = f"source '{decode(src[0], words)}', target '{decode(tgt[0], words)}', generated '{decode(out[0], words)}'"
        rows = "rows: layers 1 … L, columns: heads 1 … h, each map from 0 (dark) to its largest weight (yellow)"
        mask = "masked (causal)" if self.model.cfg.causal else "NOT masked"
        return [
            PictureReady("encoder_attention", f"encoder self-attention (queries down, keys across) for {example}; {rows}",
                         epoch, attention_matrices([m[0] for m in maps["encoder"]])),
            PictureReady("decoder_attention", f"decoder self-attention, {mask}: position t reads <bos> y_1 … y_(t−1) "
                         f"under teacher forcing; {rows}", epoch, attention_matrices([m[0] for m in maps["decoder"]])),
            PictureReady("cross_attention", f"cross-attention: each target position (down) over the source tokens "
                         f"(across); for reversal the weight sits on the anti-diagonal; {rows}", epoch,
                         attention_matrices([m[0] for m in maps["cross"]])),
        ]


def attention_worked_example() -> TableReady:
    """The course's example through the hand-written attention: one query, two keys in 64
    dimensions whose dot products with it are 112 and 96; /√64 = 8 gives 14 and 12; softmax
    gives 0.88 and 0.12; the output is 0.88 v_1 + 0.12 v_2."""
    d = 64
    q = torch.ones(1, d)  # (1, 64)
    k = torch.stack([torch.full((d,), 112 / d), torch.full((d,), 96 / d)])  # (2, 64): q·k = 112, 96
    v = torch.eye(2)  # (2, 2): v_1 = (1, 0), v_2 = (0, 1)
    out, w = scaled_dot_product_attention(q, k, v)  # (1, 2), (1, 2)
    scores = (q @ k.T)[0]  # (2,)
    rows = tuple((f"k_{i + 1}", f"{scores[i]:.0f}", f"{scores[i] / math.sqrt(d):.0f}", f"{w[0, i]:.2f}",
                  f"{out[0, i]:.2f}") for i in range(2))
    return TableReady("attention_example", "scaled dot-product attention by hand: one query, two keys, d_k = 64, "
                      "√64 = 8; the output Σ â_i v_i with v_1 = (1, 0), v_2 = (0, 1)",
                      ("key", "q·k", "q·k / √d_k", "softmax â", "output Σ â v"), rows)
