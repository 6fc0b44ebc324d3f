"""Parameter-efficient fine-tuning: the parts that adapt a frozen transformer to a new task,
written once so that chapter 5's lessons can reuse them (the LoRA layer wraps any nn.Linear,
the adapter fits any block's adapter slots, the prompts any stack's before_block hook).

- LoRA (Hu et al. 2021, "LoRA: Low-rank adaptation of large language models"): a frozen
  weight W₀ ∈ R^{out × in} plus a trainable low-rank update,

      h = W₀ x + b + (α / r) · B A x,   A ∈ R^{r × in} (small random), B ∈ R^{out × r} (zeros)

  so at step 0 the layer is exactly the frozen one; after training, W = W₀ + (α / r) B A is
  merged into one matrix and inference costs nothing extra.
- Adapters (Houlsby et al. 2019; VL-Adapter, Sung et al. 2022): a bottleneck MLP on a
  sublayer's output before the residual sum, h ← h + W_up GELU(W_down h), W_up starting at
  zero so that the block starts as the frozen one.
- Visual prompt tuning (Jia et al. 2022): n trainable tokens P put after [CLS]. Shallow: once,
  before the first block, [x_1, Z_1, E_1] = L_1([x_0, P, E_0]), the later layers carrying
  the prompts' outputs Z_i on; deep: new prompts at every block, [x_i, _, E_i] =
  L_i([x_{i−1}, P_{i−1}, E_{i−1}]), the previous block's prompt outputs thrown away.

`PEFTViT` is the course's ViT with those parts put in by `adapt(model, method, ...)`,
which also freezes everything but them and the new head.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.models.attention import MultiHeadAttention
from dlcourse_tui.models.registry import register_model
from dlcourse_tui.models.transformer import TransformerBlock
from dlcourse_tui.models.vit import ViT

METHODS = ("full", "probe", "adapter", "vpt_shallow", "vpt_deep", "lora")
PROJECTIONS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "out_proj"}  # LoRA targets by letter


# ---------------------------------------------------------------------------- LoRA


def lora_linear(x: Tensor, weight: Tensor, bias: Tensor | None, A: Tensor, B: Tensor, alpha: float) -> Tensor:
    """h = x W₀ᵀ + b + (α / r) · x Aᵀ Bᵀ: x (..., in), W₀ (out, in), A (r, in), B (out, r) → (..., out)."""
    r = A.shape[0]
    return F.linear(x, weight, bias) + (alpha / r) * F.linear(F.linear(x, A), B)  # (..., out)


def merge_lora(weight: Tensor, A: Tensor, B: Tensor, alpha: float) -> Tensor:
    """W = W₀ + (α / r) · B A: (out, in), the one matrix that replaces the LoRA layer at inference."""
    return weight + (alpha / A.shape[0]) * (B @ A)  # (out, in)


class LoRALinear(nn.Linear):
    """An nn.Linear whose weight W₀ and bias are frozen, plus the trainable pair A (r, in), B (out, r).

    A subclass of nn.Linear, so its weight and bias keep their names in a state dict (a
    plain model's weights load into it as they are) and `merged()` gives back a plain
    nn.Linear with W₀ + (α / r) B A."""

    def __init__(self, in_features: int, out_features: int, *, rank: int, alpha: float, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        if rank < 1:
            raise ValueError(f"rank={rank}: LoRA needs a rank of at least 1.")
        self.rank, self.alpha = rank, float(alpha)
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))  # A: small random, as in the paper
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))  # B = 0: BA = 0 at step 0
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)

    @classmethod
    def wrap(cls, base: nn.Linear, *, rank: int, alpha: float) -> "LoRALinear":
        """A LoRA layer around `base`'s weight and bias (the same tensors, frozen)."""
        layer = cls(base.in_features, base.out_features, rank=rank, alpha=alpha, bias=base.bias is not None)
        layer.to(base.weight.device)
        with torch.no_grad():
            layer.weight.copy_(base.weight)
            if base.bias is not None:
                layer.bias.copy_(base.bias)
        return layer

    def forward(self, x: Tensor) -> Tensor:
        return lora_linear(x, self.weight, self.bias, self.lora_A, self.lora_B, self.alpha)  # (..., out)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain nn.Linear computing the same function: W = W₀ + (α / r) B A."""
        out = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None).to(self.weight.device)
        out.weight.copy_(merge_lora(self.weight, self.lora_A, self.lora_B, self.alpha))
        if self.bias is not None:
            out.bias.copy_(self.bias)
        return out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, alpha={self.alpha:g}"


def add_lora(model: nn.Module, *, rank: int, alpha: float, targets: str = "qv") -> list[LoRALinear]:
    """Wrap the projections `targets` names ("qv": W^Q and W^V, as in the LoRA paper; any of
    q, k, v, o) of every MultiHeadAttention in `model` with LoRA, in place."""
    layers = []
    for mha in [m for m in model.modules() if isinstance(m, MultiHeadAttention)]:
        for letter in targets:
            name = PROJECTIONS[letter]
            layer = LoRALinear.wrap(getattr(mha, name), rank=rank, alpha=alpha)
            setattr(mha, name, layer)
            layers.append(layer)
    return layers


def merge_all_lora(model: nn.Module) -> nn.Module:
    """A copy of `model` with every LoRA layer merged into a plain nn.Linear (no extra cost at inference)."""
    out = copy.deepcopy(model)
    for module in list(out.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, name, child.merged())
    return out


# ---------------------------------------------------------------------------- adapters


class Adapter(nn.Module):
    """Houlsby's bottleneck adapter: h + W_up GELU(W_down h), d → m → d; W_up = 0 at the start."""

    def __init__(self, d_model: int, bottleneck: int) -> None:
        super().__init__()
        if bottleneck < 1:
            raise ValueError(f"adapter_dim={bottleneck}: the bottleneck needs at least 1 unit.")
        self.down = nn.Linear(d_model, bottleneck)  # W_down (m, d)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, d_model)  # W_up (d, m), zero: the adapter starts as the identity
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.up(self.act(self.down(h)))  # (B, T, d)


def add_adapters(model: nn.Module, bottleneck: int) -> list[Adapter]:
    """An adapter in the attention and MLP slots of every TransformerBlock of `model`, in place."""
    adapters = []
    for block in [m for m in model.modules() if isinstance(m, TransformerBlock)]:
        d = block.norm1.normalized_shape[0]
        block.adapter_attn, block.adapter_mlp = Adapter(d, bottleneck), Adapter(d, bottleneck)
        adapters += [block.adapter_attn, block.adapter_mlp]
    return adapters


# ---------------------------------------------------------------------------- prompts


class Prompts(nn.Module):
    """n trainable prompt tokens for one block (shallow) or for each of L blocks (deep), (L, n, d).

    `insert` puts P_0 after [CLS] before the first block; `before_block(i, x)` (the stack's
    hook) puts P_i in the prompts' rows before block i ≥ 1 when deep, and leaves x alone
    when shallow."""

    def __init__(self, n: int, d_model: int, *, layers: int, deep: bool, patch_dim: int) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f"prompts={n}: prompt tuning needs at least 1 prompt token.")
        self.n, self.deep = n, deep
        bound = math.sqrt(6.0 / (patch_dim + d_model))  # Xavier-uniform over the patch embedding's fan (VPT)
        self.tokens = nn.Parameter(torch.empty(layers if deep else 1, n, d_model).uniform_(-bound, bound))  # (L, n, d)

    def insert(self, z: Tensor) -> Tensor:
        """z_0 (B, 1 + P, d), [CLS] first → (B, 1 + n + P, d): [x_cls, P_0, E_0]."""
        p = self.tokens[0].expand(z.shape[0], -1, -1)  # (B, n, d)
        return torch.cat([z[:, :1], p, z[:, 1:]], dim=1)

    def before_block(self, i: int, x: Tensor) -> Tensor:
        """Deep: [x_{i−1}, P_{i−1}, E_{i−1}], the prompts' rows replaced; shallow: x as it is."""
        if not self.deep or i == 0:
            return x
        p = self.tokens[i].expand(x.shape[0], -1, -1)  # (B, n, d)
        return torch.cat([x[:, :1], p, x[:, 1 + self.n:]], dim=1)  # (B, 1 + n + P, d)


# ---------------------------------------------------------------------------- the adapted ViT


@register_model("peft_vit", task="peft", inputs=("image",), example_shape=(3, 32, 32),
                description="the course's ViT with LoRA, adapters or visual prompts put in, the rest frozen")
class PEFTViT(ViT):
    """The ViT of chapter 4 (same parameters, same names), plus whatever `adapt` put in:
    LoRA layers in its attention, adapters in its blocks' slots, or prompt tokens."""

    Config = ViT.Config

    def __init__(self, cfg: ViT.Config) -> None:
        super().__init__(cfg)
        self.prompts: Prompts | None = None
        self.method = "full"

    def forward(self, x: Tensor) -> Tensor:
        if self.prompts is None:
            return super().forward(x)
        z = self.prompts.insert(self.tokens(x))  # (B, 1 + n + P, d)
        z, _ = self.encoder(z, self.prompted_bias(), before_block=self.prompts.before_block)  # (B, 1 + n + P, d)
        return self.head(z[:, 0])  # (B, classes) from the [CLS] row

    def prompted_bias(self) -> Tensor | None:
        """The locality bias with zero rows and columns for the prompts: (1, h, 1 + n + P, 1 + n + P)."""
        bias = self.attention_bias()  # (1, h, 1 + P, 1 + P) or None
        if bias is None or self.prompts is None:
            return bias
        n = self.prompts.n
        bias = torch.cat([bias[..., :1, :], bias.new_zeros(*bias.shape[:2], n, bias.shape[-1]), bias[..., 1:, :]], dim=2)
        return torch.cat([bias[..., :1], bias.new_zeros(*bias.shape[:3], n), bias[..., 1:]], dim=3)

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """Every layer's weights among [CLS] and the patches, [(B, heads, 1 + P, 1 + P), ...]: with
        prompts, their rows and columns left out (so a row sums to what it gave [CLS] and the patches)."""
        if self.prompts is None:
            return super().attention_maps(x)
        n = self.prompts.n
        z = self.prompts.insert(self.tokens(x))  # (B, 1 + n + P, d)
        _, maps = self.encoder(z, self.prompted_bias(), need_weights=True, before_block=self.prompts.before_block)
        keep = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(1 + n, z.shape[1])]).to(x.device)  # (1 + P,)
        return [m["self"][:, :, keep][..., keep] for m in maps]


@dataclass(frozen=True)
class Method:
    """One way to adapt the ViT, with its own settings (the others' are ignored)."""

    name: str = "lora"  # one of METHODS
    rank: int = 4  # LoRA's r
    alpha: float = 8.0  # LoRA's α: the update is scaled by α / r
    targets: str = "qv"  # LoRA on W^Q and W^V (letters of q, k, v, o)
    adapter_dim: int = 8  # the adapters' bottleneck m
    prompts: int = 8  # VPT's prompt tokens per layer

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise ValueError(f"method={self.name!r} is not a method; pick one of {', '.join(METHODS)}.")
        for key, value in (("rank", self.rank), ("adapter_dim", self.adapter_dim), ("prompts", self.prompts)):
            if int(value) != value or value < 1:
                raise ValueError(f"{key}={value!r} must be a whole number of at least 1.")
        if not self.alpha > 0:
            raise ValueError(f"alpha={self.alpha!r} must be positive: the update is scaled by α / r.")
        bad = sorted(set(self.targets) - set(PROJECTIONS)) or ([] if self.targets else ["(none)"])
        if bad or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"lora_targets={self.targets!r}: give each of q, k, v, o at most once, e.g. \"qv\" or \"qkvo\".")


def adapt(model: PEFTViT, method: Method) -> PEFTViT:
    """Put `method`'s parts into `model` and freeze all else but the head, in place: full
    trains everything, probe the head alone, the others their new parts and the head."""
    model.method = method.name
    if method.name == "full":
        return model
    for p in model.parameters():
        p.requires_grad_(False)
    if method.name == "lora":
        add_lora(model, rank=method.rank, alpha=method.alpha, targets=method.targets)
    elif method.name == "adapter":
        add_adapters(model, method.adapter_dim)
    elif method.name in ("vpt_shallow", "vpt_deep"):
        patch_dim = model.patch_embed.in_features
        model.prompts = Prompts(method.prompts, model.cfg.d_model, layers=model.cfg.layers,
                                deep=method.name == "vpt_deep", patch_dim=patch_dim).to(model.head.weight.device)
    for p in model.head.parameters():
        p.requires_grad_(True)
    return model


def trainable(model: nn.Module) -> int:
    """Parameters the optimiser updates."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
