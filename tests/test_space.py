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
                               "row 99999", "what is this", "directions cat dog", "quit", "never reached"], out=out)
    text = buf.getvalue()
    assert "error: directions takes no words (the built-in concepts) or POS... / NEG..." in text
    assert "nearest neighbours" in text and "king − man + woman" in text and "odd one out" in text
    assert "out of range" in text and "not understood" in text and "The(464)" in text
    assert "cosine(" in text


def test_shell_answers_as_the_commands_do(trained_run):
    """The shell and the commands call the same queries and renderers: the same answer, byte for byte."""
    from io import StringIO

    from rich.console import Console

    from embcli.shell import run_shell
    from embcli.space import DEFAULT_MIN_COUNT

    space = EmbeddingSpace.from_run(trained_run, min_count=DEFAULT_MIN_COUNT)  # as `embcli shell` opens it
    same_as = {"nn cat dog": ["neighbors", "cat", "dog", "-k", 4],
               "analogy king man woman mul": ["analogy", "king", "man", "woman", "--method", "mul", "-k", 4],
               "sim cat dog": ["similarity", "cat", "dog"], "odd cat dog blue": ["odd-one-out", "cat", "dog", "blue"],
               "row 3797": ["inspect", "row", 3797, "-k", 4], "token dog": ["inspect", "token", "dog", "-k", 4],
               "tok The cat": ["tokenize", "The cat"], "predict a cat is an": ["predict", "a cat is an", "-k", 4],
               "directions cat,dog horse cow / red blue,green yellow": [
                   "directions", "--pos", "cat,dog,horse,cow", "--neg", "red,blue,green,yellow", "-k", 4]}
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
             ["inspect", "table"], ["inspect", "model"], ["trace", "cat"], ["eval"],
             ["directions", "--pos", "cat,dog", "--neg", "red,blue"]]
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
    with np.load(trained_run / "norms.npz") as saved:
        norms = saved["norms"]
    np.testing.assert_allclose(norms, np.linalg.norm(table, axis=1), rtol=1e-5)
    # Loaded with the table rather than computed from it: in the run, and in a copy that keeps the
    # files' times (cp -p, rsync -a). Saved norms that are not the table's: tests/test_faults.py.
    copy = shutil.copytree(trained_run, tmp_path / "copy", ignore=shutil.ignore_patterns("checkpoint", "snapshots"))
    for run in (trained_run, copy):
        space = EmbeddingSpace.from_run(run)
        assert space._norms is not None
        np.testing.assert_array_equal(space.norms, norms)


def test_heat_strip_on_a_colour_terminal(trained_run):
    import io

    from rich.console import Console

    from embcli import queries, render

    buffer = io.StringIO()
    colour = Console(file=buffer, force_terminal=True, color_system="truecolor", width=100)
    render.show(queries.inspect_row(EmbeddingSpace.from_run(trained_run), 3797, 3), colour)
    text = buffer.getvalue()
    assert "heat strip" in text and "\x1b[38;2;" in text  # 24-bit colour escapes, one per value


# ----- words → tokens by evidence (the default corpus's counts) -------------------------------


def test_words_take_their_most_frequent_form(table, default_counts):
    space = EmbeddingSpace(table, default_counts)
    period, comma, cat = space.resolve("."), space.resolve(","), space.resolve("cat")
    assert period.ids == [13] and period.how == "bare"  # not " ." (764), rare in running text
    assert "seen 2,315 times in training; ␣. 23 times" in period.why
    assert comma.ids == [11] and comma.how == "bare"  # not " ," (837)
    assert cat.ids == [CAT] and cat.how == "space-prefixed"  # " cat" 293 times, "cat" 231
    assert space.resolve("The").ids == [464]  # "The" opens glosses' examples; " The" is rarer


def test_a_bare_form_needs_ten_times_the_count(table, default_counts):
    """A bare form's count includes the ends of longer words (states|man), so it must win by 10×."""
    space = EmbeddingSpace(table, default_counts)
    man = space.resolve("man")  # " man" 1,010 times, "man" 1,062: still " man", so king − man + woman works
    assert man.ids == [MAN] and man.how == "space-prefixed"
    assert "man 1,062 times (a bare form needs 10× the count" in man.why
    assert space.resolve("ant").ids == [1885]  # the insect, not the suffix ("ant" 2,051 vs " ant" 353)
    assert space.resolve("ing").ids == [278]  # 2,580 vs 44: the suffix it is


def test_a_word_never_seen_in_its_typed_case_takes_the_capitalised_form(table, default_counts):
    space = EmbeddingSpace(table, default_counts)
    france = space.resolve("france")  # " france" is two tokens; " France" is one, seen 285 times
    assert france.ids == [4881] and france.how == "capitalised, space-prefixed"
    assert "'france' as typed is no token that training saw" in france.why
    from embcli.render import describe

    assert "France(4881" not in describe(france) and "4881" in describe(france)
    assert space.resolve("dna").ids == [7446] and space.resolve("dna").how == "upper-case, space-prefixed"
    # the capitalised forms only join when the typed case was never seen: " apple" stays " apple"
    assert space.resolve("apple").ids == [17180]


def test_exact_and_a_typed_space_keep_the_literal_form(table, default_counts):
    space = EmbeddingSpace(table, default_counts)
    assert space.resolve(".", exact=True).ids == [13] and space.resolve(" .", exact=True).ids == [764]
    assert space.resolve(" .").ids == [764] and space.resolve(" .").how == "space-prefixed"
    assert space.resolve("cat", exact=True).ids == [9246]
    with pytest.raises(EmbcliError, match="'france' is not one GPT-2 token"):
        space.resolve("france", exact=True)


def test_unknown_counts_try_the_forms_in_order(table):
    space = EmbeddingSpace(table, None)  # an imported table: no evidence
    assert space.resolve(".").ids == [764] and "training counts unknown" in space.resolve(".").why
    assert space.resolve("france").ids == [4881]


def test_every_verb_resolves_by_the_same_rule(trained_run):
    """neighbors, inspect token, trace, eval's word lookup and the shell all go through resolve."""
    import io

    from rich.console import Console

    from embcli.evaluate import _Vocabulary
    from embcli.shell import run_shell

    space = EmbeddingSpace.from_run(trained_run)
    # the tiny corpus has "." after a space only: " ." is its most frequent form there
    assert space.count(764) > 0 and space.count(13) == 0
    assert space.resolve(".").ids == [764]
    out = run_cli(trained_run, "neighbors", ".", "--json")
    query = json.loads(out.stdout)["words"][0]["query"]
    assert out.exit_code == 0 and [t["id"] for t in query["tokens"]] == [764]
    assert "never seen" not in query["why"]
    out = run_cli(trained_run, "inspect", "token", "the")
    assert out.exit_code == 0 and "row 262" in out.stdout and "seen" in out.stdout
    assert _Vocabulary(space)(".") == 764
    out = run_cli(trained_run, "trace", ".", "--json")
    assert out.exit_code == 0 and [t["id"] for t in json.loads(out.stdout)["word"]["tokens"]] == [764]
    console = Console(file=io.StringIO(), width=200)
    run_shell(space, 3, lines=["nn .", "token ."], out=console)
    shown = console.file.getvalue()
    assert shown.count("'.' → ␣. (764; space-prefixed: seen") == 2, shown


def test_answers_leave_out_rows_seen_under_five_times_by_default(trained_run, tmp_path):
    import shutil

    from embcli.cli import AnswerMinCountOpt
    from embcli.space import DEFAULT_MIN_COUNT

    assert AnswerMinCountOpt.default == DEFAULT_MIN_COUNT == 5
    run = tmp_path / "runs" / "rare"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("checkpoint*"))
    nearest = EmbeddingSpace.from_run(run).most_similar([Resolved("cat", [CAT], "id")], topn=1)[0]
    counts = np.load(run / "counts.npy")
    counts[nearest.id] = 3  # pretend cat's nearest row was barely trained
    np.save(run / "counts.npy", counts)
    out = runner.invoke(app, ["neighbors", "cat", "--json", "--run", str(run)])
    assert nearest.id not in [n["id"] for n in json.loads(out.stdout)["words"][0]["neighbors"]]
    out = runner.invoke(app, ["neighbors", "cat", "--json", "--min-count", "1", "--run", str(run)])
    assert json.loads(out.stdout)["words"][0]["neighbors"][0]["id"] == nearest.id
    out = runner.invoke(app, ["neighbors", "cat", "--run", str(run)])
    assert "rows left out: " in out.stdout and "never seen in training, 1 seen 1–4 times and barely trained" in out.stdout
