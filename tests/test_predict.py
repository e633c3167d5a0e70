"""predict: the trained model's next tokens, each logit h · row of the same table the queries read."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from embcli.cli import app
from embcli.errors import EmbcliError
from embcli.queries import predict, prompt_ids
from embcli.train import load_model

runner = CliRunner()


def test_the_model_continues_its_corpus(trained_run):
    # every "a {animal} is an" in the tiny corpus goes on "animal"
    result = predict(trained_run, "a cat is an", top=5)
    assert result.candidates[0].token == "␣animal"
    probs = [c.probability for c in result.candidates]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
    assert result.ids == [64, 3797, 318, 281] and result.pieces == ["a", "␣cat", "␣is", "␣an"]
    assert result.vocab_size == 50257 and result.dropped == 0 and result.step == 60


def test_probabilities_are_the_models_softmax(trained_run):
    import torch

    model, _ = load_model(trained_run)
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids("the king and the queen")]))[0, -1].double()
    expected = torch.softmax(logits, dim=0).numpy()
    result = predict(trained_run, "the king and the queen", top=10)
    assert [c.id for c in result.candidates] == list(np.argsort(-expected, kind="stable")[:10])
    np.testing.assert_allclose([c.probability for c in result.candidates], np.sort(expected)[::-1][:10], rtol=1e-5)


def test_explain_shows_each_logit_is_h_dot_the_tables_row(trained_run):
    import torch

    result = predict(trained_run, "she painted the wall", top=8, explain=True)
    table = np.load(trained_run / "embeddings.npy")  # read here, apart from the code under test
    model, _ = load_model(trained_run)
    with torch.no_grad():
        h = model.hidden(torch.tensor([prompt_ids("she painted the wall")]))[0, -1].numpy()
    assert result.explained and result.table_matches
    for c in result.candidates:
        dot = float(np.dot(h.astype(np.float32), table[c.id].astype(np.float32)))
        assert c.dot == pytest.approx(dot, abs=1e-5)
        assert abs(c.logit - c.dot) <= 1e-4  # the model's own logit is h · row of embeddings.npy
        assert c.row_norm == pytest.approx(float(np.linalg.norm(table[c.id])), rel=1e-5)
        assert c.dot == pytest.approx(result.hidden_norm * c.row_norm * c.cosine, rel=1e-4)
    assert result.max_difference <= 1e-4


def test_predict_command(trained_run):
    out = runner.invoke(app, ["predict", "a dog is an", "-k", "3", "--run", str(trained_run)])
    assert out.exit_code == 0, out.output
    assert "4 tokens read: a(64)  ␣dog(3290)  ␣is(318)  ␣an(281)" in out.stdout
    assert "softmax over all 50,257 tokens" in out.stdout and "␣animal" in out.stdout
    assert "h · row" not in out.stdout
    out = runner.invoke(app, ["predict", "a dog is an", "--explain", "--run", str(trained_run)])
    flowed = " ".join(out.stdout.split())  # the note wraps where the run's path length puts it
    assert out.exit_code == 0 and "h · row (table)" in out.stdout and "equal to 1e-4" in flowed
    out = runner.invoke(app, ["predict", "a dog is an", "-k", "2", "--json", "--explain", "--run", str(trained_run)])
    data = json.loads(out.stdout)
    assert len(data["candidates"]) == 2 and data["candidates"][0]["token"] == " animal"
    assert abs(data["candidates"][0]["logit"] - data["candidates"][0]["dot"]) <= 1e-4


def test_a_long_prompt_keeps_its_end(trained_run):
    text = " ".join(["the cat ate the food and the dog slept in the barn ."] * 5)  # 65 tokens, context 32
    result = predict(trained_run, text, top=3)
    assert len(result.ids) == 32 and result.dropped == len(prompt_ids(text)) - 32
    assert result.ids == prompt_ids(text)[-32:]
    assert any("its last 32 were used" in n for n in result.notes)


@pytest.mark.parametrize("text, fragment", [
    ("", "nothing to predict from"),
    ("日本語のテキスト", "none of the prompt's"),  # only byte tokens the tiny corpus never had
])
def test_bad_prompts_are_one_line(trained_run, text, fragment):
    out = runner.invoke(app, ["predict", text, "--run", str(trained_run)])
    assert out.exit_code == 2 and fragment in out.output and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_undecodable_bytes_are_refused():
    with pytest.raises(EmbcliError, match="not valid UTF-8"):
        prompt_ids(b"the \xff cat".decode("utf-8", "surrogateescape"))  # how argv carries such bytes


def test_a_prompt_with_some_unseen_tokens_says_so(trained_run):
    result = predict(trained_run, "the cat 日本", top=3)
    assert result.unseen and any("never occurred in training" in n for n in result.notes)


def test_runs_without_a_model_are_one_line(trained_run, tmp_path):
    table_only = tmp_path / "runs" / "table-only"
    shutil.copytree(trained_run, table_only, ignore=shutil.ignore_patterns("checkpoint*"))
    out = runner.invoke(app, ["predict", "the cat", "--run", str(table_only)])
    assert out.exit_code == 2 and "has no model to predict with: its checkpoint/ folder is missing" in out.output
    assert len(out.output.strip().splitlines()) == 1
    meta = json.loads((table_only / "meta.json").read_text())
    (table_only / "meta.json").write_text(json.dumps(dict(meta, status="imported", source="gpt2")))
    out = runner.invoke(app, ["predict", "the cat", "--run", str(table_only)])
    assert out.exit_code == 2 and "holds only a table (imported from gpt2)" in out.output


def test_a_damaged_checkpoint_is_one_line(trained_run, tmp_path):
    broken = tmp_path / "runs" / "broken"
    shutil.copytree(trained_run, broken)
    weights = broken / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    out = runner.invoke(app, ["predict", "the cat", "--run", str(broken)])
    assert out.exit_code == 2 and "checkpoint is damaged" in out.output and "Traceback" not in out.output
