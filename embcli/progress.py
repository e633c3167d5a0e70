"""Rich progress displays for the two long jobs: tokenizing a corpus and training."""

from __future__ import annotations

import contextlib
import sys

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
    progress = Progress(SpinnerColumn(), TextColumn("tokenizing"), TextColumn("[bold]{task.description}"),
                        TextColumn("{task.completed:,.0f} chars"), TransferSpeedColumn(),
                        TextColumn("[cyan]{task.fields[tokens]:,} tokens"), TimeElapsedColumn(),
                        console=console, transient=not sys.stderr.isatty())
    with progress:
        task = progress.add_task(description[:60], total=None, tokens=0)
        yield _CorpusBar(progress, task)


def training_progress(enabled: bool = True) -> Progress | None:
    if not enabled:
        return None
    return Progress(TextColumn("[bold]step {task.fields[step]}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("loss [yellow]{task.fields[loss]}"), TextColumn("val [magenta]{task.fields[val]}"),
                    TextColumn("[cyan]{task.fields[tok_s]} tok/s"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console)
