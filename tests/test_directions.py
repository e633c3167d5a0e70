"""directions: a concept is a direction when held-out words fall on their side of it, and a direction
lives in a block of dimensions only when its weight sits there beyond what a random one holds."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embcli.cli import app
from embcli.directions import (
    Concept,
    held_out_accuracy,
    load_concepts,
    placement,
    probe,
    shuffled_accuracy,
    split_words,
)
from embcli.space import EmbeddingSpace

runner = CliRunner()


def test_the_built_in_lists_are_single_tokens_the_default_corpus_saw(default_counts):
    concepts = load_concepts()
    assert [c.name for c in concepts] == ["living", "size", "sentiment", "register"]
    space = EmbeddingSpace(np.zeros((50257, 2), dtype=np.float32), default_counts)
    for c in concepts:
        assert len(c.positive_words) >= 30 and len(c.positive_words) == len(c.negative_words), c.name
        sides = []
        for words in (c.positive_words, c.negative_words):
            resolved = [space.resolve(w) for w in words]
            assert all(r.single and r.how == "space-prefixed" for r in resolved), c.name
            low = [w for w, r in zip(words, resolved) if default_counts[r.ids[0]] < 10]
            assert not low, f"{c.name}: seen under 10 times: {low}"
            sides.append({r.ids[0] for r in resolved})
            assert len(sides[-1]) == len(words), f"{c.name}: a word twice"
        assert not sides[0] & sides[1], c.name


def plain_loop_accuracy(pos, neg):
    correct = 0
    for own, other, is_pos in ((pos, neg, True), (neg, pos, False)):
        for i, x in enumerate(own):
            m_own, m_other = np.delete(own, i, axis=0).mean(axis=0), other.mean(axis=0)
            mp, mn = (m_own, m_other) if is_pos else (m_other, m_own)
            correct += (x @ (mp - mn) - (mp + mn) @ (mp - mn) / 2 > 0) == is_pos
    return correct / (len(pos) + len(neg))


def test_held_out_accuracy_is_leave_one_out():
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.3, 1.0):
        pos, neg = rng.normal(size=(9, 6)) + shift, rng.normal(size=(7, 6))
        assert held_out_accuracy(pos, neg) == pytest.approx(plain_loop_accuracy(pos, neg))
    assert held_out_accuracy(rng.normal(size=(20, 8)) + 5, rng.normal(size=(20, 8))) == 1.0
    assert held_out_accuracy(np.array([1.0, 2, 3]), np.array([-1.0, -2, -3])) == 1.0  # one feature


def test_chance_is_measured_by_shuffling():
    rng = np.random.default_rng(4)
    noise = rng.normal(size=(72, 128))
    chance = shuffled_accuracy(noise[:36], noise[36:], n=200)
    assert 0.55 < chance < 0.72  # a few dozen words: chance reaches well above 0.5
    assert held_out_accuracy(noise[:36] + 0.3, noise[36:]) > chance


def test_placement_finds_a_direction_that_lives_in_one_block():
    rng = np.random.default_rng(5)
    inside = np.zeros(128)
    inside[:64] = rng.normal(size=64)
    p = placement(inside, 64)
    assert p.blocks[0].share == pytest.approx(1.0) and p.blocks[0].beyond_chance and p.blocks[1].beyond_chance
    assert p.blocks[0].chance == 0.5 and p.blocks[0].low < 0.5 < p.blocks[0].high
    spread = placement(rng.normal(size=128), 64)
    assert p.half < spread.half
    one_hot = np.zeros(128)
    one_hot[77] = -2.0
    p = placement(one_hot, 32)
    assert p.half == 1 and p.top[0].dim == 77 and p.top[0].weight == pytest.approx(-1.0)
    assert [b.first for b in p.blocks] == [0, 32, 64, 96] and p.blocks[2].share == pytest.approx(1.0)
    assert p.half_random_low <= p.half_random <= p.half_random_high


def planted_space(block_only: bool):
    """A random table with a concept planted into the rows of its words (and of one more token)."""
    rng = np.random.default_rng(6)
    table = rng.normal(size=(50257, 128)).astype(np.float32)
    concept = rng.normal(size=128)
    if block_only:
        concept[64:] = 0
    concept = (concept / np.linalg.norm(concept) * 8).astype(np.float32)
    return table, concept


def test_a_planted_concept_is_found_and_placed(tmp_path):
    table, concept = planted_space(block_only=True)
    counts = np.full(50257, 5, dtype=np.int64)
    c = Concept("test", "animals", "colours", ["cat", "dog", "horse", "cow", "sheep", "goat"],
                ["red", "blue", "green", "yellow", "black", "white"])
    control = EmbeddingSpace(table.copy(), counts, step=0)
    space = EmbeddingSpace(table, counts)
    for word in c.positive_words + ["pig"]:
        table[space.resolve(word).ids[0]] += concept
    for word in c.negative_words:
        table[space.resolve(word).ids[0]] -= concept
    d = probe(space, c, control=control)
    assert d.accuracy == 1.0 and d.accuracy > d.chance and d.control_accuracy < 1.0 and d.control_step == 0
    assert d.frequency_accuracy <= 0.5  # every count is 5: frequency tells nothing
    assert d.most_positive[0].token == "␣pig"  # not in the lists, but planted: found at the end
    assert d.placement.blocks[0].share > 0.9 and d.placement.blocks[0].beyond_chance


# ----- the command, on a run made by training ------------------------------------------------


def run_cli(trained_run, *args):
    return runner.invoke(app, [*map(str, args), "--run", str(trained_run)])


def test_directions_command_with_your_own_words(trained_run):
    out = run_cli(trained_run, "directions", "--pos", "cat,dog,horse", "--pos", "cow sheep", "--neg",
                  "red,blue,green,yellow,black", "--block", "16")
    assert out.exit_code == 0, out.output
    assert "--pos ↔ --neg" in out.stdout and "5+5" in out.stdout and "16–31" in out.stdout
    out = run_cli(trained_run, "directions", "--pos", "cat,dog,horse,cow", "--neg", "red,blue,green,yellow", "--json")
    data = json.loads(out.stdout)
    (d,) = data["directions"]
    assert d["positive"]["ids"] == [3797, 3290, 8223, 9875] and d["control_step"] == 0
    assert d["accuracy"] == 1.0  # animals and colours: separated after 60 steps
    assert len(d["placement"]["blocks"]) == 1  # 32 dimensions, one block of 64


def test_built_in_concepts_on_a_small_corpus_say_what_they_left_out(trained_run):
    out = run_cli(trained_run, "directions", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [d["name"] for d in data["directions"]] == ["living"]  # dog, cat ... vs door, wall, car, house
    assert any("fewer than 2 of its words" in n for n in data["notes"])
    assert any("never seen in training" in n for n in data["notes"])


@pytest.mark.parametrize("args, fragment", [
    (["--pos", "cat", "--neg", "red,blue"], "at least 2 words a side"),
    (["--pos", "cat,dog", "--neg", "red,elephant"], "elephant (never seen in training)"),
    (["--pos", "cat,dog"], "give both --pos and --neg"),
    (["--pos", "cat,dog", "--neg", "dog,red"], "␣dog on both sides"),
    (["--step", "5"], "no snapshot at step 5"),
    (["--pos", "cat,dog", "--neg", "red,ornithology"], "ornithology (not one token)"),
])
def test_bad_directions_are_one_line(trained_run, args, fragment):
    out = run_cli(trained_run, "directions", *args)
    assert out.exit_code == 2 and fragment in out.output and "Traceback" not in out.output, out.output
    assert len(out.output.strip().splitlines()) == 1


def test_split_words():
    assert split_words(["big,large", "huge  vast", "tiny"]) == ["big", "large", "huge", "vast", "tiny"]
    assert split_words(None) == []


def test_directions_never_imports_torch(trained_run):
    import subprocess
    import sys

    argv = ["embcli", "directions", "--pos", "cat,dog", "--neg", "red,blue", "--run", str(trained_run)]
    code = (f"import sys; from embcli.cli import main; sys.argv = {argv!r}\n"
            "try: main()\nexcept SystemExit as e: assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
