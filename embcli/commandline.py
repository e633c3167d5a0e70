"""The machinery under ``cli.py``'s commands, so that file holds only the commands.

- usage errors as one line: :class:`OneLineGroup` turns every usage error click finds (a missing
  argument, ``--top 0``, an unknown option) into :class:`UsageLine`: ``error: ...``, exit code 2;
- :func:`handle_errors`, around every command: an :class:`EmbcliError` becomes one line on stderr
  and its exit code (1 for failures while running, 130 for an interrupt), a closed pipe a quiet
  exit 0, never a traceback; :func:`run_app` runs the whole command line;
- option values: closed lists (:func:`choices`), durations and counts as people write them, words
  from standard input (:func:`read_words`), the corpus and config ``train``/``prepare`` start from;
- answering: :func:`open_table` opens the table a query reads and remembers which run and step it
  is; :func:`show` renders a result naming the verb as typed and that run.

Like ``cli.py`` it imports only typer and click at the top: the query verbs start fast and the
query path never imports torch.
"""

from __future__ import annotations

import enum
import errno
import functools
import math
import os
import sys

import typer
from typer.core import TyperGroup

try:  # newer typer carries its own copy of click; older typer used click itself
    from typer._click import exceptions as click_errors
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older typer
    from click import exceptions as click_errors
    from click import get_current_context

from . import __version__
from .errors import EmbcliError, clip

# ---------------------------------------------------------------------------------------------
# Usage errors as one line
# ---------------------------------------------------------------------------------------------


class UsageLine(click_errors.UsageError):
    """A usage error click found, shown as one line like every other error: ``error: ... (embcli X --help)``."""

    def show(self, file=None) -> None:
        where = f" (see: {self.ctx.command_path} --help)" if self.ctx is not None else ""
        error(self.message + where)


def _one_line(exc: click_errors.UsageError) -> click_errors.UsageError:
    if isinstance(exc, (UsageLine, getattr(click_errors, "NoArgsIsHelpError", UsageLine))):
        return exc  # already one line, or the help a bare group shows
    message = exc.format_message().strip().rstrip(".")
    if isinstance(exc, click_errors.NoSuchOption) and exc.possibilities:  # click puts its guesses on a second line
        message = f"no such option: {exc.option_name}; did you mean {' or '.join(sorted(exc.possibilities))}?"
    message = message.splitlines()[0] if message else "bad usage"
    return UsageLine(message[:1].lower() + message[1:], exc.ctx)


class OneLineGroup(TyperGroup):
    """The command group: usage errors from it or any command under it become :class:`UsageLine`."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click_errors.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click_errors.UsageError as exc:
            raise _one_line(exc) from None


def print_version(value: bool) -> None:
    """``--version``'s callback: the version, then exit."""
    if value:
        typer.echo(f"embcli {__version__}")
        raise typer.Exit()


# ---------------------------------------------------------------------------------------------
# Errors, interrupts and closed pipes
# ---------------------------------------------------------------------------------------------


def stdout():
    """The console a command answers on."""
    from .render import console

    return console()


def error(message: str) -> None:
    """``error: message``, one line on stderr."""
    from .render import console, error_line

    error_line(console(stderr=True), message, soft_wrap=True)


def handle_errors(fn):
    """Turn EmbcliError into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EmbcliError as exc:
            if not exc.quiet:
                error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            error("interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:  # the reader left (`embcli neighbors cat | head -1`): that is not an error
            _stdout_to_devnull()
            raise typer.Exit(0) from None
        except OSError as exc:  # a name typed too long for any file system to even look up
            if exc.errno != errno.ENAMETOOLONG:
                raise
            error(f"a name is too long for the file system: {clip(str(exc.filename or ''))}")
            raise typer.Exit(2) from None

    return wrapper


def _stdout_to_devnull() -> None:
    """What is still buffered for a closed pipe goes nowhere, so the exit is quiet (Python's recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (a test's runner)
        pass


def run_app(app: typer.Typer) -> None:
    """The command line as a program: ``app`` on ``sys.argv``, a closed pipe at exit no error."""
    try:
        app(prog_name="embcli")
    finally:
        try:  # what a closed pipe could not take is dropped here, not reported at exit
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_to_devnull()


# ---------------------------------------------------------------------------------------------
# Option values
# ---------------------------------------------------------------------------------------------


def choices(name: str, values) -> type[enum.Enum]:
    """A closed list of option values: --help lists them, completion offers them, click checks them."""
    return enum.Enum(name, {v: v for v in values}, type=str)


def choice_value(choice) -> str | None:
    """The plain string of a choice (None stays None)."""
    return choice.value if isinstance(choice, enum.Enum) else choice


def read_words(words: list[str]) -> list[str]:
    """The words given, a ``-`` among them standing for the words on standard input."""
    if "-" not in words:
        return words
    piped = sys.stdin.read().split()
    if not piped:
        raise EmbcliError("'-' reads words from standard input, and it had none")
    return [w for word in words for w in (piped if word == "-" else [word])]


def parse_duration(text: str | None) -> float | None:
    """Seconds from 600, 90s, 10m or 2h (--time-budget)."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    value = text.strip().lower()
    scale = units.get(value[-1:], None)
    try:
        seconds = float(value[:-1] if scale else value) * (scale or 1)
    except ValueError:
        raise EmbcliError(f"--time-budget takes seconds or a duration like 90s, 10m, 2h (got {text!r})") from None
    if seconds <= 0:
        raise EmbcliError(f"--time-budget must be positive (got {text!r})")
    return seconds


def parse_count(text: str | None, option: str) -> int | None:
    """A whole number written plainly or as 2e6, 10_500_000, 500k, 2M, 1G."""
    if text is None:
        return None
    value = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 10**3, "m": 10**6, "g": 10**9}.get(value[-1:], None)
    try:
        number = float(value[:-1] if scale else value) * (scale or 1)
    except ValueError:
        raise EmbcliError(f"{option} takes a count like 2000000, 2e6 or 2M (got {text!r})") from None
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise EmbcliError(f"{option} must be a whole number ≥ 0 (got {text!r})")
    return int(number)


def corpus_spec(corpus, dataset, dataset_config, split, text_field, data_files, streaming, val_fraction):
    """The CorpusSpec that ``train`` and ``prepare``'s corpus options describe."""
    from .data import CorpusSpec

    if corpus and dataset:
        raise EmbcliError("give either --corpus or --dataset, not both")
    return CorpusSpec(paths=list(corpus or []), dataset=dataset, dataset_config=dataset_config, split=split,
                      text_field=text_field, data_files=list(data_files or []), streaming=streaming,
                      val_fraction=val_fraction)


def train_config(config, overrides, resume, new_settings, stops):
    """The TrainConfig to start from (None when resuming: the run's own), stops from the command line applied."""
    from .config import load_config

    if resume:
        if new_settings or config != "tiny":
            raise EmbcliError("--resume continues a run as it was configured; only --max-steps, --max-tokens, "
                              "--time-budget and --device may be given with it")
        return None
    return load_config(config, overrides).with_stops(stops).validate()


# ---------------------------------------------------------------------------------------------
# Answering: which run and step answered, and the answer drawn
# ---------------------------------------------------------------------------------------------


def _meta() -> dict:
    """This invocation's scratch space (click's context meta): which run answered."""
    ctx = get_current_context(silent=True)
    return ctx.meta if ctx is not None else {}


def _verb() -> str | None:
    """The command as typed after ``embcli``: "neighbors", "inspect row" (the JSON's ``verb``)."""
    ctx = get_current_context(silent=True)
    return ctx.command_path.split(" ", 1)[1] if ctx is not None and " " in ctx.command_path else None


def open_table(run, step, min_count, runs_dir=None):
    """The table a query command reads; remembered as the run and step that answered."""
    from .queries import AnsweredBy, open_space

    space = open_space(run, step, min_count, runs_dir)
    _meta()["embcli.answered_by"] = AnsweredBy.of_space(space)
    return space


def answered_by(run=None):
    """The run and step this command answered from: the one given, else the table it opened."""
    return run or _meta().get("embcli.answered_by")


def show(result, json_out: bool = False, **options) -> None:
    """Any queries result, drawn or as JSON, naming the run and step that answered."""
    from .render import show as render

    render(result, stdout(), as_json=json_out, verb=_verb(), run=answered_by(options.pop("run", None)), **options)
