"""Every snapshot of a run on one set of axes: the maps of `embcli explore` and `plot words --steps`.

A PCA fitted on each snapshot separately gives each its own axes (and its own sign flips and
scale), so a word's movement from one picture to the next means nothing. Instead:

1. the 2-D projection is fitted once, on the final table;
2. each snapshot is brought into the final table's frame first, by the rotation (plus one scale
   factor) that best maps its rows onto the same rows of the final table — orthogonal Procrustes
   (Schönemann 1966): with M = Sᵀ F (both centred), svd(M) = U Σ Vᵀ, R = U Vᵀ, s = tr Σ / ‖S‖².

A rotation changes no cosine and no distance, so the aligned snapshot holds exactly the same
neighbourhoods as the raw one; only the arbitrary orientation is taken out. The scale factor is
there because the N(0, 0.02) start is about ten times smaller than the trained table: without it
step 0 is a dot in the middle of the final picture. Every caller shows the factor it applied.

The rotation is fitted on many rows (the run's most frequent tokens), never on a handful of
words: with fewer rows than dimensions any arrangement can be rotated onto any other, and the
picture would show the fit rather than the table. ``fit_r2`` reports how much of the final
table's spread the aligned snapshot accounts for (near 0 for noise, 1 for the final table).

numpy only: no torch, no matplotlib.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import CONFIG, list_snapshots
from .errors import EmbcliError
from .space import load_table


@dataclass
class Alignment:
    """x ↦ (x − source_mean) R · scale + target_mean: a snapshot's rows in the final table's frame."""

    rotation: np.ndarray  # (dim × dim), orthogonal
    scale: float
    source_mean: np.ndarray
    target_mean: np.ndarray
    fit_r2: float  # 1 − ‖aligned − target‖² / ‖target − mean‖² on the rows it was fitted on

    def apply(self, rows: np.ndarray) -> np.ndarray:
        return (np.asarray(rows, dtype=np.float64) - self.source_mean) @ self.rotation * self.scale + self.target_mean


def procrustes(source: np.ndarray, target: np.ndarray, *, scale: bool = True) -> Alignment:
    """The rotation (and scale) that brings ``source``'s rows closest to ``target``'s, row by row."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape:
        raise ValueError(f"shapes differ: {src.shape} vs {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    norm2 = float((a * a).sum())
    s = float(sigma.sum() / norm2) if scale and norm2 > 0 else 1.0
    spread = float((b * b).sum())
    resid = float(((a @ rotation * s - b) ** 2).sum())
    return Alignment(rotation, s, src_mean, dst_mean, 1.0 - resid / spread if spread > 0 else 1.0)


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
    scale: float
    fit_r2: float


@dataclass
class AlignedFrames:
    """The chosen ids at each snapshot, all on the final table's PCA axes."""

    ids: np.ndarray
    frames: list[Frame]
    pca: PCA2

    @property
    def steps(self) -> list[int]:
        return [f.step for f in self.frames]

    def limits(self, pad: float = 0.05) -> tuple[tuple[float, float], tuple[float, float]]:
        """Axis ranges that hold every frame (the same for all of them)."""
        allc = np.vstack([f.coords for f in self.frames])
        lo, hi = allc.min(axis=0), allc.max(axis=0)
        span = np.maximum(hi - lo, 1e-9)
        lo, hi = lo - pad * span, hi + pad * span
        return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def snapshot_steps(run_dir: Path) -> list[tuple[int, Path]]:
    snaps = list_snapshots(run_dir)
    if not snaps:
        raise EmbcliError(f"{run_dir} has no table snapshots to show (a run trained with snapshots = false)")
    return snaps


def aligned_frames(run_dir: Path, ids, *, fit_ids=None, basis_ids=None, steps: list[int] | None = None) -> AlignedFrames:
    """Rows ``ids`` at each snapshot (all, or ``steps``), aligned to the last snapshot, on its PCA axes.

    ``fit_ids`` (default ``ids``) are the rows the rotations are fitted on; ``basis_ids`` (default
    ``ids``) those the PCA is fitted on, in the final table.
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
    frames = []
    for step in chosen:
        table = load_table(by_step[step])
        align = procrustes(table[fit_ids], final_fit)
        rows = np.asarray(table[ids], dtype=np.float32)
        frames.append(Frame(step, rows, pca.apply(align.apply(rows)), align.scale, align.fit_r2))
    return AlignedFrames(ids, frames, pca)


def tokens_seen_at(run_dir: Path, meta: dict, steps: list[int]) -> list[int | None]:
    """Tokens seen by each step, from the loss history (or step × tokens per step)."""
    seen = {0: 0}
    for row in (meta.get("history") or {}).get("train") or []:
        seen[int(row[0])] = int(row[1])
    per_step = None
    try:
        cfg = json.loads((run_dir / CONFIG).read_text())
        per_step = int(cfg["batch_size"]) * int(cfg.get("grad_accum", 1)) * int(cfg["block_size"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return [seen.get(s, s * per_step if per_step else None) for s in steps]


__all__ = ["AlignedFrames", "Alignment", "Frame", "PCA2", "aligned_frames", "frequent_ids", "pca2", "procrustes",
           "snapshot_steps", "tokens_seen_at"]
