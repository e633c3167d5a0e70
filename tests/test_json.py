"""One JSON shape (issue #11, item 4): every command's --json, checked against the README's table.

The README's "JSON output" section is the contract: the envelope (``verb``, ``run``), the token,
word and neighbour objects, and one row per verb naming its fields. This file parses that table,
walks every command the CLI has (a command added without a row, or without an invocation here,
fails), runs each with --json and checks its answer against it.
"""

import json
import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from embcli.cli import app
from tests.conftest import TINY

runner = CliRunner()
SETS = [x for item in TINY for x in ("--set", item)]
README = Path(__file__).resolve().parents[1] / "README.md"


def documented() -> dict[str, list[str]]:
    """verb → its fields, from the README's JSON table."""
    text = README.read_text()
    section = text[text.index("## JSON output"):]
    section = section[:section.index("\n## ", 3)] if "\n## " in section[3:] else section
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `([a-z -]+)` \| (.*?) \|", line)
        if m:
            rows[m.group(1)] = re.findall(r"`([a-z_]+)`", m.group(2))
    return rows


def commands() -> list[str]:
    """Every leaf command of the CLI, as typed after `embcli`."""
    found = []

    def walk(group, prefix):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                walk(command, prefix + [name])
            else:
                found.append(" ".join(prefix + [name]))

    walk(get_command(app), [])
    return sorted(found)


def check_token(obj, where):
    assert isinstance(obj["id"], int) and 0 <= obj["id"] < 50257, where
    assert isinstance(obj["token"], str), where
    assert set(obj) <= {"id", "token", "bytes", "rank", "similarity", "count", "cosine"}, where


def check_word(obj, where):
    assert set(obj) == {"text", "how", "why", "tokens"}, where
    assert isinstance(obj["text"], str) and isinstance(obj["how"], str) and isinstance(obj["why"], str), where
    assert obj["tokens"], where
    for t in obj["tokens"]:
        check_token(t, where)
        assert set(t) <= {"id", "token", "bytes"}, where


def check_neighbour(obj, where):
    assert {"rank", "id", "token", "similarity", "count"} <= set(obj) <= {"rank", "id", "token", "bytes",
                                                                          "similarity", "count"}, where
    check_token(obj, where)
    assert isinstance(obj["similarity"], float) and (obj["count"] is None or isinstance(obj["count"], int)), where


WORD_KEYS = {"query", "a", "b", "c", "word", "odd_one_out"}
NEIGHBOUR_LISTS = {"neighbors", "answers"}


def check_objects(value, where="", key=None):
    """The recurring objects wherever they appear: words, neighbours, tokens; no ␣ anywhere."""
    if isinstance(value, dict):
        if key in WORD_KEYS:
            check_word(value, where)
        for k, v in value.items():
            if k in NEIGHBOUR_LISTS and isinstance(v, list):
                for n in v:
                    check_neighbour(n, f"{where}.{k}")
            if k in ("tokens", "followed") and isinstance(v, list):
                for t in v:
                    check_token(t, f"{where}.{k}")
            check_objects(v, f"{where}.{k}", k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_objects(v, f"{where}[{i}]", key)
    elif isinstance(value, str):
        assert "␣" not in value, (where, value)  # the marker is for tables only


def check_answer(data: dict, verb: str, run: Path | None, fields: dict[str, list[str]]):
    assert isinstance(data, dict), verb
    assert list(data)[:2] == ["verb", "run"], verb
    assert data["verb"] == verb
    if run is None:
        assert data["run"] is None, verb
    else:
        assert set(data["run"]) == {"name", "path", "step"}, verb
        assert data["run"]["name"] == run.name and Path(data["run"]["path"]).resolve() == run.resolve(), verb
        assert data["run"]["step"] is None or isinstance(data["run"]["step"], int), verb
    assert list(data)[2:] == fields[verb], (verb, list(data)[2:], fields[verb])
    check_objects(data, verb)


@pytest.fixture
def hf_model(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=50257)
    folder = tmp_path / "tiny-gpt2"
    transformers.GPT2LMHeadModel(config).save_pretrained(str(folder))
    return folder


def test_the_readme_documents_every_command():
    fields = documented()
    missing = [c for c in commands() if c not in fields]
    assert not missing, f"commands without a row in README's JSON table: {missing}"
    assert fields["neighbors"] == ["words", "left_out"] and fields["shell"] == []


def test_every_command_answers_in_the_documented_shape(trained_run, corpus_file, tmp_path, hf_model):
    pytest.importorskip("matplotlib")
    pytest.importorskip("plotly")
    fields = documented()
    run = ["--run", str(trained_run)]
    invocations = {
        "prepare": (["--corpus", str(corpus_file)], None),
        "runs": (["--runs-dir", str(trained_run.parent)], None),
        "neighbors": (["cat", "dog", "-k", "3", *run], trained_run),
        "analogy": (["king", "man", "woman", "-k", "3", *run], trained_run),
        "similarity": (["cat", "dog", *run], trained_run),
        "odd-one-out": (["cat", "dog", "blue", *run], trained_run),
        "tokenize": (["The cat \u00e9t\u00e9"], None),
        "inspect row": (["3797", "-k", "3", *run], trained_run),
        "inspect token": (["cat", "-k", "3", *run], trained_run),
        "inspect table": (run, trained_run),
        "inspect model": (run, trained_run),
        "eval": (run, trained_run),
        "trace": (["cat", "-k", "2", "--with", "dog", *run], trained_run),
        "export": (["-f", "npy", "-o", str(tmp_path / "x.npy"), "--top", "5", *run], trained_run),
        "import-hf": ([str(hf_model), "--name", "imported"], tmp_path / "runs" / "imported"),
        "plot words": (["cat", "dog", "-o", str(tmp_path / "w.png"), *run], trained_run),
        "plot loss": (["-o", str(tmp_path / "l.png"), *run], trained_run),
        "explore": (["--tokens", "300", "-o", str(tmp_path / "e.html"), *run], trained_run),
        "predict": (["a dog is an", "-k", "3", "--explain", *run], trained_run),
        "directions": (["--pos", "cat,dog,horse,cow", "--neg", "red,blue,green,yellow", *run], trained_run),
        "train": (["--corpus", str(corpus_file), *SETS, "--max-steps", "2", "--name", "json", "--quiet"],
                  tmp_path / "runs" / "json"),
    }
    assert sorted(c for c in commands() if c != "shell") == sorted(invocations), "a command without an invocation here"
    for verb, (args, answered_by) in invocations.items():
        command = get_command(app)
        for name in verb.split():
            command = command.commands[name]
        assert any("--json" in p.opts for p in command.params), f"{verb} has no --json"
        result = runner.invoke(app, [*verb.split(), *args, "--json"])
        assert result.exit_code == 0, (verb, result.output)
        check_answer(json.loads(result.stdout), verb, answered_by, fields)


def test_export_hf_answers_in_the_envelope_and_names_its_run(trained_run, tmp_path):
    pytest.importorskip("safetensors")
    out = tmp_path / "hf"
    result = runner.invoke(app, ["export", "-f", "hf", "-o", str(out), "--run", str(trained_run), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data)[:6] == ["verb", "run", "format", "rows", "dim", "files"] and data["verb"] == "export"
    assert data["run"] == {"name": trained_run.name, "path": str(trained_run), "step": data["step"]}
    assert data["format"] == "hf" and data["folder"] == str(out) and isinstance(data["parameters"], int)
    text = runner.invoke(app, ["export", "-f", "hf", "-o", str(tmp_path / "hf2"), "--run", str(trained_run)])
    assert text.exit_code == 0, text.output
    assert f"from {trained_run.name} at step {data['step']:,} ({trained_run})" in " ".join(text.stdout.split())


@pytest.mark.parametrize("verb", [["predict", "a dog is an", "-k", "2"],
                                  ["directions", "--pos", "cat,dog,horse,cow", "--neg", "red,blue,green,yellow"]])
def test_new_verbs_name_the_run_under_their_text(trained_run, verb):
    result = runner.invoke(app, [*verb, "--run", str(trained_run)])
    assert result.exit_code == 0, result.output
    data = json.loads(runner.invoke(app, [*verb, "--run", str(trained_run), "--json"]).stdout)
    step = data["run"]["step"]
    assert f"from {trained_run.name} at step {step:,} ({trained_run})" in " ".join(result.stdout.split())


def test_the_shell_answers_json_lines_in_the_same_shapes(trained_run):
    fields = documented()
    lines = ["nn cat", "analogy king man woman", "sim cat dog", "odd cat dog blue", "row 3797", "token dog",
             "tok The cat", "nn ornithology"]
    result = runner.invoke(app, ["shell", "--run", str(trained_run), "-k", "3", "--json"], input="\n".join(lines))
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["verb"] for a in answers] == ["neighbors", "analogy", "similarity", "odd-one-out", "inspect row",
                                            "inspect token", "tokenize", "nn"]
    for a in answers[:-1]:
        check_answer(a, a["verb"], trained_run, fields)
    assert list(answers[-1]) == ["verb", "run", "error"]


def test_partial_utf8_tokens_carry_their_bytes():
    from embcli.tokenizer import token_json

    assert token_json(3797) == {"id": 3797, "token": " cat"}
    assert token_json(447) == {"id": 447, "token": "\ufffd", "bytes": "e280"}  # the first two bytes of ’
    result = runner.invoke(app, ["tokenize", "it\u2019s", "--json"])
    tokens = json.loads(result.stdout)["tokens"]
    assert any("bytes" in t for t in tokens)  # ’ is split across tokens
    raw = b"".join(bytes.fromhex(t["bytes"]) if "bytes" in t else t["token"].encode() for t in tokens)
    assert raw.decode() == "it\u2019s"
