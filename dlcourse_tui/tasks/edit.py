"""Knowledge editing (chapter 5): one rank-one edit of a trained ViT, in ROME's closed form, so
that one validation image of class A is classified as class B, against the naive rank-one
update and fine-tuning; how much every other image's output moves is the measure.

The edited layer is fc2, the second linear layer of block `layer`'s MLP, read at the [CLS]
token: its key k is fc2's input there (the GELU output), its value fc2's output. A run:

- build: the ViT of the vision-transformer run it builds on ([needs.model]; a randomly
  initialised one without, said in the "fact" table), frozen; the image's key k*; the keys
  of `keys` training images and their second moment C = E[k kᵀ] + λ I.
- training steps (the run's only trainable thing is a value vector v, (d,)): ROME's v*,
  gradient descent on −log p(B | image, fc2 gives v at [CLS]) + decay·‖v − v₀‖² / ‖v₀‖²,
  v₀ = W k* + b the value the layer gives now; the rest of the network is fixed.
- evaluate: three edits of the same weight W toward the same v* (models/editing.py): ROME's
  closed form, the naive rank-one update, and fine-tuning W on the single image (Adam, until
  p(B) reaches what v* gives, or `finetune_steps`); then, on the validation set, the edited
  image's p(B), and on every other image the accuracy, the share whose prediction changed,
  and the mean KL(p_before ‖ p_after) (the drift), also on the other images of class A alone.

The ViT it builds on is never modified: each method edits a copy; the ROME-edited copy is
kept as the module "edited" of the checkpoint.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.engine.optim import make_optimizer
from dlcourse_tui.errors import UserError
from dlcourse_tui.models.editing import EditableViT, mean_kl, naive_update, rome_update, second_moment
from dlcourse_tui.models.registry import count_params, create_model
from dlcourse_tui.tasks.base import Task

METHODS = ("rome", "naive", "finetune")
LABELS = {"rome": "ROME (along C^-1 k*)", "naive": "naive (along k*)", "finetune": "fine-tuned fc2"}  # ASCII: picture titles
SHORT = {"rome": "ROME", "naive": "naive", "finetune": "fine-tune"}
EVAL_BATCH = 500


class ValueVector(nn.Module):
    """v, the value vector ROME optimises (d,), and v₀ = W k* + b, the value the layer gives now."""

    def __init__(self, v0: Tensor) -> None:
        super().__init__()
        self.v = nn.Parameter(v0.clone())  # (d,)
        self.register_buffer("v0", v0.clone())  # (d,)


@dataclass
class EditResult:
    """One method's edit and what it did on the validation set."""

    weight: Tensor  # (d, d_ff) the edited fc2 weight
    logits: Tensor  # (N_val, classes) every validation image's logits after the edit
    steps: int = 0  # fine-tuning steps taken (0 for the closed forms)


class EditTask(Task):
    """A rank-one edit of one MLP layer of the ViT (see the module docstring)."""

    supports_distributed = False  # one image, one vector: nothing to share out

    # -- set-up ------------------------------------------------------------------------
    def build(self) -> None:
        data = self.data
        if data.kind != "image" or tuple(data.input_shape) != (3, 32, 32) or len(data.classes) < 2:
            raise UserError(f"knowledge editing edits the ViT trained on 32×32 shapes, but {self.config.data} gives "
                            f"{data.kind} data of shape {tuple(data.input_shape)}; use --set data.name=shapes.")
        self.mean = torch.tensor(data.mean, device=self.device).view(1, -1, 1, 1)  # (1, C, 1, 1)
        self.std = torch.tensor(data.std, device=self.device).view(1, -1, 1, 1)
        self.model = self._the_vit()
        self._read_settings(self.config.task_args)
        self.model.requires_grad_(False).eval()
        self.fc2 = self.model.fc2(self.layer)
        with torch.inference_mode():
            self.logits_before = self._logits(self.model)  # (N_val, classes)
        self._choose_fact()
        self.x_star = self.prepare(data.val.x[self.image:self.image + 1])  # (1, C, H, W)
        with torch.inference_mode():
            self.k_star = self.model.cls_keys(self.x_star, self.layer)[0]  # (d_ff,)
            keys = torch.cat([self.model.cls_keys(self.prepare(data.train.x[i:min(i + EVAL_BATCH, self.n_keys)]),
                                                  self.layer) for i in range(0, self.n_keys, EVAL_BATCH)])  # (N_keys, d_ff)
            self.C = second_moment(keys, self.lam)  # (d_ff, d_ff), float64
            v0 = self.fc2(self.k_star)  # (d,) W k* + b
        self.value = ValueVector(v0).to(self.device)
        self.edited = copy.deepcopy(self.model)  # the ROME-edited copy, saved with the run
        self.modules = {"model": self.model, "value": self.value, "edited": self.edited}
        self.optimizer = make_optimizer([self.value], self.config.train)
        self.optimizers = {"value": self.optimizer}
        self.schedulers = {}
        self.results: dict[str, EditResult] = {}
        self.p_vstar = float("nan")

    def _the_vit(self) -> EditableViT:
        """The ViT of the run this one builds on (its own config), or a random one of this lesson's config."""
        up = self.upstream.get("model")
        args = dict(up.config["model"]) if up is not None else dict(self.config.model_args)
        args.pop("name", None)
        model = create_model("vit_edit", input_shape=self.data.input_shape, num_classes=len(self.data.classes),
                             args=args).to(self.device)
        self.built_on = up.run_id if up is not None else ""
        self.init_from_upstream("model", model)
        return model

    def _read_settings(self, args: dict[str, Any]) -> None:
        """Every knob of the task, checked: one sentence per bad value."""
        names = list(self.data.classes)
        blocks = len(self.model.encoder.blocks)
        self.layer = int(args.get("layer", blocks - 1))
        if not 0 <= self.layer < blocks:
            raise UserError(f"task.layer={self.layer}: this ViT has {blocks} blocks, numbered 0 to {blocks - 1}; "
                            f"pick one, e.g. --set layer={blocks - 1}.")
        n_val = len(self.data.val)
        self.image = int(args.get("image", -1))
        if not -1 <= self.image < n_val:
            raise UserError(f"task.image={self.image}: the validation set has {n_val} images, numbered 0 to "
                            f"{n_val - 1}; pick one, or -1 for the first image of task.source.")
        self.source = self._class_arg(args, "source", names[0], names)
        self.target = self._class_arg(args, "target", names[1], names)
        self.n_keys = int(args.get("keys", 2000))
        if self.n_keys < 1:
            raise UserError(f"task.keys={self.n_keys}: C = E[k kᵀ] needs at least 1 key, e.g. --set keys=2000.")
        self.n_keys = min(self.n_keys, len(self.data.train))  # said in the fact table when fewer
        self.lam = float(args.get("lam", 0.0001))
        if not self.lam >= 0:
            raise UserError(f"task.lam={self.lam:g}: λ is added to C's diagonal and cannot be negative; "
                            "0 adds nothing, e.g. --set lam=0.001.")
        self.v_decay = float(args.get("v_decay", 0.05))
        if not self.v_decay >= 0:
            raise UserError(f"task.v_decay={self.v_decay:g}: the weight on ‖v − v₀‖² cannot be negative; "
                            "0 lets v go anywhere, e.g. --set v_decay=0.1.")
        self.v_steps = int(args.get("v_steps", 40))
        if self.v_steps < 1:
            raise UserError(f"task.v_steps={self.v_steps}: finding v* takes at least 1 step, e.g. --set v_steps=40.")
        self.finetune_steps = int(args.get("finetune_steps", 200))
        self.finetune_lr = float(args.get("finetune_lr", 0.001))
        if self.finetune_steps < 1 or not self.finetune_lr > 0:
            raise UserError(f"task.finetune_steps={self.finetune_steps}, task.finetune_lr={self.finetune_lr:g}: "
                            "fine-tuning needs at least 1 step and a positive step size, e.g. --set finetune_lr=0.001.")

    def _class_arg(self, args: dict[str, Any], key: str, default: str, names: list[str]) -> int:
        value = str(args.get(key, default))
        if value not in names:
            raise UserError(f"task.{key}={value!r} is not a class of {self.data.name}; choose one of {', '.join(names)}.")
        return names.index(value)

    def _choose_fact(self) -> None:
        """The image: task.image, else the first validation image of class task.source that the
        model gets right (the first of that class when it gets none right); its class is A."""
        names, y = self.data.classes, self.data.val.y
        if self.image < 0:
            of_class = (y == self.source).nonzero().flatten()  # (n_A,)
            if len(of_class) == 0:
                raise UserError(f"task.source={names[self.source]!r}: none of the {len(y)} validation images is a "
                                f"{names[self.source]}; give more of them, e.g. --set n_val=1000.")
            right = of_class[self.logits_before[of_class].argmax(dim=1) == self.source]
            self.image = int((right if len(right) else of_class)[0])
        self.source = int(y[self.image])
        if self.target == self.source:
            raise UserError(f"task.target={names[self.target]!r} is the class of the edited image (validation image "
                            f"{self.image}, a {names[self.source]}): an edit must change it; pick another class, "
                            f"e.g. --set target={names[(self.source + 1) % len(names)]}.")

    def prepare(self, x: Tensor) -> Tensor:
        """uint8 images → standardised floats, as the ViT was trained: (B, C, H, W)."""
        return (x.float().div(255) - self.mean) / self.std

    def _logits(self, model: nn.Module) -> Tensor:
        """Every validation image's logits under `model`: (N_val, classes)."""
        val = self.data.val.x
        return torch.cat([model(self.prepare(val[i:i + EVAL_BATCH])) for i in range(0, len(val), EVAL_BATCH)])

    def steps_per_epoch(self) -> int:
        return self.v_steps

    def num_params(self) -> int:
        """The ViT's parameters (the run trains only v, d of them, and edits one (d, d_ff) weight)."""
        return count_params(self.model)

    def train(self, mode: bool = True) -> None:
        """The ViT stays in evaluation mode: v* is found for the network as it predicts."""
        self.model.eval()
        self.edited.eval()

    # -- finding v* --------------------------------------------------------------------
    def batches(self, epoch: int, start: int = 0) -> Iterator[int]:
        yield from range(start, self.v_steps)  # one image, the same every step

    def examples_in(self, batch: int) -> int:
        return 1

    def _value_loss(self) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, −log p(B), p(B)) with fc2 giving v at [CLS] for the edited image."""
        v, v0 = self.value.v, self.value.v0
        with self.model.cls_value(self.layer, v):
            logits = self.model(self.x_star)  # (1, classes)
        nll = F.cross_entropy(logits, torch.tensor([self.target], device=self.device))
        decay = self.v_decay * (v - v0).pow(2).sum() / v0.pow(2).sum().clamp_min(1e-12)
        return nll + decay, nll, logits.softmax(dim=1)[0, self.target]

    def train_step(self, batch: int) -> dict[str, Tensor]:
        loss, nll, p = self._value_loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        shift = (self.value.v - self.value.v0).norm() / self.value.v0.norm().clamp_min(1e-12)
        return {"loss": loss.detach(), "nll": nll.detach(), "p_target": p.detach(), "v_shift": shift.detach()}

    # -- the three edits ---------------------------------------------------------------
    def _with_weight(self, weight: Tensor) -> EditableViT:
        """A copy of the ViT whose fc2 weight is `weight`; every other tensor a copy of the original's."""
        model = copy.deepcopy(self.model)
        with torch.no_grad():
            model.fc2(self.layer).weight.copy_(weight)
        return model

    def _finetune(self, p_goal: float) -> tuple[Tensor, int]:
        """fc2's weight after Adam on −log p(B | image) alone, stopped once p(B) ≥ p_goal (or
        after finetune_steps): (d, d_ff), and the steps taken."""
        model = copy.deepcopy(self.model)
        weight = model.fc2(self.layer).weight.requires_grad_(True)
        opt = torch.optim.Adam([weight], lr=self.finetune_lr)
        y = torch.tensor([self.target], device=self.device)
        steps = 0
        with torch.enable_grad():
            for steps in range(self.finetune_steps + 1):
                logits = model(self.x_star)  # (1, classes)
                if logits.softmax(dim=1)[0, self.target].item() >= p_goal or steps == self.finetune_steps:
                    break
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(logits, y).backward()
                opt.step()
        return weight.detach().clone(), steps

    def evaluate(self) -> dict[str, float]:
        W, b = self.fc2.weight.detach(), self.fc2.bias.detach()
        v_star = self.value.v.detach()  # (d,)
        with torch.no_grad():
            _, _, p = self._value_loss()
        self.p_vstar = float(p)
        weights = {"rome": rome_update(W, self.k_star, v_star - b, self.C),
                   "naive": naive_update(W, self.k_star, v_star - b)}
        ft_weight, ft_steps = self._finetune(min(self.p_vstar, 0.999))
        weights["finetune"] = ft_weight
        self.results = {}
        with torch.inference_mode():
            for name, w in weights.items():
                self.results[name] = EditResult(w, self._logits(self._with_weight(w)),
                                                ft_steps if name == "finetune" else 0)
            self.edited.fc2(self.layer).weight.copy_(weights["rome"])
        return self._metrics()

    def _metrics(self) -> dict[str, float]:
        y, i = self.data.val.y, self.image
        before = self.logits_before
        others = torch.ones(len(y), dtype=torch.bool, device=y.device)
        others[i] = False  # (N_val,) every image but the edited one
        same = others & (y == self.source)  # its neighbours: the other images of class A
        pred0 = before.argmax(dim=1)  # (N_val,)
        out = {"val_p_before": before.softmax(dim=1)[i, self.target].item(), "val_p_vstar": self.p_vstar,
               "val_acc_before": (pred0[others] == y[others]).float().mean().item()}
        for name, r in self.results.items():
            pred = r.logits.argmax(dim=1)
            out[f"val_success_{name}"] = float(pred[i].item() == self.target)
            out[f"val_p_{name}"] = r.logits.softmax(dim=1)[i, self.target].item()
            out[f"val_acc_{name}"] = (pred[others] == y[others]).float().mean().item()
            out[f"val_changed_{name}"] = (pred[others] != pred0[others]).float().mean().item()
            out[f"val_drift_{name}"] = mean_kl(before[others], r.logits[others]).item()
            out[f"val_drift_source_{name}"] = mean_kl(before[same], r.logits[same]).item() if same.any() else 0.0
        return out

    # -- tables and pictures -----------------------------------------------------------
    def tables(self) -> list[TableReady]:
        names = self.data.classes
        p = self.logits_before.softmax(dim=1)[self.image]
        eig = torch.linalg.eigvalsh(self.C)  # (d_ff,) ascending
        model = (f"the ViT of run {self.built_on}" if self.built_on else
                 "a randomly initialised ViT: there is no vision-transformer run to build on")
        keys = f"{self.n_keys} training images' [CLS] keys"
        if self.n_keys < int(self.config.task_args.get("keys", 2000)):
            keys += f" (task.keys asked for more; the training set has {len(self.data.train)} images)"
        rows = (("model", model), ("parameters", f"{count_params(self.model):,}"),
                ("edited layer", f"block {self.layer}'s MLP fc2, weight {tuple(self.fc2.weight.shape)}, at [CLS]"),
                ("the image", f"validation image {self.image}, a {names[self.source]} "
                              f"(p = {p[self.source]:.3f}; the ViT says {names[int(p.argmax())]})"),
                ("the new fact", f"it is a {names[self.target]} (p now {p[self.target]:.3f})"),
                ("C = E[k kᵀ] + λI", f"{keys}, λ = {self.lam:g}; eigenvalues {eig[0]:.2e} to {eig[-1]:.2e}, "
                                     f"condition number {eig[-1] / eig[0]:.3g}"))
        return [TableReady("fact", "the edit this run makes", ("", ""), rows)]

    def pictures(self, epoch: int, final: bool) -> list[PictureReady | TableReady]:  # type: ignore[override]
        if not self.results:
            return []
        names = self.data.classes
        out: list[PictureReady | TableReady] = [
            PictureReady("edit", f"validation image {self.image} ({names[self.source]} → {names[self.target]}): "
                         "class probabilities before and after each edit", epoch, self.edit_picture()),
            PictureReady("changed", "share of the other validation images of each class whose prediction changed",
                         epoch, self.changed_picture())]
        if final:
            out.append(self.result_table())
        return out

    def result_table(self) -> TableReady:
        m = self._metrics()
        W = self.fc2.weight.detach()
        names = self.data.classes
        a, b = names[self.source], names[self.target]
        rows = []
        for name, r in self.results.items():
            delta = (r.weight - W).double()
            rank = int(torch.linalg.matrix_rank(delta, rtol=1e-6).item()) if delta.abs().max() > 0 else 0
            rows.append((SHORT[name], "yes" if m[f"val_success_{name}"] else "no", f"{m[f'val_p_{name}']:.3f}",
                         f"{m[f'val_acc_{name}']:.1%}", f"{m[f'val_changed_{name}']:.1%}",
                         f"{m[f'val_drift_{name}']:.3f}", f"{m[f'val_drift_source_{name}']:.3f}", f"{delta.norm():.2f}",
                         str(rank)))
        steps = self.results["finetune"].steps if "finetune" in self.results else 0
        return TableReady("edits", f"validation image {self.image}, a {a}, edited to say {b} at block {self.layer}'s fc2 "
                          f"(v* gives p({b}) = {self.p_vstar:.3f}; fine-tuning took {steps} steps). On the "
                          f"{len(self.data.val) - 1} other images: accuracy (before: {m['val_acc_before']:.1%}), the "
                          f"share whose prediction changed, drift = mean KL(before ‖ after), on all and on the {a}s",
                          ("method", f"says {b}", f"p({b})", "accuracy", "changed", "drift", f"on {a}s", "‖ΔW‖", "rank"),
                          tuple(rows))

    def edit_picture(self) -> np.ndarray:
        from dlcourse_tui.render.images import upscale
        from dlcourse_tui.render.overlay import hstack, titled

        image = upscale(self.data.val.x[self.image].permute(1, 2, 0).cpu().numpy(), 4)  # (128, 128, 3)
        panels = [titled(image, f"image {self.image}")]
        probs = {"before": self.logits_before[self.image]}
        probs.update({LABELS[n]: r.logits[self.image] for n, r in self.results.items()})
        for title, logits in probs.items():
            panels.append(titled(self._bars(logits.softmax(dim=0).cpu().numpy()), title))
        return hstack(panels, gap=8)

    def _bars(self, p: np.ndarray, row: int = 13, width: int = 150, label: int = 56) -> np.ndarray:
        """Horizontal bars of p (classes,), one row per class: A orange, B green, others grey."""
        from dlcourse_tui.render.images import draw_label

        out = np.full((row * len(p) + 2, label + width + 34, 3), 30, dtype=np.uint8)
        for c, pc in enumerate(p):
            y = c * row + 1
            colour = (230, 150, 40) if c == self.source else (70, 200, 90) if c == self.target else (150, 150, 150)
            out[y + 2:y + row - 2, label:label + max(1, int(round(pc * width)))] = colour
            out = draw_label(out, self.data.classes[c][:9], (2, y + row // 2), anchor="lm", size=10)
            out = draw_label(out, f"{pc:.2f}", (label + width + 2, y + row // 2), anchor="lm", size=10)
        return out

    def changed_picture(self, cell: int = 44, row: int = 18, label: int = 96) -> np.ndarray:
        """Methods × classes: the share of that class's other validation images whose prediction
        the method changed, white 0 to red 1 (viridis-free so 0 reads as nothing)."""
        from dlcourse_tui.render.images import draw_label

        y = self.data.val.y
        pred0 = self.logits_before.argmax(dim=1)
        names = self.data.classes
        n = len(names)
        out = np.full((row * (len(self.results) + 1) + 4, label + cell * n + 4, 3), 30, dtype=np.uint8)
        for c in range(n):
            out = draw_label(out, names[c][:7], (label + c * cell + cell // 2, row // 2), anchor="mm", size=10)
        for r, (name, res) in enumerate(self.results.items()):
            top = (r + 1) * row
            out = draw_label(out, SHORT[name], (2, top + row // 2), anchor="lm", size=10)
            changed = res.logits.argmax(dim=1) != pred0
            changed[self.image] = False
            for c in range(n):
                of_c = (y == c)
                of_c[self.image] = False
                share = changed[of_c].float().mean().item() if of_c.any() else 0.0
                shade = np.array([255, 255 * (1 - share), 255 * (1 - share)]).astype(np.uint8)
                out[top + 1:top + row - 1, label + c * cell + 1:label + (c + 1) * cell - 1] = shade
                out = draw_label(out, f"{share:.0%}", (label + c * cell + cell // 2, top + row // 2), anchor="mm",
                                 size=10, color=(0, 0, 0))
        return out
