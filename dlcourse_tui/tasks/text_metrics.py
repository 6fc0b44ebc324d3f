"""Metrics of generated text, for every chapter-5 lesson that writes captions.

BLEU (Papineni et al. 2002, "BLEU: a Method for Automatic Evaluation of Machine
Translation"), at the corpus level and without smoothing:

    p_n  = Σ_hyp Σ_ngram min(count_hyp(g), max_ref count_ref(g)) / Σ_hyp (number of n-grams in hyp)
    BP   = 1 if c > r else exp(1 − r / c)      c: total hypothesis length, r: the total of, for
                                               each hypothesis, the reference length closest to it
    BLEU = BP · exp(Σ_{n=1..N} (1/N) log p_n)  (0 when any p_n is 0)

The counts are clipped per hypothesis (a word said twice where the reference says it once
counts once) and summed over the corpus before dividing; the mean of per-sentence BLEUs
would be another, noisier number. Pure Python, no torch: it only counts words.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    """How often each n-gram occurs in `words`."""
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def closest_length(references: Sequence[Sequence[str]], length: int) -> int:
    """The reference length closest to `length`, the shorter one on a tie (as sacrebleu, NLTK)."""
    return min((len(r) for r in references), key=lambda r: (abs(r - length), r))


def bleu_parts(hypotheses: list[list[str]], references: list[list[list[str]]],
               max_n: int = 4) -> tuple[list[int], list[int], int, int]:
    """The counts BLEU is made of: clipped matches and totals per order n = 1..max_n, the
    hypotheses' total length c and the effective reference length r."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists: give one list per hypothesis.")
    if max_n < 1:
        raise ValueError(f"max_n={max_n}: BLEU needs n-grams of order at least 1.")
    matches, totals = [0] * max_n, [0] * max_n
    c = r = 0
    for hyp, refs in zip(hypotheses, references):
        if not refs:
            raise ValueError("every hypothesis needs at least one reference.")
        c += len(hyp)
        r += closest_length(refs, len(hyp))
        for n in range(1, max_n + 1):
            counts = ngrams(hyp, n)
            most: Counter[tuple[str, ...]] = Counter()
            for ref in refs:
                most |= ngrams(ref, n)  # the largest count of each n-gram in any one reference
            matches[n - 1] += sum(min(k, most[g]) for g, k in counts.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
    return matches, totals, c, r


def corpus_bleu(hypotheses: list[list[str]], references: list[list[list[str]]], max_n: int = 4) -> float:
    """Corpus BLEU-max_n in [0, 1]: hypotheses are word lists, references one list of word
    lists per hypothesis. No smoothing: 0 when some order has no match at all."""
    matches, totals, c, r = bleu_parts(hypotheses, references, max_n)
    if c == 0 or min(matches) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    bp = 1.0 if c > r else math.exp(1.0 - r / c)
    return bp * math.exp(log_p)
