"""Parameter-efficient fine-tuning (chapter 5): the ViT the vision-transformer lesson trained
on `shapes`, adapted to a task it never saw (`digits` by default) by one method per run
(task.method): full fine-tuning, a linear probe (the head alone), adapters, shallow or
deep visual prompt tuning, or LoRA (models/peft.py). Everything but the method's own parts
and the new head is frozen, and the optimiser is given only what trains.

The backbone comes from the run [needs.backbone] names: the same ViT is rebuilt from that
run's model settings and its weights loaded, all but its head (a new task has a new head,
with as many outputs as the new data has classes). Without such a run (tests, the two-step
run of every lesson) it starts from a random ViT built from the lesson's [model] settings,
and the first table says so.

Images become what the ViT takes, 3 × 32 × 32 uint8, before anything else (`fit_images`):
a grey image's one channel is repeated three times, and a smaller image is padded with
zeros around it (digits: 28 × 28 with 2 black pixels on each side, black being the digits'
background), a larger one resized (area averaging). Then each channel is standardised with
the new data's own mean and standard deviation, as the ViT's own lesson did with shapes'.
With task.target = "count" (scenes) an image's label is how many objects it holds, 1 to 4.

Batches, training step and accuracy are classification's (tasks/classify.py). LoRA is
evaluated merged: a copy of the model with W₀ + (α/r) B A in plain nn.Linear layers, which
is what inference would run (no extra cost per image); the trained model itself is left as
it is, so its frozen W₀ stays bitwise the upstream's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.data.base import Dataset, Split, channel_stats
from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.errors import UserError
from dlcourse_tui.models.peft import METHODS, Method, PEFTViT, adapt, merge_all_lora, trainable
from dlcourse_tui.tasks.base import Task
from dlcourse_tui.tasks.classify import EVAL_BATCH, ClassifyTask, loss_and_correct
from dlcourse_tui.tasks.techniques import make_augmenter

VIT_INPUT = (3, 32, 32)  # what the course's ViT was trained on (shapes)
BACKBONE = "backbone"  # the [needs.backbone] of the lesson
VIT_SETTINGS = ("patch_size", "d_model", "heads", "layers", "mlp_ratio", "dropout", "locality", "shifted_patches")
METHOD_ARGS = {"rank": "rank", "alpha": "alpha", "lora_targets": "targets", "adapter_dim": "adapter_dim",
               "prompts": "prompts"}  # task_args key -> Method field
TARGETS = ("label", "count")  # what an image is labelled by: its class, or (scenes) how many objects it holds


def method_from(task_args: dict[str, Any]) -> Method:
    """The run's method and its settings from task.method, task.rank, ...; UserError for a bad one."""
    kwargs = {field: task_args[key] for key, field in METHOD_ARGS.items() if key in task_args}
    try:
        return Method(name=str(task_args.get("method", "lora")), **kwargs)
    except (TypeError, ValueError) as e:
        raise UserError(f"task.{e}") from None


def fit_images(x: Tensor, shape: tuple[int, int, int] = VIT_INPUT) -> Tensor:
    """(N, C, H, W) uint8 → (N, 3, 32, 32) uint8: one channel repeated three times, a smaller
    image padded with zeros around it (centred), a larger one resized by area averaging."""
    c, h, w = shape
    if x.shape[1] == 1:
        x = x.expand(-1, c, -1, -1)  # (N, 3, H, W): grey as RGB
    if x.shape[1] != c:
        raise UserError(f"images with {x.shape[1]} channels cannot be fed to the ViT, which takes {c} (or 1, repeated).")
    H, W = x.shape[-2:]
    if H <= h and W <= w:
        top, left = (h - H) // 2, (w - W) // 2
        return F.pad(x, (left, w - W - left, top, h - H - top)).contiguous()  # (N, 3, 32, 32), zeros around
    small = F.interpolate(x.float(), size=(h, w), mode="area")  # (N, 3, 32, 32)
    return small.round().clamp_(0, 255).to(torch.uint8)


def fit_dataset(data: Dataset, target: str = "label") -> Dataset:
    """`data` with its images made ViT-sized (fit_images) and its channel statistics recomputed;
    target "count": each image labelled by how many objects it holds (scenes), not by its class."""
    if data.kind != "image":
        raise UserError(f"the peft lesson adapts a ViT to images, but {data.name} is {data.kind} data; pick an image dataset.")
    if target not in TARGETS:
        raise UserError(f"task.target={target!r} is not a target; pick one of {', '.join(TARGETS)}.")
    classes = data.classes
    if target == "count":
        if "box_labels" not in data.train.extras:
            raise UserError(f"task.target=count counts objects, but {data.name} images carry none; use --set data.name=scenes.")
        k = data.train.extras["box_labels"].shape[1]
        classes = tuple(str(i) for i in range(1, k + 1))
        data = replace(data, train=Split(data.train.x, count_objects(data.train)), val=Split(data.val.x, count_objects(data.val)))
    if tuple(data.input_shape) == VIT_INPUT:
        return replace(data, classes=classes)
    train = Split(fit_images(data.train.x), data.train.y)  # extras (masks, boxes) are of the old size: dropped
    val = Split(fit_images(data.val.x), data.val.y)
    mean, std = channel_stats(train.x)
    return replace(data, train=train, val=val, input_shape=VIT_INPUT, mean=mean, std=std, classes=classes)


def count_objects(split: Split) -> Tensor:
    """(N,) int64: the objects in each image minus one (class 0 is one object)."""
    return (split.extras["box_labels"] >= 0).sum(dim=1).sub(1).clamp_min(0)  # (N,)


class PEFTTask(ClassifyTask):
    """Classification with a frozen, pretrained ViT and one method's few trainable parts."""

    supports_distributed = False

    def build(self) -> None:
        cfg = self.config
        self.method = method_from(cfg.task_args)
        self.data = fit_dataset(self.data, str(cfg.task_args.get("target", "label")))
        settings, self.source = self.backbone_settings()
        model = self.backbone(settings).to(self.device)
        adapt(model, self.method)
        self.use_model(model)
        self.net = model
        self.mean = torch.tensor(self.data.mean, device=self.device).view(1, -1, 1, 1)  # (1, 3, 1, 1)
        self.std = torch.tensor(self.data.std, device=self.device).view(1, -1, 1, 1)
        self.augmenter = make_augmenter(cfg, "image", self.device, None)  # None unless task.augment is set
        self.settings = settings

    def backbone_settings(self) -> tuple[dict[str, Any], str]:
        """The ViT's sizes (the upstream run's, else the lesson's [model]) and where its weights come from, in words."""
        upstream = self.upstream.get(BACKBONE)
        if upstream is None:
            own = {k: v for k, v in self.config.model_args.items() if k in VIT_SETTINGS}
            return own, "a random ViT (no vision-transformer run to build on: the numbers mean nothing)"
        theirs = upstream.config.get("model", {})
        return {k: theirs[k] for k in VIT_SETTINGS if k in theirs}, f"the ViT of run {upstream.run_id} (vision-transformer)"

    def backbone(self, settings: dict[str, Any]) -> PEFTViT:
        """The ViT with `settings`, and the upstream run's weights but its head's loaded into it."""
        try:
            model = PEFTViT(PEFTViT.Config(input_shape=VIT_INPUT, num_classes=self.data.num_classes,
                                           use_sdpa=bool(self.config.model_args.get("use_sdpa", False)), **settings))
        except (TypeError, ValueError) as e:
            raise UserError(f"model: {e}") from None
        upstream = self.upstream.get(BACKBONE)
        if upstream is not None:
            state = {k: v for k, v in upstream.module_state("model").items() if not k.startswith("head.")}
            try:
                missing, unexpected = model.load_state_dict(state, strict=False)
            except RuntimeError as e:
                first = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e))
                raise UserError(f"run {upstream.run_id} (backbone) has a model that does not fit this one: "
                                f"{first.rstrip('.')}. Name a vision-transformer run of a ViT (--from), or train one.") from None
            if unexpected or any(not k.startswith("head.") for k in missing):
                key = (unexpected or [k for k in missing if not k.startswith("head.")])[0]
                raise UserError(f"run {upstream.run_id} (backbone) is not a ViT like this one ({key!r} does not match); "
                                "name a vision-transformer run (--from), or train one.")
        return model

    # -- evaluation: LoRA merged, as inference would run it ---------------------------------
    def inference_model(self) -> nn.Module:
        """The model evaluation runs: LoRA merged into plain layers, every other method as it is."""
        return merge_all_lora(self.model) if self.method.name == "lora" else self.model

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        model = self.inference_model()
        model.eval()
        val = self.data.val
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for i in range(0, len(val), EVAL_BATCH):
            x, y = val.x[i:i + EVAL_BATCH], val.y[i:i + EVAL_BATCH]
            loss, ok = loss_and_correct(model(self.prepare(x)), y)
            loss_sum += loss * len(y)
            correct += ok.sum()
        self.model.train()
        n = len(val)
        return {"val_loss": loss_sum.item() / n, "val_acc": correct.item() / n}

    def pictures(self, epoch: int, final: bool) -> list[PictureReady]:
        """What [CLS] attends to on the new task's images (prompts left out of the maps)."""
        from dlcourse_tui.tasks.attention_pictures import cls_attention_pictures

        return cls_attention_pictures(self, epoch)

    # -- the table of methods -------------------------------------------------------------
    def tables(self) -> list[TableReady]:
        return [method_table(self.settings, self.data.num_classes, self.method, self.source)]


def method_table(settings: dict[str, Any], num_classes: int, method: Method, source: str) -> TableReady:
    """Every method's trainable parameters for this ViT (built on the CPU and counted; nothing trains)."""
    rows = []
    full = None
    for name in METHODS:
        m = replace(method, name=name)
        count = trainable(adapt(PEFTViT(PEFTViT.Config(input_shape=VIT_INPUT, num_classes=num_classes, **settings)), m))
        full = count if name == "full" else full
        rows.append((name, describe(m), f"{count:,}", f"{100 * count / full:.2f}%", "← this run" if name == method.name else ""))
    return TableReady("methods", f"trainable parameters per method, starting from {source}",
                      ("method", "trains (+ head)", "trainable", "% of full", ""), tuple(rows))


def describe(m: Method) -> str:
    """What a method trains besides the head, in a few words."""
    return {"full": "every weight",
            "probe": "the head alone",
            "adapter": f"adapters d→{m.adapter_dim}→d",
            "vpt_shallow": f"{m.prompts} prompts, block 1",
            "vpt_deep": f"{m.prompts} prompts per block",
            "lora": f"B A, r={m.rank}, on {','.join(m.targets.upper())}"}[m.name]
