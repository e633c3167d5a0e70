"""The query space gives gensim's answers on the same table, and handles words as GPT-2 sees them."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embcli.cli import app
from embcli.errors import EmbcliError
from embcli.space import EmbeddingSpace, Resolved, load_table

runner = CliRunner()
KING, MAN, WOMAN, QUEEN, CAT, DOG = 5822, 582, 2415, 16599, 3797, 3290


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50257, 24)).astype(np.float32)
    # plant an analogy so the answers are not just noise
    vectors[QUEEN] = vectors[KING] - vectors[MAN] + vectors[WOMAN] + 0.1 * rng.normal(size=24)
    return vectors


@pytest.fixture(scope="module")
def kv(table):
    gensim = pytest.importorskip("gensim")
    kv = gensim.models.KeyedVectors(table.shape[1])
    kv.add_vectors([str(i) for i in range(len(table))], table)
    return kv


def ids(words):
    return [Resolved(str(w), [w], "id") for w in words]


def same(ours, theirs, topn):
    assert [n.id for n in ours] == [int(k) for k, _ in theirs[:topn]]
    np.testing.assert_allclose([n.similarity for n in ours], [s for _, s in theirs[:topn]], rtol=1e-4, atol=1e-5)


def test_most_similar_equals_gensim(table, kv):
    space = EmbeddingSpace(table, None)
    same(space.most_similar(ids([CAT]), topn=10), kv.most_similar(str(CAT), topn=10), 10)
    same(space.most_similar(ids([CAT, DOG]), ids([KING]), topn=10),
         kv.most_similar(positive=[str(CAT), str(DOG)], negative=[str(KING)], topn=10), 10)


def test_analogy_add_and_mul_equal_gensim(table, kv):
    space = EmbeddingSpace(table, None)
    a, b, c = ids([KING, MAN, WOMAN])
    add = space.analogy(a, b, c, topn=10, method="add")
    same(add, kv.most_similar(positive=[str(KING), str(WOMAN)], negative=[str(MAN)], topn=10), 10)
    assert add[0].id == QUEEN
    mul = space.analogy(a, b, c, topn=10, method="mul")
    same(mul, kv.most_similar_cosmul(positive=[str(KING), str(WOMAN)], negative=[str(MAN)], topn=10), 10)


def test_similarity_and_doesnt_match_equal_gensim(table, kv):
    space = EmbeddingSpace(table, None)
    assert space.similarity(*ids([CAT, DOG])) == pytest.approx(float(kv.similarity(str(CAT), str(DOG))), abs=1e-6)
    words = [CAT, DOG, KING, 100, 2000]
    odd, ranked = space.doesnt_match(ids(words))
    assert odd.ids[0] == int(kv.doesnt_match([str(w) for w in words]))
    assert len(ranked) == 5


def test_min_count_leaves_out_untrained_rows(table, kv):
    counts = np.zeros(50257, dtype=np.int64)
    counts[:30000] = 5
    counts[CAT] = 2
    space = EmbeddingSpace(table, counts, min_count=3)
    result = space.most_similar(ids([DOG]), topn=20)
    assert all(n.id < 30000 and n.id != CAT for n in result)
    assert space.excluded_count() == 50257 - 30000 + 1
    # gensim, restricted to the same rows, gives the same answers
    allowed = [i for i in range(50257) if counts[i] >= 3]
    theirs = [(k, s) for k, s in kv.most_similar(str(DOG), topn=200) if counts[int(k)] >= 3]
    same(result, theirs, 20)
    assert len(allowed) == 50257 - space.excluded_count()


def test_words_resolve_as_gpt2_sees_them(table):
    space = EmbeddingSpace(table, None)
    assert space.resolve("cat").ids == [CAT] and space.resolve("cat").how == "space-prefixed"
    assert space.resolve("cat", exact=True).ids == [9246]
    assert space.resolve("The", exact=True).ids == [464]
    # a word with no space-prefixed single token falls back to the bare form
    bare = space.resolve("ology")
    assert bare.how == "bare" and bare.ids == [1435]
    with pytest.raises(EmbcliError, match="not one GPT-2 token.*orn.*--combine mean"):
        space.resolve("ornithology")
    combined = space.resolve("ornithology", combine="mean")
    assert combined.ids == [25322, 342, 1435] and combined.how == "mean of 3 pieces"
    with pytest.raises(EmbcliError, match="empty word"):
        space.resolve("")


def test_damaged_tables_are_refused(tmp_path, table):
    np.save(tmp_path / "ok.npy", table)
    data = (tmp_path / "ok.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:len(data) // 2])
    with pytest.raises(EmbcliError, match="damaged or truncated"):
        load_table(tmp_path / "cut.npy")
    np.save(tmp_path / "short.npy", table[:100])
    with pytest.raises(EmbcliError, match="has 100 rows but the GPT-2 tokenizer has 50257"):
        load_table(tmp_path / "short.npy")
    with pytest.raises(EmbcliError, match="no embedding table"):
        load_table(tmp_path / "missing.npy")


# ----- the commands, on a run made by training -----------------------------------------------


def run_cli(trained_run, *args):
    return runner.invoke(app, [*map(str, args), "--run", str(trained_run)])


def test_neighbors_command(trained_run):
    result = run_cli(trained_run, "neighbors", "cat", "dog", "-k", "5")
    assert result.exit_code == 0, result.output
    assert "␣cat" in result.stdout and "3797" in result.stdout and "never seen in training" in result.stdout
    data = json.loads(run_cli(trained_run, "neighbors", "cat", "--json", "-k", "3").stdout)
    word = data["words"][0]
    assert word["query"]["tokens"] == [{"id": 3797, "token": " cat"}] and len(word["neighbors"]) == 3
    first = word["neighbors"][0]
    assert set(first) == {"rank", "id", "token", "similarity", "count"} and first["count"] > 0


def test_trained_table_has_learned_something(trained_run):
    data = json.loads(run_cli(trained_run, "neighbors", "cat", "--json", "-k", "8").stdout)
    animals = {" dog", " horse", " cow", " sheep", " goat", " pig", " mouse"}
    assert len(animals & {n["token"] for n in data["words"][0]["neighbors"]}) >= 3


def test_analogy_similarity_odd_one_out_commands(trained_run):
    result = run_cli(trained_run, "analogy", "king", "man", "woman", "--json")
    answers = json.loads(result.stdout)["answers"]
    assert {a["id"] for a in answers}.isdisjoint({KING, MAN, WOMAN})
    assert run_cli(trained_run, "analogy", "king", "man", "woman", "--method", "mul").exit_code == 0
    sim = json.loads(run_cli(trained_run, "similarity", "cat", "dog", "--json").stdout)
    table = np.load(trained_run / "embeddings.npy")
    cat, dog = table[CAT].astype(np.float64), table[DOG].astype(np.float64)
    assert sim["a"]["tokens"] == [{"id": CAT, "token": " cat"}] and sim["b"]["tokens"][0]["id"] == DOG
    assert sim["similarity"] == pytest.approx(cat @ dog / np.linalg.norm(cat) / np.linalg.norm(dog), abs=1e-6)
    odd = json.loads(run_cli(trained_run, "odd-one-out", "cat", "dog", "horse", "blue", "--json").stdout)
    assert odd["odd_one_out"]["text"] == "blue"


def test_inspect_commands(trained_run):
    row = run_cli(trained_run, "inspect", "row", "3797")
    assert row.exit_code == 0 and "␣cat" in row.stdout and "norm" in row.stdout and "▁" in row.stdout
    assert "heat strip" not in row.stdout  # not a terminal: no colours, so no strip of identical blocks
    data = json.loads(run_cli(trained_run, "inspect", "row", "3797", "--json").stdout)
    assert data["id"] == 3797 and len(data["values"]) == 32 and data["count"] > 0
    tok = json.loads(run_cli(trained_run, "inspect", "token", "cat", "--json").stdout)
    assert tok["values"] == data["values"]
    table = json.loads(run_cli(trained_run, "inspect", "table", "--json").stdout)
    assert table["rows"] == 50257 and table["dim"] == 32 and table["tied"] is True
    seen = int((np.load(trained_run / "counts.npy") > 0).sum())  # ids that occurred in the training split
    assert (table["rows_trained"], table["rows_untrained"]) == (seen, 50257 - seen) and seen < 100
    assert 0 < table["share_of_model"] < 1


def test_step_picks_a_snapshot(trained_run):
    at0 = json.loads(run_cli(trained_run, "inspect", "row", "3797", "--json", "--step", "0").stdout)
    end = json.loads(run_cli(trained_run, "inspect", "row", "3797", "--json").stdout)
    assert at0["values"] != end["values"]
    assert abs(np.std(at0["values"]) - 0.02) < 0.01  # step 0 is the N(0, 0.02) start
    bad = run_cli(trained_run, "neighbors", "cat", "--step", "7")
    assert bad.exit_code == 2 and "no snapshot at step 7" in bad.stderr


def test_tokenize_command():
    result = runner.invoke(app, ["tokenize", "The cat"])
    assert result.exit_code == 0 and "464" in result.stdout and "3797" in result.stdout
    data = json.loads(runner.invoke(app, ["tokenize", "The cat", "--json"]).stdout)
    assert data["tokens"] == [{"id": 464, "token": "The"}, {"id": 3797, "token": " cat"}]


@pytest.mark.parametrize("args, fragment", [
    (["inspect", "row", "50257"], "out of range"),
    (["inspect", "row", "-1"], "out of range"),
    (["inspect", "row", "cat"], "whole number"),
    (["neighbors", ""], "empty word"),
    (["neighbors", "ornithology"], "not one GPT-2 token"),
    (["analogy", "a", "b", "c", "--method", "div"], "invalid value for '--method': 'div' is not one of 'add', 'mul'"),
])
def test_query_bad_input(trained_run, args, fragment):
    result = run_cli(trained_run, *args)
    assert result.exit_code == 2 and fragment in result.stderr and "Traceback" not in result.output


def test_no_run_and_broken_runs(tmp_path, trained_run):
    result = runner.invoke(app, ["neighbors", "cat"])
    assert result.exit_code == 2 and "no runs found" in result.stderr
    import shutil

    broken = tmp_path / "runs" / "broken"
    shutil.copytree(trained_run, broken, ignore=shutil.ignore_patterns("checkpoint", "snapshots"))
    table = broken / "embeddings.npy"
    table.write_bytes(table.read_bytes()[:5000])
    result = runner.invoke(app, ["neighbors", "cat", "--run", "broken"])
    assert result.exit_code == 2 and "damaged or truncated" in result.stderr
    table.unlink()
    result = runner.invoke(app, ["neighbors", "cat", "--run", "broken"])
    assert result.exit_code == 2 and "no embedding table" in result.stderr


def test_shell_keeps_the_table_and_takes_the_verbs(trained_run):
    from io import StringIO

    from rich.console import Console

    from embcli.shell import run_shell

    space = EmbeddingSpace.from_run(trained_run)
    buf = StringIO()
    out = Console(file=buf, width=200, highlight=False)
    run_shell(space, 5, lines=["help", "cat", "nn dog horse", "analogy king man woman", "sim cat dog",
                               "odd cat dog blue", "row 3797", "token dog", "tok The cat", "top 2", "nn cat",
                               "row 99999", "what is this", "quit", "never reached"], out=out)
    text = buf.getvalue()
    assert "nearest neighbours" in text and "king − man + woman" in text and "odd one out" in text
    assert "out of range" in text and "not understood" in text and "The(464)" in text
    assert "cosine(" in text


def test_shell_answers_as_the_commands_do(trained_run):
    """The shell and the commands call the same queries and renderers: the same answer, byte for byte."""
    from io import StringIO

    from rich.console import Console

    from embcli.shell import run_shell

    space = EmbeddingSpace.from_run(trained_run)
    same_as = {"nn cat dog": ["neighbors", "cat", "dog", "-k", 4],
               "analogy king man woman mul": ["analogy", "king", "man", "woman", "--method", "mul", "-k", 4],
               "sim cat dog": ["similarity", "cat", "dog"], "odd cat dog blue": ["odd-one-out", "cat", "dog", "blue"],
               "row 3797": ["inspect", "row", 3797, "-k", 4], "token dog": ["inspect", "token", "dog", "-k", 4],
               "tok The cat": ["tokenize", "The cat"]}
    for line, command in same_as.items():
        buf = StringIO()
        run_shell(space, 4, lines=[line], out=Console(file=buf, width=200, highlight=False))
        cli = runner.invoke(app, list(map(str, command))) if command[0] == "tokenize" else run_cli(trained_run, *command)
        assert cli.exit_code == 0, cli.output
        # the command adds the line naming the run and step; the shell's banner names them once
        answered = "" if command[0] == "tokenize" else f"from {trained_run.name} at step 60 ({trained_run})\n"
        assert cli.stdout == buf.getvalue() + answered, line


def test_shell_checks_the_analogy_method_as_the_command_does(trained_run):
    from io import StringIO

    from rich.console import Console

    from embcli.shell import run_shell

    buf = StringIO()
    run_shell(EmbeddingSpace.from_run(trained_run), 4, lines=["analogy king man woman div"],
              out=Console(file=buf, width=200, highlight=False))
    assert buf.getvalue() == "error: --method takes add or mul (got 'div')\n"


def test_query_path_never_imports_torch(trained_run):
    """Every query verb, run in one fresh process, answers without importing torch."""
    import subprocess
    import sys

    run = ["--run", str(trained_run)]
    verbs = [["neighbors", "cat"], ["analogy", "king", "man", "woman"], ["similarity", "cat", "dog"],
             ["odd-one-out", "cat", "dog", "blue"], ["inspect", "row", "3797"], ["inspect", "token", "cat"],
             ["inspect", "table"], ["inspect", "model"], ["trace", "cat"], ["eval"]]
    argvs = [["embcli", *v, *run] for v in verbs] + [["embcli", "tokenize", "The cat"],
                                                     ["embcli", "runs", "--runs-dir", str(trained_run.parent)]]
    code = (f"import sys\nfrom embcli.cli import main\nfor argv in {argvs!r}:\n"
            "    sys.argv = argv\n"
            "    try: main()\n"
            "    except SystemExit as exc: assert not exc.code, (argv, exc.code)\n"
            "    assert 'torch' not in sys.modules, ('torch imported', argv)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_saved_norms_are_the_tables_and_are_used(trained_run, tmp_path):
    import shutil

    table = np.load(trained_run / "embeddings.npy")
    norms = np.load(trained_run / "norms.npy")
    np.testing.assert_allclose(norms, np.linalg.norm(table, axis=1), rtol=1e-5)
    # A copy whose saved norms are twice the truth: if queries use the saved file (and do not
    # compute norms from the table), every cosine comes out halved.
    copy = tmp_path / "doubled"
    shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns("checkpoint", "snapshots"))
    np.save(copy / "norms.npy", norms * 2)
    true, doubled = EmbeddingSpace.from_run(trained_run), EmbeddingSpace.from_run(copy)
    np.testing.assert_array_equal(doubled.norms, norms * 2)
    cat = true.resolve("cat")
    expected = [n.similarity / 2 for n in true.most_similar([cat], topn=5)]
    assert [n.similarity for n in doubled.most_similar([cat], topn=5)] == pytest.approx(expected, rel=1e-5)


def test_heat_strip_on_a_colour_terminal(trained_run):
    import io

    from rich.console import Console

    from embcli import queries, render

    buffer = io.StringIO()
    colour = Console(file=buffer, force_terminal=True, color_system="truecolor", width=100)
    render.show(queries.inspect_row(EmbeddingSpace.from_run(trained_run), 3797, 3), colour)
    text = buffer.getvalue()
    assert "heat strip" in text and "\x1b[38;2;" in text  # 24-bit colour escapes, one per value
