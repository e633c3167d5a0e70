import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embcli import tokenizer
from embcli.errors import EmbcliError
from embcli.tokenizer import EOT_ID, N_VOCAB, RANKS_SHA256, Vocab, decode, encode, gpt2_encoding


def test_shipped_ranks_file_is_tiktokens_r50k_base():
    data = tokenizer.ranks_path().read_bytes()
    assert hashlib.sha256(data).hexdigest() == RANKS_SHA256
    assert len(tokenizer.load_ranks()) == 50256


@pytest.mark.parametrize("text, ids", [
    (" cat", [3797]), ("cat", [9246]), ("The cat", [464, 3797]), (" king", [5822]), ("the", [1169]),
    (" queen", [16599]), (" man", [582]), (" woman", [2415]), (" dog", [3290]),
])
def test_pinned_gpt2_ids(text, ids):
    assert encode(text) == ids


def test_vocabulary_size_and_endoftext():
    enc = gpt2_encoding()
    assert enc.n_vocab == N_VOCAB == 50257
    assert enc.encode("<|endoftext|>", allowed_special="all") == [EOT_ID] == [50256]
    # in ordinary text the marker is just text, never the special id
    assert EOT_ID not in encode("<|endoftext|>")


def test_gpt2_split_pattern_contractions_and_spaces():
    assert [decode([i]) for i in encode("I'm here  now")] == ["I", "'m", " here", " ", " now"]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_unicode_round_trips(text):
    assert decode(encode(text)) == text


def test_damaged_ranks_file_is_refused(tmp_path):
    bad = tmp_path / "gpt2.tiktoken"
    bad.write_bytes(tokenizer.ranks_path().read_bytes()[:-10])
    with pytest.raises(EmbcliError, match="damaged"):
        tokenizer.load_ranks(bad)


def test_fast_vocab_agrees_with_tiktoken_for_every_id():
    enc = gpt2_encoding()
    vocab = Vocab.load()
    assert len(vocab) == N_VOCAB
    for i in range(0, N_VOCAB - 1):
        assert vocab.bytes_of(i) == enc.decode_single_token_bytes(i)
    assert vocab.id_of(b" cat") == 3797 and vocab.id_of(b"no-such-token-here") is None
    # the cached copy loads the same
    again = Vocab.load()
    assert again.bytes_of(3797) == b" cat"


def test_show_token_makes_leading_space_visible():
    assert tokenizer.show_token(3797) == "␣cat"
    assert tokenizer.show_token(198) == "\\n"
