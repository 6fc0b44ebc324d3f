"""Generated sequence data for chapter 4, deterministic from a seed, vectorised in torch.

- memory (a long-memory task, many-to-one): T steps, each one of K symbols (one-hot), drawn
  at random. One of the first `key_window` steps carries a marker (an extra input channel set
  to 1); the label is the symbol at the marked step. Everything after it is noise of the same
  kind, so the network must keep one symbol for up to T steps while T − 1 others pass
  through the same hidden state. x (N, T, K + 1) float32, y (N,) int64; kind "sequence".
- reverse, sort (sequence to sequence): a source of S symbols drawn at random from V, and its
  reversal (or its sorted order) as the target. x (N, S) int64 and y (N, S) int64 token ids,
  id 0 being <bos>, the token a decoder starts from; kind "tokens".
"""

from __future__ import annotations

import string
from typing import Any

import torch
import torch.nn.functional as F

from dlcourse_tui.data.base import Dataset, Split
from dlcourse_tui.errors import UserError

SEQ2SEQ_OPS = ("reverse", "sort")
BOS = "<bos>"
MAX_SYMBOLS = 26


def symbol_names(n: int) -> tuple[str, ...]:
    """'a', 'b', … for n ≤ 26 symbols."""
    return tuple(string.ascii_lowercase[:n])


def _check(name: str, value: int, lo: int, hi: int, what: str) -> int:
    value = int(value)
    if not lo <= value <= hi:
        raise UserError(f"data.{name}={value} is out of range: {what} must be between {lo} and {hi}.")
    return value


def make_memory(n: int, *, seed: int, seq_len: int = 100, n_symbols: int = 8, key_window: int = 10) -> Split:
    """n sequences of seq_len one-hot symbols plus a marker channel; y = the marked symbol."""
    g = torch.Generator().manual_seed(int(seed))
    tokens = torch.randint(0, n_symbols, (n, seq_len), generator=g)  # (n, T)
    key_at = torch.randint(0, key_window, (n,), generator=g)  # (n,) where the marker is
    rows = torch.arange(n)
    x = torch.cat([F.one_hot(tokens, n_symbols).float(), torch.zeros(n, seq_len, 1)], dim=2)  # (n, T, K + 1)
    x[rows, key_at, n_symbols] = 1.0  # the marker channel
    return Split(x, tokens[rows, key_at].clone(), {"key_at": key_at})


def make_seq2seq(n: int, *, seed: int, op: str = "reverse", seq_len: int = 8, n_symbols: int = 10) -> Split:
    """n sources of seq_len symbols (ids 1 … n_symbols; 0 is <bos>) and their targets."""
    g = torch.Generator().manual_seed(int(seed))
    src = torch.randint(1, n_symbols + 1, (n, seq_len), generator=g)  # (n, S)
    tgt = src.flip(1) if op == "reverse" else src.sort(dim=1).values  # (n, S)
    return Split(src, tgt.contiguous())


def memory_dataset(*, n_train: int, n_val: int, seed: int, **kw: Any) -> Dataset:
    """The long-memory task as a Dataset (name "memory")."""
    T = _check("seq_len", kw.get("seq_len", 100), 2, 1000, "the sequence length")
    K = _check("n_symbols", kw.get("n_symbols", 8), 2, MAX_SYMBOLS, "the number of symbols")
    W = _check("key_window", kw.get("key_window", 10), 1, T, "the window the marked symbol falls in (at most seq_len)")
    s_train, s_val = _split_seeds(seed)
    return Dataset(name="memory", kind="sequence",
                   train=make_memory(n_train, seed=s_train, seq_len=T, n_symbols=K, key_window=W),
                   val=make_memory(n_val, seed=s_val, seq_len=T, n_symbols=K, key_window=W),
                   classes=symbol_names(K), input_shape=(T, K + 1))


def seq2seq_dataset(name: str, *, n_train: int, n_val: int, seed: int, **kw: Any) -> Dataset:
    """reverse or sort as a Dataset: classes are the vocabulary, <bos> first."""
    S = _check("seq_len", kw.get("seq_len", 8), 1, 64, "the sequence length")
    V = _check("n_symbols", kw.get("n_symbols", 10), 2, MAX_SYMBOLS, "the number of symbols")
    s_train, s_val = _split_seeds(seed)
    return Dataset(name=name, kind="tokens",
                   train=make_seq2seq(n_train, seed=s_train, op=name, seq_len=S, n_symbols=V),
                   val=make_seq2seq(n_val, seed=s_val, op=name, seq_len=S, n_symbols=V),
                   classes=(BOS, *symbol_names(V)), input_shape=(S,))


def _split_seeds(seed: int) -> tuple[int, int]:
    g = torch.Generator().manual_seed(int(seed))
    a, b = torch.randint(0, 2**62, (2,), generator=g).tolist()
    return a, b


def decode(ids: torch.Tensor, classes: tuple[str, ...]) -> str:
    """Token ids (T,) → 'a c b …'."""
    return " ".join(classes[i] for i in ids.tolist())
