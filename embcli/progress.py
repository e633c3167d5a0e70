"""Rich progress displays for the two long jobs: tokenizing a corpus and training."""

from __future__ import annotations

import contextlib
import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

console = Console(stderr=True)


class _CorpusBar:
    def __init__(self, progress: Progress | None, task):
        self.progress, self.task, self.n_tokens = progress, task, 0

    def advance(self, n_chars: int) -> None:
        if self.progress:
            self.progress.advance(self.task, n_chars)

    def tokens(self, n: int) -> None:
        self.n_tokens += n
        if self.progress:
            self.progress.update(self.task, tokens=self.n_tokens)


@contextlib.contextmanager
def corpus_progress(description: str, enabled: bool = True):
    if not enabled:
        yield _CorpusBar(None, None)
        return
    progress = Progress(SpinnerColumn(), TextColumn("tokenizing"), TextColumn("{task.description}", style="bold", markup=False),
                        TextColumn("{task.completed:,.0f} chars"), TransferSpeedColumn(),
                        TextColumn("[cyan]{task.fields[tokens]:,} tokens"), TimeElapsedColumn(),
                        console=console, transient=not sys.stderr.isatty())
    with progress:
        task = progress.add_task(description[:60], total=None, tokens=0)
        yield _CorpusBar(progress, task)


PLAIN_INTERVAL = 30.0  # seconds between progress lines when stderr is not a terminal


def training_progress(enabled: bool = True, interval: float | None = None):
    """How training shows its progress on stderr: a live bar on a terminal; elsewhere (``> log``,
    nohup, SLURM, CI) a plain line at the first step, then at least every ``interval`` seconds, and
    at the end. None when disabled (--quiet). Both take ``update(step, fraction, loss, val, tok_s)``
    and ``close()``."""
    if not enabled:
        return None
    if console.is_terminal:
        return _TrainingBar()
    return _TrainingLines(PLAIN_INTERVAL if interval is None else interval)


class _TrainingBar:
    def __init__(self):
        self.progress = Progress(TextColumn("[bold]step {task.fields[step]}"), BarColumn(), TaskProgressColumn(),
                                 TextColumn("loss [yellow]{task.fields[loss]}"),
                                 TextColumn("val [magenta]{task.fields[val]}"),
                                 TextColumn("[cyan]{task.fields[tok_s]} tok/s"), TimeElapsedColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(), console=console)
        self.progress.start()
        self.task = self.progress.add_task("train", total=1000, step="-", loss="-", val="-", tok_s="-")

    def update(self, step: int, fraction: float, loss: float, val: str, tok_s: float) -> None:
        self.progress.update(self.task, completed=1000 * fraction, step=step, loss=f"{loss:.3f}", val=val,
                             tok_s=f"{tok_s:,.0f}")

    def close(self) -> None:
        self.progress.stop()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _TrainingLines:
    """One line per report, for logs: ``step 120 (4.7%) loss 5.123 val 5.456 20,511 tok/s elapsed 0:00:30 ETA 0:10:02``."""

    def __init__(self, interval: float):
        self.interval = interval
        self.started = time.monotonic()
        self.start_fraction: float | None = None
        self.last_printed: float | None = None
        self.pending: str | None = None  # the last update, if it was not printed

    def update(self, step: int, fraction: float, loss: float, val: str, tok_s: float) -> None:
        now = time.monotonic()
        if self.start_fraction is None:  # a resumed run starts part way: its ETA is from this session's pace
            self.start_fraction = fraction
        elapsed = now - self.started
        done = fraction - self.start_fraction
        eta = _clock(elapsed * (1 - fraction) / done) if done > 0 else "-"
        line = (f"step {step:,} ({fraction:.1%})  loss {loss:.3f}  val {val}  {tok_s:,.0f} tok/s  "
                f"elapsed {_clock(elapsed)}  ETA {eta}")
        if self.last_printed is None or now - self.last_printed >= self.interval:
            self._print(line)
            self.last_printed = now
        else:
            self.pending = line

    def _print(self, line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
        self.pending = None

    def close(self) -> None:
        if self.pending:
            self._print(self.pending)
