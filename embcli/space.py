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

from .errors import EmbcliError, clip
from .runs import COUNTS, NORMS, TABLE, find_run, list_snapshots, read_meta
from .tokenizer import N_VOCAB, Vocab, token_json


@dataclass
class Resolved:
    """What a typed word became: the ids used, and how they were chosen."""

    text: str
    ids: list[int]
    how: str  # "space-prefixed", "bare", "exact", "mean of N pieces", "id"
    pieces: list[str] = field(default_factory=list)

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
        if path == run_dir / TABLE and (run_dir / NORMS).is_file():
            try:
                norms = np.load(run_dir / NORMS)
                if norms.shape == (len(space.vectors),) and norms.dtype == np.float32:
                    space._norms = norms
            except (ValueError, OSError, EOFError):
                pass  # damaged cache: computed from the table instead
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
        """Map typed text to token ids.

        Default: " word" (space-prefixed, as GPT-2 sees it in running text) when that is one token,
        else "word" when that is one token. ``exact`` uses the string as given. Text that is several
        tokens is refused, unless ``combine="mean"`` averages its pieces' unit vectors.
        """
        if not word or not word.strip() and not exact:
            raise EmbcliError("empty word: give a word or token to look up")
        candidates = [(word, "exact")] if exact else [(" " + word, "space-prefixed"), (word, "bare")]
        if not exact and word.startswith(" "):
            candidates = [(word, "space-prefixed")]
        for text, how in candidates:
            token_id = self.vocab.id_of(text.encode("utf-8"))
            if token_id is not None:
                return Resolved(word, [token_id], how, [self.vocab.show(token_id)])
        from .tokenizer import encode  # the BPE, only when a word is several tokens

        text = candidates[0][0]
        ids = encode(text)
        pieces = [self.vocab.show(i) for i in ids]
        if combine != "mean":
            explained = " + ".join(f"{p!r}({i})" for p, i in zip(pieces[:SHOWN_PIECES], ids))
            more = f" + {len(ids) - SHOWN_PIECES:,} more" if len(ids) > SHOWN_PIECES else ""
            raise EmbcliError(f"{clip(word)!r} is not one GPT-2 token: {clip(text)!r} is {len(ids):,} tokens, "
                              f"{explained}{more}; use --combine mean to average them")
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


__all__ = ["ANALOGY_METHODS", "EmbeddingSpace", "Neighbor", "Resolved", "check_analogy_method", "load_table",
           "parse_row"]
