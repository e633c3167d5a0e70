"""The query space: a learned token table and the questions people ask of it.

One object owns the vectors, every query is a method with a docstring (gensim's KeyedVectors is
the model, and the answers match it: same formulas, same exclusions). Keys here are GPT-2 token
ids; :meth:`EmbeddingSpace.resolve` turns what a person types into ids and says how.

This module and everything it imports stay free of torch: a cold query must start in a fraction
of a second, and importing torch alone takes over one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import EmbcliError, SeveralTokens, clip
from .runs import COUNTS, TABLE, find_run, list_snapshots, load_norms, read_meta
from .tokenizer import N_VOCAB, Vocab, token_json


@dataclass
class Resolved:
    """What a typed word became: the ids used, and how they were chosen."""

    text: str
    ids: list[int]
    how: str  # the form taken: "space-prefixed", "bare", "capitalised", ..., "exact", "mean of N pieces", "id"
    pieces: list[str] = field(default_factory=list)
    why: str = ""  # the evidence for that form: "seen 2,315 times in training; ␣. 23 times"

    @property
    def single(self) -> bool:
        return len(self.ids) == 1


@dataclass
class Neighbor:
    rank: int
    id: int
    token: str
    similarity: float
    count: int | None

    def as_dict(self) -> dict:
        """For JSON: the token as its real string (``token`` above is the shown form, ␣ for a space)."""
        return {"rank": self.rank, **token_json(self.id), "similarity": round(self.similarity, 6),
                "count": self.count}


SHOWN_PIECES = 8  # a word of more tokens is explained by its first pieces only

ANALOGY_METHODS = {"add": "3CosAdd", "mul": "3CosMul"}  # method → the name in the literature


def check_analogy_method(method: str) -> None:
    """The one check of an analogy method's name: the CLI's --method, the shell's fourth word and
    library callers all meet it (through :meth:`EmbeddingSpace.analogy`)."""
    if method not in ANALOGY_METHODS:
        raise EmbcliError(f"--method takes add or mul (got {method!r})")


def load_table(path: Path) -> np.ndarray:
    """A float32 (rows × dim) table, memory-mapped; damaged files are one clear error."""
    try:
        table = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise EmbcliError(f"{path.parent} has no embedding table ({path.name}); has training saved yet?") from None
    except (ValueError, OSError, EOFError) as exc:
        raise EmbcliError(f"{path} is damaged or truncated ({str(exc).splitlines()[0][:100]})") from None
    if table.ndim != 2 or table.dtype.kind != "f":
        raise EmbcliError(f"{path} is not a 2-D float table (shape {table.shape}, dtype {table.dtype})")
    if table.shape[0] != N_VOCAB:
        raise EmbcliError(f"{path} has {table.shape[0]} rows but the GPT-2 tokenizer has {N_VOCAB} ids")
    return table


# A bare form ("man", "ant", ".") is taken over the space-prefixed one (" man") only when training
# saw it this many times as often: the bare count also counts every time the string ended a longer
# word. Measured on the default run: the bare forms of "man" (1,062 vs 1,010), "green", "age",
# "ant" (2,051 vs 353), "thus" and "hen" (5.3×) are word pieces whose neighbours are other pieces
# ("s", "er", "ess"), while ".", ",", ":", ";" (100× and more) and sentence-opening "The" (29×)
# are the forms running text uses. No WordSim353 or analogy word's bare form reaches 10×.
BARE_MARGIN = 10

# The command line's default --min-count for answers: rows seen fewer than 5 times are left out of
# neighbours, analogies and the ends of directions. Measured on the default run (README, section
# "--min-count"): at 1, 9 of the 100 top-10 neighbours of ten everyday words are rows seen under 10 times
# (", " → "␣baseless" seen once, "␣populace" once), 5 removes 7 of them; accuracy on a fixed set of
# analogy questions is the same at 1, 5 and 10 (and for word2vec on the same tokens); word2vec's and
# fastText's own default is 5. The library's EmbeddingSpace keeps 1 (every row training saw); `eval`
# and `export` keep 1, so their figures and files cover every row training saw.
DEFAULT_MIN_COUNT = 5


class EmbeddingSpace:
    """A token-embedding table with its training counts, ready for similarity queries.

    ``counts`` (how often each id occurred in training) decides which rows are *trained*: a row
    whose token never occurred was never moved by its own input and is mostly still its initial
    noise, so by default answers leave out rows with count < ``min_count``. ``counts=None`` means
    unknown (e.g. an imported table): every row is used.
    """

    def __init__(self, vectors: np.ndarray, counts: np.ndarray | None = None, *, min_count: int = 1,
                 vocab: Vocab | None = None, source: str = "", step: int | None = None):
        self.vectors = vectors
        self.counts = counts
        self.min_count = min_count
        self.vocab = vocab or Vocab.load()
        self.source, self.step = source, step
        self._norms: np.ndarray | None = None

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_run(cls, run: str | Path | None = None, step: int | None = None, *, min_count: int = 1,
                 root: Path | None = None, vocab: Vocab | None = None) -> EmbeddingSpace:
        """The newest run (or the one named), its final table or the snapshot at ``step``."""
        run_dir = find_run(str(run) if run is not None else None, root)
        meta = read_meta(run_dir)
        if step is None:
            path, step = run_dir / TABLE, meta.get("step")
        else:
            snaps = dict(list_snapshots(run_dir))
            if step not in snaps:
                have = ", ".join(str(s) for s in snaps) or "none"
                raise EmbcliError(f"{run_dir} has no snapshot at step {step} (snapshots: {have})")
            path = snaps[step]
        counts = None
        if (run_dir / COUNTS).is_file() and meta.get("counts_known", True):
            try:
                counts = np.load(run_dir / COUNTS)
            except (ValueError, OSError, EOFError):
                raise EmbcliError(f"{run_dir / COUNTS} is damaged or truncated") from None
            if counts.shape != (N_VOCAB,):
                raise EmbcliError(f"{run_dir / COUNTS} has shape {counts.shape}, expected ({N_VOCAB},)")
        space = cls(load_table(path), counts, min_count=min_count, vocab=vocab, source=str(run_dir), step=step)
        if path == run_dir / TABLE:
            space._norms = load_norms(run_dir, space.vectors)  # None (computed when needed) unless this table's
        return space

    # -- basic facts ---------------------------------------------------------------------------

    @property
    def norms(self) -> np.ndarray:
        if self._norms is None:
            v = self.vectors
            self._norms = np.sqrt(np.einsum("ij,ij->i", v, v, dtype=np.float32))
        return self._norms

    def allowed(self) -> np.ndarray | None:
        """Boolean mask of the rows answers may contain, or None for all of them."""
        if self.counts is None or self.min_count <= 0:
            return None
        return self.counts >= self.min_count

    def excluded_count(self) -> int:
        mask = self.allowed()
        return 0 if mask is None else int((~mask).sum())

    def count(self, token_id: int) -> int | None:
        return None if self.counts is None else int(self.counts[token_id])

    def unit(self, token_id: int) -> np.ndarray:
        v = np.asarray(self.vectors[token_id], dtype=np.float32)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v

    # -- words → ids ---------------------------------------------------------------------------

    def resolve(self, word: str, *, exact: bool = False, combine: str | None = None) -> Resolved:
        """Map typed text to token ids, choosing among its forms by the run's training counts.

        GPT-2 has separate tokens for "cat" and " cat", "." and " .", " France" and " france"
        (the last is no token at all). What a person types rarely says which one they mean, so the
        evidence decides: among the single-token forms " word" and "word", the one that occurred
        more in training is taken — except that a bare form must have occurred ``BARE_MARGIN``
        (10) times as often, because its count also counts every time it ends a longer word
        ("man" in states|man, "ant" in inhabit|ant). When no form in the typed case occurred, the
        capitalised forms (" Word", "Word", " WORD", "WORD") join them, so ``france`` finds
        " France". Counts unknown (an imported table): the forms are tried in that order.
        ``Resolved.how`` names the form taken and ``Resolved.why`` gives the counts behind it.
        A typed leading space means exactly that form; ``exact`` uses the string as given. Text
        that is several tokens is refused, unless ``combine="mean"`` averages its pieces' unit
        vectors.
        """
        if not word or not word.strip() and not exact:
            raise EmbcliError("empty word: give a word or token to look up")
        if exact or word.startswith(" "):
            how = "exact" if exact else "space-prefixed"
            token_id = self.vocab.id_of(word.encode("utf-8"))
            if token_id is not None:
                why = "" if self.counts is None else self._why(word, (word, how, token_id), [])
                return Resolved(word, [token_id], how, [self.vocab.show(token_id)], why)
            return self._several_tokens(word, word, combine)
        typed = [(" " + word, "space-prefixed"), (word, "bare")]
        found = self._single_forms(typed)
        if not any(self._seen(i) for _, _, i in found):
            cased = []
            for variant, name in ((word[:1].upper() + word[1:], "capitalised"), (word.upper(), "upper-case")):
                if variant != word:
                    cased += [(" " + variant, f"{name}, space-prefixed"), (variant, name)]
            found = self._single_forms(typed + cased)
        if not found:
            return self._several_tokens(word, " " + word, combine)
        best = found[0]
        if self.counts is not None:
            # the most frequent form, a bare one's count worth 1/BARE_MARGIN; on a tie, the first
            best = max(found, key=lambda f: (self._weight(f), -found.index(f)))
        text, how, token_id = best
        return Resolved(word, [token_id], how, [self.vocab.show(token_id)], self._why(word, best, found))

    def _single_forms(self, forms: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
        """The forms that are one GPT-2 token, with their ids (no duplicates)."""
        found, ids = [], set()
        for text, how in forms:
            token_id = self.vocab.id_of(text.encode("utf-8"))
            if token_id is not None and token_id not in ids:
                found.append((text, how, token_id))
                ids.add(token_id)
        return found

    def _weight(self, form: tuple[str, str, int]) -> float:
        """A form's training count as evidence: a bare form's counts include the ends of longer words."""
        n = int(self.counts[form[2]])
        return n if form[0].startswith(" ") else n / BARE_MARGIN

    def _seen(self, token_id: int) -> bool:
        """Did training see this token? (Unknown counts: every token counts as seen.)"""
        return self.counts is None or int(self.counts[token_id]) > 0

    def _why(self, word: str, best: tuple[str, str, int], found: list[tuple[str, str, int]]) -> str:
        _, how, token_id = best
        others = [f for f in found if f[2] != token_id]
        if self.counts is None:
            why = "training counts unknown" + ("; tried in order: " + ", ".join(
                self.vocab.show(i) for _, _, i in found) if others else "")
        else:
            n = int(self.counts[token_id])
            why = (f"seen {n:,} times in training" if n else "never seen in training") + "".join(
                f"; {self.vocab.show(i)} {int(self.counts[i]):,} times"
                + (f" (a bare form needs {BARE_MARGIN}× the count: it also ends longer words)"
                   if not text.startswith(" ") and int(self.counts[i]) > n else "")
                for text, _, i in others)
        if "capital" in how or "upper" in how:
            seen = "that training saw" if self.counts is not None else "of GPT-2's"
            why = f"{word!r} as typed is no token {seen}; {why}"
        return why

    def _several_tokens(self, word: str, text: str, combine: str | None) -> Resolved:
        from .tokenizer import encode  # the BPE, only when a word is several tokens

        ids = encode(text)
        pieces = [self.vocab.show(i) for i in ids]
        if combine != "mean":
            explained = " + ".join(f"{p!r}({i})" for p, i in zip(pieces[:SHOWN_PIECES], ids))
            more = f" + {len(ids) - SHOWN_PIECES:,} more" if len(ids) > SHOWN_PIECES else ""
            raise SeveralTokens(f"{clip(word)!r} is not one GPT-2 token: {clip(text)!r} is {len(ids):,} tokens, "
                                f"{explained}{more}")
        return Resolved(word, ids, f"mean of {len(ids)} pieces", pieces)

    def vector(self, item: Resolved) -> np.ndarray:
        """The (unit) query vector of a resolved word: a row, or the mean of its pieces' unit rows."""
        vec = np.mean([self.unit(i) for i in item.ids], axis=0)
        n = float(np.linalg.norm(vec))
        return vec / n if n > 0 else vec

    # -- queries -------------------------------------------------------------------------------

    def _top(self, scores: np.ndarray, topn: int, exclude: set[int]) -> list[Neighbor]:
        scores = np.array(scores, dtype=np.float32, copy=True)
        mask = self.allowed()
        if mask is not None:
            scores[~mask] = -np.inf
        for i in exclude:
            scores[i] = -np.inf
        k = min(topn, int(np.isfinite(scores).sum()))
        if k <= 0:
            return []
        part = np.argpartition(-scores, k - 1)[:k]
        best = part[np.lexsort((part, -scores[part]))]
        return [Neighbor(r + 1, int(i), self.vocab.show(int(i)), float(scores[i]), self.count(int(i)))
                for r, i in enumerate(best)]

    def cosine_to(self, unit_vec: np.ndarray) -> np.ndarray:
        """Cosine similarity of every row with a unit vector (zero rows score 0)."""
        norms = self.norms
        with np.errstate(divide="ignore", invalid="ignore"):
            sims = (self.vectors @ unit_vec.astype(self.vectors.dtype)) / norms
        return np.nan_to_num(sims, nan=0.0, posinf=0.0, neginf=0.0)

    def most_similar(self, positive: list[Resolved], negative: list[Resolved] = (), topn: int = 10) -> list[Neighbor]:
        """Rows nearest the mean of the positive minus the negative unit vectors (3CosAdd).

        gensim's ``most_similar(positive=..., negative=...)``; the query's own ids are excluded.
        """
        if not positive:
            raise EmbcliError("nothing to compare: give at least one word")
        items = [(p, 1.0) for p in positive] + [(n, -1.0) for n in negative]
        mean = sum(w * self.vector(r) for r, w in items) / len(items)
        mean = mean / (np.linalg.norm(mean) or 1.0)
        exclude = {i for r, _ in items for i in r.ids}
        return self._top(self.cosine_to(mean), topn, exclude)

    def most_similar_cosmul(self, positive: list[Resolved], negative: list[Resolved] = (),
                            topn: int = 10) -> list[Neighbor]:
        """3CosMul (Levy & Goldberg 2014): Π (1+cos(x, p))/2 / (Π (1+cos(x, n))/2 + 1e-6).

        gensim's ``most_similar_cosmul``; the query's own ids are excluded.
        """
        if not positive:
            raise EmbcliError("nothing to compare: give at least one word")
        pos = np.prod([(1 + self.cosine_to(self.vector(p))) / 2 for p in positive], axis=0)
        neg = np.prod([(1 + self.cosine_to(self.vector(n))) / 2 for n in negative], axis=0) if negative else 1.0
        scores = pos / (neg + 0.000001)
        exclude = {i for r in (*positive, *negative) for i in r.ids}
        return self._top(scores, topn, exclude)

    def analogy(self, a: Resolved, b: Resolved, c: Resolved, topn: int = 10, method: str = "add") -> list[Neighbor]:
        """a − b + c: ``king man woman`` → queen. ``method`` is add (3CosAdd) or mul (3CosMul)."""
        check_analogy_method(method)
        if method == "mul":
            return self.most_similar_cosmul([a, c], [b], topn)
        return self.most_similar([a, c], [b], topn)

    def similarity(self, a: Resolved, b: Resolved) -> float:
        """Cosine similarity of two words (gensim's ``similarity``)."""
        return float(np.dot(self.vector(a), self.vector(b)))

    def doesnt_match(self, words: list[Resolved]) -> tuple[Resolved, list[tuple[float, Resolved]]]:
        """The word farthest from the mean of all (gensim's ``doesnt_match``), with every score."""
        if len(words) < 2:
            raise EmbcliError("odd-one-out needs at least two words")
        vecs = np.vstack([self.vector(w) for w in words])
        mean = vecs.mean(axis=0)
        mean = mean / (np.linalg.norm(mean) or 1.0)
        scored = sorted(zip((float(s) for s in vecs @ mean), range(len(words))), reverse=True)
        ranked = [(s, words[i]) for s, i in scored]
        return ranked[-1][1], ranked

    # -- inspection ----------------------------------------------------------------------------

    def row_stats(self, token_id: int) -> dict:
        if not 0 <= token_id < len(self.vectors):
            raise EmbcliError(f"row {token_id} is out of range: the table has rows 0..{len(self.vectors) - 1}")
        v = np.asarray(self.vectors[token_id], dtype=np.float64)
        return {"id": token_id, "token": self.vocab.show(token_id), "count": self.count(token_id),
                "norm": float(np.linalg.norm(v)), "mean": float(v.mean()), "std": float(v.std()),
                "min": float(v.min()), "max": float(v.max()), "dim": len(v)}

    def table_stats(self, model: dict | None = None) -> dict:
        norms = self.norms.astype(np.float64)
        rows, dim = self.vectors.shape
        stats = {
            "rows": rows, "dim": dim, "parameters": rows * dim, "dtype": str(self.vectors.dtype),
            "bytes": int(rows * dim * self.vectors.dtype.itemsize),
            "norm_percentiles": {p: float(np.percentile(norms, p)) for p in (0, 5, 25, 50, 75, 95, 100)},
        }
        if self.counts is not None:
            seen = self.counts > 0
            stats["rows_trained"] = int(seen.sum())
            stats["rows_untrained"] = int((~seen).sum())
            if seen.any() and (~seen).any():
                stats["median_norm_trained"] = float(np.median(norms[seen]))
                stats["median_norm_untrained"] = float(np.median(norms[~seen]))
        if model:
            stats["model_parameters"] = model.get("parameters")
            stats["share_of_model"] = model.get("table_share")
            stats["tied"] = model.get("tied")
        return stats


def parse_row(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise EmbcliError(f"row must be a whole number from 0 to {N_VOCAB - 1} (got {clip(text)!r})") from None
    if not 0 <= value < N_VOCAB:
        raise EmbcliError(f"row {value} is out of range: GPT-2's table has rows 0..{N_VOCAB - 1}")
    return value


__all__ = ["ANALOGY_METHODS", "BARE_MARGIN", "DEFAULT_MIN_COUNT", "EmbeddingSpace", "Neighbor", "Resolved",
           "check_analogy_method", "load_table", "parse_row"]
