"""How answers look: rich tables and text lines for people, JSON for programs.

Every function writes to the rich ``Console`` it is given (the CLI's stdout, the shell's console,
a test's buffer); :func:`show` picks the renderer for a result from ``queries.py``. JSON is
written in one place, :func:`print_json`, always to the console's own stream.

rich's table and markup modules are imported inside the functions that draw, so importing this
module costs nothing on the way to an answer.

What a user typed, token strings, paths and names are text, never markup: they reach rich as
``Text`` (:func:`line`, :func:`cell`) or in a ``print(..., markup=False)``, so a token such as "[/",
"[bold]" or "\\" is shown as it is. Markup strings hold only this module's own words and numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

from .queries import (
    AnalogyResult,
    AnsweredBy,
    DirectionsResult,
    EvalResult,
    LeftOut,
    ModelResult,
    NeighborsResult,
    OddOneOutResult,
    PredictResult,
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


def line(*parts):
    """One line of plain text and ``(text, style)`` pairs (rich's ``Text.assemble``): no part is read
    as markup, so a token or a typed word in it is shown as it is."""
    from rich.text import Text

    return Text.assemble(*parts)


def cell(text: str, style: str = ""):
    """A table cell (or title) holding ``text`` as it is, never as markup."""
    from rich.text import Text

    return Text(text, style=style)


def error_line(out, message: str, *, soft_wrap: bool = False) -> None:
    """``error: message`` in red; the message is text, never markup (a '[' in it is shown as typed)."""
    from .errors import one_line

    out.print(line(("error:", "red"), " ", one_line(message)), soft_wrap=soft_wrap)


def show(result, out, *, as_json: bool = False, verb: str | None = None, run: AnsweredBy | None = None,
         one_line: bool = False, name_run: bool = True, **options) -> None:
    """Render any result from queries.py: as JSON, or with its text renderer (``options`` go to it).

    Every answer names the run and step that answered: ``run`` (or the result's own ``answered_by``,
    which wins) becomes the JSON's ``"run"`` and a dim line under the text. ``verb`` names the
    command in JSON (default: the one that makes this kind of result); ``one_line`` writes any
    JSON answer on one line (JSON Lines, as the shell does); ``name_run=False`` leaves the text's
    line out (the shell, whose banner names the run once).
    """
    run = getattr(result, "answered_by", None) or run
    if as_json:
        # one-number answers stay on one line, as they always have
        compact = one_line or isinstance(result, (SimilarityResult, TokenizeResult))
        print_answer(verb or verb_of(result), result.to_json(), out, run=run, indent=None if compact else 2)
        return
    TEXT[type(result)](result, out, **options)
    if name_run:
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
    """How a typed word was read, and the evidence:
    ``'.' → . (13; bare: seen 2,315 times in training; ␣. 23 times)``."""
    ids = ", ".join(str(i) for i in r.ids)
    return f"{r.text!r} → {' + '.join(r.pieces)} ({ids}; {r.how}{': ' + r.why if r.why else ''})"


def left_out_note(left: LeftOut | None, out) -> None:
    """Say how many rows answers left out, and why; nothing when none were."""
    if not left:
        return
    if left.min_count == 1:
        note = (f"{left.rows:,} rows never seen in training left out: they are still their random start "
                "(--min-count 0 keeps them)")
    else:
        seen = "once" if left.min_count == 2 else f"1–{left.min_count - 1} times"
        note = (f"{left.rows:,} rows left out: {left.unseen:,} never seen in training, {left.rows - left.unseen:,} "
                f"seen {seen} and barely trained (--min-count 1 keeps the rows training saw, 0 every row)")
    out.print(f"[dim]{note}[/]")


def neighbor_table(title: str | None, neighbors: list[Neighbor]):
    from rich.table import Table

    table = Table(title=None if title is None else cell(title), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("id", justify="right")
    table.add_column("token")
    table.add_column("cosine", justify="right")
    table.add_column("count", justify="right")
    for n in neighbors:
        table.add_row(str(n.rank), str(n.id), cell(n.token), f"{n.similarity:.4f}", _count(n.count))
    return table


# ---------------------------------------------------------------------------------------------
# Similarity answers
# ---------------------------------------------------------------------------------------------


def neighbors(result: NeighborsResult, out) -> None:
    for w in result.words:
        out.print(describe(w.query), soft_wrap=True, markup=False)  # above the table: as its title it would wrap at its width
        out.print(neighbor_table(None, w.neighbors))
    left_out_note(result.left_out, out)


def analogy(result: AnalogyResult, out) -> None:
    a, b, c = result.a, result.b, result.c
    out.print(neighbor_table(f"{a.text} − {b.text} + {c.text}  ({ANALOGY_METHODS[result.method]})", result.answers))
    out.print(cell('; '.join(describe(r) for r in (a, b, c)), "dim"))
    left_out_note(result.left_out, out)


def similarity(result: SimilarityResult, out) -> None:
    out.print(line(f"cosine({describe(result.a)}, {describe(result.b)}) = ", (f"{result.similarity:.4f}", "bold")))


def odd_one_out(result: OddOneOutResult, out) -> None:
    out.print(line("odd one out: ", (result.odd.text, "bold")))
    for s, r in result.ranked:
        out.print(f"  {r.text:<16} {s:.4f}  cosine to the mean", markup=False)


def tokenize(result: TokenizeResult, out) -> None:
    n = len(result.ids)
    out.print(line(f"{n} token{'s' if n != 1 else ''}: ", *_pieces(result.pieces, result.ids)))


def _pieces(pieces: list[str], ids: list[int]) -> list:
    """Tokens as ``piece(id)``, two spaces apart, the pieces in cyan (for :func:`line`)."""
    parts = []
    for k, (piece, token_id) in enumerate(zip(pieces, ids)):
        parts += ["  " if k else "", (piece, "cyan"), f"({token_id})"]
    return parts


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
    untrained = ("  (untrained: still noise)", "yellow") if result.count == 0 else ""
    out.print(line("row ", (str(result.id), "bold"), " = ", (result.token, "cyan"), f"{how}   seen {count} times in training",
                   untrained))
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
    out.print(f"table of {_at_step(result.source, result.step)}", markup=False)
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
              f"context {shape.get('block_size')}", markup=False)
    out.print(f"{info['parameters']:,} parameters; token table {info['rows']:,} × {info['dim']} = "
              f"{info['table_parameters']:,} ({info['table_share']:.1%}), "
              f"{'tied: the same matrix is the output layer' if info.get('tied') else 'untied'}")


def runs(result: RunsResult, out) -> None:
    if not result.runs:
        out.print(f"no runs under {result.root}/ — start one with: embcli train", markup=False)
        return
    from rich.table import Table

    table = Table("run", "status", "step", "tokens", "train loss", "val loss", "params", "corpus")
    loss = lambda x: f"{x:.3f}" if isinstance(x, float) else "-"  # noqa: E731
    for r in result.runs:
        status = cell("damaged", "red") if r.problem else cell(r.status or "?")
        table.add_row(cell(r.run), status, f"{r.step or 0:,}", f"{r.tokens or 0:,}", loss(r.train_loss),
                      loss(r.val_loss), f"{r.parameters or 0:,}", cell(r.corpus[:40]))
    out.print(table)
    for r in result.runs:
        if r.problem:
            out.print(line(("damaged:", "red"), " ", r.problem), soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# Evaluation and trace
# ---------------------------------------------------------------------------------------------


def _score(value: float, used: int, total: int) -> str:
    shown = "n/a" if math.isnan(value) else f"{value:.3f}"  # NaN: no pair or question could be scored
    return f"{shown}  ({used:,}/{total:,} = {used / total:.0%})" if total else shown


def _table_name(key: str, baseline) -> str:
    """A column's name: which table it is and how long it trained."""
    if baseline is None:
        return key
    from .baseline import epochs_text

    took = f"{epochs_text(baseline.epochs)}, {baseline.seconds:,.1f} s"
    if baseline.target_seconds is None:
        return f"word2vec ({took})"
    if baseline.target_from == "--baseline-seconds":
        return f"word2vec ({baseline.target_seconds:,g} s asked: {took})"
    return f"word2vec (equal time: {took})"


def evaluation(result: EvalResult, out, *, sections: bool = False) -> None:
    from rich.table import Table

    from .baseline import epochs_text

    scores = list(result.tables.values())
    table = Table(title=cell(f"evaluation of {_at_step(result.source, result.step)}"), title_justify="left")
    table.add_column("")
    for name, s in result.tables.items():
        table.add_column(cell(_table_name(name, s.baseline)))
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
            table.add_row(cell(f"  {sec['section']}"), *cells)
    if any(s.baseline for s in scores):
        table.add_row("training", *[cell(s.baseline.settings) if s.baseline
                                    else "transformer LM (see embcli runs)" for s in scores])
    out.print(table)
    for s in scores:
        b = s.baseline
        if b and b.target_seconds is not None:
            asked = (f"--baseline-seconds asked for {b.target_seconds:,g} s" if b.target_from == "--baseline-seconds"
                     else f"equal time: the run's table had trained {b.target_seconds:,.1f} s ({b.target_from})")
            out.print(cell(f"{asked}; word2vec's 5 epochs "
                           f"took {b.per_epoch_seconds * 5:,.1f} s here ({b.per_epoch_seconds:,.2f} s an epoch), so "
                           f"{epochs_text(b.epochs)}, which took {b.seconds:,.1f} s", "dim"), soft_wrap=True)
    malformed = scores[0].pairs.malformed + scores[0].analogies.malformed
    out.print("[dim]a pair or question counts only when each word is one GPT-2 token that training saw"
              + (f"; {malformed} malformed lines skipped" if malformed else "") + "[/]")


def trace(result: TraceResult, out) -> None:
    from rich.table import Table

    table = Table()
    table.add_column("step", justify="right")
    for k in range(result.top):
        table.add_column(f"#{k + 1}")
    for snap in result.snapshots:
        # the similarities --json gives (rounded to 6 places), so the table and the JSON never disagree
        table.add_row(f"{snap.step:,}", *[cell(f"{n.token} {round(n.similarity, 6):.2f}") for n in snap.neighbors])
    out.print(f"{describe(result.target)}: nearest neighbours over training", soft_wrap=True, markup=False)
    out.print(table)
    out.print("cosine over training: " + "; ".join(f"{result.word}–{k}: " + " → ".join(f"{x:.2f}" for x in v)
                                                  for k, v in result.similarity.items()), markup=False)


# ---------------------------------------------------------------------------------------------
# predict and directions
# ---------------------------------------------------------------------------------------------


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def prediction(result: PredictResult, out) -> None:
    """The prompt as tokens, the top next tokens, and with ``explain`` logit = h · row for each.

    Tokens and notes are text, never markup: a token such as "[/" or "\\" is shown as it is."""
    from rich.table import Table

    step = f", step {result.step:,}" if result.step is not None else ""
    out.print(line(f"{len(result.ids)} token{'s' if len(result.ids) != 1 else ''} read: ",
                   *_pieces(result.pieces, result.ids)))
    for note in result.notes:
        out.print(line(("note:", "yellow"), " ", note))
    out.print(f"the next token, by the model of {result.run}{step} (softmax over all {result.vocab_size:,} tokens):",
              soft_wrap=True, markup=False)
    table = Table()
    for name, justify in (("#", "right"), ("id", "right"), ("token", "left"), ("probability", "right")):
        table.add_column(name, justify=justify)
    if result.explained:
        for name in ("logit (model)", "h · row (table)", "|row|", "cos(h, row)"):
            table.add_column(name, justify="right")
    table.add_column("count", justify="right")
    for c in result.candidates:
        cells = [str(c.rank), str(c.id), cell(c.token), f"{c.probability:.4f}"]
        if result.explained:
            cells += [f"{c.logit:.4f}", f"{c.dot:.4f}", f"{c.row_norm:.3f}", f"{c.cosine:+.3f}"]
        table.add_row(*cells, _count(c.count))
    out.print(table)
    if result.explained:
        agree = "equal" if result.max_difference <= 1e-4 else "NOT equal"
        out.print(f"h is the last position's final hidden state, |h| = {result.hidden_norm:.3f}; each row is read from "
                  f"{result.table}. logit = h · row = |h| · |row| · cos: {agree} to 1e-4 (largest difference "
                  f"{result.max_difference:.1e}, float32). The output layer is the table the queries read.", markup=False)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def directions(result: DirectionsResult, out) -> None:
    """One summary table (is it a direction? where does it live?), then the ends of each direction."""
    from rich.table import Table

    step = f" at step {result.step:,}" if result.step is not None else ""
    out.print(f"concept directions in {result.run}{step} ({result.dim} dimensions):", soft_wrap=True, markup=False)
    table = Table()
    columns = [("concept", "left"), ("words", "right"), ("held-out", "right"), ("chance", "right"),
               ("step 0", "right"), ("counts", "right")]
    blocks = result.directions[0].placement.blocks if result.directions else []
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name == "concept")
    for b in blocks:
        table.add_column(f"{b.first}–{b.last}", justify="right")
    table.add_column("half in", justify="right")
    for d in result.directions:
        p = d.placement
        verdict = "[green]✓[/]" if d.accuracy > d.chance else "[red]✗[/]"
        cells = [cell(f"{d.positive.label} ↔ {d.negative.label}"), f"{len(d.positive.ids)}+{len(d.negative.ids)}",
                 f"{d.accuracy:.2f} {verdict}", f"{d.chance:.2f}",
                 "-" if d.control_accuracy is None else f"{d.control_accuracy:.2f}",
                 "-" if d.frequency_accuracy is None else f"{d.frequency_accuracy:.2f}"]
        cells += [_pct(b.share) + ("[yellow]*[/]" if b.beyond_chance else "") for b in p.blocks]
        cells.append(f"{p.half} dims")
        table.add_row(*cells)
    out.print(table)
    if result.directions:
        p = result.directions[0].placement
        b = p.blocks[0]
        out.print(f"[dim]held-out: leave-one-out accuracy of the mean-difference direction, ✓ when above chance "
                  f"(what 95% of label shuffles stay under); step 0: the same words in the untrained table; counts: "
                  f"the words' training counts as the only feature. {b.first}–{b.last} ...: the direction's share of "
                  f"squared weight in each block of {b.last - b.first + 1} dimensions; a random direction holds "
                  f"{_pct(b.chance)} (95% between {_pct(b.low)} and {_pct(b.high)}; * outside); half in: the "
                  f"dimensions carrying half of it (a random direction: {p.half_random}, 95% "
                  f"{p.half_random_low}–{p.half_random_high})[/]")
        kept = "seen in training" if result.min_count <= 1 else f"seen ≥ {result.min_count} times"
        out.print(f"the tokens farthest along each direction (cosine; rows {kept}, the lists' own words left out):")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column()
        for d in result.directions:
            for label, ends in ((d.positive.label, d.most_positive), (d.negative.label, d.most_negative)):
                grid.add_row(cell(label, "bold"), cell("  ".join(f"{e.token} {e.cosine:+.2f}" for e in ends)))
            grid.add_row("  top dims", ", ".join(f"{t.dim} ({t.weight:+.2f}, {_pct(t.share)})" for t in d.placement.top))
        out.print(grid)
    for note in result.notes:
        out.print(line(("note:", "yellow"), " ", note))


TEXT: dict[type, Callable] = {
    NeighborsResult: neighbors, AnalogyResult: analogy, SimilarityResult: similarity,
    OddOneOutResult: odd_one_out, TokenizeResult: tokenize, RowResult: row, TableResult: table,
    ModelResult: model, RunsResult: runs, EvalResult: evaluation, TraceResult: trace,
    PredictResult: prediction, DirectionsResult: directions,
}
VERBS: dict[type, str] = {
    NeighborsResult: "neighbors", AnalogyResult: "analogy", SimilarityResult: "similarity",
    OddOneOutResult: "odd-one-out", TokenizeResult: "tokenize", RowResult: "inspect row", TableResult: "inspect table",
    ModelResult: "inspect model", RunsResult: "runs", EvalResult: "eval", TraceResult: "trace",
    PredictResult: "predict", DirectionsResult: "directions",
}

# ---------------------------------------------------------------------------------------------
# Training, corpora, files written
# ---------------------------------------------------------------------------------------------


def train_summary(result, out, *, as_json: bool = False) -> None:
    """The last two lines of ``embcli train``: what was done, and where the table is (or, as JSON,
    the same facts in the one envelope: ``train --json``; its ``run`` is the run trained, at its last step)."""
    if as_json:
        from .runs import METRICS

        print_answer("train", {"status": result.status, "step": result.step, "tokens": result.tokens,
                               "train_loss": result.train_loss, "train_loss_kind": result.loss_kind,
                               "val_loss": result.val_loss, "seconds": round(result.seconds, 3),
                               "tokens_per_second": round(result.tokens_per_second, 1),
                               "metrics": str(Path(result.run) / METRICS)},
                     out, run=AnsweredBy.of_run(result.run, result.step))
        return
    loss = f"{result.train_loss:.3f}" if result.train_loss is not None else "-"
    if result.loss_kind == "sampled":
        loss += " (sampled-softmax estimate)"
    val = f"{result.val_loss:.3f}" if result.val_loss is not None else "-"
    if result.first_step:  # a resumed run: the speed is this session's, the totals the run's
        done = (f"steps {result.first_step:,} → {result.step:,}, {result.session_tokens:,} tokens in "
                f"{result.seconds:.1f} s ({result.tokens_per_second:,.0f} tokens/s), {result.tokens:,} in all")
    else:
        done = (f"{result.step:,} steps, {result.tokens:,} tokens in {result.seconds:.1f} s "
                f"({result.tokens_per_second:,.0f} tokens/s)")
    out.print(line(("done", "bold green"), f": {done}; train loss {loss}, val loss {val} (full softmax)"))
    out.print(f"run: {result.run}   try: embcli neighbors cat --run {result.run}", markup=False)


def prepared(corpus, out, *, as_json: bool = False) -> None:
    """A tokenized corpus (data.PreparedCorpus): its manifest's totals and where it is cached."""
    m = corpus.manifest
    if as_json:
        print_answer("prepare", {"path": str(corpus.path), "corpus": m}, out)
        return
    out.print(f"{m['description']}: {m['bytes']:,} bytes, {m['documents']:,} documents → "
              f"{m['tokens']['train']:,} training + {m['tokens']['val']:,} validation tokens, "
              f"{m['distinct_train_ids']:,} distinct ids\ncached at {corpus.path}", markup=False)


def exported(info: dict, out, *, as_json: bool = False, run: AnsweredBy | None = None) -> None:
    """What ``export`` wrote (export.export's record: format, rows, dim, files; -f hf's: folder, step, parameters)."""
    if as_json:
        print_answer("export", info, out, run=run)
        return
    if info["format"] == "hf":
        folder = info["folder"]
        out.print(f"wrote a GPT-2 for transformers ({info['parameters']:,} parameters, step {info['step']:,}) to "
                  f"{folder}: {', '.join(Path(f).name for f in info['files'])}\n"
                  f"load: GPT2LMHeadModel.from_pretrained({folder!r}), AutoTokenizer.from_pretrained({folder!r})",
                  markup=False)
    else:
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


def explored(result, out, *, as_json: bool = False, run: AnsweredBy | None = None) -> None:
    """What `embcli explore` wrote (result: explore.ExploreResult): one line, or the JSON answer."""
    if as_json:
        print_answer("explore", result.to_json(), out, run=run)
        return
    fewer = f" (only {result.tokens:,} qualify)" if result.tokens < result.requested else ""
    out.print(f"wrote {result.path} ({result.bytes / 1e6:.1f} MB): {result.tokens:,} tokens{fewer} × "
              f"{result.snapshots} snapshots, step {result.first_step:,} → {result.last_step:,}", soft_wrap=True,
              markup=False)
    answered_line(run, out)


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
