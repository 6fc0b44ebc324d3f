"""Semantic segmentation models of chapter 2: a class score for every pixel, (B, C, H, W).

- `window_seg`, the sliding window: a small CNN classifies the pixel at the centre of a
  P×P patch; run at every pixel it labels the image. Neighbouring patches overlap almost
  entirely, yet every patch is pushed through the network on its own, so nothing is
  shared: H·W forward passes per image.
- `fcn`, fully convolutional (Long, Shelhamer and Darrell 2015, "Fully Convolutional
  Networks for Semantic Segmentation"): the same convolutions run once over the whole
  image, downsampling by pooling to 1/2^d of its size, a 1×1 convolution scores every
  class there, and a transposed convolution (stride f, kernel 2f, initialised as bilinear
  interpolation) upsamples the scores back. With `skips`, as in FCN-8s, the coarse scores
  are upsampled 2× at a time and added to scores made from finer encoder maps.
- `segnet` (Badrinarayanan, Kendall and Cipolla 2017, "SegNet"): an encoder whose 2×2
  max-pools remember where each maximum was (`return_indices=True`) and a decoder whose
  max-unpooling puts each value back at that place, stage by stage, before convolutions
  fill in the rest.
- `unet_seg` (Ronneberger, Fischer and Brox 2015, "U-Net"): the decoder upsamples with
  transposed convolutions and concatenates the encoder's map of the same size (a skip
  connection), so fine detail need not squeeze through the bottleneck.

The equation that matters is the transposed convolution's output size: an input of
width W, stride s, kernel k and padding p gives (W − 1)·s − 2p + k; with k = 2s and
p = s/2 that is W·s, an exact s-fold upsampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.models.registry import register_model

SEG_EXAMPLE = (3, 32, 32)  # the smoke tests' input (the lessons use 64×64 scenes)


def conv_block(c_in: int, c_out: int, convs: int = 2, batch_norm: bool = True) -> nn.Sequential:
    """[3×3 conv (padding 1) → BN → ReLU] × convs: the width stays, the channels become c_out."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def bilinear_kernel(channels: int, kernel_size: int) -> Tensor:
    """(channels, channels, k, k) weights that make ConvTranspose2d(stride k/2, padding k/4)
    a bilinear upsampling of each channel on its own (FCN's initialisation)."""
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)  # (k,)
    filt = 1 - (og - centre).abs() / factor  # (k,) a tent
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt[:, None] * filt[None, :]  # (k, k) on the diagonal
    return weight


def bilinear_upsampler(channels: int, factor: int, learn: bool = True) -> nn.ConvTranspose2d:
    """A transposed convolution that upsamples by `factor` (a power of 2), initialised as bilinear."""
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    up.weight.requires_grad_(learn)
    return up


def set_score_bias(layer: nn.Conv2d | nn.Linear, log_prior: Tensor, repeat: int = 1) -> None:
    """Start a class-score layer at the class frequencies: bias = log p(class) (each class's
    entry `repeat` times in a row, for a head that scores a p×p square of pixels per position),
    weights as they are. An untrained net then predicts the prior, cross-entropy ≈ its entropy,
    instead of spending its first hundreds of steps moving biases there (Adam moves a bias by
    about lr a step, and log(0.85 / 0.015) ≈ 4 is far)."""
    with torch.no_grad():
        layer.bias.copy_(log_prior.to(layer.bias).repeat_interleave(repeat))  # (classes · repeat,)


def check_halvings(input_shape: tuple[int, ...], halvings: int, model: str, patch: int = 1) -> None:
    """ValueError unless the image sides, folded into patch×patch squares first, can be
    halved `halvings` times exactly (and stay ≥ 2)."""
    if len(input_shape) != 3:
        raise ValueError(f"{model} takes images (C, H, W), not inputs of shape {input_shape}")
    step = patch * 2 ** halvings
    for side in input_shape[1:]:
        if side % step or side // step < 2:
            fit = max(2 * step, round(side / step) * step)
            folded = f"folds {patch}×{patch} pixels and then " if patch > 1 else ""
            raise ValueError(f"it {folded}halves the image {halvings} times, so the image sides must be multiples of "
                             f"{step} and at least {2 * step}; {input_shape[1]}×{input_shape[2]} is not: use e.g. "
                             f"data.size={fit}, or fewer channels entries")


@dataclass
class _EncoderConfig:
    input_shape: tuple[int, ...] = SEG_EXAMPLE
    num_classes: int = 11  # background + 10 shape classes
    channels: tuple[int, ...] = (16, 32, 64, 128)  # one entry per resolution: len − 1 halvings
    batch_norm: bool = True

    def __post_init__(self) -> None:
        self.input_shape = tuple(self.input_shape)
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ValueError(f"channels={self.channels}: give at least two resolutions, each with at least 1 filter")
        check_halvings(self.input_shape, self.halvings, type(self).__qualname__.split(".")[0], getattr(self, "patch", 1))

    @property
    def halvings(self) -> int:
        return len(self.channels) - 1


class Encoder(nn.Module):
    """conv block at full size, then [2×2 max-pool → conv block] per further entry of channels."""

    def __init__(self, c_in: int, channels: tuple[int, ...], batch_norm: bool, return_indices: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for c in channels:
            self.blocks.append(conv_block(c_in, c, batch_norm=batch_norm))
            c_in = c
        self.pool = nn.MaxPool2d(2, return_indices=return_indices)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Every level's map: [(B, c_0, H, W), (B, c_1, H/2, W/2), …]."""
        maps = []
        for i, block in enumerate(self.blocks):
            if i:
                x = self.pool(x)  # (B, c, H/2^i, W/2^i)
            x = block(x)
            maps.append(x)
        return maps


# ---------------------------------------------------------------------------- sliding window


@register_model("window_seg", task="segment", inputs=("image",), example_shape=SEG_EXAMPLE,
                description="sliding window: a CNN labels the centre pixel of a P×P patch, run at every pixel")
class WindowSegmenter(nn.Module):
    """patch (3, P, P) → [conv → ReLU → max-pool] × len(channels) → linear → class of the centre pixel."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = SEG_EXAMPLE
        num_classes: int = 11
        channels: tuple[int, ...] = (16, 32, 64)
        window: int = 21  # P, odd: the patch around a pixel, (P − 1)/2 pixels on each side
        batch_norm: bool = True
        chunk: int = 4096  # patches per forward pass when labelling whole images

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            self.channels = tuple(int(c) for c in self.channels)
            if self.window < 3 or self.window % 2 == 0:
                raise ValueError(f"window={self.window}: give an odd patch width of at least 3, e.g. 21")
            if self.window // 2 ** len(self.channels) < 1:
                raise ValueError(f"window={self.window} is too small to be pooled {len(self.channels)} times")

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_size = cfg.window
        layers: list[nn.Module] = []
        c_in, side = cfg.input_shape[0], cfg.window
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=not cfg.batch_norm)]
            layers += [nn.BatchNorm2d(c)] if cfg.batch_norm else []
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in, side = c, side // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * side * side, cfg.num_classes)

    def set_class_prior(self, log_prior: Tensor) -> None:
        """Score the classes by their frequencies before training (set_score_bias)."""
        set_score_bias(self.head, log_prior)

    def classify_patches(self, patches: Tensor) -> Tensor:
        """(N, 3, P, P) → (N, classes): the class scores of each patch's centre pixel."""
        return self.head(self.features(patches).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) → (B, classes, H, W): one patch per pixel, each classified on its own."""
        b, c, h, w = x.shape
        p, half = self.cfg.window, self.cfg.window // 2
        cols = F.unfold(F.pad(x, (half, half, half, half)), p)  # (B, 3·P·P, H·W): every pixel's patch
        patches = cols.transpose(1, 2).reshape(b * h * w, c, p, p)  # (B·H·W, 3, P, P)
        scores = torch.cat([self.classify_patches(chunk) for chunk in patches.split(self.cfg.chunk)])  # (B·H·W, classes)
        return scores.view(b, h, w, -1).permute(0, 3, 1, 2)  # (B, classes, H, W)


# ---------------------------------------------------------------------------- FCN


@register_model("fcn", task="segment", inputs=("image",), example_shape=SEG_EXAMPLE,
                description="FCN: conv encoder, 1×1 class scores, transposed-conv upsampling (bilinear init); skips: FCN-8s")
class FCN(nn.Module):
    """encoder to 1/2^d → 1×1 scores → up ×2^d (FCN-32s style); skips: up ×2, + scores of
    the finer map, … (FCN-8s style), then up to full size."""

    @dataclass
    class Config(_EncoderConfig):
        channels: tuple[int, ...] = (8, 16, 32, 64)
        skips: bool = False  # add scores from the finer encoder maps, as FCN-8s does
        learn_upsampling: bool = True  # train the transposed convolutions (they start bilinear either way)

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        k, d = cfg.num_classes, cfg.halvings
        self.encoder = Encoder(cfg.input_shape[0], cfg.channels, cfg.batch_norm)
        self.score = nn.Conv2d(cfg.channels[-1], k, 1)  # class scores at 1/2^d
        if cfg.skips:
            self.skip_scores = nn.ModuleList(nn.Conv2d(c, k, 1) for c in cfg.channels[1:-1][::-1])  # 1/2^(d−1) … 1/2
            self.ups = nn.ModuleList(bilinear_upsampler(k, 2, cfg.learn_upsampling) for _ in range(d))
        else:
            self.skip_scores = nn.ModuleList()
            self.ups = nn.ModuleList([bilinear_upsampler(k, 2 ** d, cfg.learn_upsampling)])

    def set_class_prior(self, log_prior: Tensor) -> None:
        """Coarse scores start at the class frequencies, the skip scores at 0 (they add up), and
        a bilinear upsampling keeps a constant map constant."""
        set_score_bias(self.score, log_prior)
        for score in self.skip_scores:
            set_score_bias(score, torch.zeros_like(log_prior))

    def forward(self, x: Tensor) -> Tensor:
        maps = self.encoder(x)  # [(B, c_i, H/2^i, W/2^i)]
        s = self.score(maps[-1])  # (B, classes, H/2^d, W/2^d)
        if not self.cfg.skips:
            return self.ups[0](s)  # (B, classes, H, W): one 2^d-fold upsampling
        finer = maps[1:-1][::-1]  # 1/2^(d−1), …, 1/2
        for up, score, m in zip(self.ups, self.skip_scores, finer):
            s = up(s) + score(m)  # (B, classes, H/2^i, W/2^i): coarse scores refined by finer ones
        return self.ups[-1](s)  # (B, classes, H, W)


# ---------------------------------------------------------------------------- SegNet


@register_model("segnet", task="segment", inputs=("image",), example_shape=SEG_EXAMPLE,
                description="SegNet: max-pool indices remembered by the encoder, max-unpooled by the decoder")
class SegNet(nn.Module):
    """encoder [conv block → 2×2 max-pool, keeping the indices] per level; decoder, level by
    level back up: [conv block to the level's channels → max-unpool with that level's
    indices]; a last conv block and 1×1 scores."""

    @dataclass
    class Config(_EncoderConfig):
        channels: tuple[int, ...] = (8, 16, 32, 64)

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        self.encoder = Encoder(cfg.input_shape[0], ch, cfg.batch_norm, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        # decoder[i]: channels[i + 1] → channels[i] at level i + 1, before unpooling to level i
        self.decoder = nn.ModuleList(conv_block(ch[i + 1], ch[i], batch_norm=cfg.batch_norm) for i in range(len(ch) - 1))
        self.final = conv_block(ch[0], ch[0], batch_norm=cfg.batch_norm)
        self.head = nn.Conv2d(ch[0], cfg.num_classes, 1)

    def set_class_prior(self, log_prior: Tensor) -> None:
        """Score the classes by their frequencies before training (set_score_bias)."""
        set_score_bias(self.head, log_prior)

    def forward(self, x: Tensor) -> Tensor:
        indices, sizes = [], []
        for i, block in enumerate(self.encoder.blocks):
            if i:
                sizes.append(x.shape[-2:])
                x, where = self.encoder.pool(x)  # (B, c_{i−1}, H/2^i, W/2^i) and the argmax of each 2×2 square
                indices.append(where)
            x = block(x)  # (B, c_i, H/2^i, W/2^i)
        for i in reversed(range(len(self.decoder))):
            x = self.decoder[i](x)  # (B, c_i, H/2^(i+1), W/2^(i+1))
            x = self.unpool(x, indices[i], output_size=sizes[i])  # (B, c_i, H/2^i, W/2^i): each value back at its max, zeros around
        return self.head(self.final(x))  # (B, classes, H, W)


# ---------------------------------------------------------------------------- U-Net


@register_model("unet_seg", task="segment", inputs=("image",), example_shape=SEG_EXAMPLE,
                description="U-Net: encoder, transposed-conv decoder, encoder maps concatenated at each level")
class UNetSegmenter(nn.Module):
    """encoder [conv block, 2×2 max-pool]; decoder [2×2 transposed conv up → concatenate the
    encoder's map of that size → conv block]; 1×1 scores.

    With `patch` = p > 1 the image is first folded into p×p squares (pixel-unshuffle: a
    64×64×3 image becomes 32×32×12), the U-Net runs at that size, and each output position
    scores its p×p pixels (pixel-shuffle back): p² times fewer positions to convolve, which
    is what makes it train in a minute on a CPU, and still one class per pixel."""

    @dataclass
    class Config(_EncoderConfig):
        channels: tuple[int, ...] = (32, 64, 128)  # at 1/4, 1/8 and 1/16 of the image side with patch = 4
        patch: int = 4  # fold p×p pixels into channels first (1: full resolution)

        def __post_init__(self) -> None:
            if self.patch < 1:
                raise ValueError(f"patch={self.patch}: give 1 (full resolution) or more")
            super().__post_init__()  # the halvings are checked at the folded size

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        ch, p = cfg.channels, cfg.patch
        self.encoder = Encoder(cfg.input_shape[0] * p * p, ch, cfg.batch_norm)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in range(len(ch) - 1))
        self.decoder = nn.ModuleList(conv_block(2 * ch[i], ch[i], batch_norm=cfg.batch_norm) for i in range(len(ch) - 1))
        self.head = nn.Conv2d(ch[0], cfg.num_classes * p * p, 1)

    def set_class_prior(self, log_prior: Tensor) -> None:
        """Score the classes by their frequencies before training; the head's channels are
        class-major (class c, pixel k of the square: c·p² + k), as pixel_shuffle reads them."""
        set_score_bias(self.head, log_prior, repeat=self.cfg.patch ** 2)

    def forward(self, x: Tensor) -> Tensor:
        p = self.cfg.patch
        if p > 1:
            x = F.pixel_unshuffle(x, p)  # (B, 3·p², H/p, W/p)
        maps = self.encoder(x)  # [(B, c_i, H/(p·2^i), W/(p·2^i))]
        y = maps[-1]
        for i in reversed(range(len(self.ups))):
            y = self.ups[i](y)  # (B, c_i, …) twice the size
            y = self.decoder[i](torch.cat([y, maps[i]], dim=1))  # skip: (B, 2·c_i, …) → (B, c_i, …)
        y = self.head(y)  # (B, classes·p², H/p, W/p)
        return F.pixel_shuffle(y, p) if p > 1 else y  # (B, classes, H, W)


def transposed_output_size(width: int, stride: int, kernel: int, padding: int) -> int:
    """(W − 1)·s − 2p + k: the width a transposed convolution writes."""
    return (width - 1) * stride - 2 * padding + kernel


