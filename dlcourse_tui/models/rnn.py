"""Recurrent networks of chapter 4: the vanilla RNN, the LSTM and the GRU, cells written by
hand (Elman 1990, "Finding structure in time"; Hochreiter & Schmidhuber 1997, "Long
short-term memory"; Cho et al. 2014, "Learning phrase representations using RNN
encoder-decoder"), and a many-to-one classifier that reads a sequence step by step.

One hidden state h carries everything seen so far; each step mixes it with the new input:

    RNN    h_t = tanh(W [h_{t−1}; x_t] + b)              (W [h; x] = W_hh h + W_ih x)

Backpropagating through T steps multiplies T Jacobians ∂h_t/∂h_{t−1} = diag(1 − h_t²) W_hh,
so the gradient reaching early steps shrinks (or blows up) geometrically: what the loss
says about step 1 is lost by the time it gets there. The LSTM adds a cell state c updated
additively, through gates (σ the logistic function):

    i, f, g, o = σ(·), σ(·), tanh(·), σ(·) of W [h_{t−1}; x_t] + b    (PyTorch's order)
    c_t = f ⊙ c_{t−1} + i ⊙ g,    h_t = o ⊙ tanh(c_t)

and ∂c_t/∂c_{t−1} = f: with the forget gate near 1 the gradient passes unchanged. The GRU
merges cell and hidden state, with a reset gate r and an update gate z:

    r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),   h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

Each cell keeps two nn.Linear layers, `ih` (x → gates) and `hh` (h → gates), whose weights
are exactly PyTorch's weight_ih_l0 / weight_hh_l0 (and biases), gates stacked in PyTorch's
order: the tests copy nn.RNN, nn.LSTM and nn.GRU into these cells and compare outputs.

Initialisation: PyTorch's, U(−1/√H, 1/√H) for everything; with gate_init = "chrono" the
gated cells start out remembering (Tallec & Ollivier 2018, "Can recurrent neural networks
warp time?"): the LSTM's forget bias is log(u), u ~ U(1, T − 1), and its input bias −log(u),
the GRU's update bias log(u), so unit j forgets over about u_j steps. A vanilla RNN has no
gate to start that way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from dlcourse_tui.models.registry import register_model

CELLS = ("rnn", "lstm", "gru")
GATE_INITS = ("default", "chrono")

State = Tensor | tuple[Tensor, Tensor]  # h, or (h, c) for the LSTM


class RNNCell(nn.Module):
    """h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)."""

    gates = 1

    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.ih = nn.Linear(input_size, self.gates * hidden)  # W_ih, b_ih
        self.hh = nn.Linear(hidden, self.gates * hidden)  # W_hh, b_hh
        bound = 1 / math.sqrt(hidden)
        for p in self.parameters():  # PyTorch's RNN initialisation
            nn.init.uniform_(p, -bound, bound)

    def initial_state(self, batch: int, like: Tensor) -> State:
        return like.new_zeros(batch, self.hidden)  # (B, H)

    def hidden_of(self, state: State) -> Tensor:
        """The h part of a state (B, H)."""
        return state[0] if isinstance(state, tuple) else state

    def with_hidden(self, state: State, h: Tensor) -> State:
        """The state with its h replaced by `h` (a gradient probe adds zeros to it)."""
        return (h, state[1]) if isinstance(state, tuple) else h

    def forward(self, x: Tensor, state: State) -> State:
        """One step: x (B, D) and the previous state → the next state."""
        return self.step(self.ih(x), state)

    def step(self, gx: Tensor, state: State) -> State:
        """One step from gx = W_ih x_t + b_ih (B, gates·H), computed for all steps at once."""
        return torch.tanh(gx + self.hh(state))  # (B, H)


class LSTMCell(RNNCell):
    """Gates i, f, g, o (PyTorch's order); c_t = f ⊙ c_{t−1} + i ⊙ g, h_t = o ⊙ tanh(c_t)."""

    gates = 4

    def initial_state(self, batch: int, like: Tensor) -> State:
        return like.new_zeros(batch, self.hidden), like.new_zeros(batch, self.hidden)  # (B, H), (B, H)

    def step(self, gx: Tensor, state: State) -> State:
        h, c = state  # (B, H), (B, H)
        z = gx + self.hh(h)  # (B, 4H): the pre-activations of i, f, g, o side by side
        i, f, _, o = torch.sigmoid(z).chunk(4, dim=1)  # 4 × (B, H) (one sigmoid for all; g's is unused)
        g = torch.tanh(z[:, 2 * self.hidden:3 * self.hidden])  # (B, H) candidate
        c = f * c + i * g  # (B, H) the additive update
        h = o * torch.tanh(c)  # (B, H)
        return h, c

    @torch.no_grad()
    def chrono_init(self, t_max: int, generator: torch.Generator | None = None) -> None:
        """Forget bias log(u), input bias −log(u), u ~ U(1, t_max − 1) (Tallec & Ollivier 2018)."""
        H = self.hidden
        b_f = torch.log(1 + torch.rand(H, generator=generator) * max(t_max - 2, 1))  # (H,)
        self.ih.bias[:H] = -b_f  # input gate i
        self.ih.bias[H:2 * H] = b_f  # forget gate f
        self.hh.bias[:2 * H] = 0.0


class GRUCell(RNNCell):
    """Gates r, z, n (PyTorch's order); n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),
    h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}."""

    gates = 3

    def step(self, gx: Tensor, state: State) -> State:
        h = state  # (B, H)
        gh = self.hh(h)  # (B, 3H)
        H2 = 2 * self.hidden
        r, z = torch.sigmoid(gx[:, :H2] + gh[:, :H2]).chunk(2, dim=1)  # reset and update gates, (B, H) each
        n = torch.tanh(gx[:, H2:] + r * gh[:, H2:])  # (B, H) candidate: r scales W_hn h + b_hn
        return n + z * (h - n)  # (B, H) = (1 − z) ⊙ n + z ⊙ h

    @torch.no_grad()
    def chrono_init(self, t_max: int, generator: torch.Generator | None = None) -> None:
        """Update-gate bias log(u), u ~ U(1, t_max − 1): z = σ(log u) keeps h for about u steps."""
        H = self.hidden
        self.ih.bias[H:2 * H] = torch.log(1 + torch.rand(H, generator=generator) * max(t_max - 2, 1))
        self.hh.bias[H:2 * H] = 0.0


CELL_CLASSES: dict[str, type[RNNCell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


class Recurrent(nn.Module):
    """A stack of cells run over a sequence, like nn.RNN / nn.LSTM / nn.GRU with
    batch_first=True: layer l reads the hidden states of layer l − 1."""

    def __init__(self, cell: str, input_size: int, hidden: int, layers: int = 1) -> None:
        super().__init__()
        if cell not in CELL_CLASSES:
            raise ValueError(f"cell={cell!r}: choose one of {', '.join(CELLS)}.")
        self.cell_type = cell
        self.cells = nn.ModuleList(CELL_CLASSES[cell](input_size if l == 0 else hidden, hidden) for l in range(layers))

    def forward(self, x: Tensor, state: list[State] | None = None, *,
                probe: Tensor | None = None) -> tuple[Tensor, list[State]]:
        """x (B, T, D) → the last layer's h at every step (B, T, H) and each layer's final state.

        `probe` (B, T, H), zeros, is added to the first layer's h_t at each step: the forward
        pass is unchanged and probe.grad becomes ∂L/∂h_t, the gradient that reaches step t."""
        B, T, _ = x.shape
        states = list(state) if state is not None else [c.initial_state(B, x) for c in self.cells]
        inputs = x  # (B, T, D)
        probes = probe.unbind(1) if probe is not None else None  # T × (B, H); unbind, not [:, t]: one backward
        for l, cell in enumerate(self.cells):
            s = states[l]
            gx = cell.ih(inputs).unbind(1)  # T × (B, gates·H): the input's part of every step in one product
            outs = []
            for t in range(T):
                s = cell.step(gx[t], s)  # (B, H) or ((B, H), (B, H))
                if probes is not None and l == 0:
                    s = cell.with_hidden(s, cell.hidden_of(s) + probes[t])
                outs.append(cell.hidden_of(s))
            states[l] = s
            inputs = torch.stack(outs, dim=1)  # (B, T, H)
        return inputs, states

    @torch.no_grad()
    def load_torch(self, module: nn.RNNBase) -> "Recurrent":
        """Copy an nn.RNN / nn.LSTM / nn.GRU (batch_first, unidirectional, tanh) into these cells."""
        for l, cell in enumerate(self.cells):
            cell.ih.weight.copy_(getattr(module, f"weight_ih_l{l}"))
            cell.hh.weight.copy_(getattr(module, f"weight_hh_l{l}"))
            cell.ih.bias.copy_(getattr(module, f"bias_ih_l{l}"))
            cell.hh.bias.copy_(getattr(module, f"bias_hh_l{l}"))
        return self


def sequence_shape(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(T, D) of an input: (T, D) as it is; an image (C, H, W) read row by row, T = H, D = C·W."""
    if len(input_shape) == 2:
        return int(input_shape[0]), int(input_shape[1])
    if len(input_shape) == 3:
        c, h, w = input_shape
        return int(h), int(c * w)
    raise ValueError(f"a recurrent network reads sequences (T, D) or images (C, H, W), not inputs of shape {input_shape}.")


def as_sequence(x: Tensor) -> Tensor:
    """(B, T, D) as it is; images (B, C, H, W) → (B, H, C·W): one row of pixels per step."""
    if x.dim() == 4:
        B, C, H, W = x.shape
        return x.permute(0, 2, 1, 3).reshape(B, H, C * W)  # (B, T = H, D = C·W)
    return x  # (B, T, D)


class RecurrentClassifier(nn.Module):
    """Many-to-one: read x_1 … x_T, classify from the last hidden state, s = W_y h_T + b_y."""

    cell_type: ClassVar[str] = "rnn"

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (28, 28)  # (T, D), or an image (C, H, W) read row by row
        num_classes: int = 10
        hidden: int = 128  # H: size of the hidden state
        layers: int = 1  # stacked recurrent layers
        gate_init: str = "default"  # "chrono": gated cells start out remembering (no effect on rnn)

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            sequence_shape(self.input_shape)
            if self.hidden < 1:
                raise ValueError(f"hidden={self.hidden}: the hidden state needs at least 1 unit.")
            if self.layers < 1:
                raise ValueError(f"layers={self.layers}: give at least 1 recurrent layer.")
            if self.gate_init not in GATE_INITS:
                raise ValueError(f"gate_init={self.gate_init!r}: choose one of {', '.join(GATE_INITS)}.")

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        T, D = sequence_shape(cfg.input_shape)
        self.rnn = Recurrent(self.cell_type, D, cfg.hidden, cfg.layers)
        self.head = nn.Linear(cfg.hidden, cfg.num_classes)
        if cfg.gate_init == "chrono" and self.cell_type != "rnn":
            g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ())))  # from the run's seed
            for cell in self.rnn.cells:
                cell.chrono_init(T, g)  # type: ignore[operator]

    def forward(self, x: Tensor, *, probe: Tensor | None = None) -> Tensor:
        hs, _ = self.rnn(as_sequence(x), probe=probe)  # (B, T, H)
        return self.head(hs[:, -1])  # (B, classes) from h_T alone

    def hidden_states(self, x: Tensor) -> Tensor:
        """The last layer's h_t at every step: (B, T, H)."""
        return self.rnn(as_sequence(x))[0]  # (B, T, H)

    def step_gradients(self, x: Tensor, loss_fn) -> Tensor:
        """‖∂L/∂h_t‖ for t = 1 … T (first layer), mean over the batch: (T,). L = loss_fn(logits)."""
        seq = as_sequence(x)  # (B, T, D)
        probe = seq.new_zeros(seq.shape[0], seq.shape[1], self.cfg.hidden, requires_grad=True)  # (B, T, H)
        with torch.enable_grad():
            loss = loss_fn(self(seq, probe=probe))
            (grad,) = torch.autograd.grad(loss, probe)  # (B, T, H)
        return grad.norm(dim=2).mean(dim=0)  # (T,)


@register_model("rnn", task="sequence", inputs=("sequence", "image"), example_shape=(28, 28),
                description="vanilla RNN, h_t = tanh(W_hh h_{t−1} + W_ih x_t + b), classifies from the last h")
class RNNClassifier(RecurrentClassifier):
    cell_type = "rnn"


@register_model("lstm", task="sequence", inputs=("sequence", "image"), example_shape=(28, 28),
                description="LSTM: input, forget and output gates around an additive cell state")
class LSTMClassifier(RecurrentClassifier):
    cell_type = "lstm"


@register_model("gru", task="sequence", inputs=("sequence", "image"), example_shape=(28, 28),
                description="GRU: reset and update gates, one state; fewer parameters than the LSTM")
class GRUClassifier(RecurrentClassifier):
    cell_type = "gru"
