"""The BLIP-2-style bridge (lesson blip2-bridge): stage 1's three masks are the paper's, ITC
takes the best query, the language model is bitwise the same after stages 1 and 2 (and the
image encoder throughout), a tiny run captions with a finite loss, a resumed run resumes in
its phase, and a prompt with a word the vocabulary lacks is refused in one sentence."""

from __future__ import annotations

import json

import torch

from dlcourse_tui.engine.runs import find_run
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.models.qformer import QFormer, stage1_mask
from helpers import metric_numbers, run_to_end

TINY = ["n_train=100", "n_val=16", "batch_size=50", "queries=2", "d_model=16", "heads=2", "layers=1",
        "lm_d_model=16", "lm_heads=2", "lm_layers=1", "encoder_d_model=16", "encoder_heads=2", "embed_dim=8",
        "log_every=1", "threads=1"]


def tiny_config(epochs: int = 3, sets: tuple[str, ...] = ()):
    return find_lesson("blip2-bridge").config(sets=[*TINY, "lm_epochs=1", "stage1_epochs=1", *sets],
                                              overrides={"train.epochs": epochs, "train.device": "cpu"})


def test_the_three_stage1_masks_are_the_papers() -> None:
    # 2 queries (q), 3 text tokens (t); row attends to column
    itc = [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 1, 1, 1]]  # uni-modal
    itm = [[1] * 5] * 5  # bi-directional
    itg = [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]  # multi-modal causal
    for kind, want in (("itc", itc), ("itm", itm), ("itg", itg)):
        assert stage1_mask(kind, 2, 3).int().tolist() == want, kind


def test_itc_takes_the_best_query_for_each_pair() -> None:
    torch.manual_seed(0)
    qf = QFormer(vocab_size=10, queries=3, d_model=8, heads=2, layers=1, mlp_ratio=2.0, image_dim=8, embed_dim=4,
                 max_length=8)
    z, text = torch.randn(2, 3, 8), torch.randn(4, 5, 8)
    sim, best = qf.similarity(z, text)
    zi = torch.nn.functional.normalize(qf.itc_image(z), dim=-1)  # (2, 3, 4)
    tj = torch.nn.functional.normalize(qf.itc_text(text[:, 0]), dim=-1)  # (4, 4)
    per_query = torch.stack([zi[:, q] @ tj.T for q in range(3)], dim=-1)  # (2, 4, 3)
    scale = qf.log_scale.exp()
    assert torch.allclose(sim, per_query.max(dim=-1).values * scale, atol=1e-6)
    assert torch.equal(best, per_query.argmax(dim=-1))
    assert not torch.allclose(sim, per_query.mean(dim=-1) * scale)  # the max, not the mean


def test_stages_1_and_2_leave_the_language_model_and_encoder_bitwise_as_they_were() -> None:
    from dlcourse_tui.data import load_dataset
    from dlcourse_tui.tasks.bridge import LM, STAGE1, STAGE2, BridgeTask

    cfg = tiny_config()
    task = BridgeTask(cfg, load_dataset(cfg.data, seed=0, args=cfg.data_args), torch.device("cpu"))
    task.build()
    assert [task.phase(e) for e in range(3)] == [LM, STAGE1, STAGE2]
    task.train(True)
    encoder = {k: v.clone() for k, v in task.model.encoder.state_dict().items()}
    lm_before = {k: v.clone() for k, v in task.model.lm.state_dict().items()}
    task.train_step(next(task.batches(0)))  # phase 1 trains the LM
    lm = {k: v.clone() for k, v in task.model.lm.state_dict().items()}
    assert any(not torch.equal(lm[k], lm_before[k]) for k in lm)
    qf = {k: v.clone() for k, v in task.model.qformer.state_dict().items()}
    for epoch in (1, 2):
        metrics = task.train_step(next(task.batches(epoch)))
        assert all(torch.isfinite(v) for v in metrics.values())
    assert metrics["phase"] == STAGE2
    for k, v in task.model.lm.state_dict().items():
        assert torch.equal(v, lm[k]), k
    for k, v in task.model.encoder.state_dict().items():
        assert torch.equal(v, encoder[k]), k
    assert any(not torch.equal(v, qf[k]) for k, v in task.model.qformer.state_dict().items())


def test_a_tiny_run_captions_with_a_finite_loss_and_resumes_in_its_phase(dlc_home) -> None:
    full, final, _ = run_to_end(tiny_config())
    assert final.status == "completed"
    evals = [json.loads(line) for line in (full.path / "metrics.jsonl").read_text().splitlines()
             if '"eval"' in line]
    assert all(torch.isfinite(torch.tensor(e["val_loss"])) for e in evals) and len(evals) == 3
    table = json.loads((full.path / "tables" / "bridge_scores.json").read_text())
    assert table["rows"][0][0].startswith("this bridge")
    params = json.loads((full.path / "tables" / "parameters.json").read_text())
    assert "a random ViT" in params["title"] and params["rows"][-1][0] == "trainable in stage 2"
    assert (full.path / "pictures" / "captions.png").is_file() and (full.path / "pictures" / "query_attention.png").is_file()
    cut, stopped, _ = run_to_end(tiny_config(), stop_after_step=3)  # 2 steps an epoch: stopped in stage 1
    assert stopped.status == "stopped"
    resumed, again, _ = run_to_end(tiny_config(), resume=find_run(cut.id))
    assert again.status == "completed"
    assert metric_numbers(resumed) == metric_numbers(full)
    phases = [json.loads(line)["phase"] for line in (resumed.path / "metrics.jsonl").read_text().splitlines()
              if '"step"' in line and '"phase"' in line and '"type": "step"' in line]
    assert phases == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


def test_a_prompt_with_a_word_the_vocabulary_lacks_is_refused_in_one_sentence(dlc, dlc_home) -> None:
    # a tiny CLIP run to build on, so that `dlc run` trains none first
    clip = find_lesson("clip").config(sets=["n_train=100", "n_val=100", "batch_size=50", "image_width=16",
                                            "text_width=16", "embed_dim=8", "threads=1"], overrides={"train.epochs": 1})
    _, done, _ = run_to_end(clip)
    assert done.status == "completed"
    r = dlc("run", "blip2-bridge", "--set", "n_train=100", "--set", "prompt=what colour is the circle")
    assert r.code == 2, r.err
    assert "'what', 'colour', 'is'" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    runs = sorted(p.name for p in (dlc_home / "runs").iterdir())
    assert not any("blip2-bridge" in name for name in runs), runs  # nothing half-written
