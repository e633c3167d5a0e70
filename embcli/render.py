"""How answers look: rich tables and text lines for people, JSON for programs.

Every function writes to the rich ``Console`` it is given (the CLI's stdout, the shell's console,
a test's buffer); :func:`show` picks the renderer for a result from ``queries.py``. JSON is
written in one place, :func:`print_json`, always to the console's own stream.

rich's table and markup modules are imported inside the functions that draw, so importing this
module costs nothing on the way to an answer.
"""

from __future__ import annotations

import json
import math
from typing import Callable

from .queries import (
    AnalogyResult,
    AnsweredBy,
    EvalResult,
    LeftOut,
    ModelResult,
    NeighborsResult,
    OddOneOutResult,
    RowResult,
    RunsResult,
    SimilarityResult,
    TableResult,
    TokenizeResult,
    TraceResult,
)
from .space import ANALOGY_METHODS, Neighbor, Resolved


def console(stderr: bool = False):
    """A console for answers: no automatic highlighting of numbers and paths (the colours mean something).

    A reader that leaves early (``embcli neighbors cat | head -1``) is no error: rich's own answer
    to a closed pipe is exit code 1, so the console raises BrokenPipeError instead, which the
    command line turns into a quiet exit 0.
    """
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    out.on_broken_pipe = _closed_pipe
    return out


def _closed_pipe() -> None:
    raise BrokenPipeError


def print_json(data, out, *, indent: int | None = 2) -> None:
    """The one place JSON is written: to ``out``'s stream, one document per call."""
    out.file.write(json.dumps(data, indent=indent, default=str) + "\n")


# The keys every JSON answer has; a verb's own fields never use them.
ENVELOPE = ("verb", "run")


def answer_json(verb: str, data: dict, run: AnsweredBy | None = None) -> dict:
    """The one JSON shape of every answer (README, "JSON output"), for every verb alike::

        {"verb": "neighbors", "run": {"name": "run1", "path": "runs/run1", "step": 1000}, ...}

    ``verb`` is the command ("neighbors", "inspect row", "train"); ``run`` the run and step that
    answered, or null when no run was used (``tokenize``, ``runs``, ``prepare``); the verb's own
    fields follow. Tokens in them are the real strings with their ids (``{"id": 3797, "token": " cat"}``);
    the ␣ marker is for tables only.
    """
    clash = set(ENVELOPE) & set(data)
    if clash:
        raise ValueError(f"{verb}'s JSON uses the envelope's keys {sorted(clash)}")
    return {"verb": verb, "run": run.to_json() if run else None, **data}


def print_answer(verb: str, data: dict, out, *, run: AnsweredBy | None = None, indent: int | None = 2) -> None:
    """An answer as JSON in the one shape (:func:`answer_json`)."""
    print_json(answer_json(verb, data, run), out, indent=indent)


def error_line(out, message: str, *, soft_wrap: bool = False) -> None:
    """``error: message`` in red; the message is text, never markup (a '[' in it is shown as typed)."""
    from rich.markup import escape

    from .errors import one_line

    out.print(f"[red]error:[/red] {escape(one_line(message))}", soft_wrap=soft_wrap)


def show(result, out, *, as_json: bool = False, verb: str | None = None, run: AnsweredBy | None = None,
         one_line: bool = False, **options) -> None:
    """Render any result from queries.py: as JSON, or with its text renderer (``options`` go to it).

    Every answer names the run and step that answered: ``run`` (or the result's own ``answered_by``,
    which wins) becomes the JSON's ``"run"`` and a dim line under the text. ``verb`` names the
    command in JSON (default: the one that makes this kind of result); ``one_line`` writes any
    JSON answer on one line (JSON Lines, as the shell does).
    """
    run = getattr(result, "answered_by", None) or run
    if as_json:
        # one-number answers stay on one line, as they always have
        compact = one_line or isinstance(result, (SimilarityResult, TokenizeResult))
        print_answer(verb or verb_of(result), result.to_json(), out, run=run, indent=None if compact else 2)
        return
    TEXT[type(result)](result, out, **options)
    answered_line(run, out)


def verb_of(result) -> str:
    """The command that makes this kind of result (the JSON's ``verb`` when no command says)."""
    if isinstance(result, RowResult) and result.resolved is not None:
        return "inspect token"
    return VERBS.get(type(result)) or type(result).__name__.removesuffix("Result").lower()


def answered_line(run: AnsweredBy | None, out) -> None:
    """The dim line under an answer: ``from run1 at step 1,000 (runs/run1)``; nothing without a run."""
    if run is not None:
        out.print(run.describe(), style="dim", markup=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# Pieces shared by several answers
# ---------------------------------------------------------------------------------------------


def describe(r: Resolved) -> str:
    """How a typed word was read: ``'cat' → ␣cat (3797; space-prefixed)``."""
    ids = ", ".join(str(i) for i in r.ids)
    return f"{r.text!r} → {' + '.join(r.pieces)} ({ids}; {r.how})"


def left_out_note(left: LeftOut | None, out) -> None:
    """Say how many rows answers left out, and why; nothing when none were."""
    if not left:
        return
    seen = "never seen in training" if left.min_count == 1 else f"seen fewer than {left.min_count} times in training"
    out.print(f"[dim]{left.rows:,} rows {seen} left out: they are still mostly their random start "
              "(--min-count 0 keeps them)[/]")


def neighbor_table(title: str, neighbors: list[Neighbor]):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("id", justify="right")
    table.add_column("token")
    table.add_column("cosine", justify="right")
    table.add_column("count", justify="right")
    for n in neighbors:
        table.add_row(str(n.rank), str(n.id), n.token, f"{n.similarity:.4f}", "?" if n.count is None else f"{n.count:,}")
    return table


# ---------------------------------------------------------------------------------------------
# Similarity answers
# ---------------------------------------------------------------------------------------------


def neighbors(result: NeighborsResult, out) -> None:
    for w in result.words:
        out.print(neighbor_table(describe(w.query), w.neighbors))
    left_out_note(result.left_out, out)


def analogy(result: AnalogyResult, out) -> None:
    a, b, c = result.a, result.b, result.c
    out.print(neighbor_table(f"{a.text} − {b.text} + {c.text}  ({ANALOGY_METHODS[result.method]})", result.answers))
    out.print(f"[dim]{'; '.join(describe(r) for r in (a, b, c))}[/]")
    left_out_note(result.left_out, out)


def similarity(result: SimilarityResult, out) -> None:
    out.print(f"cosine({describe(result.a)}, {describe(result.b)}) = [bold]{result.similarity:.4f}[/]")


def odd_one_out(result: OddOneOutResult, out) -> None:
    out.print(f"odd one out: [bold]{result.odd.text}[/]")
    for s, r in result.ranked:
        out.print(f"  {r.text:<16} {s:.4f}  cosine to the mean")


def tokenize(result: TokenizeResult, out) -> None:
    n = len(result.ids)
    out.print(f"{n} token{'s' if n != 1 else ''}: "
              + "  ".join(f"[cyan]{piece}[/]({i})" for i, piece in zip(result.ids, result.pieces)))


# ---------------------------------------------------------------------------------------------
# Inspection
# ---------------------------------------------------------------------------------------------

SPARK = "▁▂▃▄▅▆▇█"
ROW_WIDTH = 64  # values per line of a sparkline or heat strip


def sparkline(values) -> str:
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return SPARK[0] * len(v)
    idx = np.clip(((v - lo) / (hi - lo) * (len(SPARK) - 1)).round().astype(int), 0, len(SPARK) - 1)
    return "".join(SPARK[i] for i in idx)


def heat_strip(values) -> str:
    """Each value as a coloured block: blue negative, red positive, brightness by size."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    scale = float(np.abs(v).max()) or 1.0
    cells = []
    for x in v:
        t = abs(x) / scale
        level = int(80 + 175 * t)
        colour = f"rgb({level},{int(60 * (1 - t))},{int(60 * (1 - t))})" if x >= 0 else \
            f"rgb({int(60 * (1 - t))},{int(60 * (1 - t))},{level})"
        cells.append(f"[{colour}]█[/]")
    return "".join(cells)


def row(result: RowResult, out) -> None:
    count = "unknown" if result.count is None else f"{result.count:,}"
    how = f"  ({describe(result.resolved)})" if result.resolved else ""
    untrained = "  [yellow](untrained: still noise)[/]" if result.count == 0 else ""
    out.print(f"row [bold]{result.id}[/] = [cyan]{result.token}[/]{how}   seen {count} times in training{untrained}")
    out.print(f"norm {result.norm:.4f}   mean {result.mean:+.4f}   std {result.std:.4f}   "
              f"min {result.min:+.4f}   max {result.max:+.4f}   dim {result.dim}")
    values = result.values
    out.print("first values: " + ", ".join(f"{x:+.4f}" for x in values[:8]) + (" ..." if len(values) > 8 else ""))
    out.print("all values (sparkline, low ▁ … █ high):")
    varies = values.max() > values.min()
    for i in range(0, len(values), ROW_WIDTH):
        out.print(f"  {i:>4} {sparkline(values[i:i + ROW_WIDTH]) if varies else ''}")
    if out.color_system is not None:  # without colour every cell would be the same block
        out.print("heat strip (blue < 0 < red):")
        for i in range(0, len(values), ROW_WIDTH):
            out.print(f"  {i:>4} {heat_strip(values[i:i + ROW_WIDTH])}")
    out.print(neighbor_table("nearest neighbours", result.neighbors))


def _at_step(source: str, step: int | None) -> str:
    return source + (f" at step {step}" if step is not None else "")


def table(result: TableResult, out) -> None:
    stats = result.stats
    out.print(f"table of {_at_step(result.source, result.step)}")
    out.print(f"shape {stats['rows']:,} × {stats['dim']} = {stats['parameters']:,} parameters, {stats['dtype']}, "
              f"{stats['bytes'] / 2**20:.1f} MiB")
    if stats.get("model_parameters"):
        out.print(f"share of the model: {stats['share_of_model']:.1%} of {stats['model_parameters']:,} parameters; "
                  f"{'tied to the output layer' if stats.get('tied') else 'not tied'}")
    out.print("row norms: " + "  ".join(f"p{k} {v:.3f}" for k, v in stats["norm_percentiles"].items()))
    if "rows_trained" in stats:
        out.print(f"rows whose token occurred in training: {stats['rows_trained']:,}; never occurred: "
                  f"{stats['rows_untrained']:,}")
        if "median_norm_trained" in stats:
            out.print(f"median norm: trained rows {stats['median_norm_trained']:.3f}, untrained "
                      f"{stats['median_norm_untrained']:.3f}")


def model(result: ModelResult, out) -> None:
    shape, info = result.shape, result.parameters
    out.print(f"{result.source}: {shape.get('n_layer')} layers, {shape.get('n_head')} heads, d {shape.get('n_embd')}, "
              f"context {shape.get('block_size')}")
    out.print(f"{info['parameters']:,} parameters; token table {info['rows']:,} × {info['dim']} = "
              f"{info['table_parameters']:,} ({info['table_share']:.1%}), "
              f"{'tied: the same matrix is the output layer' if info.get('tied') else 'untied'}")


def runs(result: RunsResult, out) -> None:
    if not result.runs:
        out.print(f"no runs under {result.root}/ — start one with: embcli train")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table("run", "status", "step", "tokens", "train loss", "val loss", "params", "corpus")
    loss = lambda x: f"{x:.3f}" if isinstance(x, float) else "-"  # noqa: E731
    for r in result.runs:
        status = "[red]damaged[/]" if r.problem else escape(r.status or "?")
        table.add_row(escape(r.run), status, f"{r.step or 0:,}", f"{r.tokens or 0:,}", loss(r.train_loss),
                      loss(r.val_loss), f"{r.parameters or 0:,}", escape(r.corpus[:40]))
    out.print(table)
    for r in result.runs:
        if r.problem:
            out.print(f"[red]damaged:[/] {escape(r.problem)}", soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# Evaluation and trace
# ---------------------------------------------------------------------------------------------


def _score(value: float, used: int, total: int) -> str:
    shown = "n/a" if math.isnan(value) else f"{value:.3f}"  # NaN: no pair or question could be scored
    return f"{shown}  ({used:,}/{total:,} = {used / total:.0%})" if total else shown


def evaluation(result: EvalResult, out, *, sections: bool = False) -> None:
    from rich.table import Table

    scores = list(result.tables.values())
    table = Table(title=f"evaluation of {_at_step(result.source, result.step)}", title_justify="left")
    table.add_column("")
    for name in result.tables:
        table.add_column(name)
    table.add_row("WordSim353 Spearman ρ (pairs used)",
                  *[_score(s.pairs.spearman, s.pairs.used, s.pairs.total) for s in scores])
    table.add_row("Google analogies accuracy (questions used)",
                  *[_score(s.analogies.accuracy, s.analogies.used, s.analogies.total) for s in scores])
    if sections:
        for i, sec in enumerate(scores[0].analogies.sections):
            cells = []
            for s in scores:
                part = s.analogies.sections[i]
                accuracy = part["correct"] / part["used"] if part["used"] else float("nan")
                cells.append(_score(accuracy, part["used"], part["total"]))
            table.add_row(f"  {sec['section']}", *cells)
    if any(s.baseline for s in scores):
        table.add_row("training", *[f"{s.baseline.settings}; {s.baseline.seconds:.1f} s" if s.baseline
                                    else "transformer LM (see embcli runs)" for s in scores])
    out.print(table)
    malformed = scores[0].pairs.malformed + scores[0].analogies.malformed
    out.print("[dim]a pair or question counts only when each word is one GPT-2 token that training saw"
              + (f"; {malformed} malformed lines skipped" if malformed else "") + "[/]")


def trace(result: TraceResult, out) -> None:
    from rich.table import Table

    table = Table(title=f"{describe(result.target)}: nearest neighbours over training", title_justify="left")
    table.add_column("step", justify="right")
    for k in range(result.top):
        table.add_column(f"#{k + 1}")
    for snap in result.snapshots:
        # the similarities --json gives (rounded to 6 places), so the table and the JSON never disagree
        table.add_row(f"{snap.step:,}", *[f"{n.token} {round(n.similarity, 6):.2f}" for n in snap.neighbors])
    out.print(table)
    out.print("cosine over training: " + "; ".join(f"{result.word}–{k}: " + " → ".join(f"{x:.2f}" for x in v)
                                                  for k, v in result.similarity.items()))


TEXT: dict[type, Callable] = {
    NeighborsResult: neighbors, AnalogyResult: analogy, SimilarityResult: similarity,
    OddOneOutResult: odd_one_out, TokenizeResult: tokenize, RowResult: row, TableResult: table,
    ModelResult: model, RunsResult: runs, EvalResult: evaluation, TraceResult: trace,
}
VERBS: dict[type, str] = {
    NeighborsResult: "neighbors", AnalogyResult: "analogy", SimilarityResult: "similarity",
    OddOneOutResult: "odd-one-out", TokenizeResult: "tokenize", RowResult: "inspect row", TableResult: "inspect table",
    ModelResult: "inspect model", RunsResult: "runs", EvalResult: "eval", TraceResult: "trace",
}

# ---------------------------------------------------------------------------------------------
# Training, corpora, files written
# ---------------------------------------------------------------------------------------------


def train_summary(result, out) -> None:
    """The last two lines of ``embcli train``: what was done, and where the table is."""
    loss = f"{result.train_loss:.3f}" if result.train_loss is not None else "-"
    if result.loss_kind == "sampled":
        loss += " (sampled-softmax estimate)"
    val = f"{result.val_loss:.3f}" if result.val_loss is not None else "-"
    out.print(f"[bold green]done[/]: {result.step:,} steps, {result.tokens:,} tokens in {result.seconds:.1f} s "
              f"({result.tokens_per_second:,.0f} tokens/s); train loss {loss}, val loss {val} (full softmax)")
    out.print(f"run: {result.run}   try: embcli neighbors cat --run {result.run}")


def prepared(corpus, out, *, as_json: bool = False) -> None:
    """A tokenized corpus (data.PreparedCorpus): its manifest's totals and where it is cached."""
    m = corpus.manifest
    if as_json:
        print_answer("prepare", {"path": str(corpus.path), "corpus": m}, out)
        return
    out.print(f"{m['description']}: {m['bytes']:,} bytes, {m['documents']:,} documents → "
              f"{m['tokens']['train']:,} training + {m['tokens']['val']:,} validation tokens, "
              f"{m['distinct_train_ids']:,} distinct ids\ncached at {corpus.path}")


def exported(info: dict, out, *, as_json: bool = False, run: AnsweredBy | None = None) -> None:
    """What ``export`` wrote (export.export's record: format, rows, dim, files)."""
    if as_json:
        print_answer("export", info, out, run=run)
        return
    out.print(f"wrote {info['rows']:,} rows × {info['dim']} ({info['format']}): {', '.join(info['files'])}",
              markup=False)
    answered_line(run, out)


def imported(source: str, run, out, *, as_json: bool = False) -> None:
    """The run ``import-hf`` made (an imported table has no training step)."""
    made = AnsweredBy.of_run(run, None)
    if as_json:
        print_answer("import-hf", {"source": source, "counts_known": False}, out, run=made)
        return
    out.print(f"imported {source} → {run} (token counts unknown: queries use every row)\n"
              f"try: embcli neighbors cat --run {run}", markup=False)


def wrote(path, out, *, as_json: bool = False, verb: str = "plot", run: AnsweredBy | None = None) -> None:
    """A picture written (``plot words``, ``plot loss``)."""
    if as_json:
        print_answer(verb, {"files": [str(path)]}, out, run=run)
        return
    out.print(f"wrote {path}", markup=False)
    answered_line(run, out)


def busy(message: str):
    """A spinner on stderr while a long step runs (stdout stays clean for --json)."""
    from .progress import console as progress_console

    return progress_console.status(message)
