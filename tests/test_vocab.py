"""The chapter-5 word-level vocabulary: built from captions, saved with a run, strict about unknown words."""

import pytest

from dlcourse_tui.data.scenes import make_scenes
from dlcourse_tui.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocabulary
from dlcourse_tui.errors import UserError


def test_scene_captions_round_trip_through_ids_and_a_saved_vocabulary():
    captions = make_scenes(64, seed=3).extras["captions"]
    vocab = Vocabulary.from_texts(captions)
    ids = vocab.encode_batch(captions)  # (N, L)
    assert ids[:, 0].eq(BOS_ID).all() and ids.eq(EOS_ID).sum(1).eq(1).all()
    reloaded = Vocabulary.from_list(vocab.to_list())
    assert [reloaded.decode(r) for r in ids] == captions
    assert vocab.words[:3] == ("<pad>", "<bos>", "<eos>") and vocab.words[3] == "a"  # most frequent word first


def test_padding_fills_to_the_length_and_a_caption_too_long_is_refused():
    vocab = Vocabulary.from_texts(["a red circle", "a blue square above a red circle"])
    ids = vocab.encode_batch(["a red circle"], length=8)
    assert ids.tolist()[0][5:] == [PAD_ID] * 3
    with pytest.raises(ValueError, match="needs 9 tokens, more than length=8"):
        vocab.encode_batch(["a blue square above a red circle"], length=8)


def test_an_unknown_word_is_named_in_one_sentence_with_the_closest_known_one():
    vocab = Vocabulary.from_texts(["a red circle above a blue square"])
    with pytest.raises(UserError) as e:
        vocab.encode("a photo of a circel", what="the prompt")
    message = str(e.value)
    assert message.startswith("the prompt 'a photo of a circel' uses 'photo', 'of', 'circel', which the model's vocabulary of 6 words")
    assert "Did you mean: circle?" in message and "\n" not in message
