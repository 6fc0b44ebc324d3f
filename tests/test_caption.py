"""Image captioning (lesson 16): BLEU against torchmetrics and by hand, the captioner's causal
decoder, greedy decoding against beam search, the tags it is fed, a tiny run that learns,
and words outside the vocabulary refused in one sentence."""

from __future__ import annotations

import math
import random

import pytest
import torch

from dlcourse_tui.engine.session import prepare_run
from dlcourse_tui.errors import UserError
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.models.caption import EOS_ID, PAD_ID
from dlcourse_tui.models.registry import create_model
from dlcourse_tui.tasks.text_metrics import corpus_bleu

TINY_MODEL = {"d_model": 32, "heads": 2, "encoder_layers": 1, "decoder_layers": 1}


# ---------------------------------------------------------------------------- BLEU


def test_bleu_by_hand() -> None:
    """One word wrong of seven: p_n = 6/7, 5/6, 4/5, 3/4, same length; a short hypothesis pays
    the brevity penalty exp(1 − r/c); no 4-gram in common and no smoothing gives 0."""
    ref = [["a red circle at the top right".split()]]
    assert corpus_bleu(["a red circle at the top left".split()], ref) == pytest.approx((3 / 7) ** 0.25, abs=1e-12)
    assert corpus_bleu(["a red circle".split()], ref, max_n=2) == pytest.approx(math.exp(1 - 7 / 3), abs=1e-12)
    assert corpus_bleu(["a red circle".split()], ref) == 0.0
    # clipping: "the" said four times where the reference has it once counts once
    assert corpus_bleu([["the"] * 4], [[["the", "cat"]]], max_n=1) == pytest.approx(1 / 4)


def test_bleu_equals_torchmetrics_on_random_corpora() -> None:
    from torchmetrics.text import BLEUScore

    rng = random.Random(0)
    words = "a an red blue circle square at the top left right and , above below".split()
    for trial in range(20):
        hyps, refs = [], []
        for _ in range(rng.randint(1, 12)):
            hyps.append([rng.choice(words) for _ in range(rng.randint(1, 14))])
            # reference lengths with one closest to the hypothesis's (tools break ties differently)
            c = len(hyps[-1])
            lengths = [n for n in rng.sample(range(1, 16), rng.randint(1, 3)) if n >= c] or [c + 1]
            refs.append([[rng.choice(words[:6]) if rng.random() < 0.5 else w
                          for w in (hyps[-1] * 3)[:n]] for n in lengths])
        for n in (1, 2, 4):
            want = float(BLEUScore(n_gram=n)([" ".join(h) for h in hyps], [[" ".join(r) for r in rs] for rs in refs]))
            assert corpus_bleu(hyps, refs, max_n=n) == pytest.approx(want, abs=1e-6), (trial, n)


# ---------------------------------------------------------------------------- the model


def tiny_captioner(**kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("captioner", input_shape=(3, 64, 64), num_classes=20, args={**TINY_MODEL, **kwargs}).eval()


@pytest.mark.parametrize("stem", ["linear", "conv"])
def test_teacher_forcing_shapes_and_no_look_ahead(stem) -> None:
    """Logits (B, T, vocab); changing the input word at position j leaves every earlier
    position's logits as they were (the causal mask) and changes position j's."""
    model = tiny_captioner(stem=stem)
    x, ids = torch.randn(3, 3, 64, 64), torch.randint(3, 20, (3, 9))
    memory, _, _ = model.encode(x)
    assert memory.shape == (3, 1 + 16, 32)  # [CLS] and the 4×4 patches of 16 pixels
    logits = model(x, ids)
    assert logits.shape == (3, 9, 20)
    for j in (2, 5, 8):
        changed = ids.clone()
        changed[:, j] = (changed[:, j] - 2) % 17 + 3  # another word
        again = model(x, changed)
        torch.testing.assert_close(again[:, :j], logits[:, :j], rtol=0, atol=1e-6)
        assert (again[:, j] - logits[:, j]).abs().max() > 1e-4


class ScriptedDecoder:
    """A stand-in for the captioner's decoder: row b's next-word logits at step t are a fixed
    random table's, with <eos> made the best at step ends[b] (never for ends[b] < 0); the row
    is read from memory[:, 0, 0], which beam search repeats with its beams."""

    def __init__(self, ends: list[int], vocab: int = 9, steps: int = 10) -> None:
        g = torch.Generator().manual_seed(0)
        self.table = torch.randn(len(ends), steps + 1, vocab, generator=g)  # (B, T, V)
        self.table[:, :, :EOS_ID + 1] = -5.0  # never <pad>, <bos> or <eos> but where scripted
        for b, t in enumerate(ends):
            if t >= 0:
                self.table[b, t, EOS_ID] = 5.0

    def decode(self, seq, memory, keep):
        rows = memory[:, 0, 0].long()  # (B·k,)
        return self.table[rows, :seq.shape[1]], []  # (B·k, t, V)


def test_greedy_decoding_is_beam_search_with_one_beam() -> None:
    from dlcourse_tui.models.caption import BOS_ID, beam_decode, greedy_decode

    model = tiny_captioner()
    x = torch.randn(6, 3, 64, 64)
    torch.testing.assert_close(model.generate(x, max_len=12, beam=1), model.generate(x, max_len=12))
    memory, keep, _ = model.encode(x)
    start = torch.full((6, 1), BOS_ID)
    assert torch.equal(beam_decode(model, start, memory, keep, 12, beam=1), greedy_decode(model, start, memory, keep, 12))

    ends = [0, 3, -1, 1, 5]  # the step at which each row says <eos>; row 2 never does
    stub, memory = ScriptedDecoder(ends), torch.arange(5.0)[:, None, None]
    start = torch.full((5, 1), BOS_ID)
    greedy = greedy_decode(stub, start, memory, None, 8)  # (5, 1 + ≤ 8)
    assert torch.equal(beam_decode(stub, start, memory, None, 8, beam=1), greedy)
    assert greedy.shape == (5, 9)  # row 2 runs to the end
    for row, end in zip(greedy[:, 1:], ends):
        if end >= 0:
            assert row[end] == EOS_ID and (row[end + 1:] == PAD_ID).all() and (row[:end] > EOS_ID).all()
        else:
            assert (row > EOS_ID).all()
    beams = beam_decode(stub, start, memory, None, 8, beam=3)
    assert beams.shape == (5, 9) and (beams[:, 1:] == EOS_ID).sum(1).tolist() == [int(e >= 0) for e in ends]


def sequence_logp(model, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Log-probability of each generated caption (B,), up to and including its <eos>."""
    from dlcourse_tui.models.caption import BOS_ID

    seq = torch.cat([torch.full_like(out[:, :1], BOS_ID), out], dim=1)
    logp = torch.log_softmax(model(x, seq[:, :-1]), dim=-1).gather(2, seq[:, 1:, None])[..., 0]  # (B, T)
    real = torch.cumsum((seq[:, :-1] == EOS_ID).long(), dim=1) == 0  # positions before an <eos> was read
    return (logp * real).sum(dim=1)


def test_beam_search_finds_captions_at_least_as_likely_as_greedy_on_average() -> None:
    model = tiny_captioner()
    with torch.no_grad():
        model.head.bias[EOS_ID] += 1.5
        x = torch.randn(8, 3, 64, 64)
        greedy, beam = model.generate(x, max_len=10, beam=1), model.generate(x, max_len=10, beam=5)
        n = max(greedy.shape[1], beam.shape[1])
        pad = lambda t: torch.nn.functional.pad(t, (0, n - t.shape[1]), value=PAD_ID)  # noqa: E731
        g, b = sequence_logp(model, x, pad(greedy)), sequence_logp(model, x, pad(beam))
    assert b.mean() >= g.mean() - 1e-5


def test_the_tags_are_fed_to_the_model() -> None:
    """Other tags, other logits; padded tag slots are masked out exactly (as if absent);
    without the tags option the model has no tag parameters at all."""
    model = tiny_captioner(tags=True)
    x, ids = torch.randn(2, 3, 64, 64), torch.randint(3, 20, (2, 7))
    a = model(x, ids, torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]]))
    b = model(x, ids, torch.tensor([[5, 9, 0, 0], [8, 0, 0, 0]]))
    assert (a - b).abs().amax(dim=(1, 2)).min() > 1e-4  # both images' captions change
    padded = model(x, ids, torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]]))
    torch.testing.assert_close(padded[0], model(x[:1], ids[:1], torch.tensor([[5, 6]]))[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(padded[1], model(x[1:], ids[1:], torch.tensor([[7]]))[0], rtol=0, atol=1e-5)
    memory, keep, _ = model.encode(x, torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]]))
    assert memory.shape == (2, 1 + 16 + 4, 32) and keep[:, 0, 0].sum(1).tolist() == [19, 18]
    assert not any("tag" in name for name, _ in tiny_captioner().named_parameters())


# ---------------------------------------------------------------------------- the task


def lesson_config(*sets: str, variant: str = "", epochs: int = 1):
    tiny = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
    return find_lesson("image-captioning").config(
        variant=variant, sets=["n_val=16", "batch_size=32", "log_every=1", "threads=1", *tiny, *sets],
        overrides={"train.epochs": epochs})


def test_a_tiny_run_learns_over_seeds() -> None:
    """300 scenes of 32×32 pixels (4-pixel patches), 2 epochs of a one-block captioner through the task's own batches and steps:
    the teacher-forced loss on validation scenes falls from about log(vocabulary) to well
    under two thirds of it, for every seed."""
    for seed in (0, 1):
        task = prepare_run(lesson_config("n_train=300", "data.size=32", "model.patch_size=4", f"seed={seed}",
                                         "lr=0.01", epochs=2)).task
        val = task.data.val
        with torch.no_grad():
            before = float(task.loss_and_right(val.x, task.tokens["val"], task.tags["val"])[0])
        task.train(True)
        for epoch in range(2):
            for batch in task.batches(epoch):
                task.train_step(batch)
        task.train(False)
        with torch.no_grad():
            after = float(task.loss_and_right(val.x, task.tokens["val"], task.tags["val"])[0])
        assert before > 3.0  # log 42 ≈ 3.7 at the start
        assert after < 0.67 * before, (seed, before, after)


def test_words_outside_the_vocabulary_are_refused_in_one_sentence(dlc) -> None:
    r = dlc("run", "image-captioning", "--set", "n_train=100", "--set", "n_val=16", "--set", "prompt=a red dragon")
    assert r.code == 2
    message = " ".join(r.err.split())
    assert message.startswith("dlc: task.prompt 'a red dragon' uses 'dragon', which the model's vocabulary of 39 "
                              "words (built from its training captions) does not hold.")
    assert "Use only words such as: a, the, at" in message
    assert dlc("runs", "list").out.count("image-captioning") == 0  # nothing written

    task = prepare_run(lesson_config("n_train=100")).task
    with pytest.raises(UserError, match=r"the tags 'circle unicorn' uses 'unicorn', which the model's vocabulary"):
        task.encode_tags(["circle", "unicorn"])
    assert task.encode_tags(["circle", "star"]).shape == (1, 2)
    assert task.state_dict()["vocab"] == task.vocab.to_list()
