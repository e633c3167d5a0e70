"""``embcli shell``: the table stays loaded; each line is a query (word2vec's ``distance`` and
``word-analogy``, fastText's ``nn`` and ``analogies``, in one prompt with history).

A line is a verb and its words. The query verbs are the table :data:`VERBS` below: each calls one
function of ``queries.py`` and the answer is drawn by ``render.show``, exactly as the command of
the same name draws it. ``top``, ``time``, ``combine``, ``help`` and ``quit`` change or end the
session itself (``combine mean`` is the shell's ``--combine mean``: words of several tokens averaged).
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from . import queries
from .directions import split_words
from .errors import EmbcliError, SeveralTokens
from .space import EmbeddingSpace, parse_row

HELP = """verbs (a bare word is 'nn WORD'):
  nn WORD...              nearest neighbours          analogy A B C [mul]   A − B + C
  sim W1 W2               cosine similarity           odd W1 W2 W3 ...      odd one out
  row ID | token WORD     inspect a row               tok TEXT              tokenize
  predict TEXT            the model's next token      directions [P... / N...]  concept directions
  top K                   answers per query           time on|off           show query time
  combine mean|off        average the pieces of a word of several tokens (nn, analogy, sim, odd), or refuse it
  help, quit"""


@dataclass(frozen=True)
class Verb:
    """A query verb: its names, how many words it takes, and the query it runs."""

    names: tuple[str, ...]
    min_words: int
    max_words: int | None  # None: any number
    # (space, words, top, combine) → a queries result; combine is the session's 'combine' setting
    query: Callable[[EmbeddingSpace, list[str], int, str | None], object]
    combines: bool = False  # whether its words may be several tokens, averaged (the commands' --combine)

    def takes(self, n: int) -> bool:
        return n >= self.min_words and (self.max_words is None or n <= self.max_words)


def _analogy(space: EmbeddingSpace, words: list[str], top: int, combine: str | None):
    method = words[3] if len(words) == 4 else "add"
    return queries.analogy(space, *words[:3], top, method=method, combine=combine)


def _predict(space: EmbeddingSpace, words: list[str], top: int, combine: str | None):
    return queries.predict(space.source, " ".join(words), top)


def _directions(space: EmbeddingSpace, words: list[str], top: int, combine: str | None):
    if not words:
        return queries.directions(space, top=top)
    if words.count("/") != 1:
        raise EmbcliError("directions takes no words (the built-in concepts) or POS... / NEG..., "
                          "e.g. directions cat dog horse / red blue green")
    cut = words.index("/")
    return queries.directions(space, positive=split_words(words[:cut]), negative=split_words(words[cut + 1:]),
                              top=top)


VERBS = [
    Verb(("nn", "neighbors", "neighbours"), 0, None,
         lambda space, words, top, combine: queries.neighbors(space, words, top, combine=combine), combines=True),
    Verb(("analogy",), 3, 4, _analogy, combines=True),
    Verb(("sim", "similarity"), 2, 2,
         lambda space, words, top, combine: queries.similarity(space, *words, combine=combine), combines=True),
    Verb(("odd", "odd-one-out"), 2, None,
         lambda space, words, top, combine: queries.odd_one_out(space, words, combine=combine), combines=True),
    Verb(("row",), 1, 1, lambda space, words, top, combine: queries.inspect_row(space, parse_row(words[0]), top)),
    Verb(("token",), 1, 1, lambda space, words, top, combine: queries.inspect_token(space, words[0], top)),
    Verb(("tok", "tokenize"), 1, None, lambda space, words, top, combine: queries.tokenize(" ".join(words))),
    Verb(("predict",), 1, None, _predict),
    Verb(("directions",), 0, None, _directions),
]


def shell_advice(exc: SeveralTokens, verb: Verb) -> SeveralTokens:
    """A refused word of several tokens, with what works in the shell (the command line's advice,
    ``--combine mean``, is no shell syntax): the session setting, or the pieces a row verb can show."""
    if verb.combines:
        return exc.advise("type 'combine mean' to average the pieces of such words ('combine off' refuses them again)")
    return exc.advise("a row is one token: 'tok WORD' shows its pieces and 'row ID' each one")


def find_verb(name: str, n_words: int) -> Verb | None:
    for verb in VERBS:
        if name in verb.names and verb.takes(n_words):
            return verb
    return None


class Shell:
    """One session: the loaded space, the answers per query, whether to show query time, and
    whether answers are JSON lines (each naming the run and step, as every JSON answer does)."""

    def __init__(self, space: EmbeddingSpace, top: int, out, as_json: bool = False):
        self.space, self.top, self.out, self.timing, self.as_json = space, top, out, False, as_json
        self.combine: str | None = None  # 'combine mean': words of several tokens are averaged

    def handle(self, line: str) -> bool:
        """Answer one line; False when the session should end."""
        from .render import error_line, show

        try:
            words = shlex.split(line)
        except ValueError as exc:
            error_line(self.out, str(exc))
            return True
        if not words:
            return True
        name, args = words[0].lower(), words[1:]
        if name in ("quit", "exit", "q"):
            return False
        if self.session_command(name, args):
            return True
        verb = find_verb(name, len(args))
        if verb is None and len(words) == 1:  # a bare word: its neighbours
            verb, args = VERBS[0], words
        if verb is None:
            if self.as_json:
                self.json_error(name, "not understood; 'help' lists the verbs")
            else:
                self.out.print("[yellow]not understood[/]; 'help' lists the verbs")
            return True
        start = time.perf_counter()
        try:
            try:
                result = verb.query(self.space, args, self.top, self.combine)
            except SeveralTokens as exc:
                raise shell_advice(exc, verb) from None
            if self.as_json:
                show(result, self.out, as_json=True, run=queries.AnsweredBy.of_space(self.space), one_line=True)
            else:
                show(result, self.out, name_run=False)  # the banner named the run: no line under every answer
        except EmbcliError as exc:
            if self.as_json:
                self.json_error(name, str(exc))
            else:
                error_line(self.out, str(exc))
            return True
        if self.timing:
            self.out.print(f"[dim]{(time.perf_counter() - start) * 1000:.1f} ms[/]")
        return True

    def json_error(self, name: str, message: str) -> None:
        """In JSON mode a line that found no answer is a JSON line too: ``{"verb", "run", "error"}``."""
        from .errors import one_line
        from .render import print_answer

        print_answer(name, {"error": one_line(message)}, self.out, run=queries.AnsweredBy.of_space(self.space),
                     indent=None)

    def session_command(self, name: str, args: list[str]) -> bool:
        """help, top K, time on|off, combine mean|off: True when the line was one of them (and is done)."""
        if name in ("help", "?"):
            self.out.print(HELP, markup=False)
        elif name == "top" and len(args) == 1 and args[0].isdigit() and int(args[0]) > 0:
            self.top = int(args[0])
        elif name == "time" and args in (["on"], ["off"]):
            self.timing = args == ["on"]
        elif name == "combine" and args in (["mean"], ["off"]):
            self.combine = "mean" if args == ["mean"] else None
        else:
            return False
        return True


def _history_file() -> str:
    from .io import cache_root

    return str(cache_root() / "shell_history")


def _prompt(out) -> Iterator[str]:
    """Lines typed at ``embcli>`` until Ctrl-D; Ctrl-C abandons the line being typed."""
    while True:
        try:
            yield input("embcli> ")
        except EOFError:
            out.print()
            return
        except KeyboardInterrupt:
            out.print()


def _open_history():
    """readline with the saved history loaded, or None where Python has no readline."""
    try:
        import readline
    except ImportError:
        return None
    try:
        os.makedirs(os.path.dirname(_history_file()), exist_ok=True)
        readline.read_history_file(_history_file())
    except OSError:
        pass
    return readline


def _piped(stream) -> Iterator[str]:
    """Lines from a pipe or a file: no prompt, no banner, no history; the answers alone."""
    for line in stream:
        yield line.rstrip("\r\n")


def run_shell(space: EmbeddingSpace, top: int = 10, lines: Iterable[str] | None = None, out=None,
              as_json: bool = False) -> None:
    """Read queries from ``lines`` (an iterable, for tests), standard input when it is not a
    terminal (``embcli shell < queries.txt``: answers only), or an interactive prompt."""
    import sys

    from .render import console

    out = out or console()
    readline = None
    if lines is None and not sys.stdin.isatty():
        lines = _piped(sys.stdin)
    if lines is None:
        readline = _open_history()
        out.print(f"embcli shell on {space.source} ({space.vectors.shape[0]:,} × {space.vectors.shape[1]}); "
                  "'help' for verbs, Ctrl-D to quit", markup=False)
        lines = _prompt(out)
    session = Shell(space, top, out, as_json)
    try:
        for line in lines:
            if not session.handle(line):
                break
    finally:
        if readline is not None:
            try:
                readline.write_history_file(_history_file())
            except OSError:
                pass
