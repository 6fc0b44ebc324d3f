"""A word-level vocabulary built from captions, for every chapter-5 lesson that reads or writes text.

Chapter 5 trains its own small language models on `scenes` captions, so its tokeniser is
the simplest one that works: a caption is split into words ("," is a word of its own, as in
data/scenes.py), and every distinct word of the training captions gets an id after the
three special tokens

    0 <pad>   fills a sequence up to its length (attention masks leave it out)
    1 <bos>   starts every sequence; a decoder generates from it
    2 <eos>   ends a caption; generation stops there

in order of frequency (most frequent first, ties alphabetical), so the ids depend only on
the captions. A run saves its vocabulary with its checkpoint (`to_list` / `from_list`), so
a prompt typed later is encoded as the model was trained. A word the vocabulary does not
hold is not mapped to an <unk> token: it is refused in one sentence naming it, because a
learner who types "a photo of a dog" to a model that never read "photo" should be told so.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from dlcourse_tui.errors import UserError, suggest

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS: tuple[str, ...] = (PAD, BOS, EOS)
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2

_WORD = re.compile(r",|[^\s,]+")


def split_words(text: str) -> list[str]:
    """'A red circle, a …' → ['a', 'red', 'circle', ',', 'a', …] (lower case)."""
    return _WORD.findall(text.lower())


class Vocabulary:
    """Words ↔ ids: the special tokens first, then the words of the captions it was built from."""

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if words[:len(SPECIALS)] != list(SPECIALS):
            words = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        if len(set(words)) != len(words):
            raise ValueError("a vocabulary lists each word once")
        self.words: tuple[str, ...] = tuple(words)
        self._id = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], extra: Iterable[str] = ()) -> "Vocabulary":
        """Every word of `texts` (and `extra`, e.g. a prompt template's), most frequent first."""
        counts = Counter(w for t in texts for w in split_words(t))
        for w in extra:
            counts.setdefault(w, 0)
        ordered = sorted((w for w in counts if w not in SPECIALS), key=lambda w: (-counts[w], w))
        return cls(list(SPECIALS) + ordered)

    # -- saving with a run ---------------------------------------------------------------
    def to_list(self) -> list[str]:
        """The words in id order: what a checkpoint stores (plain strings load with weights_only)."""
        return list(self.words)

    @classmethod
    def from_list(cls, words: Sequence[str]) -> "Vocabulary":
        return cls(words)

    # -- encoding --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._id

    def id(self, word: str) -> int:
        """The id of one word; UserError when the vocabulary does not hold it."""
        if word not in self._id:
            self.check(word)
        return self._id[word]

    def unknown(self, text: str) -> list[str]:
        """The words of `text` this vocabulary does not hold, in order, each once."""
        return list(dict.fromkeys(w for w in split_words(text) if w not in self._id or w in SPECIALS))

    def check(self, text: str, what: str = "the text") -> None:
        """UserError naming every word of `text` the model never read, and the closest it knows."""
        missing = self.unknown(text)
        if not missing:
            return
        known = [w for w in self.words if w not in SPECIALS]
        hint = next((h for h in (suggest(w, known, n=1) for w in missing) if h), "")
        listed = ", ".join(repr(w) for w in missing)
        words = [w for w in known if w.isalpha()]  # "," is a word here, but not one to list after commas
        some = ", ".join(words[:12]) + (", …" if len(words) > 12 else "")
        raise UserError(f"{what} {text!r} uses {listed}, which the model's vocabulary of {len(known)} words "
                        f"(built from its training captions) does not hold.{hint} Use only words such as: {some}.")

    def encode(self, text: str, *, bos: bool = True, eos: bool = True, what: str = "the text") -> list[int]:
        """'a red circle' → [<bos>, a, red, circle, <eos>] as ids; UserError on an unknown word."""
        self.check(text, what)
        ids = [self._id[w] for w in split_words(text)]
        return ([BOS_ID] if bos else []) + ids + ([EOS_ID] if eos else [])

    def encode_batch(self, texts: Sequence[str], length: int | None = None, *, bos: bool = True,
                     eos: bool = True, what: str = "the text") -> Tensor:
        """Texts as ids (N, L) int64, padded with <pad> (0) to `length` (default: the longest).
        ValueError when one does not fit in `length`."""
        rows = [self.encode(t, bos=bos, eos=eos, what=what) for t in texts]
        L = max((len(r) for r in rows), default=0) if length is None else length
        out = torch.full((len(rows), L), PAD_ID, dtype=torch.int64)  # (N, L)
        for i, r in enumerate(rows):
            if len(r) > L:
                raise ValueError(f"text {i} needs {len(r)} tokens, more than length={L}")
            out[i, :len(r)] = torch.tensor(r, dtype=torch.int64)
        return out

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """Ids back to text, up to the first <eos> (<bos> and <pad> dropped); ', ' rejoined."""
        words: list[str] = []
        for i in (ids.tolist() if isinstance(ids, Tensor) else ids):
            word = self.words[int(i)]
            if word == EOS:
                break
            if word not in SPECIALS:
                words.append(word)
        return " ".join(words).replace(" ,", ",")

    def decode_words(self, ids: Tensor | Sequence[int]) -> list[str]:
        """Ids back to words, up to the first <eos> (for BLEU, which counts words)."""
        return split_words(self.decode(ids))
