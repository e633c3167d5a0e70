"""Every snapshot of a run on one set of axes: the maps of `embcli explore` and `plot words --steps`.

A PCA fitted on each snapshot separately gives each its own axes (and its own sign flips and
scale), so a word's movement from one picture to the next means nothing. Instead:

1. the 2-D projection is fitted once, on the final table;
2. each snapshot is brought into the final table's frame first, by the rotation that best maps its
   rows onto the same rows of the final table — orthogonal Procrustes (Schönemann 1966): with
   M = Sᵀ F (both centred), svd(M) = U Σ Vᵀ, R = U Vᵀ;
3. on the map, each snapshot is zoomed so that its rows spread as far as the final table's do.

A rotation changes no cosine and no distance, so the aligned snapshot holds exactly the same
neighbourhoods as the raw one; only the arbitrary orientation is taken out. The zoom is there
because the N(0, 0.02) start is ten times smaller than the trained table, and its spread is
shared by all dimensions, not gathered in the two the map shows: drawn to scale, step 0 is a dot
in the middle of the final picture. Every caller shows the zoom factor it applied.

The rotation is fitted on many rows (the run's most frequent tokens), never on a handful of
words: with fewer rows than dimensions any arrangement can be rotated onto any other, and the
picture would show the fit rather than the table. Even with many rows, a row that helps fit the
rotation is pulled toward its own final place, so each half of the rows is moved by the rotation
fitted on the other half (:func:`cross_fitted`). ``fit`` reports how well the moved snapshot
matches the final table (the correlation of the moved rows with their final rows, out of fold:
near 0 for noise, 1 for the final table itself).

numpy only: no torch, no matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EmbcliError
from .runs import list_snapshots, read_config
from .space import load_table


@dataclass
class Alignment:
    """x ↦ (x − source_mean) R · scale + target_mean: a snapshot's rows in the final table's frame."""

    rotation: np.ndarray  # (dim × dim), orthogonal
    scale: float
    source_mean: np.ndarray
    target_mean: np.ndarray
    fit: float  # Procrustes correlation tr Σ / (‖S‖ ‖F‖) on the rows it was fitted on, in [0, 1]

    def apply(self, rows: np.ndarray) -> np.ndarray:
        return (np.asarray(rows, dtype=np.float64) - self.source_mean) @ self.rotation * self.scale + self.target_mean


def procrustes(source: np.ndarray, target: np.ndarray, *, scale: bool = True) -> Alignment:
    """The rotation (and least-squares scale) that brings ``source``'s rows closest to ``target``'s."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape:
        raise ValueError(f"shapes differ: {src.shape} vs {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    na, nb = float(np.sqrt((a * a).sum())), float(np.sqrt((b * b).sum()))
    s = float(sigma.sum() / na**2) if scale and na > 0 else 1.0
    fit = float(sigma.sum() / (na * nb)) if na > 0 and nb > 0 else 1.0
    return Alignment(rotation, s, src_mean, dst_mean, fit)


@dataclass
class PCA2:
    """A 2-D principal-component projection and the share of variance each axis carries."""

    mean: np.ndarray
    components: np.ndarray  # (2 × dim)
    explained: tuple[float, float]  # share of the fitted rows' total variance on PC1, PC2

    def apply(self, rows: np.ndarray) -> np.ndarray:
        return (np.asarray(rows, dtype=np.float64) - self.mean) @ self.components.T

    def axis_label(self, k: int, what: str = "") -> str:
        return f"PC {k + 1} ({self.explained[k]:.0%} of the variance{what})"


def pca2(rows: np.ndarray) -> PCA2:
    x = np.asarray(rows, dtype=np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    dim = x.shape[1]
    if len(x) < 2:
        return PCA2(mean, np.eye(2, dim), (0.0, 0.0))
    _, sigma, vt = np.linalg.svd(centred, full_matrices=False)
    total = float((sigma**2).sum())
    comps = np.zeros((2, dim))
    comps[: min(2, len(vt))] = vt[:2]
    # A fixed sign (the largest loading positive), so reruns give the same picture, not its mirror.
    for k in range(2):
        j = int(np.argmax(np.abs(comps[k])))
        if comps[k, j] < 0:
            comps[k] = -comps[k]
    share = [float(sigma[k] ** 2 / total) if total > 0 and k < len(sigma) else 0.0 for k in range(2)]
    return PCA2(mean, comps, (share[0], share[1]))


def frequent_ids(counts: np.ndarray | None, n: int, min_count: int = 1, n_rows: int | None = None) -> np.ndarray:
    """The ``n`` most frequent ids with count ≥ ``min_count`` (ties by id), most frequent first."""
    if counts is None:  # counts unknown (an imported table): the first rows
        return np.arange(min(n, n_rows or 0), dtype=np.int64)
    counts = np.asarray(counts)
    eligible = np.flatnonzero(counts >= max(min_count, 1))
    order = np.lexsort((eligible, -counts[eligible]))
    return eligible[order[:n]].astype(np.int64)


@dataclass
class Frame:
    step: int
    rows: np.ndarray  # the raw rows of ``ids`` at this step (float32), for cosines
    coords: np.ndarray  # (len(ids) × 2) on the shared axes
    scale: float  # the zoom on the map: the final table's spread there over this snapshot's
    fit: float  # Procrustes correlation with the final table (see Alignment)


@dataclass
class AlignedFrames:
    """The chosen ids at each snapshot, all on the final table's PCA axes."""

    ids: np.ndarray
    frames: list[Frame]
    pca: PCA2

    @property
    def steps(self) -> list[int]:
        return [f.step for f in self.frames]

    def limits(self, pad: float = 0.05, quantile: float = 0.0) -> tuple[tuple[float, float], tuple[float, float]]:
        """Axis ranges that hold every frame (the same for all of them).

        ``quantile`` > 0 lets that share of points, at each end, fall outside (a few outliers in
        one snapshot would otherwise shrink every other snapshot to a corner).
        """
        lo = np.min([np.quantile(f.coords, quantile, axis=0) for f in self.frames], axis=0)
        hi = np.max([np.quantile(f.coords, 1 - quantile, axis=0) for f in self.frames], axis=0)
        span = np.maximum(hi - lo, 1e-9)
        lo, hi = lo - pad * span, hi + pad * span
        return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def cross_fitted(source: np.ndarray, target: np.ndarray, fit_ids: np.ndarray):
    """Rotate a snapshot onto the final table without letting any row place itself.

    The fit rows are split in two by id parity; the rotation fitted on one half moves the other
    half (and every drawn row of that parity). A rotation has dim·(dim−1)/2 free parameters, and
    fitted on the very rows it then draws it can arrange even pure noise into a likeness of the
    final map; fitted on the other half it cannot, so step 0 shows the noise it is. Halves with
    fewer than two rows per dimension are too small to fit on: then one rotation, on all rows.

    Returns the fit rows moved, the Procrustes correlation of the moved rows with the target
    (out of fold), and a function that moves any rows given their ids.
    """
    source = np.asarray(source, dtype=np.float64)
    parity = fit_ids % 2
    dim = source.shape[1]
    if min(int((parity == 0).sum()), int((parity == 1).sum())) < 2 * dim:
        one = procrustes(source, target, scale=False)
        return one.apply(source), one.fit, lambda rows, ids: one.apply(rows)
    by_half = [procrustes(source[parity == 1 - h], target[parity == 1 - h], scale=False) for h in (0, 1)]

    def rotate(rows, ids):
        rows = np.asarray(rows, dtype=np.float64)
        out = np.empty_like(rows)
        for h in (0, 1):
            pick = np.asarray(ids) % 2 == h
            out[pick] = by_half[h].apply(rows[pick])
        return out

    moved = rotate(source, fit_ids)
    a, b = moved - moved.mean(axis=0), target - target.mean(axis=0)
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return moved, float((a * b).sum() / norm) if norm > 0 else 0.0, rotate


def _spread(xy: np.ndarray) -> float:
    """Root-mean-square distance of 2-D points from their centre."""
    return float(np.sqrt(((xy - xy.mean(axis=0)) ** 2).sum(axis=1).mean())) if len(xy) else 0.0


def snapshot_steps(run_dir: Path) -> list[tuple[int, Path]]:
    snaps = list_snapshots(run_dir)
    if not snaps:
        raise EmbcliError(f"{run_dir} has no table snapshots to show (a run trained with snapshots = false)")
    return snaps


def aligned_frames(run_dir: Path, ids, *, fit_ids=None, basis_ids=None, steps: list[int] | None = None) -> AlignedFrames:
    """Rows ``ids`` at each snapshot (all, or ``steps``), aligned to the last snapshot, on its PCA axes.

    ``fit_ids`` (default ``ids``) are the rows the rotations are fitted on and whose spread sets
    each snapshot's zoom; ``basis_ids`` (default ``ids``) those the PCA is fitted on, in the final
    table.
    """
    snaps = snapshot_steps(run_dir)
    by_step = dict(snaps)
    if steps is not None:
        missing = [s for s in steps if s not in by_step]
        if missing:
            have = ", ".join(str(s) for s, _ in snaps)
            raise EmbcliError(f"{run_dir} has no snapshot at step {missing[0]} (snapshots: {have})")
        chosen = sorted(set(steps))
    else:
        chosen = [s for s, _ in snaps]
    ids = np.asarray(ids, dtype=np.int64)
    fit_ids = ids if fit_ids is None else np.asarray(fit_ids, dtype=np.int64)
    basis_ids = ids if basis_ids is None else np.asarray(basis_ids, dtype=np.int64)
    final_table = load_table(snaps[-1][1])  # the last snapshot is the end of training
    final_fit = np.asarray(final_table[fit_ids], dtype=np.float64)
    pca = pca2(final_table[basis_ids])
    final_xy = pca.apply(final_fit)
    centre, spread = final_xy.mean(axis=0), _spread(final_xy)
    frames = []
    for step in chosen:
        rows = np.asarray(load_table(by_step[step])[ids], dtype=np.float32)
        if step == snaps[-1][0]:  # the final table itself: nothing to rotate
            frames.append(Frame(step, rows, pca.apply(rows), 1.0, 1.0))
            continue
        table = load_table(by_step[step])
        moved_fit, fit, rotate = cross_fitted(table[fit_ids], final_fit, fit_ids)
        fit_xy = pca.apply(moved_fit)
        zoom = spread / (_spread(fit_xy) or spread or 1.0)
        coords = (pca.apply(rotate(rows, ids)) - fit_xy.mean(axis=0)) * zoom + centre
        frames.append(Frame(step, rows, coords, zoom, fit))
    return AlignedFrames(ids, frames, pca)


def tokens_seen_at(run_dir: Path, history: dict, steps: list[int]) -> list[int | None]:
    """Tokens seen by each step, from the run's loss history (``RunFacts.history``: train rows are
    [step, tokens, loss]), or else step × tokens per step from its config.json."""
    seen = {0: 0}
    for row in (history or {}).get("train") or []:
        seen[int(row[0])] = int(row[1])
    per_step = None
    cfg = read_config(run_dir) or {}
    try:
        per_step = int(cfg["batch_size"]) * int(cfg.get("grad_accum", 1)) * int(cfg["block_size"])
    except (ValueError, KeyError, TypeError):
        pass
    return [seen.get(s, s * per_step if per_step else None) for s in steps]


__all__ = ["AlignedFrames", "Alignment", "Frame", "PCA2", "aligned_frames", "cross_fitted", "frequent_ids", "pca2",
           "procrustes",
           "snapshot_steps", "tokens_seen_at"]
