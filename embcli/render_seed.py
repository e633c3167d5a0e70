"""Rendering for ``predict`` and ``directions``: each takes its result and a rich Console.

Kept apart from the computation (``predict.py``, ``directions.py``) and from the commands, so the
same results can be printed as tables here or as JSON by the command.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .directions import DirectionsReport
from .predict import Prediction


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def render_prediction(result: Prediction, out: Console) -> None:
    """The prompt as tokens, the top next tokens, and with ``explain`` logit = h · row for each."""
    step = f", step {result.step:,}" if result.step is not None else ""
    out.print(f"{len(result.ids)} token{'s' if len(result.ids) != 1 else ''} read: "
              + "  ".join(f"[cyan]{p}[/]({i})" for p, i in zip(result.pieces, result.ids)))
    for note in result.notes:
        out.print(f"[yellow]note:[/] {note}")
    out.print(f"the next token, by the model of {result.run}{step} (softmax over all {result.vocab_size:,} tokens):",
              soft_wrap=True)
    table = Table()
    for name, justify in (("#", "right"), ("id", "right"), ("token", "left"), ("probability", "right")):
        table.add_column(name, justify=justify)
    if result.explained:
        for name in ("logit (model)", "h · row (table)", "|row|", "cos(h, row)"):
            table.add_column(name, justify="right")
    table.add_column("count", justify="right")
    for c in result.candidates:
        cells = [str(c.rank), str(c.id), c.token, f"{c.probability:.4f}"]
        if result.explained:
            cells += [f"{c.logit:.4f}", f"{c.dot:.4f}", f"{c.row_norm:.3f}", f"{c.cosine:+.3f}"]
        table.add_row(*cells, _count(c.count))
    out.print(table)
    if result.explained:
        agree = "equal" if result.max_difference <= 1e-4 else "NOT equal"
        out.print(f"h is the last position's final hidden state, |h| = {result.hidden_norm:.3f}; each row is read from "
                  f"{result.table}. logit = h · row = |h| · |row| · cos: {agree} to 1e-4 (largest difference "
                  f"{result.max_difference:.1e}, float32). The output layer is the table the queries read.")


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def render_directions(report: DirectionsReport, out: Console) -> None:
    """One summary table (is it a direction? where does it live?), then each direction's extremes."""
    step = f" at step {report.step:,}" if report.step is not None else ""
    out.print(f"concept directions in {report.run}{step} ({report.dim} dimensions):", soft_wrap=True)
    table = Table()
    columns = [("concept", "left"), ("words", "right"), ("held-out", "right"), ("chance", "right"),
               ("step 0", "right"), ("counts", "right")]
    blocks = report.directions[0].placement.blocks if report.directions else []
    block_size = report.directions[0].placement.block_size if report.directions else 64
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name == "concept")
    for b in blocks:
        table.add_column(f"{b.first}–{b.last}", justify="right")
    table.add_column("half in", justify="right")
    for d in report.directions:
        p = d.placement
        verdict = "[green]✓[/]" if d.accuracy > d.chance else "[red]✗[/]"
        cells = [f"{d.positive.label} ↔ {d.negative.label}", f"{len(d.positive.ids)}+{len(d.negative.ids)}",
                 f"{d.accuracy:.2f} {verdict}", f"{d.chance:.2f}",
                 "-" if d.control_accuracy is None else f"{d.control_accuracy:.2f}",
                 "-" if d.frequency_accuracy is None else f"{d.frequency_accuracy:.2f}"]
        cells += [_pct(b.share) + ("[yellow]*[/]" if b.beyond_chance else "") for b in p.blocks]
        cells.append(f"{p.half} dims")
        table.add_row(*cells)
    out.print(table)
    if report.directions:
        p = report.directions[0].placement
        b = p.blocks[0]
        out.print(f"[dim]held-out: leave-one-out accuracy of the mean-difference direction, ✓ when above chance "
                  f"(what 95% of label shuffles stay under); step 0: the same words in the untrained table; counts: "
                  f"the words' training counts as the only feature. {p.blocks[0].first}–{p.blocks[0].last} ...: the "
                  f"direction's share of squared weight in each block of {block_size} dimensions; a random direction "
                  f"holds {_pct(b.chance)} (95% between {_pct(b.low)} and {_pct(b.high)}; * outside); half in: the "
                  f"dimensions carrying half of it (a random direction: {p.half_random}, 95% "
                  f"{p.half_random_low}–{p.half_random_high})[/]")
        kept = "seen in training" if report.min_count <= 1 else f"seen ≥ {report.min_count} times"
        out.print(f"the tokens farthest along each direction (cosine; rows {kept}, the lists' own words left out):")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column()
        for d in report.directions:
            grid.add_row(f"[bold]{d.positive.label}[/]", "  ".join(f"{e.token} {e.cosine:+.2f}" for e in d.most_positive))
            grid.add_row(f"[bold]{d.negative.label}[/]", "  ".join(f"{e.token} {e.cosine:+.2f}" for e in d.most_negative))
            grid.add_row("  top dims", ", ".join(f"{t.dim} ({t.weight:+.2f}, {_pct(t.share)})" for t in d.placement.top))
        out.print(grid)
    for note in report.notes:
        out.print(f"[yellow]note:[/] {note}")


__all__ = ["render_directions", "render_prediction"]
