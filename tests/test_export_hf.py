"""export -f hf: a trained run as a Hugging Face GPT-2 folder — same logits, GPT-2's tokenizer, back in."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from embcli import export as export_module
from embcli.cli import app
from embcli.errors import EmbcliError
from embcli.export import export_hf, gpt2_key, gpt2_merges
from embcli.runs import find_run

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

runner = CliRunner()
TEXT = "The cat's 123 héllo  world!\n\nNaïve café — 東京 ok?? It'll   be fine.\t<x> 2024-01-01"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def embcli_model(run):
    """The run's own model, rebuilt from its checkpoint by embcli's code."""
    from safetensors.torch import load_file

    from embcli.config import TrainConfig
    from embcli.model import GPT, GPTConfig

    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    model = GPT(GPTConfig.from_train_config(cfg))
    model.load_state_dict(load_file(str(run / "checkpoint" / "model.safetensors")))
    return model.eval()


@pytest.fixture(scope="module")
def hf_folder(_trained_run, tmp_path_factory):
    """The shared 60-step run exported once with -f hf (the export reads the run, never writes it)."""
    out = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    result = invoke("export", "--run", _trained_run, "-f", "hf", "-o", out)
    assert result.exit_code == 0, result.output
    assert f"step 60) to {out}" in " ".join(result.stdout.split())
    return out


def test_hf_logits_equal_embcli_logits(trained_run, hf_folder):
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(hf_folder)).eval()
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()  # tied, as in embcli
    ours = embcli_model(trained_run)
    from embcli.tokenizer import encode

    text = torch.tensor([encode("the king and the queen ruled the land ; the cat ate the food .")])
    noise = torch.randint(0, 50257, (3, text.shape[1]), generator=torch.Generator().manual_seed(0))
    ids = torch.cat([text, noise])  # a sentence the model learned, and random ids
    with torch.no_grad():
        theirs, mine = hf(ids).logits, ours(ids)
    assert theirs.dtype == mine.dtype == torch.float32
    torch.testing.assert_close(theirs, mine, atol=1e-4, rtol=0)
    # a full context (block_size 32) too: learned positions all the way
    full = torch.randint(0, 50257, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(hf(full).logits, ours(full), atol=1e-4, rtol=0)


def test_hf_generate_continues_as_embcli_greedy(trained_run, hf_folder):
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(hf_folder)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_folder))
    prompt = tokenizer("the king and the", return_tensors="pt").input_ids
    out = hf.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert out.shape == (1, prompt.shape[1] + 8)
    ours, ids = embcli_model(trained_run), prompt
    with torch.no_grad():
        for _ in range(8):  # greedy decoding with embcli's forward, no cache
            ids = torch.cat([ids, ours(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert out.tolist() == ids.tolist()
    assert tokenizer.decode(out[0]).startswith("the king and the")


def test_hf_tokenizer_is_gpt2s_offline(hf_folder):
    from embcli.tokenizer import encode

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_folder))
    assert tokenizer("The cat").input_ids == [464, 3797]
    assert tokenizer(TEXT).input_ids == encode(TEXT)
    assert tokenizer.decode(encode(TEXT)) == TEXT
    assert tokenizer.eos_token_id == 50256 and len(tokenizer) == 50257
    slow = transformers.GPT2Tokenizer.from_pretrained(str(hf_folder))  # the pure-Python one reads the same files
    assert slow(TEXT).input_ids == encode(TEXT)


def test_merges_unfold_the_ranks():
    from embcli.tokenizer import load_ranks

    merges = gpt2_merges()
    by_rank = {rank: token for token, rank in load_ranks().items()}
    assert len(merges) == 50000 and merges[:3] == [(b" ", b"t"), (b" ", b"a"), (b"h", b"e")]
    assert all(a + b == by_rank[256 + i] for i, (a, b) in enumerate(merges))  # merge i makes token 256 + i
    assert gpt2_key(b" \n") == "ĠĊ"


def test_model_card_and_config(trained_run, hf_folder):
    from embcli.runs import read_meta

    meta = read_meta(trained_run)
    card = (hf_folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "| steps | 60 |" in card and f"| tokens seen | {meta.tokens_seen:,} |" in card
    assert f"{meta.train_loss:.4f} (full softmax)" in card and f"| validation loss | {meta.val_loss:.4f}" in card
    assert meta.corpus["description"] in card
    config = json.loads((hf_folder / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_positions"] == 32 and config["tie_word_embeddings"]
    assert sorted(p.name for p in hf_folder.iterdir()) == sorted(
        ["README.md", "config.json", "generation_config.json", "merges.txt", "model.safetensors",
         "special_tokens_map.json", "tokenizer_config.json", "vocab.json"])


def test_import_hf_gives_back_the_same_table(trained_run, hf_folder):
    result = invoke("import-hf", hf_folder, "--name", "back")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(find_run("back") / "embeddings.npy"),
                                  np.load(trained_run / "embeddings.npy"))


def test_step_names_the_checkpoint_or_is_refused(trained_run, tmp_path):
    ok = invoke("export", "--run", trained_run, "-f", "hf", "-o", tmp_path / "at60", "--step", 60)
    assert ok.exit_code == 0, ok.output
    bad = invoke("export", "--run", trained_run, "-f", "hf", "-o", tmp_path / "at30", "--step", 30)
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.output
    line = " ".join(bad.stderr.split())
    assert "keeps only at its checkpoint (step 60)" in line and "-f word2vec/npy/safetensors --step 30" in line
    assert not (tmp_path / "at30").exists()


def test_a_run_without_checkpoint_says_what_is_needed(tmp_path):
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=50257)
    transformers.GPT2LMHeadModel(config).save_pretrained(str(tmp_path / "tiny-gpt2"))
    assert invoke("import-hf", tmp_path / "tiny-gpt2", "--name", "imported").exit_code == 0
    result = invoke("export", "--run", "imported", "-f", "hf", "-o", tmp_path / "out")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    line = " ".join(result.stderr.split())
    assert "has no model checkpoint (checkpoint/model.safetensors)" in line
    assert "only the table imported from" in line and "-f word2vec, npy or safetensors" in line
    assert not (tmp_path / "out").exists()


def test_output_folder_is_refused_unless_force_and_never_half_written(copy_of_trained_run, tmp_path, monkeypatch):
    run = copy_of_trained_run("r")
    exports = tmp_path / "exports"
    out = exports / "out"
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    refused = invoke("export", "--run", run, "-f", "hf", "-o", out)
    assert refused.exit_code == 2 and "exists and is not empty; give --force" in refused.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    # a failure at the last moment (the rename into place) leaves the old folder as it was
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(export_module.os, "replace", failing_replace)
    with pytest.raises(EmbcliError, match="No space left on device; nothing was left half-written"):
        export_hf(run, out, force=True)
    monkeypatch.setattr(export_module.os, "replace", real_replace)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert [p.name for p in exports.iterdir()] == ["out"]  # no temporary folders left
    forced = invoke("export", "--run", run, "-f", "hf", "-o", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert (out / "model.safetensors").is_file() and not (out / "notes.txt").exists()
    assert [p.name for p in exports.iterdir()] == ["out"]
    empty = exports / "empty"
    empty.mkdir()
    assert invoke("export", "--run", run, "-f", "hf", "-o", empty).exit_code == 0  # an empty folder is fine


@pytest.mark.parametrize("args, fragment", [
    (["-o", "x", "--top", "5"], "--top and --min-count choose rows of the table"),
    (["-o", "x", "--keys", "gpt2"], "--keys spells the keys of -f word2vec"),
    (["-o", "a-file"], "is a file; -f hf writes a folder"),
    (["-o", ".", "--force"], "will not replace .: it holds the current folder"),
])
def test_hf_bad_input(trained_run, tmp_path, args, fragment):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "keep").write_text("x")  # the current folder is not empty
    result = invoke("export", "--run", trained_run, "-f", "hf", *args)
    assert result.exit_code == 2 and fragment in " ".join(result.stderr.split()), result.output
    assert (tmp_path / "keep").exists()
