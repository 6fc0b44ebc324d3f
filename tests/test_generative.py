"""Chapter 3: the generative tasks and the maths they rest on."""

from __future__ import annotations

import json

import pytest
import torch

from dlcourse_tui.data.digits import digits_dataset
from dlcourse_tui.engine.events import PictureReady, StepEnded
from dlcourse_tui.engine.session import prepare_run
from dlcourse_tui.errors import UserError
from helpers import assert_same_modules, final_task_state, metric_numbers, run_to_end, stopped_and_resumed
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.tasks.diffusion import DDPMSchedule
from dlcourse_tui.tasks.generate import Judge, dlc_cache_dir, frechet_distance, gaussian_kl


def tiny(lesson: str, epochs: int = 1, variant: str = "", **sets: object):
    s = [f"{k}={v}" for k, v in {"n_train": 64, "n_val": 32, "batch_size": 16, "log_every": 1, **sets}.items()]
    return find_lesson(lesson).config(variant=variant, sets=s, overrides={"train.epochs": epochs})


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


# ---------------------------------------------------------------------------- autoencoder and VAE


def test_autoencoder_reports_reconstruction_error_and_draws_inputs_above_outputs() -> None:
    _, final, events = run_to_end(tiny("autoencoder", latent=4))
    assert final.status == "completed"
    assert 0 < final.metrics["val_recon_mse"] < 1
    pic = of(events, PictureReady)[0]
    assert pic.name == "reconstructions" and pic.pixels.dtype.name == "uint8" and pic.pixels.shape[2] == 3
    assert pic.pixels.shape[0] == 2 * 28 * 2 + 2 * 2  # two rows of 28-pixel digits, enlarged 2×, one gap


def test_vae_charts_reconstruction_and_kl_separately_and_reports_the_elbo() -> None:
    _, final, events = run_to_end(tiny("vae"))
    step = of(events, StepEnded)[0].metrics
    assert {"loss", "recon", "kl"} <= set(step)
    assert step["loss"] == pytest.approx(step["recon"] + step["kl"], rel=1e-5)
    m = final.metrics
    assert m["val_elbo"] == pytest.approx(-(m["val_recon"] + m["val_kl"]), rel=1e-5)
    assert {"manifold", "interpolation", "arithmetic"} == {p.name for p in of(events, PictureReady)}


def test_kl_term_matches_the_closed_form_and_a_monte_carlo_estimate() -> None:
    mu = torch.tensor([[0.0, 0.0], [1.0, -2.0], [0.5, 0.3]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, 0.0], [-1.0, 1.2]])
    kl = gaussian_kl(mu, logvar)
    # N(0, 1) against itself: 0; unit variance: ½‖μ‖²
    assert kl[0].item() == pytest.approx(0.0, abs=1e-7)
    assert kl[1].item() == pytest.approx(0.5 * (1 + 4), rel=1e-6)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(kl, torch.distributions.kl_divergence(q, p).sum(1), atol=1e-6)
    z = q.sample(torch.Size([200_000]))  # (S, 3, 2)
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)  # E_q[log q − log p]
    assert torch.allclose(kl, mc, atol=0.02)


# ---------------------------------------------------------------------------- DDPM


def test_q_sample_closed_form_matches_iterating_the_forward_chain() -> None:
    torch.manual_seed(0)
    sched = DDPMSchedule(100)
    x0 = torch.tensor([-1.0, -0.3, 0.4, 1.0]).view(1, 4, 1, 1).expand(20_000, 4, 1, 1)
    x = x0.clone()
    for i in range(100):
        t = torch.full((len(x),), i)
        x = sched.q_step(x, t, torch.randn_like(x))
        if i in (9, 49, 99):
            direct = sched.q_sample(x0, t, torch.randn_like(x0))
            ab = sched.alpha_bars[i].item()
            for sample in (x, direct):
                mean, var = sample.mean(0).flatten(), sample.var(0).flatten()
                assert torch.allclose(mean, ab ** 0.5 * x0[0].flatten(), atol=0.03), (i, mean)
                assert torch.allclose(var, torch.full((4,), 1 - ab), rtol=0.05, atol=0.005), (i, var)
            assert torch.allclose(x.mean(0), direct.mean(0), atol=0.04)
    assert sched.alpha_bars[-1] < 1e-3  # x_T is (almost) pure noise


@pytest.mark.parametrize("timesteps", [10, 200, 1000])
def test_algorithm_2_with_a_perfect_noise_predictor_recovers_x0(timesteps) -> None:
    sched = DDPMSchedule(timesteps)
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1

    def perfect_eps(x_t, t):  # the ε that makes x_t from this x0: (x_t − √ᾱ_t x0) / √(1 − ᾱ_t)
        return (x_t - sched._at(sched.sqrt_ab, t) * x0) / sched._at(sched.sqrt_1m_ab, t)

    out, frames = sched.p_sample_loop(perfect_eps, x0.shape, generator=torch.Generator().manual_seed(1),
                                      keep=2, snapshots=5)
    assert torch.allclose(out, x0, atol=1e-4)
    assert len(frames) == 5 and frames[-1].shape == (2, 1, 8, 8)


def test_conditional_diffusion_is_judged_on_the_class_it_asked_for() -> None:
    _, final, events = run_to_end(tiny("diffusion", timesteps=8, quality_samples=20, picture_samples=10))
    m = final.metrics
    assert 0.0 <= m["val_class_match"] <= 1.0 and 0 <= m["val_class_coverage"] <= 10
    assert m["val_frechet"] >= 0 and "val_loss" in m
    assert {"forward", "reverse", "samples"} == {p.name for p in of(events, PictureReady)}


# DDIM (the lesson's optional extension): the same ε_θ, sampled over S ≤ T steps


@pytest.mark.parametrize("steps", [1, 7, 20, 99])
def test_ddim_with_eta_0_and_a_perfect_noise_predictor_recovers_x0_in_fewer_steps(steps) -> None:
    sched = DDPMSchedule(100)
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1

    def perfect_eps(x_t, t):  # as for Algorithm 2: the ε that makes x_t from this x0
        return (x_t - sched._at(sched.sqrt_ab, t) * x0) / sched._at(sched.sqrt_1m_ab, t)

    calls = []
    out, frames = sched.ddim_sample_loop(lambda x, t: calls.append(t[0].item()) or perfect_eps(x, t), x0.shape,
                                         steps=steps, eta=0.0, generator=torch.Generator().manual_seed(1),
                                         keep=2, snapshots=5)
    assert torch.allclose(out, x0, atol=1e-4)
    assert len(calls) == steps and calls[0] == 99 and calls == sorted(set(calls), reverse=True)  # t = T first, no repeats
    assert frames[-1].shape == (2, 1, 8, 8) and len(frames) == min(5, steps + 1)


def test_ddim_with_every_step_and_eta_1_takes_ddpms_posterior_step() -> None:
    sched = DDPMSchedule(50)
    assert sched.ddim_timesteps(50) == list(range(49, -1, -1))
    one, zero = torch.ones(1, 1, 1, 1, dtype=torch.float64), torch.zeros(1, 1, 1, 1, dtype=torch.float64)
    b, a, ab = sched.betas, sched.alphas, sched.alpha_bars  # float64
    for i in range(50):  # t = i + 1; the step is linear: x_{t−1} = c_x · x_t + c_ε · ε + σ · z
        c_x = sched.ddim_step(one, zero, i, i - 1, eta=1.0).item()
        c_eps = sched.ddim_step(zero, one, i, i - 1, eta=1.0).item()
        sigma = sched.ddim_step(zero, zero, i, i - 1, eta=1.0, z=one).item()
        # Algorithm 2's mean: 1/√α_t · (x_t − β_t/√(1 − ᾱ_t) · ε)
        assert c_x == pytest.approx(1 / a[i].sqrt().item(), rel=1e-9)
        assert c_eps == pytest.approx(-(b[i] / (a[i].sqrt() * (1 - ab[i]).sqrt())).item(), rel=1e-7)
        # the posterior variance of q(x_{t−1} | x_t, x_0): β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t (0 at t = 1)
        posterior = ((1 - ab[i - 1]) / (1 - ab[i]) * b[i]).item() if i > 0 else 0.0
        assert sigma ** 2 == pytest.approx(posterior, rel=1e-9, abs=1e-15)
        assert sched.ddim_sigma(i, i - 1, 1.0) == pytest.approx(sigma)
        assert sigma ** 2 <= b[i].item()  # Algorithm 2's σ_t² = β_t is the larger of the paper's two choices
        assert sched.ddim_step(zero, zero, i, i - 1, eta=0.0, z=one).item() == 0.0  # η = 0: no noise at all


def test_invalid_ddim_settings_are_user_errors_naming_the_value_and_the_range() -> None:
    with pytest.raises(UserError, match=r"sample_steps=9: .*1 ≤ sample_steps ≤ 8"):
        prepare_run(tiny("diffusion", variant="ddim", timesteps=8, sample_steps=9))
    with pytest.raises(UserError, match="sample_steps=0"):
        tiny("diffusion", variant="ddim", timesteps=8, sample_steps=0)  # the knob's range
    with pytest.raises(UserError, match="sample_steps=0"):
        DDPMSchedule(8).ddim_timesteps(0)
    with pytest.raises(UserError, match="ddim_eta"):
        tiny("diffusion", variant="ddim", ddim_eta=1.5)
    with pytest.raises(UserError, match="choose one of ddpm | ddim"):
        tiny("diffusion", sampler="ddpn")
    # Algorithm 2 ignores sample_steps: the default run with a small T stays valid
    assert prepare_run(tiny("diffusion", timesteps=8, sample_steps=20)).task.sampling == "ddpm"


def test_the_ddim_variant_runs_end_to_end_and_reports_its_sampling_time() -> None:
    _, final, events = run_to_end(tiny("diffusion", variant="ddim", timesteps=8, sample_steps=3,
                                       quality_samples=20, picture_samples=10))
    m = final.metrics
    assert final.status == "completed" and 0.0 <= m["val_class_match"] <= 1.0 and m["val_sample_seconds"] > 0
    pictures = {p.name: p for p in of(events, PictureReady)}
    assert "DDIM, 3 of 8 steps, η = 0" in pictures["reverse"].title and "20 drawn in" in pictures["samples"].title
    assert pictures["reverse"].pixels.shape[1] == 4 * 28 * 2 + 3 * 2 * 2  # x_T and the 3 steps taken


# ---------------------------------------------------------------------------- GAN


def _params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_a_gan_step_updates_d_then_g_and_never_the_other_one() -> None:
    prepared = prepare_run(tiny("gan", quality_samples=0))
    task = prepared.task
    task.train(True)
    x, _ = next(task.batches(0))
    real = task.signed(x)
    fake = task.G(torch.randn(len(x), task.latent))
    g0, d0 = _params(task.G), _params(task.D)
    task.d_step(real, fake)
    assert _changed(d0, task.D) and not _changed(g0, task.G)  # D's update leaves G alone
    d1 = _params(task.D)
    task.g_step(fake)
    assert _changed(g0, task.G) and not _changed(d1, task.D)  # G's update leaves D alone
    assert all(p.grad is None for p in task.D.parameters())  # and leaves no gradient in D
    g1, d1 = _params(task.G), _params(task.D)
    metrics = task.train_step((x, None))
    assert _changed(g1, task.G) and _changed(d1, task.D)
    assert {"loss", "loss_d", "loss_g", "d_acc_real", "d_acc_fake"} <= set(metrics)


def test_a_batch_too_small_for_d_to_pack_and_compare_is_refused_with_the_sizes() -> None:
    with pytest.raises(UserError) as info:  # 70 % 32 leaves a last batch of 6; pack 4 × 2 to compare = 8
        prepare_run(tiny("gan", n_train=70, batch_size=32, pack=4, mbd_kernels=4, quality_samples=0))
    assert str(info.value) == ("D needs batches of at least 8 images (pack=4, times 2 to compare samples), but "
                               "batch_size=32 on 70 training images leaves a batch of 6; change batch_size or n_train.")
    prepare_run(tiny("gan", n_train=72, batch_size=32, pack=4, mbd_kernels=4, quality_samples=0))  # a last batch of 8


def test_a_resumed_gan_continues_both_players_and_the_weight_average_exactly() -> None:
    cfg = tiny("gan", epochs=2, quality_samples=50, ema=0.9)
    full, resumed, final = stopped_and_resumed(cfg, stop_after_step=5)  # mid epoch 2 (4 steps per epoch)
    assert final.status == "completed" and final.step == 8

    assert metric_numbers(resumed) == metric_numbers(full)
    a, b = final_task_state(full), final_task_state(resumed)
    assert set(a["modules"]) == {"G", "D", "ema"}
    assert_same_modules(a, b)
    for player in ("G", "D"):
        assert a["optimizers"][player]["state"].keys() == b["optimizers"][player]["state"].keys()
    assert int(a["modules"]["ema"]["updates"]) == 8  # one average step per training step
    assert "val_class_coverage" in metric_numbers(full)[-1]


def test_a_gan_with_a_weight_average_samples_from_the_average_not_from_g() -> None:
    task = prepare_run(tiny("gan", quality_samples=0, ema=0.5)).task
    task.train(True)
    batches = task.batches(0)
    for _ in range(3):
        task.train_step(next(batches))
    assert task.ema is not None and task.sampler is task.ema.model
    assert any(not torch.equal(a, g) for a, g in zip(task.ema.model.parameters(), task.G.parameters()))
    for a, g in zip(task.ema.model.buffers(), task.G.buffers()):  # batch-norm statistics: G's own
        assert torch.equal(a, g)
    z = task.randn(6, task.latent, generator=task.eval_generator(2))
    with torch.inference_mode():
        assert torch.equal(task.generate(6), task.from_signed(task.ema.model.eval()(z)))
        assert not torch.equal(task.generate(6), task.from_signed(task.G.eval()(z)))
    assert task.num_params() == sum(p.numel() for m in (task.G, task.D) for p in m.parameters())
    plain = prepare_run(tiny("gan", quality_samples=0)).task
    assert plain.ema is None and plain.sampler is plain.G and set(plain.modules) == {"G", "D"}


def test_the_weight_average_follows_its_formula_and_copies_buffers() -> None:
    from dlcourse_tui.tasks.generate import EMA

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(net, decay=0.5)
    avg0 = [p.detach().clone() for p in ema.model.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net.train()(torch.randn(8, 2))  # moves batch norm's running statistics
    ema.update(net)  # n = 0: d = min(0.5, 1/10) = 0.1
    for a, a0, p in zip(ema.model.parameters(), avg0, net.parameters()):
        assert torch.allclose(a, 0.1 * a0 + 0.9 * p)
    for a, b in zip(ema.model.buffers(), net.buffers()):
        assert torch.equal(a, b)
    assert int(ema.updates) == 1 and not any(p.requires_grad for p in ema.model.parameters())
    with pytest.raises(Exception, match="ema"):
        EMA(net, decay=1.0)


def test_a_packing_discriminator_judges_m_images_at_once() -> None:
    from dlcourse_tui.models.gan import pack
    from dlcourse_tui.models.registry import create_model

    x = torch.arange(5 * 1 * 2 * 2, dtype=torch.float32).view(5, 1, 2, 2)
    packed = pack(x, 2)  # the fifth image is left out
    assert packed.shape == (2, 2, 2, 2)
    assert torch.equal(packed[1, 0], x[2, 0]) and torch.equal(packed[1, 1], x[3, 0])
    model = create_model("dcgan", input_shape=(1, 28, 28), num_classes=10,
                         args={"pack": 2, "batch_std": True, "d_channels": 8, "g_channels": 8})
    assert model(torch.randn(6, model.cfg.latent)).shape == (3, 1)
    with pytest.raises(ValueError, match="pack"):
        pack(x[:1], 2)


def test_minibatch_discrimination_tells_each_sample_how_common_it_is_in_its_batch() -> None:
    from dlcourse_tui.models.gan import MinibatchDiscrimination
    from dlcourse_tui.models.registry import create_model

    mbd = MinibatchDiscrimination(3, kernels=2, dim=3)
    with torch.no_grad():
        mbd.T.weight.copy_(torch.cat([torch.eye(3), 2 * torch.eye(3)]))  # (K·D, F): two scaled copies of f
    f = torch.tensor([[0.0, 0, 0]] * 3 + [[99.0, 0, 0], [0, 99.0, 0], [0, 0, 99.0]])  # three copies, three loners
    out = mbd(f)
    assert out.shape == (6, 3 + 2) and torch.equal(out[:, :3], f)
    o = out[:, 3:]  # (6, K)
    assert torch.allclose(o[:3], torch.full((3, 2), 2 / 5), atol=1e-6)  # two look-alikes among five others
    assert o[3:].max() < 1e-6  # nobody looks like a loner
    model = create_model("dcgan", input_shape=(1, 28, 28), num_classes=10,
                         args={"mbd_kernels": 4, "pack": 2, "d_channels": 8, "g_channels": 8})
    logits = model(torch.randn(8, model.cfg.latent))
    logits.sum().backward()
    assert logits.shape == (4, 1) and model.discriminator.mbd.T.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------- the judge


def test_the_judge_is_cached_per_data_version_and_agrees_with_itself() -> None:
    data = digits_dataset(n_train=300, n_val=200, seed=3)
    judge = Judge.for_dataset(data, torch.device("cpu"))
    files = list(dlc_cache_dir().glob("judge-digits-*.pt"))
    assert len(files) == 1 and not list(dlc_cache_dir().glob(".*"))  # written atomically, no temp left
    again = Judge.for_dataset(data, torch.device("cpu"))
    assert list(dlc_cache_dir().glob("judge-digits-*.pt")) == files  # loaded, not retrained
    for a, b in zip(judge.net.parameters(), again.net.parameters()):
        assert torch.equal(a, b)
    Judge.for_dataset(digits_dataset(n_train=300, n_val=200, seed=4), torch.device("cpu"))
    assert len(list(dlc_cache_dir().glob("judge-digits-*.pt"))) == 2  # new data, new judge
    real = data.val.x.float() / 255
    score = judge.score(real, data.val.y)
    assert score["frechet"] == pytest.approx(0.0, abs=1e-3)  # the same images: distance 0
    assert score["class_match"] == pytest.approx(judge.val_acc)
    blank = judge.score(torch.zeros(100, 1, 28, 28))
    assert blank["class_coverage"] == 1 and blank["class_entropy"] == pytest.approx(0.0)
    assert blank["frechet"] > 1.0


def test_frechet_distance_of_shifted_gaussians_is_the_squared_shift() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20_000, 3, generator=g)
    b = torch.randn(20_000, 3, generator=g) + torch.tensor([1.0, 0.0, 2.0])
    assert frechet_distance(a, b) == pytest.approx(5.0, abs=0.1)


def test_a_resumed_diffusion_run_matches_an_uninterrupted_one_weight_average_included() -> None:
    cfg = tiny("diffusion", epochs=2, timesteps=8, quality_samples=20, picture_samples=10)
    full, resumed, final = stopped_and_resumed(cfg, stop_after_step=6)
    a, b = final_task_state(full), final_task_state(resumed)
    assert set(a["modules"]) == {"model", "ema"}
    assert_same_modules(a, b)
    clocked = {"val_sample_seconds"}  # wall time: the one metric a resumed run cannot repeat
    numbers = [{k: v for k, v in json.loads((r.path / "summary.json").read_text())["metrics"].items() if k not in clocked}
               for r in (resumed, full)]
    assert numbers[0] == numbers[1]


def test_the_batch_spread_channel_lets_d_see_a_collapsed_batch() -> None:
    from dlcourse_tui.models.gan import minibatch_std
    from dlcourse_tui.models.registry import create_model

    same = torch.ones(8, 4, 7, 7)
    varied = torch.randn(8, 4, 7, 7)
    assert minibatch_std(same)[:, -1].abs().max() < 1e-3 and minibatch_std(varied)[:, -1].min() > 0.5
    copies = same.clone().requires_grad_(True)
    minibatch_std(copies).sum().backward()
    assert torch.isfinite(copies.grad).all()  # a batch of exact copies still gives D a usable gradient
    model = create_model("dcgan", input_shape=(1, 28, 28), num_classes=10, args={"batch_std": True, "d_channels": 8})
    out = model(torch.randn(4, model.cfg.latent))
    out.sum().backward()
    assert out.shape == (4, 1) and all(p.grad is not None for p in model.discriminator.parameters())


@pytest.mark.parametrize("lesson, extra", [
    ("autoencoder", {}), ("vae", {"latent": 8}), ("gan", {"quality_samples": 40}),
    ("diffusion", {"timesteps": 4, "quality_samples": 20, "picture_samples": 10}),
])
def test_each_generative_lesson_also_runs_on_colour_shapes(lesson, extra) -> None:
    _, final, events = run_to_end(tiny(lesson, **{"data.name": "shapes", "n_train": 32, **extra}))
    assert final.status == "completed"
    pictures = of(events, PictureReady)
    assert pictures and all(p.pixels.ndim == 3 and p.pixels.shape[2] == 3 for p in pictures)
