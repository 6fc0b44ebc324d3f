"""Generative tasks of chapter 3 and what they share.

A classifier models p(y | x) (discriminative). The models here model the images
themselves, p(x) (generative), or p(x | y) when told the class (conditional):
- autoencode (AutoencodeTask): x → z → x̂ with an L2 loss; not yet a generator.
- vae (VAETask): a Gaussian encoder q(z | x), the reparameterisation trick and the
  ELBO, whose two parts (reconstruction and KL) are charted separately.
- gan (gan.py) and diffusion (diffusion.py) build on GenerativeTask below.

Quality of samples (GAN, DDPM) is measured by `Judge`: a small CNN trained on the real
training images of the same dataset (cached per data version under $DLC_HOME/cache),
which labels generated images (class entropy, coverage, share of the asked-for class)
and whose features give a Fréchet distance: a small stand-in for FID, not FID.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.engine.events import PictureReady
from dlcourse_tui.errors import UserError
from dlcourse_tui.models.registry import create_model
from dlcourse_tui.render.images import chw_to_hwc, tile, to_rgb, upscale
from dlcourse_tui.tasks.base import Task

EVAL_BATCH = 1000


def shuffled_order(n: int, seed: int, epoch: int, device: torch.device) -> Tensor:
    """The permutation of epoch `epoch`, a function of (seed, epoch) only (as in classify), so resumable."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)  # (n,)


# ---------------------------------------------------------------------------- pictures


def image_grid(x: Tensor, ncols: int, factor: int = 2, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] (or uint8) → one (H', W', 3) uint8 grid picture."""
    if x.dtype != torch.uint8:
        x = x.float().clamp(0, 1).mul(255).round().to(torch.uint8)
    images = [to_rgb(chw_to_hwc(im)) for im in x.cpu().numpy()]  # each (H, W, 3)
    return upscale(tile(np.stack(images), ncols=ncols, pad=pad), factor)


# ---------------------------------------------------------------------------- weight average


class EMA(nn.Module):
    """An exponential moving average of a model's weights, θ̄ ← d·θ̄ + (1 − d)·θ after each
    step, with d warming up as min(decay, (1 + n)/(10 + n)) so the first steps are not
    dominated by the initial weights. Sampling from θ̄ rather than θ averages out the last
    steps' noise (DDPM samples with d = 0.9999 over 800k steps; a GAN's G also oscillates
    as it chases D, and the average sits nearer the middle of its orbit). A run of a few
    thousand steps needs a shorter memory, 1/(1 − d) steps.

    Buffers (batch norm's running statistics) are copied from the live model, not
    averaged: they are already running averages. A module, so that a checkpoint holds
    the average and its step count, and a resumed run goes on exactly."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise UserError(f"ema={decay}: the weight average's decay must lie strictly between 0 and 1 (0 turns it off).")
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        n = int(self.updates)
        d = min(self.decay, (1 + n) / (10 + n))
        for avg, p in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(p, 1 - d)
        for avg, b in zip(self.model.buffers(), model.buffers()):
            avg.copy_(b)
        self.updates += 1


# ---------------------------------------------------------------------------- shared task


class GenerativeTask(Task):
    """Image data only; batches of (x uint8, y) shuffled per (seed, epoch); helpers to
    turn pixels into [0, 1] or [−1, 1] floats and back."""

    def check_images(self) -> None:
        if self.data.kind != "image":
            raise UserError(f"{self.config.task} needs images, but {self.data.name} is {self.data.kind} data; "
                            "pick --data digits or --data shapes.")

    def build_model(self, name: str | None = None, **extra) -> nn.Module:
        cfg = self.config
        return create_model(name or cfg.model, input_shape=self.data.input_shape, num_classes=self.data.num_classes,
                            args={**cfg.model_args, **extra},
                            strict={k[6:] for k in cfg.explicit if k.startswith("model.")}).to(self.device)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.config.train.batch_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        self.epoch_index = epoch  # which epoch evaluate() will follow (0-based)
        train, bs = self.data.train, self.config.train.batch_size
        order = shuffled_order(len(train), self.config.train.seed, epoch, self.device)
        for i in range(start, self.steps_per_epoch()):
            idx = order[i * bs:(i + 1) * bs]  # (B,)
            yield train.x[idx], train.y[idx]

    def is_final_epoch(self) -> bool:
        """Whether the evaluation now due follows the run's last epoch."""
        return getattr(self, "epoch_index", 0) + 1 >= self.config.train.epochs

    def quality_due(self) -> bool:
        """Sample-quality metrics (which need sampling and the judge): after the last epoch,
        and every task.quality_every epochs if that is set (> 0)."""
        every = int(self.config.task_args.get("quality_every", 0))
        epoch = getattr(self, "epoch_index", 0) + 1
        return self.is_final_epoch() or (every > 0 and epoch % every == 0)

    @staticmethod
    def unit(x: Tensor) -> Tensor:
        """uint8 pixels → floats in [0, 1]."""
        return x.float().div(255)

    @staticmethod
    def signed(x: Tensor) -> Tensor:
        """uint8 pixels → floats in [−1, 1]."""
        return x.float().div(127.5).sub(1)

    @staticmethod
    def from_signed(x: Tensor) -> Tensor:
        """[−1, 1] → [0, 1], clipped (for pictures and the judge)."""
        return x.add(1).div(2).clamp(0, 1)

    def eval_generator(self, salt: int = 0) -> torch.Generator:
        """A CPU generator for evaluation noise: pictures and metrics never touch the
        global RNG, so a resumed run draws the same training noise as an uninterrupted one."""
        return torch.Generator().manual_seed(self.config.train.seed * 7919 + 12345 + salt)

    def randn(self, *shape: int, generator: torch.Generator) -> Tensor:
        return torch.randn(*shape, generator=generator).to(self.device)

    def judge(self) -> "Judge":
        if getattr(self, "_judge", None) is None:
            with torch.inference_mode(False), torch.enable_grad():  # evaluate() may run in inference mode
                self._judge = Judge.for_dataset(self.data, self.device)
        return self._judge


# ---------------------------------------------------------------------------- autoencoder


class AutoencodeTask(GenerativeTask):
    """x → z → x̂, L = mean ‖x − x̂‖² over pixels; pixels in [0, 1]."""

    def build(self) -> None:
        self.check_images()
        self.use_model(self.build_model())

    def train_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x = self.unit(batch[0])  # (B, C, H, W)
        loss = F.mse_loss(self.model(x), x)
        self.update(loss)
        return {"loss": loss.detach()}

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        val = self.data.val
        sq = torch.zeros((), device=self.device)
        for i in range(0, len(val), EVAL_BATCH):
            x = self.unit(val.x[i:i + EVAL_BATCH])
            sq += (self.model(x) - x).pow(2).mean(dim=(1, 2, 3)).sum()
        return {"val_recon_mse": sq.item() / len(val)}

    def pictures(self, epoch: int, final: bool) -> list[PictureReady]:
        return [PictureReady("reconstructions", "top: validation inputs · below: their reconstructions "
                             f"through a {self.model.cfg.latent}-number code", epoch, self._reconstructions())]

    @torch.inference_mode()
    def _reconstructions(self, n: int = 12) -> np.ndarray:
        self.model.eval()
        x = self.unit(self.data.val.x[:n])  # (n, C, H, W)
        return image_grid(torch.cat([x, self.model(x)]), ncols=n)


# ---------------------------------------------------------------------------- VAE


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per example, in closed form: ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)  # (B,)


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """−log p(x | z) per example for pixels x in [0, 1] read as Bernoulli means (nats)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)  # (B,)


def bold(x: Tensor) -> Tensor:
    """A′ from A for latent arithmetic: thicker strokes (a 3×3 max filter) on [0, 1] images."""
    return F.max_pool2d(x, 3, stride=1, padding=1)


class VAETask(GenerativeTask):
    """Encoder q(z | x) = N(μ(x), diag σ²(x)); z = μ + σ ⊙ ε; decoder p(x | z) Bernoulli.

    ELBO = E_q[log p(x | z)] − KL(q(z | x) ‖ N(0, I)); the loss is −ELBO per image
    (nats), and train_step reports its two parts, "recon" and "kl", separately.
    task.beta weighs the KL term (1: the true ELBO; β-VAE otherwise).
    """

    def build(self) -> None:
        self.check_images()
        self.beta = float(self.config.task_args.get("beta", 1.0))
        self.use_model(self.build_model())

    def train_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x = self.unit(batch[0])  # (B, C, H, W)
        logits, mu, logvar = self.model(x)
        recon = bernoulli_nll(logits, x).mean()
        kl = gaussian_kl(mu, logvar).mean()
        loss = recon + self.beta * kl
        self.update(loss)
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """ELBO on validation images with one z sample each (fixed noise), its parts, and
        the reconstruction error ‖x − decode(μ(x))‖² per pixel (comparable to the autoencoder)."""
        self.model.eval()
        val, g = self.data.val, self.eval_generator()
        sums = torch.zeros(4, device=self.device)
        for i in range(0, len(val), EVAL_BATCH):
            x = self.unit(val.x[i:i + EVAL_BATCH])
            mu, logvar = self.model.encode(x)
            z = mu + (0.5 * logvar).exp() * self.randn(*mu.shape, generator=g)
            recon = bernoulli_nll(self.model.decode_logits(z), x)
            kl = gaussian_kl(mu, logvar)
            mse = (self.model.decode(mu) - x).pow(2).mean(dim=(1, 2, 3))
            sums += torch.stack([(-(recon + kl)).sum(), recon.sum(), kl.sum(), mse.sum()])
        elbo, recon, kl, mse = (sums / len(val)).tolist()
        return {"val_elbo": elbo, "val_recon": recon, "val_kl": kl, "val_recon_mse": mse}

    def pictures(self, epoch: int, final: bool) -> list[PictureReady]:
        out = []
        if self.model.cfg.latent == 2:
            out.append(PictureReady("manifold", "decoded 2-D latent grid: z over the N(0, 1) quantiles 5 % … 95 %",
                                    epoch, self._manifold()))
        else:
            out.append(PictureReady("samples", "decoded samples z ~ N(0, I) from the prior", epoch, self._samples()))
        out.append(PictureReady("interpolation", "each row: decode((1 − t)·μ(A) + t·μ(B)), t from 0 to 1",
                                epoch, self._interpolation()))
        out.append(PictureReady("arithmetic", "latent arithmetic, per row: B · decode(μ(B)) · decode(μ(B) + μ(A′) − μ(A)) "
                                "· B′ for reference (A′ = A bold, averaged over 256 images)", epoch, self._arithmetic()))
        return out

    @torch.inference_mode()
    def _manifold(self, n: int = 15) -> np.ndarray:
        self.model.eval()
        q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n))  # (n,)
        zy, zx = torch.meshgrid(q.flip(0), q, indexing="ij")  # z2 up, z1 right
        z = torch.stack([zx.flatten(), zy.flatten()], dim=1).to(self.device)  # (n², 2)
        return image_grid(self.model.decode(z), ncols=n, factor=1, pad=0)

    @torch.inference_mode()
    def _samples(self, n: int = 64) -> np.ndarray:
        self.model.eval()
        z = self.randn(n, self.model.cfg.latent, generator=self.eval_generator(1))
        return image_grid(self.model.decode(z), ncols=16)

    @torch.inference_mode()
    def _interpolation(self, rows: int = 4, steps: int = 10) -> np.ndarray:
        self.model.eval()
        x = self.unit(self.data.val.x[:2 * rows])
        mu, _ = self.model.encode(x)  # (2r, latent)
        a, b = mu[:rows], mu[rows:]
        t = torch.linspace(0, 1, steps, device=self.device)[None, :, None]  # (1, S, 1)
        z = ((1 - t) * a[:, None] + t * b[:, None]).flatten(0, 1)  # (r·S, latent)
        return image_grid(self.model.decode(z), ncols=steps)

    @torch.inference_mode()
    def _arithmetic(self, rows: int = 6) -> np.ndarray:
        self.model.eval()
        a = self.unit(self.data.val.x[:256])
        direction = self.model.encode(bold(a))[0].mean(0) - self.model.encode(a)[0].mean(0)  # (latent,) μ(A′) − μ(A)
        b = self.unit(self.data.val.x[-rows:])  # (r, C, H, W)
        mu_b = self.model.encode(b)[0]
        cols = [b, self.model.decode(mu_b), self.model.decode(mu_b + direction), bold(b)]
        return image_grid(torch.stack(cols, dim=1).flatten(0, 1), ncols=4)


# ---------------------------------------------------------------------------- the judge


class JudgeNet(nn.Module):
    """The judge's CNN: two conv blocks and a 128-feature layer before the class scores."""

    def __init__(self, channels: int, size: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (size // 4) ** 2, 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x.sub(0.5).div(0.5))  # (B, C, H, W) in [0, 1] -> (B, 128)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, classes)


def frechet_distance(f1: Tensor, f2: Tensor) -> float:
    """‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½) between two feature sets (N, D), in float64."""
    a, b = f1.double(), f2.double()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = torch.cov(a.T), torch.cov(b.T)  # (D, D)
    w, v = torch.linalg.eigh(s1)
    root1 = (v * w.clamp_min(0).sqrt()) @ v.T  # Σ₁^½
    cross = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp_min(0).sqrt().sum()  # Tr (Σ₁^½ Σ₂ Σ₁^½)^½ = Tr (Σ₁Σ₂)^½
    return float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * cross)


@contextmanager
def private_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Run the block on torch's global random streams seeded with `seed`, the CPU's and
    (on a GPU) the device's, and put both back as they were on leaving. What is built
    inside (the judge) then neither takes numbers from a run's own stream, which the run's
    checkpoint saves and a resume restores, nor depends on where that stream stands. Only
    the CPU generator and this device's are seeded (torch.manual_seed would reseed every
    GPU's, and fork_rng restores only those it forked)."""
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)  # this GPU's stream only
        yield


def dlc_cache_dir() -> Path:
    from dlcourse_tui.engine.runs import dlc_home

    return dlc_home() / "cache"


class Judge:
    """A classifier of the real images that labels generated ones.

    Trained once per data version (the SHA-256 of the training images and labels) and
    cached as $DLC_HOME/cache/judge-<dataset>-<hash>.pt, written atomically.
    """

    EPOCHS = 2
    VERSION = 3  # bump when the judge's training changes: old cache files are then left unused
    SEED = 4242  # its initialisation: the judge is a function of the data alone, as its cache name says

    def __init__(self, net: JudgeNet, val_acc: float, real_features: Tensor) -> None:
        self.net = net.eval()
        self.val_acc = val_acc
        self.real_features = real_features  # (N, 128) features of real validation images

    @classmethod
    def for_dataset(cls, data, device: torch.device) -> "Judge":
        """The judge of `data`'s training images, loaded from the cache or trained (and cached).
        The cache is keyed by the data alone, so the judge is one function of the data (fixed
        seeds, not the run's), whichever run asks first and wherever its random stream stands."""
        train = data.train
        h = hashlib.sha256()
        h.update(f"v{cls.VERSION}-{data.name}-{tuple(train.x.shape)}".encode())
        h.update(train.x.cpu().numpy().tobytes())
        h.update(train.y.cpu().numpy().tobytes())
        path = dlc_cache_dir() / f"judge-{data.name}-{h.hexdigest()[:16]}.pt"
        c, size = data.input_shape[0], data.input_shape[1]

        def fresh() -> JudgeNet:
            with private_rng(device, cls.SEED):  # not the run's: building it draws nothing from the run's stream
                return JudgeNet(c, size, data.num_classes)

        net, state = fresh(), None
        if path.is_file():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                net.load_state_dict(state["net"])
            except Exception:  # noqa: BLE001 - a bad cache file is retrained (from a fresh start), not fatal
                net, state = fresh(), None
        net = net.to(device)
        if state is None:
            with private_rng(device, cls.SEED + 1):  # nor does training it
                cls._train(net, train.x, train.y)
            state = {"net": {k: v.cpu() for k, v in net.state_dict().items()}}
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
            os.close(fd)
            torch.save(state, tmp)
            os.replace(tmp, path)
        net.eval()
        with torch.inference_mode():
            vx = data.val.x.float().div(255)
            logits, feats = [], []
            for i in range(0, len(vx), EVAL_BATCH):
                f = net.features(vx[i:i + EVAL_BATCH])
                feats.append(f)
                logits.append(net.head(f))
            acc = (torch.cat(logits).argmax(1) == data.val.y).float().mean().item()
        return cls(net, acc, torch.cat(feats))

    @staticmethod
    def _train(net: JudgeNet, x: Tensor, y: Tensor, batch: int = 64) -> None:
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        net.train()
        g = torch.Generator().manual_seed(0)
        for _ in range(Judge.EPOCHS):
            order = torch.randperm(len(x), generator=g).to(x.device)
            for i in range(0, len(x), batch):
                idx = order[i:i + batch]
                loss = F.cross_entropy(net(x[idx].float().div(255)), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    @torch.inference_mode()
    def score(self, samples: Tensor, asked: Tensor | None = None) -> dict[str, float]:
        """Metrics of generated images (N, C, H, W) in [0, 1]: the judge's class histogram
        entropy (nats; log 10 ≈ 2.30 is uniform over 10 classes), coverage (classes that
        get at least half their fair share, 1/(2K), of the samples), mean confidence, Fréchet
        distance to real validation features, and with `asked` labels the share classified
        as the class asked for."""
        feats, labels, conf = [], [], []
        for i in range(0, len(samples), EVAL_BATCH):
            f = self.net.features(samples[i:i + EVAL_BATCH].float())
            p = self.net.head(f).softmax(1)
            feats.append(f)
            c, lab = p.max(1)
            labels.append(lab)
            conf.append(c)
        lab = torch.cat(labels)
        k = self.net.head.out_features
        hist = torch.bincount(lab, minlength=k).float() / len(lab)  # (K,)
        entropy = -(hist[hist > 0] * hist[hist > 0].log()).sum().item() + 0.0  # + 0.0: one class gives 0, not -0
        out = {
            "class_entropy": entropy,
            "class_coverage": int((hist >= 0.5 / k).sum().item()),
            "judge_confidence": torch.cat(conf).mean().item(),
            "frechet": frechet_distance(torch.cat(feats), self.real_features),
        }
        if asked is not None:
            out["class_match"] = (lab == asked.to(lab.device)).float().mean().item()
        return out
