"""eval, export, import-hf, plots and trace — on tables made by training, checked against gensim."""

import json
import struct

import numpy as np
import pytest
from typer.testing import CliRunner

from embcli.cli import app
from embcli.errors import EmbcliError
from embcli.evaluate import evaluate_analogies, evaluate_pairs, rankdata, spearman
from embcli.export import word_keys
from embcli.space import EmbeddingSpace

runner = CliRunner()
WORDS = ["king", "queen", "man", "woman", "boy", "girl", "cat", "dog", "red", "blue", "green", "house", "car",
         "father", "mother", "brother", "sister", "son", "daughter", "tiger", "love", "money", "bank", "water"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def space():
    """A random table in which the evaluation words are rows that 'training saw'."""
    rng = np.random.default_rng(1)
    table = rng.normal(size=(50257, 16)).astype(np.float32)
    counts = np.zeros(50257, dtype=np.int64)
    counts[rng.choice(50257, 3000, replace=False)] = 3
    s = EmbeddingSpace(table, counts)
    for w in WORDS:
        counts[s.resolve(w).ids[0]] = 10
    return s


@pytest.fixture(scope="module")
def eval_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("evalfiles")
    rng = np.random.default_rng(2)
    pair_lines = ["# comment", "Word 1\tWord 2\tHuman (mean)"]  # the header row is malformed: skipped
    for _ in range(60):
        a, b = rng.choice(WORDS, 2, replace=False)
        pair_lines.append(f"{a}\t{b}\t{rng.uniform(0, 10):.2f}")
    pair_lines += ["ornithology\tcat\t5.0", "broken line"]
    (d / "pairs.tsv").write_text("\n".join(pair_lines) + "\n")
    q = [": family", "king queen man woman", "man woman boy girl", "brother sister son daughter",
         "father mother brother sister", "king queen ornithology woman", ": misc", "cat dog red blue",
         "house car water money", "too few words"]
    (d / "questions.txt").write_text("\n".join(q) + "\n")
    return d


def gensim_twin(space):
    """The same rows in gensim: eval words keyed by the word, other trained rows by '#id'."""
    gensim = pytest.importorskip("gensim")
    allowed = np.flatnonzero(space.allowed())
    keys = {}
    for w in WORDS:
        keys[space.resolve(w).ids[0]] = w
    kv = gensim.models.KeyedVectors(space.vectors.shape[1])
    kv.add_vectors([keys.get(int(i), f"#{i}") for i in allowed], space.vectors[allowed])
    return kv


def test_rank_and_spearman_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    y = np.array([2, 7, 1, 8, 2, 8, 1, 8, 2, 8])
    np.testing.assert_allclose(rankdata(x), stats.rankdata(x))
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_pairs_equal_gensim_evaluate_word_pairs(space, eval_files):
    kv = gensim_twin(space)
    ours = evaluate_pairs(space, eval_files / "pairs.tsv")
    pearson, spear, oov = kv.evaluate_word_pairs(str(eval_files / "pairs.tsv"), case_insensitive=False)
    assert ours.spearman == pytest.approx(spear.statistic, abs=1e-9)
    assert ours.pearson == pytest.approx(pearson.statistic, abs=1e-6)
    assert ours.used == 60 and ours.total == 61 and ours.malformed == 2


def test_analogies_equal_gensim_evaluate_word_analogies(space, eval_files):
    kv = gensim_twin(space)
    ours = evaluate_analogies(space, eval_files / "questions.txt")
    score, sections = kv.evaluate_word_analogies(str(eval_files / "questions.txt"), case_insensitive=False)
    theirs = {s["section"]: s for s in sections}
    assert ours.used == len(theirs["Total accuracy"]["correct"]) + len(theirs["Total accuracy"]["incorrect"]) == 6
    assert ours.total == 7 and ours.malformed == 1
    for sec in ours.sections:
        assert sec["correct"] == len(theirs[sec["section"]]["correct"])
    assert ours.accuracy == pytest.approx(score)


def test_the_min_count_bench_scores_analogies_as_eval_does(space, eval_files):
    """bench/min_count.py's "fixed set" column is eval's 3CosAdd on chosen questions: the same code
    (evaluate.analogies_answered), so on eval's own usable questions it gives eval's accuracy."""
    import importlib.util
    from pathlib import Path

    from embcli.evaluate import read_analogies

    path = Path(__file__).resolve().parents[1] / "bench" / "min_count.py"
    spec = importlib.util.spec_from_file_location("bench_min_count", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    sections, _ = read_analogies(eval_files / "questions.txt")
    usable = []
    for _, questions in sections:
        for q in questions:
            try:
                resolved = [space.resolve(w) for w in q]
            except EmbcliError:  # ornithology: several tokens
                continue
            usable.append(tuple(r.ids[0] for r in resolved))
    ours = evaluate_analogies(space, eval_files / "questions.txt")
    assert len(usable) == ours.used == 6
    assert bench.fixed_set_accuracy(space, usable) == ours.accuracy
    v = np.array(space.vectors, copy=True)  # one answer planted: the bench sees it as eval does
    ids = {w: space.resolve(w).ids[0] for w in ("king", "queen", "man", "woman")}
    v[ids["woman"]] = v[ids["queen"]] - v[ids["king"]] + v[ids["man"]]
    planted = EmbeddingSpace(v, space.counts)
    assert bench.fixed_set_accuracy(planted, usable) == evaluate_analogies(planted, eval_files / "questions.txt").accuracy
    assert bench.fixed_set_accuracy(planted, usable[:1]) == 1.0  # king queen man woman


def test_planted_analogy_is_found(space, tmp_path):
    v = np.array(space.vectors, copy=True)
    ids = {w: space.resolve(w).ids[0] for w in ("king", "queen", "man", "woman")}
    v[ids["queen"]] = v[ids["king"]] - v[ids["man"]] + v[ids["woman"]]
    planted = EmbeddingSpace(v, space.counts)
    (tmp_path / "q.txt").write_text(": x\nman woman king queen\n")
    assert evaluate_analogies(planted, tmp_path / "q.txt").correct == 1


def test_eval_files_without_any_usable_line(space, tmp_path):
    (tmp_path / "empty.tsv").write_text("# only comments\n")
    with pytest.raises(EmbcliError, match="no word pairs found"):
        evaluate_pairs(space, tmp_path / "empty.tsv")
    (tmp_path / "none.tsv").write_text("zzqx\tqxzz\t1.0\nqqqz\tzzqq\t2.0\n")
    assert evaluate_pairs(space, tmp_path / "none.tsv").used == 0  # no overlap: reported, not a crash
    with pytest.raises(EmbcliError, match="does not exist"):
        evaluate_pairs(space, tmp_path / "missing.tsv")


# ----- commands on a run made by training ---------------------------------------------------


def test_eval_command_with_word2vec_baseline(trained_run):
    # --baseline-epochs: the default (the run's own training time) is tests/test_baseline.py's
    result = invoke("eval", "--run", trained_run, "--baseline", "word2vec", "--baseline-epochs", 1, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["tables"]
    assert set(data) == {"embcli", "word2vec_epochs", "word2vec_5_epochs"}
    for r in data.values():
        assert r["pairs_total"] == 353 and r["analogies_total"] == 19544
        assert r["pairs_used"] == data["embcli"]["pairs_used"]  # same restriction for every table
    assert "skip-gram" in data["word2vec_epochs"]["settings"]
    text = invoke("eval", "--run", trained_run, "--sections")
    assert text.exit_code == 0 and "WordSim353" in text.stdout and "capital-common-countries" in text.stdout
    bad = invoke("eval", "--run", trained_run, "--baseline", "glove")
    assert bad.exit_code == 2 and "invalid value for '--baseline': 'glove' is not one of 'word2vec'" in bad.stderr


def test_export_word2vec_formats_load_in_gensim(trained_run, tmp_path):
    gensim = pytest.importorskip("gensim")
    space = EmbeddingSpace.from_run(trained_run)
    for fmt, binary in (("word2vec", False), ("word2vec-bin", True)):
        out = tmp_path / f"table.{fmt}"
        result = invoke("export", "--run", trained_run, "--format", fmt, "-o", out)
        assert result.exit_code == 0, result.output
        kv = gensim.models.KeyedVectors.load_word2vec_format(str(out), binary=binary)
        assert len(kv) == int((space.counts >= 1).sum())
        np.testing.assert_allclose(kv["cat"], space.vectors[3797], rtol=1e-5, atol=1e-6)  # " cat" is keyed cat
        # most frequent first
        assert kv.index_to_key[0] == word_keys()[int(np.argmax(space.counts))]
    top = invoke("export", "--run", trained_run, "--format", "word2vec", "-o", tmp_path / "top.txt", "--top", 5)
    assert top.exit_code == 0 and (tmp_path / "top.txt").read_text().splitlines()[0] == "5 32"


def test_export_projector_npy_safetensors(trained_run, tmp_path):
    assert invoke("export", "--run", trained_run, "-f", "projector", "-o", tmp_path / "proj").exit_code == 0
    vectors = (tmp_path / "proj" / "vectors.tsv").read_text().splitlines()
    meta = (tmp_path / "proj" / "metadata.tsv").read_text().split("\n")
    assert meta[0] == "token\tid\tcount" and len(meta) - 2 == len(vectors)
    assert all(len(line.split("\t")) == 3 for line in meta[1:-1])  # tabs and newlines escaped
    assert any(line.startswith("\\n\t198\t") for line in meta)  # the newline token survives, escaped
    assert invoke("export", "--run", trained_run, "-f", "npy", "-o", tmp_path / "t.npy", "--min-count", 0).exit_code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), np.load(trained_run / "embeddings.npy"))
    assert invoke("export", "--run", trained_run, "-f", "safetensors", "-o", tmp_path / "t.safetensors").exit_code == 0
    from safetensors.numpy import load_file

    st = load_file(str(tmp_path / "t.safetensors"))
    np.testing.assert_array_equal(st["embeddings"], np.load(trained_run / "embeddings.npy")[st["ids"]])


@pytest.mark.parametrize("args, fragment", [
    (["-f", "glove", "-o", "x.txt"], "invalid value for '--format' / '-f': 'glove' is not one of"),
    (["-f", "npy", "-o", "/proc/nope/x.npy"], "cannot write"),
    (["-f", "npy", "-o", "x.npy", "--min-count", "10000000"], "no rows to export"),
])
def test_export_bad_input(trained_run, args, fragment):
    result = invoke("export", "--run", trained_run, *args)
    assert result.exit_code == 2 and fragment in result.stderr, result.output


def test_import_hf_tiny_random_gpt2(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=50257)
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(str(tmp_path / "tiny-gpt2"))
    result = invoke("import-hf", tmp_path / "tiny-gpt2", "--name", "gpt2tiny")
    assert result.exit_code == 0, result.output
    from embcli.runs import find_run

    run = find_run("gpt2tiny")
    np.testing.assert_array_equal(np.load(run / "embeddings.npy"), model.transformer.wte.weight.detach().numpy())
    space = EmbeddingSpace.from_run(run)
    assert space.counts is None and space.excluded_count() == 0  # unknown counts: every row is used
    nn = invoke("neighbors", "cat", "--run", "gpt2tiny", "--json")
    assert nn.exit_code == 0 and "count" in nn.stdout
    table = json.loads(invoke("inspect", "table", "--run", "gpt2tiny", "--json").stdout)
    assert table["tied"] is True and table["rows_trained"] is None
    missing = invoke("import-hf", tmp_path / "nothing-here")
    assert missing.exit_code == 2 and "no such folder" in missing.stderr


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plots_are_pngs_of_the_expected_size(trained_run, tmp_path):
    pytest.importorskip("matplotlib")
    r = invoke("plot", "words", "cat", "dog", "red", "king", "--neighbors", 3, "--run", trained_run, "-o", tmp_path / "w.png")
    assert r.exit_code == 0, r.output
    assert png_size(tmp_path / "w.png") == (800, 600)
    r = invoke("plot", "loss", str(trained_run), "-o", tmp_path / "l.png")
    assert r.exit_code == 0 and png_size(tmp_path / "l.png") == (800, 600)
    bad = invoke("plot", "loss", str(trained_run), "-o", tmp_path / "l.jpg")
    assert bad.exit_code == 2 and "PNG" in bad.stderr


def test_trace_follows_a_word_from_noise(trained_run, tmp_path):
    r = invoke("trace", "cat", "--run", trained_run, "--json", "--with", "dog", "--with", "red")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [s["step"] for s in data["snapshots"]] == [0, 10, 30, 60]
    followed = {f["token"]: f["cosine"] for f in data["followed"]}
    assert set(followed) == {" dog", " red"}
    sims = followed[" dog"]
    assert len(sims) == 4 and sims[-1] > sims[0]  # cat and dog drift together
    r = invoke("trace", "cat", "--run", trained_run, "-o", tmp_path / "t.png")
    assert r.exit_code == 0 and "step" in r.stdout and png_size(tmp_path / "t.png") == (800, 600)
