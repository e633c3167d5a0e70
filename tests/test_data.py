import gzip
import json

import numpy as np
import pytest

from embcli import data
from embcli.data import CorpusSpec, prepare
from embcli.errors import EmbcliError
from embcli.tokenizer import EOT_ID, encode


@pytest.fixture
def corpus_file(tmp_path):
    """This module tests tokenizing itself: each test gets a fresh file of its own, never tokenized
    before (not the shared, already-prepared corpus of tests/conftest.py)."""
    from tests.conftest import make_corpus_text

    path = tmp_path / "corpus.txt"
    path.write_text(make_corpus_text())
    return path


def all_tokens(prepared, split):
    parts = prepared.split(split)
    return np.concatenate(parts) if parts else np.zeros(0, np.uint16)


def test_text_file_tokens_equal_whole_text_encoding(corpus_file, monkeypatch):
    monkeypatch.setattr(data, "SEGMENT_CHARS", 1000)  # force many cut points
    prepared = prepare(CorpusSpec(paths=[str(corpus_file)], val_fraction=0), progress=False)
    expected = encode(corpus_file.read_text()) + [EOT_ID]
    assert all_tokens(prepared, "train").tolist() == expected
    counts = prepared.counts()
    assert counts.sum() == len(expected) and counts[3797] == expected.count(3797)


def test_validation_split_is_every_nth_block(corpus_file):
    prepared = prepare(CorpusSpec(paths=[str(corpus_file)], val_fraction=0.1), progress=False)
    whole = encode(corpus_file.read_text()) + [EOT_ID]
    train, val = all_tokens(prepared, "train"), all_tokens(prepared, "val")
    assert len(train) + len(val) == len(whole)
    assert val[:data.VAL_BLOCK].tolist() == whole[9 * data.VAL_BLOCK:10 * data.VAL_BLOCK]
    assert prepared.counts().sum() == len(train)  # counts cover the training split only
    m = prepared.manifest
    assert m["tokens"] == {"train": len(train), "val": len(val)}
    assert m["sources"][0]["sha256"] and m["bytes"] == corpus_file.stat().st_size


def test_jsonl_gz_folder_and_glob(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    with gzip.open(folder / "a.jsonl.gz", "wt") as fh:
        for i in range(400):
            fh.write(json.dumps({"body": f"the cat number {i} sat on the mat"}) + "\n")
    (folder / "b.txt").write_text("the dog barked at the cat. " * 300)
    (folder / "ignored.bin").write_bytes(b"\x00\x01")
    prepared = prepare(CorpusSpec(paths=[str(folder)], text_field="body", val_fraction=0), progress=False)
    assert prepared.manifest["documents"] == 401
    tokens = all_tokens(prepared, "train").tolist()
    assert tokens[:len(encode("the cat number 0 sat on the mat"))] == encode("the cat number 0 sat on the mat")
    assert tokens.count(EOT_ID) == 401
    by_glob = prepare(CorpusSpec(paths=[str(folder / "*.txt")], val_fraction=0), progress=False)
    assert by_glob.manifest["documents"] == 1


def test_second_prepare_reuses_the_cache(corpus_file, monkeypatch):
    first = prepare(CorpusSpec(paths=[str(corpus_file)]), progress=False)
    monkeypatch.setattr(data, "_tokenize_into", lambda *a, **k: pytest.fail("tokenized again"))
    second = prepare(CorpusSpec(paths=[str(corpus_file)]), progress=False)
    assert second.path == first.path and second.manifest == first.manifest


def test_changed_file_is_tokenized_again(corpus_file):
    first = prepare(CorpusSpec(paths=[str(corpus_file)]), progress=False)
    corpus_file.write_text(corpus_file.read_text() + "one more line about a horse\n")
    second = prepare(CorpusSpec(paths=[str(corpus_file)]), progress=False)
    assert second.path != first.path


def test_default_corpus_is_embedded_and_has_the_words():
    path = data.default_corpus_path()
    assert path.is_file()
    with gzip.open(path, "rt") as fh:
        words = fh.read().lower().split()
    from collections import Counter

    counts = Counter(w.strip(".,;:()\"'") for w in words)
    for word in ("cat", "dog", "king", "queen", "man", "woman"):
        assert counts[word] >= 100, word


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\x00\x01\x02binary", "looks binary"),
    (b"\xff\xfe\xfa not utf8", "not UTF-8"),
])
def test_bad_corpora_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(EmbcliError, match=message):
        prepare(CorpusSpec(paths=[str(path)]), progress=False)


def test_missing_and_unmatched_sources(tmp_path):
    with pytest.raises(EmbcliError, match="does not exist"):
        prepare(CorpusSpec(paths=[str(tmp_path / "nope.txt")]), progress=False)
    with pytest.raises(EmbcliError, match="no file matches"):
        prepare(CorpusSpec(paths=[str(tmp_path / "*.nothing")]), progress=False)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(EmbcliError, match="has no"):
        prepare(CorpusSpec(paths=[str(tmp_path / "empty_dir")]), progress=False)


def test_jsonl_without_the_text_field(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"content": "hello"}) + "\n")
    with pytest.raises(EmbcliError, match="no 'text' field"):
        prepare(CorpusSpec(paths=[str(path)]), progress=False)


def test_too_small_for_validation(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("just a few words")
    with pytest.raises(EmbcliError, match="too small to hold out a validation split"):
        prepare(CorpusSpec(paths=[str(path)]), progress=False)


def test_small_corpus_holds_out_its_tail(corpus_file):
    prepared = prepare(CorpusSpec(paths=[str(corpus_file)], val_fraction=0.01), progress=False)
    whole = encode(corpus_file.read_text()) + [EOT_ID]
    assert all_tokens(prepared, "val").tolist() == whole[-data.MIN_VAL_TOKENS:]
    assert all_tokens(prepared, "train").tolist() == whole[:-data.MIN_VAL_TOKENS]
    assert prepared.counts().sum() == len(whole) - data.MIN_VAL_TOKENS


def _texts():
    from tests.conftest import make_corpus_text

    return make_corpus_text(300).splitlines()


def test_hugging_face_saved_dataset_folder(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    texts = _texts()
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts})}).save_to_disk(str(tmp_path / "ds"))
    for streaming in (False, True):
        # a cache of its own each time: the cache key does not hold `streaming`, so a shared cache
        # would answer the streaming pass from the first pass's shards, and it would never stream
        monkeypatch.setenv("EMBCLI_CACHE", str(tmp_path / f"cache-{streaming}"))
        prepared = prepare(CorpusSpec(dataset=str(tmp_path / "ds"), val_fraction=0, streaming=streaming), progress=False)
        expected = [t for line in texts for t in encode(line) + [EOT_ID]]
        assert all_tokens(prepared, "train").tolist() == expected
        assert prepared.manifest["documents"] == len(texts)


def test_hugging_face_local_data_files_with_load_dataset(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts()))
    for streaming in (False, True):
        monkeypatch.setenv("EMBCLI_CACHE", str(tmp_path / f"cache-{streaming}"))  # as above: really stream
        prepared = prepare(CorpusSpec(dataset="json", data_files=[str(path)], val_fraction=0, streaming=streaming),
                           progress=False)
        assert prepared.manifest["documents"] == 300


def test_hugging_face_errors_are_one_line(tmp_path):
    pytest.importorskip("datasets")
    import datasets

    datasets.Dataset.from_dict({"body": ["a b c"] * 10}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(EmbcliError, match="no column 'text'"):
        prepare(CorpusSpec(dataset=str(tmp_path / "ds")), progress=False)
    with pytest.raises(EmbcliError, match="cannot load dataset"):
        prepare(CorpusSpec(dataset="json", data_files=[str(tmp_path / "missing.jsonl")]), progress=False)
