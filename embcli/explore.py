"""`embcli explore`: one self-contained HTML page that shows a run's table at every snapshot.

The page is a template (``templates/explore.html``) filled with two things: plotly.js, inlined from
the ``plotly`` Python package (so the page makes no network request and opens from ``file://``),
and the page data built here — the chosen tokens, their rows at every snapshot, and their 2-D
coordinates on one set of axes (see :mod:`embcli.projection`).

The page answers neighbour and analogy questions itself, in JavaScript, from the rows it holds,
with the formulas of :class:`embcli.space.EmbeddingSpace` restricted to its tokens; the browser
tests check its answers against ``embcli neighbors --json``. Words typed into the page are
resolved by a port of :meth:`EmbeddingSpace.resolve` over the full GPT-2 vocabulary, which the
page carries; the tests compare the port with the Python rule on a list of words.

Rows are stored as float16 unit vectors (their float32 norms beside them): half the size of
float32, and a cosine computed from them differs from the float32 one by ~1e-4 at most (measured
while building, shown on the page) — well inside the 1e-3 the page promises.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .checkpoint import find_run, read_meta
from .errors import EmbcliError
from .projection import aligned_frames, frequent_ids, tokens_seen_at
from .space import EmbeddingSpace
from .tokenizer import EOT_ID

DEFAULT_TOKENS = 3000
MAX_TOKENS = 20000
# Word groups whose story the page can replay in one click: where they start (noise) and where
# they end up. Words are resolved by the CLI's rule; those not on the page are left out.
PRESETS = [
    ("animals", ["cat", "dog", "horse", "bird", "fish", "cow"]),
    ("colours", ["red", "blue", "green", "yellow", "black", "white"]),
    ("royalty", ["king", "queen", "man", "woman", "prince", "princess"]),
    ("numbers", ["one", "two", "three", "four", "five", "ten"]),
    ("body", ["head", "hand", "foot", "eye", "heart", "blood"]),
]
QUERY_SAMPLE = 64  # rows whose cosines measure the float16 error, per snapshot


def plotly_js() -> str:
    """plotly.min.js as shipped in the ``plotly`` package (the one place the page's library comes from)."""
    try:
        import plotly
    except ImportError:
        raise EmbcliError("the explore page inlines plotly.js: pip install 'embcli[explore]'") from None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        raise EmbcliError(f"the plotly package has no {path.name} ({path}); reinstall plotly") from None


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


@dataclass
class PageData:
    """What the page is built from, and the figures `embcli explore` reports."""

    data: dict
    tokens: int
    snapshots: int
    vectors_bytes: int
    max_cosine_error: float


def vocab_strings(space: EmbeddingSpace) -> list[str | None]:
    """Every GPT-2 token (but <|endoftext|>) as text, for the page's port of ``resolve``.

    A token whose bytes are not whole UTF-8 (a piece of a multi-byte character) can never be
    typed, so it is null: typed text is always whole UTF-8, and ``resolve`` matches bytes.
    """
    out: list[str | None] = []
    for i in range(EOT_ID):
        try:
            out.append(space.vocab.bytes_of(i).decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


def build_page_data(run: str | Path | None = None, *, tokens: int = DEFAULT_TOKENS, min_count: int = 1) -> PageData:
    """The page's tokens, rows and aligned coordinates at every snapshot of a run."""
    if tokens < 1:
        raise EmbcliError(f"--tokens must be at least 1 (got {tokens})")
    if tokens > MAX_TOKENS:
        raise EmbcliError(f"--tokens is at most {MAX_TOKENS:,} (got {tokens:,}): the page would be too large to open")
    if min_count < 0:
        raise EmbcliError(f"--min-count must be ≥ 0 (got {min_count})")
    run_dir = find_run(str(run) if run is not None else None)
    meta = read_meta(run_dir)
    space = EmbeddingSpace.from_run(run_dir, min_count=min_count)  # counts, vocab, the resolve rule
    ids = frequent_ids(space.counts, tokens, min_count, len(space.vectors))
    if len(ids) == 0:
        raise EmbcliError(f"{run_dir} has no token seen {max(min_count, 1)} times or more in training")
    frames = aligned_frames(run_dir, ids)
    (x0, x1), (y0, y1) = frames.limits(pad=0.04, quantile=0.002 if len(ids) >= 500 else 0.0)

    id_list = [int(i) for i in ids]
    index = {t: k for k, t in enumerate(id_list)}
    frame_data, vec_bytes, worst = [], 0, 0.0
    steps = frames.steps
    seen = tokens_seen_at(run_dir, meta, steps)
    sample = np.arange(min(QUERY_SAMPLE, len(ids)))
    for frame, tokens_seen in zip(frames.frames, seen):
        rows = frame.rows.astype(np.float32)
        norms = np.linalg.norm(rows, axis=1).astype(np.float32)
        units = np.divide(rows, norms[:, None], out=np.zeros_like(rows), where=norms[:, None] > 0)
        half = units.astype(np.float16)
        worst = max(worst, _float16_cosine_error(units, half, sample))
        vec_bytes += half.nbytes + norms.nbytes
        frame_data.append({
            "step": frame.step, "tokens_seen": tokens_seen, "scale": round(frame.scale, 4),
            "fit": round(frame.fit, 4),
            "xy": _b64(frame.coords.astype(np.float32)), "units": _b64(half), "norms": _b64(norms),
        })

    presets = []
    for name, words in PRESETS:
        found, missing = [], []
        for w in words:
            try:
                r = space.resolve(w)
            except EmbcliError:  # not one GPT-2 token
                missing.append(w)
                continue
            if r.ids[0] in index:
                found.append(r.ids[0])
            else:
                missing.append(w)
        if len(found) >= 2:
            presets.append({"name": name, "ids": found, "missing": missing})

    counts = space.counts
    data = {
        "format": 1,
        "run": run_dir.name, "source": str(run_dir), "dim": int(space.vectors.shape[1]),
        "min_count": min_count, "requested_tokens": tokens,
        "corpus": (meta.get("corpus") or {}).get("description", ""),
        "counts_known": counts is not None,
        "ids": id_list,
        "shown": [space.vocab.show(i) for i in id_list],
        "counts": [int(counts[i]) for i in id_list] if counts is not None else None,
        "all_counts": _b64(counts.astype(np.uint32)) if counts is not None else None,
        "vocab": vocab_strings(space),
        "frames": frame_data,
        "explained": [round(e, 4) for e in frames.pca.explained],
        "limits": {"x": [x0, x1], "y": [y0, y1]},
        "float16_max_cosine_error": float(worst),
        "presets": presets,
    }
    return PageData(data, len(id_list), len(frame_data), vec_bytes, float(worst))


def _float16_cosine_error(units: np.ndarray, half: np.ndarray, sample: np.ndarray) -> float:
    """Largest |cosine from float16 rows − cosine from float32 rows|, for the sample's queries."""
    if len(sample) == 0:
        return 0.0
    h = half.astype(np.float32)
    hn = np.linalg.norm(h, axis=1)
    h = np.divide(h, hn[:, None], out=np.zeros_like(h), where=hn[:, None] > 0)  # the page renormalises too
    exact = units[sample].astype(np.float64) @ units.T.astype(np.float64)
    approx = h[sample].astype(np.float64) @ h.T.astype(np.float64)
    return float(np.abs(exact - approx).max())


def template() -> str:
    return (resources.files("embcli") / "templates" / "explore.html").read_text(encoding="utf-8")


def render_html(data: dict, js: str | None = None) -> str:
    """The template with plotly.js and the data filled in (a ``</script`` inside either is escaped)."""
    js = plotly_js() if js is None else js
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    # Inside a <script> element the HTML parser ends at "</script" and changes state at "<!--",
    # whatever the JavaScript means; both are escaped the way JS strings allow ("<\/", "<\!").
    js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE).replace("<!--", "<\\!--")
    page = template()
    # Fill the data first: plotly.js could contain the data marker's text, never the other way round.
    head, marker, tail = page.partition("/*@EMBCLI_DATA@*/")
    if not marker:
        raise RuntimeError("explore.html lost its data marker")
    page = head + payload + tail
    head, marker, tail = page.partition("/*@PLOTLY_JS@*/")
    if not marker:
        raise RuntimeError("explore.html lost its plotly marker")
    return head + js + tail


def default_output(run_dir_name: str) -> Path:
    return Path(f"explore-{run_dir_name}.html")


def check_writable(out: Path) -> None:
    """Refuse, before any work, an output that cannot be written (exit 2, one line)."""
    out = Path(out)
    if out.is_dir():
        raise EmbcliError(f"cannot write {out}: it is a folder (give a file name ending in .html)")
    if out.suffix.lower() not in (".html", ".htm"):
        raise EmbcliError(f"the explore page is HTML: give an output name ending in .html (got {out})")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise EmbcliError(f"cannot write {out}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise EmbcliError(f"cannot write {out}: the folder {parent} does not exist")
    import os

    if not os.access(parent, os.W_OK):
        raise EmbcliError(f"cannot write {out}: the folder {parent} is not writable")
    if out.exists() and not os.access(out, os.W_OK):
        raise EmbcliError(f"cannot write {out}: the file is read-only")


def write_page(out: Path, html: str) -> int:
    from .io import atomic_path

    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            tmp.write_text(html, encoding="utf-8")
    except EmbcliError as exc:  # an unwritable output is the user's to fix: exit 2
        raise EmbcliError(str(exc), exit_code=2) from None
    return out.stat().st_size


def explore(run: str | Path | None = None, out: Path | None = None, *, tokens: int = DEFAULT_TOKENS,
            min_count: int = 1) -> dict:
    """Build and write the page; returns what the CLI reports."""
    if out is not None:
        check_writable(out)
    js = plotly_js()
    page = build_page_data(run, tokens=tokens, min_count=min_count)
    out = Path(out) if out is not None else default_output(page.data["run"])
    check_writable(out)
    size = write_page(out, render_html(page.data, js))
    frames = page.data["frames"]
    return {"path": str(out), "bytes": size, "tokens": page.tokens, "requested": tokens,
            "snapshots": page.snapshots, "first_step": frames[0]["step"], "last_step": frames[-1]["step"],
            "vectors_bytes": page.vectors_bytes, "max_cosine_error": page.max_cosine_error}


def describe(info: dict) -> str:
    """The one line `embcli explore` prints."""
    fewer = f" (only {info['tokens']:,} qualify)" if info["tokens"] < info["requested"] else ""
    return (f"wrote {info['path']} ({info['bytes'] / 1e6:.1f} MB): {info['tokens']:,} tokens{fewer} × "
            f"{info['snapshots']} snapshots, step {info['first_step']:,} → {info['last_step']:,}")


__all__ = ["DEFAULT_TOKENS", "PRESETS", "PageData", "build_page_data", "describe", "explore", "render_html"]
