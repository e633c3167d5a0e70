"""Numbers for "the table looks right": WordSim353 (Spearman ρ) and the Google analogy questions.

The scores follow gensim's ``evaluate_word_pairs`` and ``evaluate_word_analogies`` — same file
formats, same skipping of malformed lines, same 3CosAdd rule — with one GPT-2-aware restriction:
a pair or question counts only when each of its words resolves (as the query commands resolve
it: " word", else "word") to a single token that training saw. Every score comes with its
coverage, because a score over 30% of the questions is not the same claim as one over 90%.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import EmbcliError
from .space import EmbeddingSpace


def default_pairs_path() -> Path:
    return Path(str(resources.files("embcli") / "assets" / "wordsim353.tsv"))


def default_analogies_path() -> Path:
    return Path(str(resources.files("embcli") / "assets" / "questions-words.txt"))


def _read_lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EmbcliError(f"evaluation file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EmbcliError(f"cannot read evaluation file {path}: {exc}") from None


def read_pairs(path: Path) -> tuple[list[tuple[str, str, float]], int]:
    """word1 <tab> word2 <tab> score lines; '#' lines are comments; malformed lines are counted."""
    pairs, malformed = [], 0
    for line in _read_lines(path):
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        try:
            a, b, score = parts
            pairs.append((a, b, float(score)))
        except ValueError:
            malformed += 1
    return pairs, malformed


def read_analogies(path: Path) -> tuple[list[tuple[str, list[tuple[str, str, str, str]]]], int]:
    """': section' headers, then 'a b c d' lines (a is to b as c is to d)."""
    sections: list[tuple[str, list]] = []
    malformed = 0
    for line in _read_lines(path):
        if line.startswith(": "):
            sections.append((line[2:].strip(), []))
            continue
        if not line.strip():
            continue
        words = line.split()
        if len(words) != 4 or not sections:
            malformed += 1
            continue
        sections[-1][1].append(tuple(words))
    return sections, malformed


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (scipy.stats.rankdata's 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def spearman(a, b) -> float:
    return pearson(rankdata(a), rankdata(b))


class _Vocabulary:
    """Caches word → single trained token id (or None) for one space."""

    def __init__(self, space: EmbeddingSpace):
        self.space, self.cache = space, {}
        self.allowed = space.allowed()

    def __call__(self, word: str) -> int | None:
        if word not in self.cache:
            try:
                r = self.space.resolve(word)
                tid = r.ids[0] if r.single else None
            except EmbcliError:
                tid = None
            if tid is not None and self.allowed is not None and not self.allowed[tid]:
                tid = None
            self.cache[word] = tid
        return self.cache[word]


@dataclass
class PairScore:
    spearman: float
    pearson: float
    used: int
    total: int
    malformed: int
    pairs: list = field(default_factory=list, repr=False)


def evaluate_pairs(space: EmbeddingSpace, path: Path | None = None) -> PairScore:
    pairs, malformed = read_pairs(path or default_pairs_path())
    if not pairs:
        raise EmbcliError(f"{path}: no word pairs found (expected 'word1<TAB>word2<TAB>score' lines)")
    vocab = _Vocabulary(space)
    gold, model, used = [], [], []
    for a, b, score in pairs:
        ia, ib = vocab(a), vocab(b)
        if ia is None or ib is None:
            continue
        gold.append(score)
        model.append(float(np.dot(space.unit(ia), space.unit(ib))))
        used.append((a, b, score, model[-1]))
    if len(gold) < 2:
        return PairScore(float("nan"), float("nan"), len(gold), len(pairs), malformed, used)
    return PairScore(spearman(gold, model), pearson(gold, model), len(gold), len(pairs), malformed, used)


@dataclass
class AnalogyScore:
    correct: int
    used: int
    total: int
    malformed: int
    sections: list[dict]

    @property
    def accuracy(self) -> float:
        return self.correct / self.used if self.used else float("nan")


def unit_rows(space: EmbeddingSpace) -> np.ndarray:
    """The table's rows scaled to length 1 (a zero row stays zero), as float32."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(np.asarray(space.vectors, dtype=np.float32) / space.norms[:, None])


def analogies_answered(unit: np.ndarray, questions, allowed: np.ndarray | None = None, batch: int = 512) -> int:
    """How many (a, b, c, d) id quadruples 3CosAdd answers right: d = argmax cos(x, b − a + c) over the
    rows ``allowed`` (all when None), x ∉ {a, b, c}. ``unit``: the table's unit rows (:func:`unit_rows`)."""
    questions = np.asarray(questions, dtype=np.int64).reshape(-1, 4)
    correct = 0
    for start in range(0, len(questions), batch):
        a, b, c, d = questions[start:start + batch].T
        query = unit[b] - unit[a] + unit[c]
        query /= np.linalg.norm(query, axis=1, keepdims=True).clip(min=1e-12)
        scores = query @ unit.T
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        r = np.arange(len(a))
        scores[r, a] = scores[r, b] = scores[r, c] = -np.inf
        correct += int((scores.argmax(axis=1) == d).sum())
    return correct


def evaluate_analogies(space: EmbeddingSpace, path: Path | None = None, batch: int = 512) -> AnalogyScore:
    """3CosAdd over every trained row: d = argmax cos(x, b − a + c), x ∉ {a, b, c}."""
    sections, malformed = read_analogies(path or default_analogies_path())
    if not any(qs for _, qs in sections):
        raise EmbcliError(f"{path}: no analogy questions found (expected ': section' then 'a b c d' lines)")
    vocab = _Vocabulary(space)
    unit, allowed = unit_rows(space), space.allowed()
    results, correct_all, used_all, total_all = [], 0, 0, 0
    for name, questions in sections:
        ids = [tuple(vocab(w) for w in q) for q in questions]
        usable = [q for q in ids if None not in q]
        correct = analogies_answered(unit, usable, allowed, batch)
        results.append({"section": name, "correct": correct, "used": len(usable), "total": len(questions)})
        correct_all += correct
        used_all += len(usable)
        total_all += len(questions)
    return AnalogyScore(correct_all, used_all, total_all, malformed, results)
