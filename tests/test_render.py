"""What the answers look like, character for character, on a table small enough to check by hand.

Four trained rows on the unit circle: cat (1, 0), dog (0.8, 0.6), horse (0.6, 0.8), and red (0, 1)
which training never saw (count 0), so cos(cat, dog) = 0.8 and cos(cat, horse) = 0.6 exactly.
"""

import io
import json
from unittest.mock import ANY

import numpy as np
import pytest
from rich.console import Console

from embcli import queries, render
from embcli.space import EmbeddingSpace

CAT, DOG, HORSE, RED = 3797, 3290, 8223, 2266


@pytest.fixture(scope="module")
def space():
    vectors, counts = np.zeros((50257, 2), np.float32), np.zeros(50257, np.int64)
    for token_id, vector, count in [(CAT, (1, 0), 5), (DOG, (0.8, 0.6), 1200), (HORSE, (0.6, 0.8), 3), (RED, (0, 1), 0)]:
        vectors[token_id], counts[token_id] = vector, count
    return EmbeddingSpace(vectors, counts, source="planted")


def shown(result, **options) -> str:
    buffer = io.StringIO()
    render.show(result, Console(file=buffer, width=80, highlight=False), **options)
    return buffer.getvalue()


def test_neighbours_table_and_the_left_out_note(space):
    # the resolution line above the table (as a title it would wrap at the table's width), with its evidence
    assert shown(queries.neighbors(space, ["cat"], 3)) == "\n".join([
        "'cat' → ␣cat (3797; space-prefixed: seen 5 times in training; cat 0 times)",
        "┏━━━┳━━━━━━┳━━━━━━━━┳━━━━━━━━┳━━━━━━━┓",
        "┃ # ┃   id ┃ token  ┃ cosine ┃ count ┃",
        "┡━━━╇━━━━━━╇━━━━━━━━╇━━━━━━━━╇━━━━━━━┩",
        "│ 1 │ 3290 │ ␣dog   │ 0.8000 │ 1,200 │",
        "│ 2 │ 8223 │ ␣horse │ 0.6000 │     3 │",
        "└───┴──────┴────────┴────────┴───────┘",
        "50,254 rows never seen in training left out: they are still their random start ",
        "(--min-count 0 keeps them)",
        ""])


def test_the_note_names_the_threshold_and_disappears_without_one(space):
    strict = EmbeddingSpace(space.vectors, space.counts, min_count=4)
    assert shown(queries.neighbors(strict, ["dog"])).endswith(
        "50,255 rows left out: 50,254 never seen in training, 1 seen 1–3 times and barely\n"
        "trained (--min-count 1 keeps the rows training saw, 0 every row)\n")
    twice = EmbeddingSpace(space.vectors, space.counts, min_count=2)
    assert "50,254 rows left out: 50,254 never seen in training, 0 seen once and barely" in \
        shown(queries.neighbors(twice, ["dog"]))
    everything = EmbeddingSpace(space.vectors, space.counts, min_count=0)
    assert "left out" not in shown(queries.neighbors(everything, ["dog"]))


def test_odd_one_out_lines(space):
    # mean of the unit rows (1.8, 1.6)/3, normalised: (0.7474, 0.6644)
    assert shown(queries.odd_one_out(space, ["cat", "dog", "red"])) == (
        "odd one out: red\n"
        "  dog              0.9965  cosine to the mean\n"
        "  cat              0.7474  cosine to the mean\n"
        "  red              0.6644  cosine to the mean\n")


def test_row_by_word(space):
    assert shown(queries.inspect_token(space, "horse", 2)) == "\n".join([
        "row 8223 = ␣horse  ('horse' → ␣horse (8223; space-prefixed: seen 3 times in ",
        "training; horse 0 times))   seen 3 times in training",
        "norm 1.0000   mean +0.7000   std 0.1000   min +0.6000   max +0.8000   dim 2",
        "first values: +0.6000, +0.8000",
        "all values (sparkline, low ▁ … █ high):",
        "     0 ▁█",
        "nearest neighbours                   ",
        "┏━━━┳━━━━━━┳━━━━━━━┳━━━━━━━━┳━━━━━━━┓",
        "┃ # ┃   id ┃ token ┃ cosine ┃ count ┃",
        "┡━━━╇━━━━━━╇━━━━━━━╇━━━━━━━━╇━━━━━━━┩",
        "│ 1 │ 3290 │ ␣dog  │ 0.9600 │ 1,200 │",
        "│ 2 │ 3797 │ ␣cat  │ 0.6000 │     5 │",
        "└───┴──────┴───────┴────────┴───────┘",
        ""])


def test_json_is_one_document_per_answer(space):
    one_line = shown(queries.similarity(space, "cat", "dog"), as_json=True)
    assert one_line.count("\n") == 1
    word = lambda text, token_id: {"text": text, "how": "space-prefixed", "why": ANY,  # noqa: E731
                                   "tokens": [{"id": token_id, "token": " " + text}]}
    assert json.loads(one_line)["a"]["why"].startswith("seen ")  # the evidence for the form taken
    assert json.loads(one_line) == {"verb": "similarity", "run": None, "a": word("cat", CAT), "b": word("dog", DOG),
                                    "similarity": pytest.approx(0.8)}
    # horse − cat + dog = (0.4, 1.4): red, untrained, is the answer once --min-count 0 lets it in
    everything = EmbeddingSpace(space.vectors, space.counts, min_count=0)
    text = shown(queries.analogy(everything, "horse", "cat", "dog", 1), as_json=True)
    assert text.startswith('{\n  "verb": "analogy",\n  "run": null,\n  "a": {')  # indented, as before
    assert json.loads(text) == {"verb": "analogy", "run": None, "a": word("horse", HORSE), "b": word("cat", CAT),
                                "c": word("dog", DOG), "method": "add", "answers": [
        {"rank": 1, "id": RED, "token": " red", "similarity": pytest.approx(1.4 / np.hypot(0.4, 1.4)), "count": 0}],
        "left_out": None}


def test_error_lines_show_brackets_as_typed():
    buffer = io.StringIO()
    render.error_line(Console(file=buffer, width=80), "pictures need matplotlib: pip install 'embcli[plot]'")
    assert buffer.getvalue() == "error: pictures need matplotlib: pip install 'embcli[plot]'\n"


# Tokens whose text rich would read as markup, or as an escape of the markup after it: "[/" closes
# a style, "[" + "bold" + "]" opens one once joined, a trailing "\" escapes the next "[".
BRACKETS = {58: "[", 60: "]", 13412: "[/", 21737: "[]", 59: "\\", 6852: "\\\\", 7479: ":\\", 36575: "bold", 87: "x"}
TYPED = "[bold]x[/bold]"  # typed as a word: seven tokens, ␣[ bold ] x [/ bold ]


@pytest.fixture(scope="module")
def brackets():
    vectors, counts = np.zeros((50257, 2), np.float32), np.zeros(50257, np.int64)
    for k, token_id in enumerate(BRACKETS):
        vectors[token_id], counts[token_id] = (np.cos(0.3 * k), np.sin(0.3 * k)), 50
    return EmbeddingSpace(vectors, counts, source="runs/[bold]x[/bold]\\")


def token_column(text: str) -> list[str]:
    """The token cells of every neighbour table in an answer."""
    return [row.split("│")[3].strip() for row in text.splitlines() if row.startswith("│")]


def test_tokens_typed_words_and_names_are_text_never_markup(brackets):
    pieces = "␣[ + bold + ] + x + [/ + bold + ] (685, 36575, 60, 87, 13412, 36575, 60; mean of 7 pieces)"
    answer = shown(queries.neighbors(brackets, [TYPED], 8, combine="mean"))
    assert answer.splitlines()[0] == f"'{TYPED}' → {pieces}"
    assert sorted(token_column(answer)) == sorted(["[", "[]", "\\", "\\\\", ":\\"])  # the other trained rows, as they are

    answer = shown(queries.analogy(brackets, TYPED, "[]", "\\", 3, combine="mean"))
    assert answer.splitlines()[0].rstrip() == f"{TYPED} − [] + \\  (3CosAdd)"
    assert set(token_column(answer)) <= set(BRACKETS.values()) and f"'{TYPED}' → {pieces}" in " ".join(answer.split())

    answer = " ".join(shown(queries.similarity(brackets, TYPED, ":\\", combine="mean")).split())
    assert answer.startswith(f"cosine('{TYPED}' → {pieces}, ") and "→ :\\ (7479; " in answer

    answer = shown(queries.odd_one_out(brackets, [TYPED, "[/", "[]"], combine="mean"))
    assert sorted(line.split()[0] for line in answer.splitlines()[1:]) == sorted([TYPED, "[/", "[]"])

    assert " ".join(shown(queries.tokenize(TYPED + " C:\\")).split()) == (
        "9 tokens: [(58) bold(36575) ](60) x(87) [/(13412) bold(36575) ](60) ␣C(327) :\\(7479)")

    answer = shown(queries.inspect_row(brackets, 59, 3))
    assert answer.startswith("row 59 = \\   seen 50 times in training\n")
    assert set(token_column(answer)) <= set(BRACKETS.values()) and len(token_column(answer)) == 3
    answer = " ".join(shown(queries.inspect_token(brackets, "[/", 3)).split())
    assert answer.startswith("row 13412 = [/ ('[/' → [/ (13412; bare: seen 50 times in training; ␣[/ 0 times)) seen 50")

    answer = shown(queries.TableResult(brackets.source, None, brackets.table_stats(None)))
    assert answer.startswith("table of runs/[bold]x[/bold]\\\n")


def test_the_same_on_a_colour_terminal(brackets):
    """Markup read by mistake shows only where styles are drawn: the text under the colours is the same."""
    import re

    buffer = io.StringIO()
    out = Console(file=buffer, width=120, force_terminal=True, color_system="truecolor", highlight=False)
    render.show(queries.tokenize(TYPED + " C:\\"), out)
    render.show(queries.inspect_row(brackets, 6852, 2), out)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", buffer.getvalue())
    assert "9 tokens: [(58)  bold(36575)  ](60)  x(87)  [/(13412)  bold(36575)  ](60)  ␣C(327)  :\\(7479)" in plain
    assert "row 6852 = \\\\   seen 50 times in training" in plain
