"""Tasks: how a batch becomes a loss, how to evaluate, which pictures to make.

A task (base.Task) owns its modules, optimisers and schedulers and does its own
update in `train_step`; the trainer only loops, reads metrics back, checkpoints and
emits events. The families of the course map onto that one interface:

- classify (classify.py): one model, one optimiser, cross-entropy; pictures from the
  model (class templates) or the data (2-D decision boundaries).
- GAN: `modules` = {"G", "D"}, `optimizers` = {"G", "D"}; train_step updates D, then
  G, and returns both losses; state_dict covers both, so resume just works.
- DDPM: train_step is Algorithm 1 (sample t and ε, regress ε); `pictures` runs
  Algorithm 2 (sampling) on the worker thread at evaluation time.
- VAE: train_step returns several named losses (recon, kl, elbo); each is charted.
- self-supervised: `phase(epoch)` switches from pretraining (RotNet, SimCLR, ...) to a
  linear probe on frozen features after `pretrain_epochs`; batches change with it.
- segmentation / detection: batches carry masks or boxes from Split.extras; evaluate
  returns mIoU or mAP@0.5; pictures draw masks and boxes after NMS.
- sequence / seq2seq (sequence.py): a recurrent classifier reading one step at a time
  (pictures: hidden states, the gradient reaching each step); an encoder-decoder
  Transformer trained with teacher forcing and evaluated by greedy decoding (pictures:
  attention matrices per layer and head).
- captioning: batches carry token sequences; evaluate decodes captions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlcourse_tui.tasks.base import Task

_TASKS = {
    "classify": "dlcourse_tui.tasks.classify:ClassifyTask",
    "autoencode": "dlcourse_tui.tasks.generate:AutoencodeTask",
    "vae": "dlcourse_tui.tasks.generate:VAETask",
    "gan": "dlcourse_tui.tasks.gan:GANTask",
    "diffusion": "dlcourse_tui.tasks.diffusion:DiffusionTask",
    "ssl": "dlcourse_tui.tasks.ssl:SSLTask",
    "sequence": "dlcourse_tui.tasks.sequence:SequenceTask",
    "seq2seq": "dlcourse_tui.tasks.sequence:Seq2SeqTask",
    "segment": "dlcourse_tui.tasks.segment:SegmentTask",
    "detect": "dlcourse_tui.tasks.detect:DetectTask",
    "caption": "dlcourse_tui.tasks.caption:CaptionTask",
    "contrastive": "dlcourse_tui.tasks.contrastive:ContrastiveTask",
    "peft": "dlcourse_tui.tasks.peft:PEFTTask",
    "unlearn": "dlcourse_tui.tasks.unlearn:UnlearnTask",
    "edit": "dlcourse_tui.tasks.edit:EditTask",
    "bridge": "dlcourse_tui.tasks.bridge:BridgeTask",
}

TASK_NAMES: tuple[str, ...] = tuple(_TASKS)  # what a lesson's `task =` may name (known without importing torch)


def get_task_class(name: str) -> type["Task"]:
    """The Task subclass registered under `name`."""
    module, cls = _TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)
