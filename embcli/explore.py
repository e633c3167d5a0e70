"""`embcli explore`: one self-contained HTML page that shows a run's table at every snapshot.

The page is a template (``templates/explore.html``) filled with two things: plotly.js, inlined from
the ``plotly`` Python package (so the page makes no network request and opens from ``file://``),
and the page data built here — the chosen tokens, their rows at every snapshot, and their 2-D
coordinates on one set of axes (see :mod:`embcli.projection`).

The page answers neighbour and analogy questions itself, in JavaScript, from the rows it holds,
with the formulas of :class:`embcli.space.EmbeddingSpace` restricted to its tokens; the browser
tests check its answers against ``embcli neighbors --json``. Words typed into the page are *not*
resolved in JavaScript: the rule (:meth:`EmbeddingSpace.resolve`, by the run's training counts)
lives in Python only, and the page carries its answers — every word that resolves to one of the
page's tokens, typed as the token reads, without its leading space, in lower case or capitalised
(:func:`page_words`), with the CLI's own description of the choice. A word outside that table
resolves to none of the page's tokens, and the page says so.

Rows are stored as float16 unit vectors (their float32 norms beside them): half the size of
float32, and a cosine computed from them differs from the float32 one by ~1e-4 at most (measured
while building, shown on the page) — well inside the 1e-3 the page promises.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import EmbcliError
from .projection import aligned_frames, frequent_ids, tokens_seen_at
from .queries import run_facts
from .render import describe
from .runs import find_run
from .space import BARE_MARGIN, DEFAULT_MIN_COUNT, EmbeddingSpace

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


def typed_forms(token: str) -> set[str]:
    """What a person might type for a token: as it reads, without its leading space, and each of
    those in lower case and with its first letter lowered (``" France"`` → ``France``, ``france``).

    :meth:`EmbeddingSpace.resolve` only ever takes the forms " w" and "w" of a typed w, or (when
    neither was seen) the same forms capitalised or upper-cased; so a typed word that resolves to
    this token is one of these, unless it mixes cases to reach an upper-case token ("fRANCE").
    """
    bases = {token, token[1:]} if token.startswith(" ") else {token}
    forms = set()
    for b in bases:
        forms |= {b, b.lower(), b[:1].lower() + b[1:]}
    return {f for f in forms if f.strip()}


def page_words(space: EmbeddingSpace, ids) -> dict[str, list]:
    """The page's resolution table: typed word → [id, how, the CLI's description of the choice].

    Every typed form (:func:`typed_forms`) of every page token, resolved by the CLI's own rule —
    so the page needs no copy of it. A form may resolve to a token off the page ("man" → " man"
    when only "man" is on it): it is kept, so the page can say which token the word is and that it
    is not there. Forms that are no single token (the CLI refuses them) are left out.
    """
    table: dict[str, list] = {}
    for i in ids:
        try:
            token = space.vocab.bytes_of(int(i)).decode("utf-8")
        except UnicodeDecodeError:  # a piece of a multi-byte character: no one types it
            continue
        for word in sorted(typed_forms(token)):
            if word in table:
                continue
            try:
                r = space.resolve(word)
            except EmbcliError:
                continue
            if r.single:
                table[word] = [r.ids[0], r.how, describe(r)]
    return table


def build_page_data(run: str | Path | None = None, *, tokens: int = DEFAULT_TOKENS,
                    min_count: int = DEFAULT_MIN_COUNT, runs_dir: Path | None = None) -> PageData:
    """The page's tokens, rows and aligned coordinates at every snapshot of a run.

    ``min_count`` is the answer verbs' (space.DEFAULT_MIN_COUNT unless given): the page holds only
    tokens seen that often, so its neighbours are ``embcli neighbors``'s with the same defaults,
    restricted to the page's tokens.
    """
    _check_page_options(tokens, min_count)
    run_dir = find_run(str(run) if run is not None else None, runs_dir)
    facts = run_facts(run_dir)
    space = EmbeddingSpace.from_run(run_dir, min_count=min_count)  # counts, vocab, the resolve rule
    ids = frequent_ids(space.counts, tokens, min_count, len(space.vectors))
    if len(ids) == 0:
        raise EmbcliError(f"{run_dir} has no token seen {max(min_count, 1)} times or more in training")
    frames = aligned_frames(run_dir, ids)
    (x0, x1), (y0, y1) = frames.limits(pad=0.04, quantile=0.002 if len(ids) >= 500 else 0.0)

    id_list = [int(i) for i in ids]
    seen = tokens_seen_at(run_dir, facts.history, frames.steps)
    frame_data, vec_bytes, worst = _frame_data(frames.frames, seen, len(ids))
    counts = space.counts
    data = {
        "format": 2,
        "run": run_dir.name, "source": str(run_dir), "dim": int(space.vectors.shape[1]),
        "min_count": min_count, "requested_tokens": tokens,
        "corpus": facts.corpus_description,
        "counts_known": counts is not None,
        "ids": id_list,
        "shown": [space.vocab.show(i) for i in id_list],
        "counts": [int(counts[i]) for i in id_list] if counts is not None else None,
        "words": page_words(space, id_list),
        "bare_margin": BARE_MARGIN,
        "frames": frame_data,
        "explained": [round(e, 4) for e in frames.pca.explained],
        "limits": {"x": [x0, x1], "y": [y0, y1]},
        "float16_max_cosine_error": float(worst),
        "presets": _presets(space, set(id_list)),
    }
    return PageData(data, len(id_list), len(frame_data), vec_bytes, float(worst))


def _check_page_options(tokens: int, min_count: int) -> None:
    """--tokens and --min-count checked before anything is read."""
    if tokens < 1:
        raise EmbcliError(f"--tokens must be at least 1 (got {tokens})")
    if tokens > MAX_TOKENS:
        raise EmbcliError(f"--tokens is at most {MAX_TOKENS:,} (got {tokens:,}): the page would be too large to open")
    if min_count < 0:
        raise EmbcliError(f"--min-count must be ≥ 0 (got {min_count})")


def _frame_data(frames, seen: list, n_ids: int) -> tuple[list[dict], int, float]:
    """Each snapshot as the page holds it: its coordinates, and its rows as float16 unit vectors and
    norms (base64); with the bytes the rows take and the largest cosine error float16 makes."""
    frame_data, vec_bytes, worst = [], 0, 0.0
    sample = np.arange(min(QUERY_SAMPLE, n_ids))
    for frame, tokens_seen in zip(frames, seen):
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
    return frame_data, vec_bytes, worst


def _presets(space: EmbeddingSpace, on_page: set[int]) -> list[dict]:
    """The preset word groups the page offers, each with its words' ids on the page and the words
    that are not (a group with fewer than two on the page is left out)."""
    presets = []
    for name, words in PRESETS:
        found, missing = [], []
        for w in words:
            try:
                r = space.resolve(w)
            except EmbcliError:  # not one GPT-2 token
                missing.append(w)
                continue
            if r.ids[0] in on_page:
                found.append(r.ids[0])
            else:
                missing.append(w)
        if len(found) >= 2:
            presets.append({"name": name, "ids": found, "missing": missing})
    return presets


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

    from .io import regular_target
    from .runs import refuse_run_files

    refuse_run_files(out)  # the page never replaces a run's own files
    regular_target(out)  # nor a device, a FIFO or a socket
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


@dataclass
class ExploreResult:
    """A page written: where, how large, and what it holds (``render.explored`` says it in one line)."""

    path: Path
    bytes: int
    tokens: int  # on the page
    requested: int  # --tokens (more than qualify: fewer on the page)
    min_count: int
    snapshots: int
    first_step: int
    last_step: int
    vectors_bytes: int  # the float16 rows and float32 norms of every snapshot, before base64
    max_cosine_error: float  # float16 rows against float32, measured on a sample
    run_dir: Path  # the run drawn (named in the answer's envelope, not among its fields)

    def to_json(self) -> dict:
        fields = dict(asdict(self), path=str(self.path))
        del fields["run_dir"]
        return fields


def explore(run: str | Path | None = None, out: Path | None = None, *, tokens: int = DEFAULT_TOKENS,
            min_count: int = DEFAULT_MIN_COUNT, runs_dir: Path | None = None) -> ExploreResult:
    """Build and write the page (default ``explore-<run>.html``); an unwritable output is refused first."""
    if out is not None:
        check_writable(out)
    js = plotly_js()
    page = build_page_data(run, tokens=tokens, min_count=min_count, runs_dir=runs_dir)
    out = Path(out) if out is not None else default_output(page.data["run"])
    check_writable(out)
    size = write_page(out, render_html(page.data, js))
    frames = page.data["frames"]
    return ExploreResult(out, size, page.tokens, tokens, min_count, page.snapshots, frames[0]["step"],
                         frames[-1]["step"], page.vectors_bytes, page.max_cosine_error, Path(page.data["source"]))


__all__ = ["DEFAULT_TOKENS", "PRESETS", "ExploreResult", "PageData", "build_page_data", "explore", "page_words",
           "render_html", "typed_forms"]
