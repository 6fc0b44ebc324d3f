"""Every registered model builds, runs forward and backward, and stays finite."""

from __future__ import annotations

import pytest
import torch

from dlcourse_tui.errors import UserError
from dlcourse_tui.models.registry import count_params, create_model, get_entry, list_models


def _smoke_output(entry, model, n: int = 4) -> torch.Tensor:
    """One forward pass the way the model's task calls it; checks the output's shape."""
    if entry.task in ("classify", "peft", "edit"):  # peft, edit: the course's ViT (LoRA, adapters, prompts; an edit)
        classes = 2 if entry.example_shape == (2,) else 10
        out = model(torch.randn(n, *entry.example_shape))
        assert out.shape[0] == n and out.shape[1] in (1, classes)
        return out
    x = torch.rand(n, *entry.example_shape)  # images in [0, 1]
    if entry.task == "autoencode":
        out = model(x)
        assert out.shape == x.shape and model.encode(x).shape == (n, model.cfg.latent)
        return out
    if entry.task == "vae":
        logits, mu, logvar = model(x)
        assert logits.shape == x.shape and mu.shape == logvar.shape == (n, model.cfg.latent)
        return torch.cat([logits.flatten(1), mu, logvar], dim=1)
    if entry.task == "gan":
        fake = model.generator(torch.randn(n, model.cfg.latent))
        assert fake.shape == x.shape
        score = model.discriminator(fake)
        assert score.shape == (n, 1)
        return torch.cat([fake.flatten(1), score], dim=1)
    if entry.task in ("diffusion", "unlearn"):  # ε_θ(x_t, t, y); unlearn: the same U-Net, fine-tuned
        t = torch.randint(0, 1000, (n,))
        y = torch.randint(0, 10, (n,))
        out = model(x * 2 - 1, t, y)
        assert out.shape == x.shape
        return out
    if entry.task == "sequence":  # (B, T, D) sequences, one class per sequence
        out = model(torch.randn(n, *entry.example_shape))
        assert out.shape == (n, 10)
        return out
    if entry.task == "seq2seq":  # source tokens and the shifted target: next-token logits per position
        vocab = model.cfg.num_classes
        src = torch.randint(1, vocab, (n, *entry.example_shape))
        out = model(src, torch.randint(0, vocab, (n, *entry.example_shape)))
        assert out.shape == (n, entry.example_shape[0], vocab)
        return out
    if entry.task == "segment":  # a class score per pixel (the test builds it with 10 classes)
        out = model(x)
        assert out.shape == (n, 10, *x.shape[2:])
        return out
    if entry.task == "detect":  # the detector's own loss on scenes' boxes, then decoding with NMS
        from dlcourse_tui.data.scenes import make_scenes

        s = make_scenes(n, seed=0, size=x.shape[-1])
        losses = model.loss(x, s.extras["boxes"], s.extras["box_labels"])
        model.eval()
        dets = model.detect(x)
        model.train()
        assert len(dets) == n and all(d.boxes.shape[1:] == (4,) for d in dets)
        return torch.stack(list(losses.values()))
    if entry.task == "ssl":  # an encoder: h = features(x) for pretraining, its head's logits for the supervised baselines
        h = model.features(torch.randn(n, *entry.example_shape))
        assert h.shape == (n, model.feature_dim)
        logits = model(torch.randn(n, *entry.example_shape))
        assert logits.shape == (n, 10)
        return torch.cat([h, logits], dim=1)
    if entry.task == "caption":  # teacher forcing: next-word logits at every position of the caption
        out = model(x, torch.randint(0, model.cfg.num_classes, (n, 7)))
        assert out.shape == (n, 7, model.cfg.num_classes)
        return out
    if entry.task == "contrastive":  # CLIP: the batch's image-text logits (images down, captions across)
        out = model(x, torch.randint(3, model.cfg.num_classes, (n, 6)))
        assert out.shape == (n, n) and model.encode_image_tokens(x).shape[::2] == (n, model.image_dim)
        return out
    if entry.task == "bridge":  # stage 2's logits through the soft prompt, and stage 1's three heads
        vocab = model.cfg.num_classes
        ids = torch.randint(3, vocab, (n, 7))
        out = model(x, ids)
        assert out.shape == (n, 7, vocab)
        qf, feats = model.qformer, model.image_features(x)
        sim, _ = qf.similarity(*qf(feats, ids, "itc")[:2])
        itm = qf.itm_head(qf(feats, ids, "itm")[0])
        itg = qf.itg_head(qf(feats, ids, "itg")[1])
        return torch.cat([out.flatten(1), sim, itm.flatten(1), itg.flatten(1)], dim=1)
    raise AssertionError(f"test_models has no smoke input for task {entry.task!r}: add one")


@pytest.mark.parametrize("entry", list_models(), ids=lambda e: e.name)
def test_every_model_forward_and_backward(entry) -> None:
    classes = 2 if entry.example_shape == (2,) else 10
    model = create_model(entry.name, input_shape=entry.example_shape, num_classes=classes)
    out = _smoke_output(entry, model)
    out.float().pow(2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(out).all()
    assert entry.description


def test_list_models_filters_with_shell_patterns() -> None:
    assert [e.name for e in list_models("lin*")] == ["linear"]
    assert {e.name for e in list_models()} >= {"linear", "neuron", "mlp"}


def test_linear_classifier_templates_are_the_rows_of_w() -> None:
    model = create_model("linear", input_shape=(3, 32, 32), num_classes=10)
    assert count_params(model) == 3 * 32 * 32 * 10 + 10
    assert torch.equal(model.class_templates()[3].flatten(), model.fc.weight[3])


def test_single_neuron_features_are_monomials() -> None:
    model = create_model("neuron", input_shape=(2,), num_classes=2, args={"degree": 2})
    phi = model.features(torch.tensor([[2.0, 3.0]]))
    assert sorted(phi[0].tolist()) == sorted([2.0, 3.0, 4.0, 6.0, 9.0])


def test_unknown_model_and_bad_args_are_user_errors() -> None:
    with pytest.raises(UserError, match="Did you mean: mlp"):
        get_entry("mpl")
    with pytest.raises(UserError, match="model mlp has no setting 'degree'"):
        create_model("mlp", input_shape=(2,), num_classes=2, args={"degree": 3}, strict={"degree"})
    with pytest.raises(UserError, match="takes 2-D points"):
        create_model("neuron", input_shape=(3, 32, 32), num_classes=2)
