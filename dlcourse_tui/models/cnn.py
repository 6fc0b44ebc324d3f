"""A small convolutional network of chapter 2: conv → ReLU → max-pool blocks, then a
fully connected head (CS231n, "Convolutional Neural Networks for Visual Recognition";
LeCun et al. 1998, "Gradient-based learning applied to document recognition").

Two ideas make a convolution cheaper and better suited to images than a fully
connected layer:
- local connectivity: each output looks at a small k×k window of the input, not at
  every pixel;
- weight sharing: the same k×k×C_in filter slides over every position, so a pattern
  learned in one place is found everywhere.

A convolution is a weighted moving sum (as in PyTorch, strictly a cross-correlation):

    y[o, i, j] = b[o] + Σ_c Σ_u Σ_v w[o, c, u, v] · x[c, S·i + u − P, S·j + v − P]

and an input of width W, filter size F, padding P and stride S gives an output of width
(W − F + 2P) / S + 1 (rounded down). Each block here is conv (stride S) → [batch norm] →
ReLU → 2×2 max-pool (stride 2, halves the width, rounding down); the head flattens the
last volume, applies dropout and one linear layer to class scores.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from dlcourse_tui.models.registry import register_model


def conv_output_size(width: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """(W − F + 2P) / S + 1, rounded down: the width of a convolution's output."""
    return (width - kernel + 2 * padding) // stride + 1


@register_model("cnn", task="classify", inputs=("image",), example_shape=(3, 32, 32),
                description="CNN: conv → ReLU → max-pool blocks, then a fully connected head")
class CNN(nn.Module):
    """[conv → (BN) → ReLU → max-pool] × len(channels) → flatten → dropout → Linear."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (3, 32, 32)
        num_classes: int = 10
        channels: tuple[int, ...] = (16, 32, 64, 128)  # filters in each conv block
        kernel_size: int = 3  # F
        padding: int | None = None  # P; None: kernel_size // 2 ("same" width for odd F at stride 1)
        stride: int = 1  # S of each convolution (the pools always halve)
        dropout: float = 0.0  # before the fully connected head
        batch_norm: bool = False  # BatchNorm2d between each conv and its ReLU

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            self.channels = tuple(int(c) for c in self.channels)
            if len(self.input_shape) != 3:
                raise ValueError(f"a CNN takes images (C, H, W), not inputs of shape {self.input_shape}")
            if not self.channels or min(self.channels) < 1:
                raise ValueError(f"channels={self.channels}: give at least one block with at least 1 filter")
            if self.kernel_size < 1 or self.stride < 1 or self.pad < 0:
                raise ValueError(f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}: "
                                 "need kernel_size ≥ 1, stride ≥ 1, padding ≥ 0")
            if not 0.0 <= self.dropout < 1.0:
                raise ValueError(f"dropout={self.dropout}: must be in [0, 1)")
            self.block_shapes()  # raises when the volume shrinks to nothing

        @property
        def pad(self) -> int:
            """P: the padding actually used."""
            return self.kernel_size // 2 if self.padding is None else int(self.padding)

        def block_shapes(self) -> list[tuple[int, int, int]]:
            """(C, H, W) after each block: conv by (W − F + 2P)/S + 1, then the pool halves."""
            _, h, w = self.input_shape
            shapes = []
            for n, c in enumerate(self.channels, start=1):
                ch = conv_output_size(h, self.kernel_size, self.pad, self.stride)
                cw = conv_output_size(w, self.kernel_size, self.pad, self.stride)
                h, w = ch // 2, cw // 2
                if h < 1 or w < 1:
                    raise ValueError(
                        f"block {n} gets a {ch}×{cw} volume from its convolution and pools it to nothing: "
                        f"the {self.input_shape[1]}×{self.input_shape[2]} input is too small for "
                        f"{len(self.channels)} blocks with kernel_size={self.kernel_size}, padding={self.pad}, "
                        f"stride={self.stride}; use fewer channels entries, padding or a smaller kernel")
                shapes.append((c, h, w))
            return shapes

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        blocks = []
        c_in = cfg.input_shape[0]
        for c_out in cfg.channels:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, cfg.kernel_size, stride=cfg.stride, padding=cfg.pad,
                                                 bias=not cfg.batch_norm)]
            if cfg.batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        c, h, w = cfg.block_shapes()[-1]
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c * h * w, cfg.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)  # (B, C_in, H, W) -> (B, C_out, H', W'), H' = ((H − F + 2P)/S + 1) // 2
        return self.head(self.drop(x.flatten(1)))  # (B, C·H'·W') -> (B, classes)

    def features(self, x: Tensor) -> Tensor:
        """h: the flattened last volume, what the head reads (the encoder's output when the
        CNN is pretrained without labels): (B, C, H, W) -> (B, C_last·H_last·W_last)."""
        for block in self.blocks:
            x = block(x)  # (B, C_k, H_k, W_k)
        return x.flatten(1)  # (B, C·H'·W')

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """The activations after each block (after its pool): [(B, C_k, H_k, W_k), ...]."""
        maps = []
        for block in self.blocks:
            x = block(x)  # (B, C_k, H_k, W_k)
            maps.append(x)
        return maps

    def first_layer_filters(self) -> Tensor:
        """The first convolution's weights, detached: (C_out, C_in, k, k)."""
        return self.blocks[0][0].weight.detach()  # (C_out, C_in, k, k)

