"""``embcli shell``: the table stays loaded; each line is a query (word2vec's ``distance`` and
``word-analogy``, fastText's ``nn`` and ``analogies``, in one prompt with history)."""

from __future__ import annotations

import os
import shlex
import time

from .errors import EmbcliError

HELP = """verbs (a bare word is 'nn WORD'):
  nn WORD...              nearest neighbours          analogy A B C [mul]   A − B + C
  sim W1 W2               cosine similarity           odd W1 W2 W3 ...      odd one out
  row ID | token WORD     inspect a row               tok TEXT              tokenize
  top K                   answers per query           time on|off           show query time
  help, quit"""


def _history_file() -> str:
    from .io import cache_root

    return str(cache_root() / "shell_history")


def run_shell(space, top: int = 10, lines=None, out=None) -> None:
    """Read queries from ``lines`` (an iterable, for tests) or an interactive prompt."""
    from rich.console import Console

    from . import cli

    out = out or Console(highlight=False)
    interactive = lines is None
    if interactive:
        try:
            import readline

            try:
                os.makedirs(os.path.dirname(_history_file()), exist_ok=True)
                readline.read_history_file(_history_file())
            except OSError:
                pass
        except ImportError:
            readline = None
        out.print(f"embcli shell on {space.source} ({space.vectors.shape[0]:,} × {space.vectors.shape[1]}); "
                  "'help' for verbs, Ctrl-D to quit")

        def prompt():
            while True:
                try:
                    yield input("embcli> ")
                except EOFError:
                    out.print()
                    return
                except KeyboardInterrupt:
                    out.print()
        lines = prompt()
    timing = False
    try:
        for line in lines:
            try:
                words = shlex.split(line)
            except ValueError as exc:
                out.print(f"[red]error:[/red] {exc}")
                continue
            if not words:
                continue
            verb, args = words[0].lower(), words[1:]
            start = time.perf_counter()
            try:
                if verb in ("quit", "exit", "q"):
                    break
                elif verb in ("help", "?"):
                    out.print(HELP, markup=False)
                    continue
                elif verb == "top" and len(args) == 1 and args[0].isdigit() and int(args[0]) > 0:
                    top = int(args[0])
                    continue
                elif verb == "time" and args in (["on"], ["off"]):
                    timing = args == ["on"]
                    continue
                elif verb in ("nn", "neighbors", "neighbours"):
                    cli.show_neighbors(space, args, top, False, None, False, out)
                elif verb == "analogy" and len(args) in (3, 4):
                    method = args[3] if len(args) == 4 else "add"
                    if method not in ("add", "mul"):
                        raise EmbcliError("analogy A B C [add|mul]")
                    cli.show_analogy(space, *args[:3], top, method, False, None, False, out)
                elif verb in ("sim", "similarity") and len(args) == 2:
                    cli.show_similarity(space, *args, False, None, False, out)
                elif verb in ("odd", "odd-one-out") and len(args) >= 2:
                    cli.show_odd_one_out(space, args, False, None, False, out)
                elif verb == "row" and len(args) == 1:
                    from .space import parse_row

                    cli.show_row(space, parse_row(args[0]), top, False, out=out)
                elif verb == "token" and len(args) == 1:
                    r = space.resolve(args[0])
                    cli.show_row(space, r.ids[0], top, False, how=cli._describe(r), out=out)
                elif verb in ("tok", "tokenize") and args:
                    cli.show_tokenize(" ".join(args), False, out)
                elif len(words) == 1:
                    cli.show_neighbors(space, words, top, False, None, False, out)
                else:
                    out.print("[yellow]not understood[/]; 'help' lists the verbs")
                    continue
            except EmbcliError as exc:
                out.print(f"[red]error:[/red] {exc}")
                continue
            if timing:
                out.print(f"[dim]{(time.perf_counter() - start) * 1000:.1f} ms[/]")
    finally:
        if interactive and readline is not None:
            try:
                readline.write_history_file(_history_file())
            except OSError:
                pass
