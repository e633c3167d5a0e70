"""word2vec keys a gensim user can type, and the projector folder TensorBoard finds."""

import numpy as np
import pytest
from typer.testing import CliRunner

from embcli import queries
from embcli.cli import app
from embcli.export import word_key, word_keys
from embcli.space import EmbeddingSpace
from embcli.tokenizer import Vocab

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("token, key", [
    (b" king", "king"), (b"king", "@@king"), (b" .", "."), (b".", "@@."), (b"\n", "@@\u010a"),
    (b"  ", "@@\u0120\u0120"), (b" \xc3\xa9", "\u00e9"), (b"\xc3", "@@\u00c3"), (b" @@", "@@"),
    (b"<|endoftext|>", "<|endoftext|>"), (b" \xe2\x80", "@@\u0120\u00e2\u0122"),
])
def test_word_key_spelling(token, key):
    assert word_key(token) == key


def test_every_key_is_unique_and_free_of_whitespace():
    vocab = Vocab.load()
    for style in ("words", "gpt2"):
        keys = word_keys(style)
        assert len(keys) == len(set(keys)) == 50257
        assert not any(ch.isspace() for k in keys for ch in k)
    keys = word_keys("words")
    assert keys[5822] == "king" and keys[3797] == "cat" and keys[9246] == "@@cat"  # " cat" and bare "cat"
    assert word_keys("gpt2")[5822] == "Ġking"
    # a plain key is exactly a space-prefixed token: what embcli's queries pick when a word is typed
    plain = [i for i, k in enumerate(keys) if not k.startswith("@@") and i != 50256]
    assert all(vocab.bytes_of(i) == b" " + keys[i].encode() for i in plain)


def test_gensim_analogy_on_the_export_matches_embcli(trained_run, tmp_path):
    gensim = pytest.importorskip("gensim")
    space = EmbeddingSpace.from_run(trained_run)
    ours = queries.analogy(space, "king", "man", "woman", 5)  # what `embcli analogy king man woman` answers
    keys = word_keys("words")
    for fmt, binary in (("word2vec-bin", True), ("word2vec", False)):
        out = tmp_path / f"table.{fmt}"
        result = invoke("export", "--run", trained_run, "-f", fmt, "-o", out)
        assert result.exit_code == 0, result.output
        kv = gensim.models.KeyedVectors.load_word2vec_format(str(out), binary=binary)
        assert len(kv) == int((space.counts >= 1).sum())  # the rows embcli's queries use (min-count 1)
        theirs = kv.most_similar(positive=["king", "woman"], negative=["man"], topn=5)
        if binary:  # the same floats: the same five answers in the same order
            assert [k for k, _ in theirs] == [keys[n.id] for n in ours.answers]
        else:  # six significant digits: the same best answer, the same scores to 1e-5
            assert theirs[0][0] == keys[ours.answers[0].id]
        np.testing.assert_allclose([s for _, s in theirs[:1]], [ours.answers[0].similarity], atol=1e-5)
        np.testing.assert_allclose(kv["cat"], space.vectors[3797], rtol=1e-5, atol=1e-6)


def test_keys_gpt2_keeps_the_byte_level_spelling(trained_run, tmp_path):
    gensim = pytest.importorskip("gensim")
    out = tmp_path / "gpt2.txt"
    assert invoke("export", "--run", trained_run, "-f", "word2vec", "-o", out, "--keys", "gpt2").exit_code == 0
    kv = gensim.models.KeyedVectors.load_word2vec_format(str(out))
    assert "Ġking" in kv and "king" not in kv
    bad = invoke("export", "--run", trained_run, "-f", "word2vec", "-o", out, "--keys", "bpe")
    # a closed list of values (--help shows it): click refuses others in one line, exit 2
    assert bad.exit_code == 2 and "invalid value for '--keys': 'bpe' is not one of 'words', 'gpt2'" in bad.stderr


def test_projector_folder_is_found_by_tensorboard(trained_run, tmp_path):
    out = tmp_path / "proj"
    assert invoke("export", "--run", trained_run, "-f", "projector", "-o", out).exit_code == 0
    assert (out / "projector_config.pbtxt").is_file()
    plugin = pytest.importorskip("tensorboard.plugins.projector.projector_plugin",
                                 reason="tensorboard is an optional extra: pip install 'embcli[tensorboard]'")
    # what `tensorboard --logdir proj` does with the folder: read its config, then the tensor it names
    configs, _ = plugin.ProjectorPlugin._read_latest_config_files(None, [(".", str(out))])
    (embedding,) = configs["."].embeddings
    assert embedding.tensor_name == "shared step 60" and embedding.metadata_path == "metadata.tsv"
    tensor = plugin._read_tensor_tsv_file(str(out / embedding.tensor_path))
    assert tensor.shape == (len((out / "metadata.tsv").read_text().splitlines()) - 1, 32)
