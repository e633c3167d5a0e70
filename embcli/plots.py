"""Pictures of a table and a run (matplotlib, PNG): a word map, the loss curve, and the trace of
a word's neighbourhood from the step-0 noise to the end — meaning forming, made visible."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import EmbcliError
from .io import atomic_path, write_error
from .runs import refuse_run_files

FIGSIZE, DPI = (8, 6), 100  # → 800 × 600 pixels


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise EmbcliError("pictures need matplotlib: pip install 'embcli[plot]'") from None
    return plt


def _save(fig, out: Path) -> Path:
    plt = _pyplot()
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise EmbcliError(f"pictures are PNG: give an output name ending in .png (got {out})")
    try:
        refuse_run_files(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    except OSError as exc:
        raise write_error(out, exc) from None
    finally:
        plt.close(fig)
    return out


def pca_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    if len(x) < 2:
        return np.zeros((len(x), 2))
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    coords = x @ vt[:2].T
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))


def plot_words(space, resolved: list, neighbors: int, out: Path) -> Path:
    """A 2-D PCA map of the chosen tokens (and each one's nearest neighbours), labelled.

    Each point is a unit-length row — the cosine geometry every answer uses — and a word of
    several tokens (``--combine mean``) is the mean of its pieces' unit rows, labelled as typed.
    """
    vectors, labels, groups, chosen, placed = [], [], [], [], set()
    for g, r in enumerate(resolved):
        vectors.append(space.vector(r))
        labels.append(space.vocab.show(r.ids[0]) if r.single else r.text)
        groups.append(g)
        chosen.append(True)
        placed.add(tuple(r.ids))
        for n in space.most_similar([r], topn=neighbors) if neighbors else []:
            if (n.id,) not in placed:
                placed.add((n.id,))
                vectors.append(space.unit(n.id))
                labels.append(n.token)
                groups.append(g)
                chosen.append(False)
    coords = pca_2d(np.asarray(vectors))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    cmap = plt.get_cmap("tab10")
    for (x, y), label, g, big in zip(coords, labels, groups, chosen):
        ax.scatter([x], [y], color=cmap(g % 10), s=60 if big else 20, alpha=1 if big else 0.6)
        ax.annotate(label, (x, y), fontsize=11 if big else 8, weight="bold" if big else "normal",
                    xytext=(3, 3), textcoords="offset points")
    step = f" at step {space.step}" if space.step is not None else ""
    ax.set_title(f"token rows (unit length), PCA to 2-D ({Path(space.source).name}{step})")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    fig.tight_layout()
    return _save(fig, out)


def plot_loss(history: dict, loss_kind: str | None, out: Path, name: str) -> Path:
    """Train and validation loss against tokens seen; ``history`` is {"train"|"val": [[step, tokens, loss], ...]}."""
    train, val = history.get("train") or [], history.get("val") or []
    if not train:
        raise EmbcliError(f"run {name} has no training losses to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    t = np.array(train, dtype=np.float64)
    kind = " (sampled-softmax estimate)" if loss_kind == "sampled" else ""
    ax.plot(t[:, 1], t[:, 2], lw=0.8, alpha=0.5, label=f"train{kind}, each step")
    if len(t) >= 20:
        k = max(len(t) // 50, 5)
        smooth = np.convolve(t[:, 2], np.ones(k) / k, mode="valid")
        ax.plot(t[k - 1:, 1], smooth, lw=1.8, label=f"train, mean of {k} steps")
    if val:
        v = np.array(val, dtype=np.float64)
        ax.plot(v[:, 1], v[:, 2], "o-", lw=1.5, label="validation (full softmax)")
    ax.axhline(np.log(50257), ls=":", color="grey", label="uniform over 50257 ids")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(f"loss of {name}")
    ax.legend()
    fig.tight_layout()
    return _save(fig, out)


def plot_trace(steps: list[int], series: dict[str, list[float]], word: str, out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    xs = [max(s, 1) for s in steps]
    for label, sims in series.items():
        ax.plot(xs, sims, "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training step (log; step 0 drawn at 1)")
    ax.set_ylabel("cosine similarity")
    ax.set_title(f"{word!r}: similarity over training, from random noise to the final table")
    ax.axhline(0, color="grey", lw=0.6)
    ax.legend()
    fig.tight_layout()
    return _save(fig, out)
