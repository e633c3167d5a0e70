"""``embcli directions``: do directions in the table mean things, and where in the table do they live?

A common explanation of embeddings says the dimensions come in meaningful blocks — "dimensions
0–63: living vs non-living, 64–127: big vs small, then positive vs negative, formal vs casual".
This module tests both halves of that claim on a run's own table:

1. *Is there a direction?* For a concept with two word lists (living: dog, tree, ...; non-living:
   rock, door, ...) the direction is the difference of the two lists' mean unit rows. Each word
   is then classified with the direction computed *without it* (leave-one-out): which side of
   the midpoint between the two means does its row fall on? The held-out accuracy says whether
   the concept is a direction in the table — when it beats what the same rows reach with their
   sides shuffled (on a few dozen words, chance scatters widely). Two more controls: the same
   words in the table at step 0 (still N(0, 0.02) noise: accuracy near chance), and the words'
   training counts alone (a direction could separate common from rare words and look like
   meaning).
2. *Where does it live?* The unit direction's squared weights sum to 1; their share in each block
   of 64 dimensions is set against the share a block holds by chance (64/dim for a random
   direction, with the range 95% of random directions fall in), with its top dimensions and how
   many dimensions carry half the weight. A direction spread over all dimensions looks like a
   random one here; a direction living in "dimensions 0–63" would put most of its weight there.

Torch-free: tables are read as numpy arrays, as every query does. This module measures one concept
in one table (:func:`probe`); ``queries.directions`` runs the built-in concepts (or a user's own
words) against a run's table and its step-0 control, and ``render.directions`` draws the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib

from .errors import EmbcliError
from .space import EmbeddingSpace

RANDOM_DIRECTIONS = 4000  # isotropic random directions behind the "by chance" figures (seeded)
SHUFFLES = 500  # label shuffles behind the chance level of the held-out accuracy (seeded)


@dataclass
class Concept:
    """Two word lists naming the poles of a concept (read from ``assets/directions.toml``)."""

    name: str
    positive: str
    negative: str
    positive_words: list[str]
    negative_words: list[str]


@dataclass
class Pole:
    """One side of a concept as the table sees it: the words kept, as token ids, and those left out."""

    label: str
    words: list[str]
    ids: list[int]
    tokens: list[str]
    missing: list[str] = field(default_factory=list)  # "word (why)": not one token, or never seen


@dataclass
class Extreme:
    id: int
    token: str
    cosine: float  # with the direction
    count: int | None


@dataclass
class BlockShare:
    first: int  # first dimension of the block
    last: int  # last dimension (inclusive)
    share: float  # of the direction's squared weight
    chance: float  # the expected share for a random direction: block size / dim
    low: float  # 95% of random directions hold between low and high
    high: float

    @property
    def beyond_chance(self) -> bool:
        return not self.low <= self.share <= self.high


@dataclass
class TopDimension:
    dim: int
    weight: float  # the unit direction's value there (signed)
    share: float  # weight², its share of the whole


@dataclass
class Placement:
    """Where a unit direction's weight sits among the dimensions."""

    block_size: int
    blocks: list[BlockShare]
    top: list[TopDimension]
    half: int  # how many dimensions (the largest first) carry half the squared weight
    half_random: int  # the same for a random direction: median
    half_random_low: int  # and its 95% range
    half_random_high: int


@dataclass
class Direction:
    """A concept probed in one table."""

    name: str
    positive: Pole
    negative: Pole
    accuracy: float  # leave-one-out, over both lists
    chance: float  # 95% of label shuffles (same rows, sides shuffled) score at most this
    control_accuracy: float | None  # the same at the control step (step 0), None without a snapshot
    control_step: int | None
    frequency_accuracy: float | None  # leave-one-out on log training counts alone; None when unknown
    most_positive: list[Extreme]
    most_negative: list[Extreme]
    placement: Placement
    separation: float  # |mean positive − mean negative| of the unit rows


# -- the word lists ------------------------------------------------------------------------------


def concepts_path() -> Path:
    return Path(str(resources.files("embcli") / "assets" / "directions.toml"))


def load_concepts(path: Path | None = None) -> list[Concept]:
    """The built-in concept pairs (or those of a file in the same format)."""
    path = path or concepts_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return [Concept(c["name"], c["positive"], c["negative"], list(c["positive_words"]),
                        list(c["negative_words"])) for c in data["concept"]]
    except OSError as exc:
        raise EmbcliError(f"cannot read the concept lists {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise EmbcliError(f"{path} is not a concept list file ({type(exc).__name__}: {exc})") from None


def split_words(values: list[str] | None) -> list[str]:
    """``--pos big --pos "large huge"`` or ``--pos big,large,huge`` → ["big", "large", "huge"]."""
    words = []
    for value in values or []:
        words += [w for w in value.replace(",", " ").split() if w]
    return words


def pole(space: EmbeddingSpace, label: str, words: list[str], *, strict: bool) -> Pole:
    """Resolve a list's words as every query does; keep those that are one token training saw.

    ``strict`` (the user's own lists): a word that is several tokens or never seen is an error.
    """
    kept: dict[int, str] = {}
    missing = []
    for word in words:
        try:
            r = space.resolve(word)
        except EmbcliError:
            missing.append(f"{word} (not one token)")
            continue
        token_id = r.ids[0]
        if space.counts is not None and space.counts[token_id] < 1:
            missing.append(f"{word} (never seen in training)")
        elif token_id not in kept:
            kept[token_id] = word
    if strict and missing:
        raise EmbcliError(f"{label}: {', '.join(missing)}; a direction needs words the run was trained on")
    ids = list(kept)
    return Pole(label, list(kept.values()), ids, [space.vocab.show(i) for i in ids], missing)


# -- the measurements ----------------------------------------------------------------------------


def unit_rows(vectors: np.ndarray, ids: list[int]) -> np.ndarray:
    rows = np.asarray(vectors[ids], dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def held_out_accuracy(pos: np.ndarray, neg: np.ndarray) -> float:
    """Leave-one-out accuracy of the mean-difference classifier.

    For each point, the two means are taken without it; it counts as correct when its projection
    on (mean₊ − mean₋) falls on its own side of the midpoint between the means:
    score = x · d − (|mean₊|² − |mean₋|²) / 2 with d = mean₊ − mean₋, positive for the ₊ side.
    """
    pos = np.asarray(pos, dtype=np.float64).reshape(len(pos), -1)  # 1-D features become one column
    neg = np.asarray(neg, dtype=np.float64).reshape(len(neg), -1)
    sum_p, sum_n = pos.sum(axis=0), neg.sum(axis=0)
    mean_p, mean_n = sum_p / len(pos), sum_n / len(neg)
    # each positive point against the positive mean without it, and all the negatives
    own = (sum_p - pos) / (len(pos) - 1)
    score_p = np.einsum("ij,ij->i", pos, own - mean_n) - (np.einsum("ij,ij->i", own, own) - mean_n @ mean_n) / 2
    own = (sum_n - neg) / (len(neg) - 1)
    score_n = np.einsum("ij,ij->i", neg, mean_p - own) - (mean_p @ mean_p - np.einsum("ij,ij->i", own, own)) / 2
    return float(((score_p > 0).sum() + (score_n <= 0).sum()) / (len(pos) + len(neg)))


def shuffled_accuracy(pos: np.ndarray, neg: np.ndarray, n: int = SHUFFLES, quantile: float = 95) -> float:
    """The ``quantile``-th percentile of :func:`held_out_accuracy` when the words' sides are shuffled.

    Leave-one-out accuracy on lists of a few dozen words scatters widely even when nothing separates
    them (36 + 36 random directions in 128 dimensions: 0.35–0.65 for 95% of draws), so an accuracy
    means something only above what the same rows reach with their labels shuffled.
    """
    rng = np.random.default_rng(0)
    rows = np.concatenate([np.asarray(pos, dtype=np.float64).reshape(len(pos), -1),
                           np.asarray(neg, dtype=np.float64).reshape(len(neg), -1)])
    scores = []
    for _ in range(n):
        order = rng.permutation(len(rows))
        scores.append(held_out_accuracy(rows[order[:len(pos)]], rows[order[len(pos):]]))
    return float(np.percentile(scores, quantile))


def random_baseline(dim: int, block: int, n: int = RANDOM_DIRECTIONS) -> tuple[np.ndarray, np.ndarray]:
    """Block shares (n × blocks) and half-weight dimension counts (n) of isotropic random directions."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((n, dim)) ** 2
    w /= w.sum(axis=1, keepdims=True)
    shares = np.stack([w[:, s:s + block].sum(axis=1) for s in range(0, dim, block)], axis=1)
    halves = (np.cumsum(-np.sort(-w, axis=1), axis=1) < 0.5).sum(axis=1) + 1
    return shares, halves


def placement(direction: np.ndarray, block: int, top: int = 5) -> Placement:
    """Where the unit ``direction``'s squared weight sits: blocks of ``block`` dims, top dims, half."""
    dim = len(direction)
    w = direction ** 2 / float(direction @ direction)
    shares, halves = random_baseline(dim, block)
    blocks = []
    for b, start in enumerate(range(0, dim, block)):
        stop = min(start + block, dim)
        lo, hi = np.percentile(shares[:, b], [2.5, 97.5])
        blocks.append(BlockShare(start, stop - 1, float(w[start:stop].sum()), (stop - start) / dim, float(lo), float(hi)))
    order = np.argsort(-w, kind="stable")
    unit = direction / np.sqrt(float(direction @ direction))
    top_dims = [TopDimension(int(i), float(unit[i]), float(w[i])) for i in order[:top]]
    half = int((np.cumsum(w[order]) < 0.5).sum() + 1)
    lo, med, hi = np.percentile(halves, [2.5, 50, 97.5])
    return Placement(block, blocks, top_dims, half, int(round(med)), int(lo), int(hi))


def extremes(space: EmbeddingSpace, unit: np.ndarray, exclude: set[int], n: int) -> tuple[list[Extreme], list[Extreme]]:
    """The trained tokens (beyond the word lists) whose rows point most along ±``unit``."""
    scores = np.array(space.cosine_to(unit.astype(np.float32)), dtype=np.float64)
    keep = space.allowed()
    usable = np.ones(len(scores), dtype=bool) if keep is None else keep.copy()
    usable[list(exclude)] = False
    usable[space.norms == 0] = False
    idx = np.flatnonzero(usable)
    order = idx[np.argsort(-scores[idx], kind="stable")]

    def pick(ids):
        return [Extreme(int(i), space.vocab.show(int(i)), float(scores[i]), space.count(int(i))) for i in ids]

    return pick(order[:n]), pick(order[::-1][:n])


def probe(space: EmbeddingSpace, concept: Concept, *, control: EmbeddingSpace | None = None, strict: bool = False,
          block: int = 64, n_extremes: int = 5) -> Direction | None:
    """Measure one concept in ``space`` (None when a built-in list has under 2 usable words a side)."""
    pos = pole(space, concept.positive, concept.positive_words, strict=strict)
    neg = pole(space, concept.negative, concept.negative_words, strict=strict)
    both = set(pos.ids) & set(neg.ids)
    if both:
        shared = ", ".join(space.vocab.show(i) for i in sorted(both))
        raise EmbcliError(f"{concept.name}: {shared} on both sides; give each word to one side only")
    for p in (pos, neg):
        if len(p.ids) < 2:
            if strict:
                raise EmbcliError(f"{p.label}: a direction needs at least 2 words a side the run was trained on "
                                  f"(got {len(p.ids)})")
            return None
    P, N = unit_rows(space.vectors, pos.ids), unit_rows(space.vectors, neg.ids)
    diff = P.mean(axis=0) - N.mean(axis=0)
    separation = float(np.linalg.norm(diff))
    unit = diff / (separation or 1.0)
    control_acc = None
    if control is not None:
        control_acc = held_out_accuracy(unit_rows(control.vectors, pos.ids), unit_rows(control.vectors, neg.ids))
    freq_acc = None
    if space.counts is not None:
        freq_acc = held_out_accuracy(np.log(space.counts[pos.ids].astype(np.float64)),
                                     np.log(space.counts[neg.ids].astype(np.float64)))
    most_pos, most_neg = extremes(space, unit, set(pos.ids) | set(neg.ids), n_extremes)
    return Direction(concept.name, pos, neg, held_out_accuracy(P, N), shuffled_accuracy(P, N), control_acc,
                     None if control is None else control.step, freq_acc, most_pos, most_neg,
                     placement(unit, block), separation)


__all__ = ["BlockShare", "Concept", "Direction", "Extreme", "Placement", "Pole", "TopDimension", "held_out_accuracy",
           "load_concepts", "placement", "probe", "shuffled_accuracy", "split_words"]
