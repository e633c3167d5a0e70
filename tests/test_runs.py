"""runs.py: the run folder's one owner. meta.json round-trips exactly, old and partial files read."""

import json

import pytest

from embcli.errors import EmbcliError
from embcli.runs import META, RunMeta, read_meta

TRAINED = {
    "format": 1, "status": "running", "step": 0, "tokens_seen": 0, "seconds": 0.0, "train_loss": None,
    "val_loss": None, "model": {"parameters": 10, "table_parameters": 8, "table_share": 0.8, "rows": 4, "dim": 2,
                                "tied": True},
    "device": "cpu", "world_size": 1, "versions": {"embcli": "0.1.0"}, "loss": "fused",
    "corpus": {"description": "c", "spec": {"paths": ["c.txt"]}}, "corpus_path": "/cache/x",
    "history": {"train": [], "val": []},
}
IMPORTED = {
    "format": 1, "status": "imported", "source": "gpt2", "step": None, "tokens_seen": None, "counts_known": False,
    "model": TRAINED["model"], "versions": {"embcli": "0.1.0"}, "history": {"train": [], "val": []},
}


@pytest.mark.parametrize("obj", [TRAINED, IMPORTED], ids=["trained", "imported"])
def test_meta_json_round_trips_key_for_key_in_order(tmp_path, obj):
    (tmp_path / META).write_text(json.dumps(obj))
    meta = read_meta(tmp_path)
    meta.write(tmp_path)
    again = json.loads((tmp_path / META).read_text())
    assert list(again.items()) == list(obj.items())


def test_an_old_partial_file_reads_with_defaults_and_keeps_unknown_keys(tmp_path):
    (tmp_path / META).write_text(json.dumps({"status": "finished", "step": 3, "future_key": [1, 2]}))
    meta = read_meta(tmp_path)
    assert (meta.status, meta.step, meta.tokens_seen, meta.model, meta.counts_known) == ("finished", 3, None, None, True)
    # read by key, as the JSON object: what the file does not have is absent, not a made-up value
    assert meta.get("corpus_path") is None and "corpus_path" not in meta and "step" in meta
    assert meta["future_key"] == [1, 2]
    meta.status = "interrupted"
    meta.write(tmp_path)
    assert json.loads((tmp_path / META).read_text()) == {
        "format": 1, "status": "interrupted", "step": 3, "tokens_seen": None, "history": {"train": [], "val": []},
        "future_key": [1, 2]}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\xff"])
def test_a_damaged_meta_json_is_one_clear_error(tmp_path, text):
    (tmp_path / META).write_text(text, encoding="latin-1")
    with pytest.raises(EmbcliError, match="damaged"):
        RunMeta.read(tmp_path)


def test_no_meta_json_is_not_a_run(tmp_path):
    with pytest.raises(EmbcliError, match="not an embcli run"):
        read_meta(tmp_path)


def test_a_config_and_the_model_it_builds_describe_the_same_parameters():
    pytest.importorskip("torch")  # `make test-py310` runs this file on an interpreter without torch
    from embcli.config import TrainConfig
    from embcli.model import GPT, GPTConfig
    from embcli.train import describe_model

    for bias in (True, False):
        cfg = TrainConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, bias=bias)
        assert cfg.parameter_count() == describe_model(GPT(GPTConfig.from_train_config(cfg)))
