"""Classification: logits from one model, softmax cross-entropy (or a single logit with
binary cross-entropy), accuracy; pictures of class templates, decision boundaries, and a
CNN's first-layer filters and feature maps."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.engine.distributed import wrap
from dlcourse_tui.models.registry import create_model
from dlcourse_tui.render.images import (as_uint8, boundary_picture, chw_to_hwc, draw_label, normalize_to_uint8, tile,
                                        to_rgb, upscale)
from dlcourse_tui.tasks.base import Task
from dlcourse_tui.tasks.techniques import make_augmenter, technique_pictures

EVAL_BATCH = 2048
MAX_MAPS = 32  # feature maps shown per block
MAP_CELL = 32  # pixels a feature map is enlarged to (about)


def shuffled_order(n: int, seed: int, epoch: int, device: torch.device) -> Tensor:
    """The permutation of epoch `epoch`: a function of (seed, epoch) only, so resumable."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)  # (n,)


def loss_and_correct(logits: Tensor, y: Tensor, label_smoothing: float = 0.0) -> tuple[Tensor, Tensor]:
    """Mean loss and per-example correctness; one logit means binary cross-entropy."""
    if logits.shape[-1] == 1:
        z = logits[:, 0]  # (B,)
        target = y.to(z.dtype) * (1 - label_smoothing) + label_smoothing / 2
        return F.binary_cross_entropy_with_logits(z, target), (z > 0).long() == y
    return F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing), logits.argmax(dim=1) == y


def class1_probability(logits: Tensor) -> Tensor:
    """p(class 1 | x) from (B, 1) or (B, C) logits."""
    return torch.sigmoid(logits[:, 0]) if logits.shape[-1] == 1 else torch.softmax(logits, dim=1)[:, 1]


class ClassifyTask(Task):
    """One model, one optimiser, cross-entropy."""

    supports_distributed = True

    def build(self) -> None:
        cfg, data = self.config, self.data
        self.use_model(create_model(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes,
                                    args=cfg.model_args,
                                    strict={k[6:] for k in cfg.explicit if k.startswith("model.")}).to(self.device))
        self.init_from_upstream("init", self.model)  # [needs.init]: fine-tune an earlier run's model
        # modules hold the plain model, so checkpoints load with any number of processes
        self.net = wrap(self.model, self.dist, self.device)  # what train_step runs (DDP when distributed)
        if data.kind == "image":
            self.mean = torch.tensor(data.mean, device=self.device).view(1, -1, 1, 1)  # (1, C, 1, 1)
            self.std = torch.tensor(data.std, device=self.device).view(1, -1, 1, 1)
        self.augmenter = make_augmenter(cfg, data.kind, self.device, self.dist)  # None unless task.augment is set

    def prepare(self, x: Tensor) -> Tensor:
        """uint8 images -> standardised floats; points pass through."""
        if x.dtype == torch.uint8:
            return (x.float().div_(255) - self.mean) / self.std  # (B, C, H, W)
        return x

    def _epoch_size(self) -> int:
        """Examples used per epoch: all, except that a distributed run drops the tail of the
        last batch that does not split evenly across ranks."""
        n, bs = len(self.data.train), self.config.train.batch_size
        if self.dist is None:
            return n
        tail = n % bs
        return n - tail + tail // self.dist.world_size * self.dist.world_size

    def steps_per_epoch(self) -> int:
        return math.ceil(self._epoch_size() / self.config.train.batch_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        train, bs = self.data.train, self.config.train.batch_size
        order = shuffled_order(len(train), self.config.train.seed, epoch, self.device)[:self._epoch_size()]
        for i in range(start, self.steps_per_epoch()):
            idx = order[i * bs:(i + 1) * bs]  # (B,) the global batch
            if self.dist is not None:
                idx = idx[self.dist.rank::self.dist.world_size]  # (B / world,) this rank's share
            yield train.x[idx], train.y[idx]

    def train_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch
        if self.augmenter is not None:
            x = self.augmenter(x)  # batched, on the device; here (not in batches) so a stop never skips draws
        loss, correct = loss_and_correct(self.net(self.prepare(x)), y, self.config.train.label_smoothing)
        self.update(loss)
        return {"loss": loss.detach(), "acc": correct.float().mean()}

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        val = self.data.val
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for i in range(0, len(val), EVAL_BATCH):
            x, y = val.x[i:i + EVAL_BATCH], val.y[i:i + EVAL_BATCH]
            loss, ok = loss_and_correct(self.model(self.prepare(x)), y)
            loss_sum += loss * len(y)
            correct += ok.sum()
        n = len(val)
        return {"val_loss": loss_sum.item() / n, "val_acc": correct.item() / n}

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.augmenter is not None:
            state["augment"] = self.augmenter.state_dict()  # the generator: a resumed run draws the same
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.augmenter is not None and "augment" in state:
            self.augmenter.load_state_dict(state["augment"])

    # -- pictures and tables -------------------------------------------------------------
    def pictures(self, epoch: int, final: bool) -> list[PictureReady]:
        out = []
        if hasattr(self.model, "class_templates") and self.data.kind == "image":
            out.append(PictureReady("templates", "rows of W as class templates", epoch, self._templates()))
        if self.data.kind == "points":
            out.append(PictureReady("boundary", "decision boundary over the training points", epoch, self._boundary()))
        if hasattr(self.model, "first_layer_filters") and self.data.kind == "image":
            out.append(PictureReady("filters", "first-layer filters (each scaled to its own range)", epoch, self._filters()))
        if hasattr(self.model, "feature_maps") and self.data.kind == "image":
            out.append(PictureReady("feature_maps", "one validation image, then its feature maps after each conv block "
                                    f"(first {MAX_MAPS} per block)", epoch, self._feature_maps()))
        if hasattr(self.model, "cls_attention") and self.data.kind == "image":  # a ViT: what [CLS] looks at
            from dlcourse_tui.tasks.attention_pictures import cls_attention_pictures

            out += cls_attention_pictures(self, epoch)
        out += technique_pictures(self, epoch)
        return out

    @torch.inference_mode()
    def _templates(self, factor: int = 3, font: int = 13) -> np.ndarray:
        """Each row of W as an image (its own min-max scale, enlarged `factor` times) with
        its class name in a strip below it, five to a row."""
        w = self.model.class_templates().float()  # (C, ch, H, W)
        w = w - w.mean(dim=(1, 2, 3), keepdim=True)
        names = list(self.data.classes) if len(self.data.classes) == len(w) else [str(i) for i in range(len(w))]
        cells = []
        for t, name in zip(w, names):
            image = upscale(to_rgb(normalize_to_uint8(t.permute(1, 2, 0).cpu().numpy())), factor)  # (H·f, W·f, 3)
            width = image.shape[1]
            strip = np.full((font + 6, width, 3), 40, dtype=np.uint8)  # (font + 6, W·f, 3): the label's row
            name = name if len(name) <= width // 7 else name[:max(1, width // 7 - 2)] + ".."  # ASCII: any Pillow font
            strip = draw_label(strip, name, (width // 2, strip.shape[0] // 2), anchor="mm", size=font)
            cells.append(np.concatenate([image, strip], axis=0))  # (H·f + font + 6, W·f, 3)
        return tile(np.stack(cells), ncols=min(5, len(cells)), pad=2 * factor)

    @torch.inference_mode()
    def _filters(self, size: int = 24) -> np.ndarray:
        """The first layer's filters tiled, each min-max scaled: colour for 3 input channels,
        grey otherwise (the first input channel)."""
        w = self.model.first_layer_filters().float().cpu()  # (C_out, C_in, k, k)
        w = w if w.shape[1] == 3 else w[:, :1]  # (C_out, 3 or 1, k, k)
        factor = max(1, size // w.shape[-1])
        images = [upscale(to_rgb(normalize_to_uint8(chw_to_hwc(f.numpy()))), factor) for f in w]  # each (k·f, k·f, 3)
        return tile(np.stack(images), ncols=min(8, len(images)), pad=2)

    @torch.inference_mode()
    def _feature_maps(self) -> np.ndarray:
        """Rows: the first validation image, then each block's maps (ReLU outputs, so 0 is
        black), every block on one grey scale so its maps compare; all enlarged to about
        MAP_CELL pixels and stacked into one (H, W, 3) picture."""
        self.model.eval()
        x = self.data.val.x[:1]  # (1, C, H, W) uint8
        maps = self.model.feature_maps(self.prepare(x))  # [(1, C_k, H_k, W_k), ...]
        image = to_rgb(chw_to_hwc(x[0].cpu().numpy()))  # (H, W, 3)
        rows = [upscale(image, max(1, 2 * MAP_CELL // image.shape[0]))]
        for m in maps:
            a = m[0, :MAX_MAPS].float()  # (C', H_k, W_k)
            a = (a / a.max().clamp_min(1e-12)).cpu().numpy()  # [0, 1] for ReLU maps
            factor = max(1, round(MAP_CELL / a.shape[-1]))
            cells = [upscale(to_rgb(as_uint8(c)), factor) for c in a]  # each (H_k·f, W_k·f, 3)
            rows.append(tile(np.stack(cells), ncols=min(16, len(cells)), pad=1))
        width = max(r.shape[1] for r in rows)
        gap = np.full((4, width, 3), 40, dtype=np.uint8)
        out = []
        for r in rows:
            padded = np.full((r.shape[0], width, 3), 40, dtype=np.uint8)
            padded[:, :r.shape[1]] = r
            out += [padded, gap]
        return np.concatenate(out[:-1], axis=0)

    @torch.inference_mode()
    def _boundary(self, grid: int = 128, size: int = 256, max_points: int = 400) -> np.ndarray:
        self.model.eval()
        x, y = self.data.train.x[:max_points], self.data.train.y[:max_points]
        lo = x.min(0).values - 0.3
        hi = x.max(0).values + 0.3
        span = (hi - lo).max()
        lo = (lo + hi) / 2 - span / 2
        ticks = torch.linspace(0, 1, grid, device=self.device)  # (G,)
        gy, gx = torch.meshgrid(ticks, ticks, indexing="ij")
        pts = lo + span * torch.stack([gx.flatten(), 1 - gy.flatten()], dim=1)  # (G*G, 2), y up
        probs = class1_probability(self.model(pts)).view(grid, grid)  # (G, G)
        pix = (x - lo) / span * (grid - 1)  # (N, 2) grid pixel coordinates
        pix = torch.stack([pix[:, 0], (grid - 1) - pix[:, 1]], dim=1)
        return boundary_picture(probs.cpu().numpy(), pix.cpu().numpy(), y.cpu().numpy(), size)

    def tables(self) -> list[TableReady]:
        out = []
        if self.config.task_args.get("gradcheck") and hasattr(self.model, "manual_gradients"):
            out.append(self._gradient_check())
        if hasattr(self.model, "first_layer_filters"):
            out.append(convolution_worked_example())
        return out

    def _gradient_check(self, n: int = 64) -> TableReady:
        """Hand-written backward vs autograd on one batch, in float64."""
        model = copy.deepcopy(self.model).double()
        model.eval()
        x = self.prepare(self.data.train.x[:n]).double()
        y = self.data.train.y[:n]
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        manual = model.manual_gradients(x, y)
        rows = []
        for name, p in model.named_parameters():
            g_auto, g_hand = p.grad, manual[name]
            rel = ((g_hand - g_auto).norm() / (g_hand.norm() + g_auto.norm()).clamp_min(1e-30)).item()
            rows.append((name, "×".join(map(str, p.shape)), f"{g_auto.abs().max().item():.3e}", f"{rel:.2e}",
                         "ok" if rel < 1e-6 else "MISMATCH"))
        return TableReady("gradcheck", "hand-written backprop vs autograd (float64, 64 examples)",
                          ("parameter", "shape", "max |grad|", "relative error", "check"), tuple(rows))


def convolution_worked_example() -> TableReady:
    """A 3×3 vertical-edge filter slid over a 6×6 image with an edge: the 4×4 output,
    each value a weighted sum of the 3×3 patch under the filter (no padding, stride 1)."""
    image = torch.tensor([[0, 0, 0, 9, 9, 9]] * 6, dtype=torch.float32)  # (6, 6): dark left, bright right
    image[4:, :] = torch.tensor([0, 0, 9, 9, 9, 9], dtype=torch.float32)
    kernel = torch.tensor([[-1, 0, 1]] * 3, dtype=torch.float32)  # (3, 3): right minus left
    out = F.conv2d(image[None, None], kernel[None, None])[0, 0]  # (4, 4) = (6 − 3 + 2·0)/1 + 1

    def row(t: Tensor, i: int) -> str:
        return " ".join(f"{int(v):>3}" for v in t[i]) if i < t.shape[0] else ""

    rows = tuple((row(image, i), row(kernel, i), row(out, i)) for i in range(6))
    return TableReady("convolution", "a convolution by hand: out[i, j] = Σ_u Σ_v kernel[u, v] · image[i + u, j + v]",
                      ("image 6×6", "kernel 3×3", "output 4×4"), rows)
