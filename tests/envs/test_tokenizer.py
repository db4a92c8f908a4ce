import numpy as np
import pytest

from mmrl.envs.tokenizer import PAD_ID, UNK_ID, VOCAB, Tokenizer


def test_vocab_starts_with_pad_and_unk_and_is_unique():
    assert VOCAB[0] == "<pad>" and VOCAB[1] == "<unk>"
    assert len(set(VOCAB)) == len(VOCAB)


def test_encode_pads_lowercases_and_maps_unknown_words():
    tok = Tokenizer(max_len=8)
    ids = tok.encode("Go to the RED, zzzunknown ball!")
    assert ids.dtype == np.int64 and ids.shape == (8,)
    words = tok.split("Go to the RED, zzzunknown ball!")
    assert words == ["go", "to", "the", "red", "zzzunknown", "ball"]
    assert ids[4] == UNK_ID
    assert (ids[6:] == PAD_ID).all()
    assert tok.decode(ids) == "go to the red <unk> ball"


def test_encode_truncates_and_returns_independent_copies():
    tok = Tokenizer(max_len=4)
    a = tok.encode("go to the red ball")
    assert a.shape == (4,) and (a != PAD_ID).all()
    a[0] = 99
    assert tok.encode("go to the red ball")[0] != 99


def test_encode_batch_shape():
    tok = Tokenizer(max_len=6)
    batch = tok.encode_batch(["go", "take the exit"])
    assert batch.shape == (2, 6) and batch.dtype == np.int64
    assert tok.encode_batch([]).shape == (0, 6)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"max_len": 0}, "max_len"), ({"vocab": ["a", "b"]}, "must start"),
     ({"vocab": ["<pad>", "<unk>", "x", "x"]}, "duplicate")],
)  # fmt: skip
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Tokenizer(**kwargs)
