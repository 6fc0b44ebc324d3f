"""Knowledge editing (lesson knowledge-editing): the rank-one closed forms map k* to v* exactly,
each leaves its own orthogonal complement of k* alone, ROME's equals the constrained least
squares it claims to solve (an independent KKT solve) and moves held-out correlated keys less
than the naive update; a run on a tiny ViT run edits a copy and leaves the ViT it built on
bitwise unchanged; bad knobs are one sentence and exit 2."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from dlcourse_tui.engine.runs import find_run, list_runs
from dlcourse_tui.errors import UserError
from dlcourse_tui.models.editing import mean_kl, naive_update, rank_one, rome_update, second_moment


def correlated_keys(n: int, d: int, seed: int) -> torch.Tensor:
    """(n, d) float64 keys from a Gaussian with a large shared mean and a strongly uneven,
    correlated covariance (as a layer's inputs are: most variance in a few directions)."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) * torch.logspace(0, -2, d, dtype=torch.float64)
    mean = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
    return mean + torch.randn(n, d, generator=g, dtype=torch.float64) @ mix.T


def layer(seed: int, d_out: int = 6, d_in: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """W (d_out, d_in), C from 400 keys, a key k* of the same distribution and a new value v*."""
    g = torch.Generator().manual_seed(seed + 1000)
    W = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    keys = correlated_keys(401, d_in, seed)
    return W, second_moment(keys[:400]), keys[400], torch.randn(d_out, generator=g, dtype=torch.float64) * 3


def test_every_closed_form_maps_k_star_to_v_star_and_leaves_w_alone() -> None:
    W, C, k, v = layer(0)
    W_copy = W.clone()
    u = torch.randn(12, dtype=torch.float64)
    for W_new in (rome_update(W, k, v, C), rome_update(W, k, v, second_moment(correlated_keys(50, 12, 3), 0.1)),
                  naive_update(W, k, v), rank_one(W, k, v, u)):
        assert torch.allclose(W_new @ k, v, atol=1e-9)
        assert torch.linalg.matrix_rank(W_new - W).item() == 1
    assert torch.equal(W, W_copy)
    with pytest.raises(ValueError, match="orthogonal to the key"):
        rank_one(W, torch.tensor([1.0, *[0.0] * 11], dtype=torch.float64), v,
                 torch.tensor([0.0, 1.0, *[0.0] * 10], dtype=torch.float64))


def test_rome_keeps_keys_c_inverse_orthogonal_to_k_star_the_naive_one_the_euclidean_ones() -> None:
    W, C, k, v = layer(1)
    rome, naive = rome_update(W, k, v, C), naive_update(W, k, v)
    u = torch.linalg.solve(C, k)  # C⁻¹ k*
    others = torch.randn(20, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    c_orth = others - torch.outer(others @ u, u) / (u @ u)  # kᵀ C⁻¹ k* = 0
    e_orth = others - torch.outer(others @ k, k) / (k @ k)  # kᵀ k* = 0
    assert torch.allclose(c_orth @ rome.T, c_orth @ W.T, atol=1e-9)
    assert torch.allclose(e_orth @ naive.T, e_orth @ W.T, atol=1e-9)
    # and not the other way round: each moves the keys the other one keeps
    assert (c_orth @ naive.T - c_orth @ W.T).norm() > 0.1 * (c_orth @ W.T).norm()
    assert (e_orth @ rome.T - e_orth @ W.T).norm() > 0.1 * (e_orth @ W.T).norm()


def test_rome_is_the_least_squares_edit_with_k_star_as_constraint() -> None:
    """An independent oracle: minimise ‖(Ŵ − W) Kᵀ‖² subject to Ŵ k* = v*, solved row by row
    from its KKT system [[2 KᵀK, k*], [k*ᵀ, 0]] [Δ; μ] = [0; r]; ROME with C = KᵀK / N is it."""
    W, _, k, v = layer(2)
    keys = correlated_keys(400, 12, 2)
    kkt = torch.zeros(13, 13, dtype=torch.float64)
    kkt[:12, :12] = 2 * keys.T @ keys
    kkt[:12, 12] = kkt[12, :12] = k
    rhs = torch.zeros(13, W.shape[0], dtype=torch.float64)
    rhs[12] = v - W @ k  # (d_out,) each row's residual
    delta = torch.linalg.solve(kkt, rhs)[:12].T  # (d_out, d_in)
    assert torch.allclose(rome_update(W, k, v, second_moment(keys)), W + delta, atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rome_moves_held_out_keys_less_than_the_naive_update(seed) -> None:
    W, C, k, v = layer(seed)
    held = correlated_keys(901, 12, seed)[401:]  # keys of the same distribution that the estimate of C never saw
    rome, naive = rome_update(W, k, v, C), naive_update(W, k, v)
    moved_rome = (held @ (rome - W).T).pow(2).sum(dim=1).mean()  # mean ‖Δ(W k)‖², ROME's objective
    moved_naive = (held @ (naive - W).T).pow(2).sum(dim=1).mean()
    assert moved_rome < 0.75 * moved_naive  # 0.05 to 0.58 of it over seeds 0 to 11


def test_mean_kl_is_zero_for_equal_outputs_and_matches_the_definition() -> None:
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    assert mean_kl(a, a).item() == pytest.approx(0.0, abs=1e-12)
    p, q = a.double().softmax(-1), b.double().softmax(-1)
    assert mean_kl(a, b).item() == pytest.approx((p * (p / q).log()).sum(-1).mean().item(), rel=1e-9)


TINY_VIT = ["--set", "n_train=100", "--set", "n_val=20", "--set", "epochs=1", "--set", "batch_size=100",
            "--set", "threads=1", "--json"]
TINY_EDIT = ["--set", "n_train=60", "--set", "n_val=30", "--set", "v_steps=5", "--set", "finetune_steps=5",
             "--set", "threads=1", "--json"]


def test_a_run_edits_a_copy_of_the_vit_it_builds_on_and_bad_knobs_are_one_sentence(dlc) -> None:
    r = dlc("run", "vision-transformer", *TINY_VIT)
    assert r.code == 0, r.err
    vit = list_runs()[0]
    r = dlc("run", "knowledge-editing", *TINY_EDIT)
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    run = find_run(summary["run_id"])
    assert run.config["upstream"] == {"model": vit.id}
    base = torch.load(vit.checkpoint, weights_only=True)["task"]["modules"]["model"]
    mods = torch.load(run.checkpoint, weights_only=True)["task"]["modules"]
    edited_key = "encoder.blocks.2.mlp.fc2.weight"  # the default layer: the last of the 3 blocks
    assert set(base) == set(mods["model"]) == set(mods["edited"])
    for name, tensor in base.items():
        assert torch.equal(mods["model"][name], tensor), name  # the ViT it built on: bitwise unchanged
        if name != edited_key:
            assert torch.equal(mods["edited"][name], tensor), name  # the edit touched one weight
    delta = (mods["edited"][edited_key] - base[edited_key]).double()
    assert delta.abs().max() > 0 and torch.linalg.matrix_rank(delta, rtol=1e-6).item() == 1
    m = summary["metrics"]
    # at the last block only [CLS] reaches the head, so ROME's and the naive edit give the image
    # exactly what v* gave it
    assert m["val_p_rome"] == pytest.approx(m["val_p_vstar"], abs=1e-4)
    assert m["val_p_naive"] == pytest.approx(m["val_p_vstar"], abs=1e-4)

    def refused(*sets: str) -> str:
        args = [a for s in sets for a in ("--set", s)]
        r = dlc("run", "knowledge-editing", *args, *TINY_EDIT)
        assert r.code == 2, r.err
        return " ".join(r.err.split())

    assert refused("image=0", "target=heart").endswith(  # validation image 0 of these 30 is a heart
        "task.target='heart' is the class of the edited image (validation image 0, a heart): an edit must "
        "change it; pick another class, e.g. --set target=arrow.")
    assert refused("layer=3").endswith(
        "task.layer=3: this ViT has 3 blocks, numbered 0 to 2; pick one, e.g. --set layer=2.")
    assert refused("image=30").endswith(
        "task.image=30: the validation set has 30 images, numbered 0 to 29; pick one, or -1 for the first image "
        "of task.source.")
    assert len(list_runs()) == 2  # refused runs wrote nothing


def test_without_a_run_to_build_on_the_task_edits_a_random_vit_and_says_so() -> None:
    from dlcourse_tui.engine.session import prepare_run
    from dlcourse_tui.lessons import find_lesson

    cfg = find_lesson("knowledge-editing").config(sets=["n_train=40", "n_val=20", "v_steps=3", "finetune_steps=3"])
    task = prepare_run(cfg).task
    fact = dict(task.tables()[0].rows)
    assert fact["model"].startswith("a randomly initialised ViT")
    assert "40 training images' [CLS] keys (task.keys asked for more" in fact["C = E[k kᵀ] + λI"]
    bad = replace(cfg, task_args={**cfg.task_args, "lam": -1.0})  # past the knob's range check: the task's own
    with pytest.raises(UserError, match=r"^task.lam=-1: λ is added to C's diagonal and cannot be negative"):
        prepare_run(bad)
