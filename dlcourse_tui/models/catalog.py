"""Every model's name, task and module, known without importing torch.

Lessons are checked against this when they load (a lesson offering a model that does not
exist, or one for another task, is reported with its file), and the registry imports a
family's module from here. A model's `@register_model` must agree with its line here;
tests/test_models.py checks that they do.
"""

from __future__ import annotations

# name: (task, module under dlcourse_tui.models)
MODELS: dict[str, tuple[str, str]] = {
    "linear": ("classify", "linear"),
    "neuron": ("classify", "linear"),
    "mlp": ("classify", "mlp"),
    "cnn": ("classify", "cnn"),
    "resnet_fast": ("classify", "resnet"),
    "autoencoder": ("autoencode", "autoencoder"),
    "vae": ("vae", "vae"),
    "dcgan": ("gan", "gan"),
    "unet": ("diffusion", "unet"),
    "unet_unlearn": ("unlearn", "unet"),  # chapter 5: unlearning (the same U-Net, with its null class)
    "ssl_cnn": ("ssl", "ssl"),  # chapter 2: self-supervised learning
    "rnn": ("sequence", "rnn"),
    "lstm": ("sequence", "rnn"),
    "gru": ("sequence", "rnn"),
    "transformer": ("seq2seq", "transformer"),
    "vit": ("classify", "vit"),
    "window_seg": ("segment", "segment"),  # chapter 2: segmentation
    "fcn": ("segment", "segment"),
    "segnet": ("segment", "segment"),
    "unet_seg": ("segment", "segment"),
    "window_det": ("detect", "detect"),  # chapter 2: detection
    "rcnn": ("detect", "detect"),
    "yolo": ("detect", "detect"),
    "captioner": ("caption", "caption"),  # chapter 5: image captioning
    "clip": ("contrastive", "clip"),  # chapter 5: CLIP
    "peft_vit": ("peft", "peft"),  # chapter 5: parameter-efficient fine-tuning
    "vit_edit": ("edit", "editing"),  # chapter 5: knowledge editing (the ViT, edited at one MLP layer)
    "qformer": ("bridge", "qformer"),  # chapter 5: the BLIP-2-style bridge
}


def model_task(name: str) -> str | None:
    """The task model `name` is trained by, or None when there is no such model."""
    entry = MODELS.get(name)
    return entry[0] if entry else None


def family_modules() -> tuple[str, ...]:
    """The modules that register the models, each once, in catalog order."""
    return tuple(dict.fromkeys(f"dlcourse_tui.models.{module}" for _, module in MODELS.values()))
