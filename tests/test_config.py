import pytest

from embcli.config import TrainConfig, load_config
from embcli.errors import EmbcliError


def test_builtin_configs_load():
    tiny = load_config("tiny")
    assert (tiny.n_layer, tiny.n_embd, tiny.block_size) == (1, 128, 64)
    assert tiny.embedding_weight_decay == 0.3 and tiny.weight_decay == 0.1 and tiny.dtype == "auto"
    assert tiny.time_budget and tiny.time_budget <= 600  # the default run fits in 10 minutes
    small = load_config("gpt2-small")
    assert (small.n_layer, small.n_head, small.n_embd, small.block_size) == (12, 12, 768, 1024)
    assert small.parameter_count()["parameters"] == 124_439_808
    assert small.parameter_count()["table_parameters"] == 50257 * 768


def test_overrides_are_typed():
    cfg = load_config("tiny", ["n_layer=2", "learning_rate=1e-3", "bias=false", "dtype=bfloat16", "max_tokens=1e6"])
    assert cfg.n_layer == 2 and cfg.learning_rate == 1e-3 and cfg.bias is False
    assert cfg.dtype == "bfloat16" and cfg.max_tokens == 1_000_000


def test_unknown_key_is_named():
    with pytest.raises(EmbcliError, match="unknown config key n_layers"):
        load_config("tiny", ["n_layers=2"])


def test_unknown_key_in_toml_is_named(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("n_layer = 2\nlearning_rat = 0.1\n")
    with pytest.raises(EmbcliError, match="learning_rat"):
        load_config(str(path))


@pytest.mark.parametrize("override, message", [
    ("n_layer=two", "n_layer must be a int"),
    ("n_layer=0", "n_layer must be > 0"),
    ("n_head=3", "multiple of n_head"),
    ("dropout=1.5", "dropout must be in"),
    ("dtype=float8", "dtype must be one of"),
    ("vocab_size=100", "vocab_size must be 50257"),
])
def test_invalid_values_are_refused(override, message):
    with pytest.raises(EmbcliError, match=message):
        load_config("tiny", [override]).validate()


def test_bad_toml_and_missing_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("n_layer = = 2")
    with pytest.raises(EmbcliError, match="not valid TOML"):
        load_config(str(bad))
    with pytest.raises(EmbcliError, match="no config 'huge'"):
        load_config("huge")


def test_defaults_validate():
    TrainConfig().validate()
