"""Pictures of a table and a run (matplotlib; PNG, SVG or PDF, and animated GIF for the word map):
a word map, the same map at every snapshot on one set of axes, the loss curve, and the trace of a
word's neighbourhood from the step-0 noise to the end — meaning forming, made visible."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import EmbcliError
from .io import atomic_path, write_error
from .runs import refuse_run_files

FIGSIZE, DPI = (8, 6), 100  # → 800 × 600 pixels
FORMATS = (".png", ".svg", ".pdf")
# Colours for groups of words given together ("cat,dog,horse red,blue"): one meaning, one colour.
GROUP_COLOURS = ["#c0392b", "#2471a3", "#1e8449", "#8e44ad", "#d35400", "#17a589", "#7d6608", "#6c3483"]
ONE_COLOUR = "#1f3a5f"  # words given one by one, without groups or neighbours


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise EmbcliError("pictures need matplotlib: pip install 'embcli[plot]'") from None
    return plt


def check_output(out: Path, *, gif: bool = False) -> Path:
    """A picture's file name: .png, .svg or .pdf (and .gif where an animation is drawn)."""
    out = Path(out)
    allowed = FORMATS + ((".gif",) if gif else ())
    if out.suffix.lower() not in allowed:
        also = " (or .gif for an animation)" if gif else ""
        raise EmbcliError(f"pictures are PNG, SVG or PDF: give an output name ending in .png, .svg or .pdf{also} "
                          f"(got {out})")
    if out.is_dir():
        raise EmbcliError(f"cannot write {out}: it is a folder")
    refuse_run_files(out)  # a picture never replaces a run's own files
    return out


def _save(fig, out: Path) -> Path:
    plt = _pyplot()
    try:
        out = check_output(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=out.suffix.lower()[1:], dpi=DPI)
    except OSError as exc:
        raise write_error(out, exc) from None
    finally:
        plt.close(fig)
    return out


def pca_2d(x: np.ndarray) -> np.ndarray:
    from .projection import pca2

    return pca2(x).apply(x)


# ---------------------------------------------------------------------------------------------
# Word maps
# ---------------------------------------------------------------------------------------------


def word_groups(words: list[str]) -> list[list[str]]:
    """``["cat,dog,horse", "red,blue", "king"]`` → three groups; a comma inside one word joins a group.

    A lone ``,`` (or text with nothing between commas) stays a word: the comma token itself.
    """
    groups = []
    for w in words:
        parts = [p for p in w.split(",") if p]
        groups.append(parts if len(parts) >= 2 else [w])
    return groups


def place_labels(ax, xy: np.ndarray, labels: list[str], *, colours, sizes, weights, renderer=None) -> list:
    """Labels beside their points that overlap neither each other nor a point.

    Greedy, most important first (the order given): each label tries eight places around its point,
    then the same eight farther out with a thin leader line; the first place that collides with no
    label placed before it, no point marker and not the frame's edge wins. A label with no free
    place takes the least crowded one. Returns the text artists (tests check their boxes).
    """
    fig = ax.figure
    renderer = renderer or fig.canvas.get_renderer()
    pts = ax.transData.transform(np.asarray(xy, dtype=float))
    frame = ax.get_window_extent(renderer)
    point_boxes = [(x - 3.5, y - 3.5, x + 3.5, y + 3.5) for x, y in pts]
    placed: list[tuple[float, float, float, float]] = []
    directions = [(0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)]
    px_per_pt = fig.dpi / 72.0

    def overlap(a, b):
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        return w * h if w > 0 and h > 0 else 0.0

    artists = []
    for k, label in enumerate(labels):
        probe = ax.text(0, 0, label, fontsize=sizes[k], weight=weights[k])  # its size, measured once
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width + 2, ext.height + 2
        others = placed + point_boxes[:k] + point_boxes[k + 1:]
        best = None
        for radius in (4, 12, 22, 34):
            for dx, dy in directions:
                cx = pts[k][0] + dx * radius * px_per_pt
                cy = pts[k][1] + dy * radius * px_per_pt
                x0 = cx if dx > 0 else cx - w if dx < 0 else cx - w / 2
                y0 = cy if dy > 0 else cy - h if dy < 0 else cy - h / 2
                box = (x0, y0, x0 + w, y0 + h)
                cost = sum(overlap(box, o) for o in others)
                cost += 1e6 * ((box[0] < frame.x0) + (box[2] > frame.x1) + (box[1] < frame.y0) + (box[3] > frame.y1))
                if best is None or cost < best[0]:
                    best = (cost, box, radius, dx, dy)
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, box, radius, dx, dy = best
        ha = "left" if dx > 0 else "right" if dx < 0 else "center"
        va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
        leader = {"arrowstyle": "-", "color": colours[k], "lw": 0.5, "alpha": 0.6, "shrinkA": 0, "shrinkB": 3}
        text = ax.annotate(label, xy[k], xytext=(dx * radius, dy * radius), textcoords="offset points", ha=ha, va=va,
                           fontsize=sizes[k], weight=weights[k], color=colours[k], zorder=4,
                           arrowprops=leader if radius > 4 else None)  # moved away: a thin line says whose
        placed.append(box)
        artists.append(text)
    return artists


def _word_items(space, resolved: list, groups: list[int], neighbors: int):
    """What to draw: each item's token ids (several for a word combined with ``--combine mean``),
    its label, its group number and whether it was asked for (neighbours were not)."""
    items, labels, group_of, chosen = [], [], [], []
    for r, g in zip(resolved, groups):
        if tuple(r.ids) in items:
            continue
        items.append(tuple(r.ids))
        labels.append(space.vocab.show(r.ids[0]) if r.single else r.text)
        group_of.append(g)
        chosen.append(True)
    for r, g in zip(resolved, groups):
        for n in space.most_similar([r], topn=neighbors) if neighbors else []:
            if (n.id,) not in items:
                items.append((n.id,))
                labels.append(n.token)
                group_of.append(g)
                chosen.append(False)
    return items, labels, group_of, chosen


def _item_rows(vectors, items: list[tuple[int, ...]]) -> np.ndarray:
    """One row per item: a token's row, or the mean of a combined word's rows."""
    return np.stack([np.asarray(vectors[list(ids)], dtype=np.float64).mean(axis=0) for ids in items])


def _colours(group_of: list[int], n_groups: int, neighbors: int) -> list[str]:
    if n_groups <= 1 and not neighbors:
        return [ONE_COLOUR] * len(group_of)
    return [GROUP_COLOURS[g % len(GROUP_COLOURS)] for g in group_of]


def _draw_words(ax, xy, labels, colours, chosen, renderer=None):
    for (x, y), c, big in zip(xy, colours, chosen):
        ax.scatter([x], [y], color=c, s=46 if big else 16, alpha=1 if big else 0.55, zorder=3, linewidths=0)
    return place_labels(ax, xy, labels, colours=colours, sizes=[11 if b else 8 for b in chosen],
                        weights=["bold" if b else "normal" for b in chosen], renderer=renderer)


def _legend(fig, group_words: list[list[str]], n_groups: int) -> float:
    """One legend for the figure, below the axes (never over a label); returns the height it takes."""
    if n_groups <= 1:
        return 0.0
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=GROUP_COLOURS[g % len(GROUP_COLOURS)],
                      label=", ".join(ws[:4]) + (" …" if len(ws) > 4 else "")) for g, ws in enumerate(group_words)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    return 0.05 * -(-len(handles) // 4) * 6 / fig.get_figheight()


def plot_words(space, resolved: list, neighbors: int, out: Path, groups: list[int] | None = None,
               group_words: list[list[str]] | None = None) -> Path:
    """A 2-D PCA map of the chosen tokens (and each one's nearest neighbours), labelled.

    ``groups[i]`` is the group of ``resolved[i]`` (words given together share a colour); neighbours
    take their word's colour.
    """
    check_output(out)
    groups = groups if groups is not None else list(range(len(resolved)))
    n_groups = len(set(groups)) if group_words else (len(resolved) if neighbors else 1)
    items, labels, group_of, chosen = _word_items(space, resolved, groups, neighbors)
    from .projection import pca2

    rows = _item_rows(space.vectors, items)
    pca = pca2(rows)
    xy = pca.apply(rows)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    _pad_limits(ax, xy)
    _draw_words(ax, xy, labels, _colours(group_of, n_groups, neighbors), chosen)
    bottom = _legend(fig, group_words, n_groups) if group_words else 0.0
    step = f" at step {space.step}" if space.step is not None else ""
    ax.set_title(f"token rows, PCA to 2-D ({Path(space.source).name}{step})")
    ax.set_xlabel(pca.axis_label(0, " of these rows"))
    ax.set_ylabel(pca.axis_label(1, " of these rows"))
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return _save(fig, out)


def word_map(space, words: list[str], out: Path, *, neighbors: int = 0, steps: list[int] | None = None,
             over_training: bool = False, exact: bool = False, combine: str | None = None) -> Path:
    """`embcli plot words`: the map of ``words`` in ``space``'s table, or over its run's training on
    one set of axes.

    Words joined by commas ("cat,dog,horse") are a group and share a colour. ``space`` is the table
    the words are resolved in (by the run's counts, as every verb resolves them): the snapshot to
    draw for a single map, the final table for a picture over training. ``steps``: the snapshots
    drawn over training (all when None) as small multiples or, for a ``.gif`` output, an animation.
    """
    from .queries import resolve_all

    over_training = over_training or Path(out).suffix.lower() == ".gif"
    check_output(out, gif=over_training)
    if steps and len(steps) > 1 and not over_training:
        raise EmbcliError("several --step values need --steps (small multiples) or a .gif output")
    groups = word_groups(words)
    flat = [w for g in groups for w in g]
    group_of = [k for k, g in enumerate(groups) for _ in g]
    group_words = groups if any(len(g) > 1 for g in groups) else None
    resolved = resolve_all(space, flat, exact, combine)
    if over_training:
        return plot_words_over_training(space, Path(space.source), resolved, neighbors, out, steps=steps,
                                        groups=group_of, group_words=group_words)
    return plot_words(space, resolved, neighbors, out, groups=group_of, group_words=group_words)


def _pad_limits(ax, xy, pad=0.12):
    lo, hi = np.min(xy, axis=0), np.max(xy, axis=0)
    span = np.maximum(hi - lo, 1e-9)
    ax.set_xlim(lo[0] - pad * span[0], hi[0] + pad * span[0])
    ax.set_ylim(lo[1] - pad * span[1], hi[1] + pad * span[1])


def _frame_title(step: int, seen: int | None, scale: float) -> str:
    tokens = f" · {seen:,} tokens" if seen is not None else ""
    drawn = f" · zoom ×{scale:.2f}" if abs(scale - 1) > 0.005 else ""
    return f"step {step:,}{tokens}{drawn}"


FIT_ROWS = 2000  # the most frequent tokens the snapshots' rotations are fitted on


def plot_words_over_training(space, run_dir: Path, resolved: list, neighbors: int, out: Path,
                             steps: list[int] | None = None, groups: list[int] | None = None,
                             group_words: list[list[str]] | None = None) -> Path:
    """The word map at several snapshots on one set of axes: small multiples, or a GIF (``.gif``).

    The axes are the final table's PCA of the words drawn; each snapshot is rotated onto the final
    table by orthogonal Procrustes fitted on the run's most frequent tokens, and zoomed to spread as
    far (see :mod:`embcli.projection`), so a word's move between panels is the table's own.
    """
    from .projection import aligned_frames, frequent_ids, tokens_seen_at
    from .queries import run_facts

    out = check_output(out, gif=True)
    groups = groups if groups is not None else list(range(len(resolved)))
    n_groups = len(set(groups)) if group_words else (len(resolved) if neighbors else 1)
    items, labels, group_of, chosen = _word_items(space, resolved, groups, neighbors)
    several = [label for ids, label in zip(items, labels) if len(ids) > 1]
    if several:
        raise EmbcliError(f"over training each word must be one token ({several[0]!r} is {len(items[labels.index(several[0])])}); "
                          "--combine mean draws one table: drop --steps / the .gif, or give single-token words")
    ids = [i[0] for i in items]
    fit = np.union1d(frequent_ids(space.counts, FIT_ROWS, 1, len(space.vectors)), np.array(ids))
    frames = aligned_frames(run_dir, ids, fit_ids=fit, steps=steps)
    seen = tokens_seen_at(run_dir, run_facts(run_dir).history, frames.steps)
    colours = _colours(group_of, n_groups, neighbors)
    (x0, x1), (y0, y1) = frames.limits(pad=0.1)
    xlabel = frames.pca.axis_label(0, " of these rows in the final table")
    ylabel = frames.pca.axis_label(1, "")
    name = Path(run_dir).name
    if out.suffix.lower() == ".gif":
        return _write_gif(frames, seen, labels, colours, chosen, (x0, x1, y0, y1), xlabel, ylabel, name, out,
                          group_words if group_words else None, n_groups)
    plt = _pyplot()
    n = len(frames.frames)
    cols = min(n, 3 if n in (5, 6, 9) else 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.3 * rows + 0.6), squeeze=False)
    for ax, frame, tokens in zip(axes.flat, frames.frames, seen):
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        _draw_words(ax, frame.coords, labels, colours, chosen)
        ax.set_title(_frame_title(frame.step, tokens, frame.scale), fontsize=10)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    bottom = _legend(fig, group_words, n_groups) if group_words else 0.0
    fig.supxlabel(xlabel, fontsize=10, y=bottom + 0.005)
    fig.supylabel(ylabel, fontsize=10)
    fig.suptitle(f"{name}: the same tokens at {n} snapshots, on the final table's axes "
                 "(each snapshot rotated onto it)", fontsize=11)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return _save(fig, out)


GIF_SIZE, GIF_DPI = (6.4, 4.8), 100  # → 640 × 480 pixels
GIF_TWEENS, GIF_TWEEN_MS, GIF_HOLD_MS = 7, 90, 900


def _write_gif(frames, seen, labels, colours, chosen, limits, xlabel, ylabel, name, out, group_words, n_groups):
    """Every snapshot, with eased in-between frames, as a looping GIF (pillow, through matplotlib)."""
    plt = _pyplot()
    from PIL import Image

    x0, x1, y0, y1 = limits
    images, durations = [], []
    fig, ax = plt.subplots(figsize=GIF_SIZE, dpi=GIF_DPI)
    bottom = _legend(fig, group_words, n_groups) if group_words else 0.0

    def render(xy, title):
        ax.clear()
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_title(title, fontsize=11)
        _draw_words(ax, xy, labels, colours, chosen)
        fig.tight_layout(rect=(0, bottom, 1, 1))
        fig.canvas.draw()
        rgba = np.asarray(fig.canvas.buffer_rgba())
        return Image.fromarray(rgba[..., :3].copy()).quantize(colors=64, method=Image.Quantize.MEDIANCUT)

    fs = frames.frames
    for k, frame in enumerate(fs):
        images.append(render(frame.coords, f"{name}: " + _frame_title(frame.step, seen[k], frame.scale)))
        durations.append(GIF_HOLD_MS * (3 if k == len(fs) - 1 else 1))
        if k + 1 < len(fs):
            nxt = fs[k + 1]
            for t in range(1, GIF_TWEENS + 1):
                s = t / (GIF_TWEENS + 1)
                s = s * s * (3 - 2 * s)  # ease in and out
                xy = frame.coords + (nxt.coords - frame.coords) * s
                images.append(render(xy, f"{name}: step {frame.step:,} → {nxt.step:,}"))
                durations.append(GIF_TWEEN_MS)
    plt.close(fig)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                           optimize=True, disposal=1)
    except OSError as exc:
        raise write_error(out, exc) from None
    return out


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
