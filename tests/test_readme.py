"""Every command the README shows, parsed by the real command tree and run here (issue #14, item 26).

What counts as a command:

- in a fenced block, a line that starts with ``embcli``, ``$ embcli``, ``python -m embcli`` or
  ``torchrun`` (a trailing backslash joins the next line; a ``# comment`` is dropped);
- anywhere else (the tables and the prose), an inline code span that starts with one of those, or
  pipes into one (`sort words.txt | embcli neighbors - --json`).

Each distinct command is one test, named by the README lines that show it, in two steps:

1. **parse**: the command through the real click tree (``typer.main.get_command(app)``, click's
   ``make_context`` on every level): the command path exists and every option and argument parses
   and validates; torchrun's own options go through torchrun's parser.
2. **run**: through typer's ``CliRunner`` (torchrun: a real process), in the test's temporary folder,
   with these substitutions, and nothing else:

   - the runs the README names (``run1``, ``runs/default``, ``run3``) are copies of the tests' shared
     60-step run (conftest's ``trained_run``, hard-linked: the query commands only read them; a run
     that is resumed is copied); a command that names no run answers from ``run1``;
   - ``embcli train`` gets conftest's ``TINY`` settings and one micro-batch a step (``grad_accum=1``:
     gpt2-small's recipe has 64), before the README's own ``--set``, which win; it stops after 2
     steps (``--max-steps 2``; a resumed run 2 steps past its step 60);
   - the corpora and files it names (``notes/``, ``books/*.txt.gz``, ``data.jsonl``, ``big.jsonl``,
     ``./saved_dataset``, ``words.txt``, ``queries.txt``) are made from the tests' corpus; the
     default corpus is the embedded one, tokenized once for this file;
   - output files land in the temporary folder; ``--open`` opens no browser (``webbrowser.open`` is
     recorded); ``--install-completion`` installs into a temporary ``$HOME``, for bash;
   - torchrun gets a free ``--master-port`` and one thread per process;

   and it must exit 0 having done what it says: every ``-o`` file written, ``--json`` whole, a trained
   run ``finished`` at its step. Under a ``$ command`` the README shows output: its first line must
   begin as ours does, numbers aside (:data:`OUTPUT_DIFFERS`: where the tiny run's data differ).

A command that cannot run here is in :data:`NOT_RUN` with its reason (it is parsed all the same,
then reported as skipped); a synopsis (`embcli neighbors WORD...`) or a command that needs what
this machine lacks (the Hugging Face hub) runs the concrete commands in :data:`STAND_INS` instead,
each with its reason.
A command added to the README that neither runs nor is listed fails its test, and an entry below
that the README no longer shows fails :func:`test_every_listed_command_is_still_in_the_readme`.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from embcli.cli import app
from tests.conftest import TINY, cache_at

try:  # typer's own copy of click (as embcli/cli.py imports it), or click itself for an older typer
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer
    from click import exceptions as click_errors
EXITS = tuple({typer.Exit, getattr(click_errors, "Exit", typer.Exit)})  # how -h and --version end

README = Path(__file__).resolve().parents[1] / "README.md"
STARTS = r"(?:embcli|python -m embcli|torchrun)(?=\s|$)"
TRAIN_STEPS = 2  # what a README `embcli train` trains here
TEMPLATE_STEP = 60  # the shared run's last step (conftest's _trained_run)

# Commands parsed but not run, and why.
NOT_RUN = {
    "torchrun --nproc-per-node 8 -m embcli train --config gpt2-small --dataset ...":
        "8 GPUs and a dataset left to the reader; `torchrun --nproc-per-node 2 -m embcli train` runs here",
    "torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint host0:29500 -m embcli "
    "train --config gpt2-small ...": "two machines, 8 GPUs each",
    "torchrun --nnodes 2 --node-rank 1 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint host0:29500 -m embcli "
    "train --config gpt2-small ...": "two machines, 8 GPUs each",
}

# Synopses, and commands that need what this machine has not: the concrete commands run instead.
STAND_INS = {
    "embcli train --dataset wikitext --dataset-config wikitext-103-raw-v1": (
        ["embcli train --dataset ./wikitext-saved --dataset-config wikitext-103-raw-v1"],
        "the Hugging Face hub is unreachable here: a save_to_disk folder stands in for the hub's wikitext"),
    "embcli import-hf gpt2": (
        ["embcli export -f hf -o gpt2-local --run run1", "embcli import-hf ./gpt2-local"],
        "a hub name: a GPT-2 folder exported from a run stands in for the hub's gpt2"),
    "embcli neighbors WORD --step S": (["embcli neighbors cat --step 10"], "a synopsis"),
    "embcli analogy": (["embcli analogy king man woman"], "the verb named in prose"),
    "embcli neighbors WORD...": (["embcli neighbors cat dog"], "a synopsis"),
    "embcli analogy A B C": (["embcli analogy king man woman --method add",
                              "embcli analogy king man woman --method mul"], "a synopsis"),
    "embcli similarity W1 W2": (["embcli similarity cat dog"], "a synopsis"),
    "embcli odd-one-out W...": (["embcli odd-one-out cat dog red"], "a synopsis"),
    "embcli inspect row ID": (["embcli inspect row 3797", "embcli inspect token cat"],
                              "a synopsis (its row also shows `token WORD`)"),
    "embcli tokenize TEXT": (["embcli tokenize 'The cat'"], "a synopsis"),
    "embcli eval [--baseline word2vec]": (["embcli eval", "embcli eval --baseline word2vec --baseline-epochs 1",
                                           "embcli eval --baseline word2vec --baseline-seconds 0.5"],
                                          "a synopsis (its row also names --baseline-epochs and --baseline-seconds)"),
    "embcli export -f word2vec|word2vec-bin|projector|npy|safetensors -o PATH": (
        [f"embcli export -f {f} -o table-{f}" for f in ("word2vec", "word2vec-bin", "projector", "npy", "safetensors")],
        "a synopsis"),
    "embcli export -f hf -o DIR": (["embcli export -f hf -o hf-folder"], "a synopsis"),
    "embcli explore [-o page.html] [--tokens N] [--open]": (
        ["embcli explore -o page.html --tokens 300 --open"], "a synopsis"),
    "embcli plot words ... -o map.png": (
        ["embcli plot words cat,dog,horse red,blue -o map.png", "embcli plot words cat dog --steps -o steps.png",
         "embcli plot words cat dog -o training.gif", "embcli plot loss -o loss.png"],
        "a synopsis (its row also shows --steps, -o training.gif and plot loss)"),
    "embcli trace WORD [-o trace.png]": (["embcli trace cat -o trace.png"], "a synopsis"),
    "embcli predict TEXT [-k K] [--explain]": (["embcli predict 'the cat' -k 3 --explain"], "a synopsis"),
    "embcli directions [--pos W,W,... --neg W,W,...]": (
        ["embcli directions --pos cat,dog,horse,cow --neg red,blue,green,yellow"], "a synopsis"),
    "embcli COMMAND -h": ([], "every command's -h, from the command tree (help_commands)"),
}

# Files a command names that no option says how to make: made before it runs.
FILES = {"words.txt": "dog\ncat\n", "queries.txt": "nn cat\nanalogy king man woman\nsim cat dog\n"}
# Commands that need another README command's output first (the line above them in the README).
BEFORE = {"embcli import-hf my-gpt2": ["embcli export -f hf -o my-gpt2 --run run1"]}
HF_BUILDERS = ("json", "csv", "text", "parquet")  # --dataset names that read --data-files


# ---------------------------------------------------------------------------------------------
# The README's commands
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """A command as the README shows it (whitespace folded), and the lines that show it."""

    text: str
    lines: tuple[int, ...]

    def __str__(self) -> str:
        return "L" + ",".join(map(str, self.lines)) + " " + self.text


def shown_commands(readme: str) -> tuple[list[Shown], dict[str, str]]:
    """The commands the README shows, and the first line of the output it shows under a `$ command`."""
    found: dict[str, list[int]] = {}
    outputs: dict[str, str] = {}
    lines = readme.splitlines()
    prose, fenced, i = [], False, 0
    while i < len(lines):
        line, number = lines[i], i + 1
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            text = line.strip().removeprefix("$ ")
            if re.match(STARTS, text):
                while text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text[:-1] + " " + lines[i].strip()
                text = " ".join(re.sub(r"\s#\s.*$", "", text).split())  # the shell comment after it left out
                found.setdefault(text, []).append(number)
                after = lines[i + 1] if i + 1 < len(lines) else "```"
                if line.startswith("$ ") and after.strip() and not after.startswith(("$ ", "```")):
                    outputs[text] = after.rstrip()
        else:
            prose.append((number, line))
        i += 1
    # inline code spans, which may break across a line; "\|" is a table's escaped "|"
    text = "\n".join(line for _, line in prose)
    starts = [0]
    for _, line in prose:
        starts.append(starts[-1] + len(line) + 1)
    for m in re.finditer(r"`([^`\n]+(?:\n[^`\n]+)?)`", text):
        span = " ".join(m.group(1).replace("\\|", "|").split())
        if re.match(STARTS, span) or re.search(r"\|\s*" + STARTS, span):
            line_index = max(k for k, start in enumerate(starts) if start <= m.start())
            found.setdefault(span, []).append(prose[line_index][0])
    return [Shown(text, tuple(sorted(set(numbers)))) for text, numbers in found.items()], outputs


SHOWN, OUTPUTS = shown_commands(README.read_text())


def help_commands() -> list[str]:
    """`embcli COMMAND -h` for every command and group of the tree, and `embcli -h`."""
    found = ["embcli -h"]

    def walk(group, prefix):
        for name, command in group.commands.items():
            found.append(" ".join(["embcli", *prefix, name, "-h"]))
            if hasattr(command, "commands"):
                walk(command, [*prefix, name])

    walk(get_command(app), [])
    return found


# ---------------------------------------------------------------------------------------------
# Step 1: parse
# ---------------------------------------------------------------------------------------------


def split_command(text: str) -> tuple[list[str], list[str], str | None, int | None, str | None]:
    """A command line as (torchrun's arguments or [], embcli's arguments, the file piped into it by
    `sort FILE |`, the lines `| head -N` keeps, the file `< FILE` feeds it). Any other shell form is
    refused: this test does not run what it cannot follow."""
    words = shlex.split(text)
    segments, current = [], []
    for w in words:
        if w == "|":
            segments.append(current)
            current = []
        else:
            current.append(w)
    segments.append(current)
    sorted_file = head = stdin_file = None
    if len(segments) > 1 and segments[0][:1] == ["sort"] and len(segments[0]) == 2:
        sorted_file = segments.pop(0)[1]
    if len(segments) > 1 and segments[-1][:1] == ["head"] and re.fullmatch(r"-\d+", segments[-1][1]):
        head = int(segments.pop()[1][1:])
    assert len(segments) == 1, f"a shell form this test does not run: {text}"
    command = segments[0]
    if "<" in command:
        at = command.index("<")
        stdin_file, command = command[at + 1], command[:at] + command[at + 2:]
    if command[0] == "torchrun":
        at = command.index("-m")
        assert command[at + 1] == "embcli", text
        return command[1:at], command[at + 2:], sorted_file, head, stdin_file
    if command[:3] == ["python", "-m", "embcli"]:
        return [], command[3:], sorted_file, head, stdin_file
    assert command[0] == "embcli", text
    return [], command[1:], sorted_file, head, stdin_file


def parse(text: str) -> None:
    """Parse a command line with the real command tree (and torchrun's parser): a usage error
    fails the test, naming the command. A last `...` (the README's "and so on") is left out; one in
    an option's place is a value like any other."""
    torchrun, args, *_ = split_command(text)
    if args[-1:] == ["..."] and (len(args) < 2 or not args[-2].startswith("-")):
        args = args[:-1]
    if torchrun:
        from torch.distributed.run import get_args_parser

        try:
            parsed = get_args_parser().parse_args([*torchrun, "-m", "embcli", *args])
        except SystemExit:  # argparse has said why on stderr
            pytest.fail(f"the README's `{text}` does not parse: torchrun refuses its options")
        assert parsed.module and parsed.training_script == "embcli", text
    command, ctx, name = get_command(app), None, "embcli"
    try:
        while True:
            ctx = command.make_context(name, list(args), parent=ctx)
            if not hasattr(command, "commands"):
                return
            rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
            if not rest:
                ctx.fail("Missing command.")
            name, command, args = command.resolve_command(ctx, rest)
    except EXITS as exc:  # an eager option that answers at once: -h, --version
        assert exc.exit_code == 0, text
    except SystemExit as exc:  # typer's completion options end with sys.exit
        assert exc.code in (0, None), text
    except click_errors.UsageError as exc:
        pytest.fail(f"the README's `{text}` does not parse: {exc.format_message()}")


# ---------------------------------------------------------------------------------------------
# Step 2: run
# ---------------------------------------------------------------------------------------------


def option_values(args: list[str], *names: str) -> list[str]:
    return [args[k + 1] for k, a in enumerate(args[:-1]) if a in names]


def set_option(args: list[str], name: str, value: str) -> list[str]:
    """args with ``name value`` replacing any ``name`` already there."""
    if name in args:
        k = args.index(name)
        return [*args[:k + 1], value, *args[k + 2:]]
    return [*args, name, value]


def asks_help(args: list[str]) -> bool:
    return "-h" in args or "--help" in args


def tiny_training(args: list[str]) -> list[str]:
    """A README `embcli train ...` as it runs here: TINY's settings first (the README's own win), 2 steps."""
    if args[:1] != ["train"] or asks_help(args):
        return args
    if "--resume" in args:  # the run keeps its own settings; it trains 2 steps past its last
        return set_option(args, "--max-steps", str(TEMPLATE_STEP + TRAIN_STEPS))
    sets = [x for item in [*TINY, "grad_accum=1"] for x in ("--set", item)]
    return set_option(["train", *sets, *args[1:]], "--max-steps", str(TRAIN_STEPS))


@dataclass
class Place:
    """Where a README command runs: the test's folder (also the working directory) and what it holds."""

    root: Path
    template: Path  # the shared trained run
    corpus: Path  # the tests' corpus text
    opened: list[str] = field(default_factory=list)  # what webbrowser.open was given

    def run_copy(self, name: str, linked: bool) -> None:
        folder = self.root / "runs" / Path(name).name
        if (folder / "meta.json").exists():
            return
        copy = shutil.copy2
        if linked:
            def copy(src, dst):  # the query commands only read a run: share the files
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
        shutil.copytree(self.template, folder, copy_function=copy)

    def lines(self) -> list[str]:
        return self.corpus.read_text().splitlines()

    def make_corpus(self, value: str, field: str) -> None:
        path = self.root / value.replace("*", "part")
        if path.exists():
            return
        if value.endswith("/"):  # a folder of text files
            path.mkdir(parents=True)
            shutil.copy(self.corpus, path / "notes.txt")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if ".jsonl" in path.name:
            data = "".join(json.dumps({field: line}) + "\n" for line in self.lines()).encode()
        else:
            data = self.corpus.read_bytes()
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)

    def make_dataset(self, value: str, split: str, field: str, data_files: list[str]) -> None:
        if value in HF_BUILDERS:
            for name in data_files:
                self.make_corpus(name, field)
            return
        datasets = pytest.importorskip("datasets")
        folder = self.root / value
        if not folder.exists():
            rows = datasets.Dataset.from_dict({field: self.lines()})
            datasets.DatasetDict({split: rows}).save_to_disk(str(folder))

    def prepare(self, args: list[str]) -> None:
        """Make what the arguments name: runs, corpora, datasets, files."""
        self.run_copy("run1", linked=True)  # the newest run, for commands that name none
        for name in option_values(args, "--run", "-r"):
            self.run_copy(name, linked=True)
        for name in option_values(args, "--resume"):
            self.run_copy(name, linked=False)  # training writes to it
        field = (option_values(args, "--text-field") or ["text"])[0]
        for value in option_values(args, "--corpus"):
            self.make_corpus(value, field)
        for value in option_values(args, "--dataset"):
            self.make_dataset(value, (option_values(args, "--split") or ["train"])[0], field,
                              option_values(args, "--data-files"))
        for word in args:
            if word in FILES and not (self.root / word).exists():
                (self.root / word).write_text(FILES[word])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(text: str, place: Place) -> str:
    """Run one command line here (see the module's docstring); returns what it printed (stdout, then
    stderr for a process; the two as they came for the runner)."""
    torchrun, args, sorted_file, head, stdin_file = split_command(text)
    place.prepare(args + [f for f in (sorted_file, stdin_file) if f])
    args = tiny_training(args)
    stdin = None
    if sorted_file:
        stdin = "".join(sorted((place.root / sorted_file).read_text().splitlines(keepends=True)))
    if stdin_file:
        stdin = (place.root / stdin_file).read_text()
    where = f"the README's `{text}` (run as embcli {shlex.join(args)})"
    if torchrun:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", *torchrun, "--master-port",
                               str(free_port()), "-m", "embcli", *args], capture_output=True, text=True, env=env,
                              cwd=place.root, timeout=600)
        assert done.returncode == 0, f"{where}: exit {done.returncode}\n{done.stderr[-3000:]}"
        output, errors, printed = done.stdout, done.stderr, done.stdout + done.stderr
    else:
        result = CliRunner().invoke(app, args, input=stdin, prog_name="embcli")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{where} raised") from result.exception
        assert result.exit_code == 0, f"{where}: exit {result.exit_code}\n{result.output[-3000:]}"
        output, errors, printed = result.stdout, result.stderr, result.output
    assert "Traceback" not in output + errors, f"{where}\n{errors[-3000:]}"
    check_effects(args, output, place, where)
    if head is not None:
        assert len(output.splitlines()[:head]) == head, where
    return printed


def check_effects(args: list[str], output: str, place: Place, where: str) -> None:
    """What the command says it does, done: its files written, its JSON whole, its run trained."""
    if asks_help(args):
        assert output.startswith("Usage: embcli"), where
        return
    for target in option_values(args, "-o", "--output"):
        assert (place.root / target).exists(), f"{where}: wrote no {target}"
    if "--json" in args:
        documents = [json.loads(output)] if output.lstrip().startswith("{\n") else \
            [json.loads(line) for line in output.splitlines()]
        assert all(d.get("verb") for d in documents), where
    if args[:1] == ["train"]:
        name = (option_values(args, "--name", "-n", "--resume") or [None])[0]
        runs = sorted((place.root / "runs").glob("*/meta.json"), key=lambda p: p.stat().st_mtime)
        meta = json.loads(((place.root / "runs" / name / "meta.json") if name else runs[-1]).read_text())
        assert meta["status"] == "finished", f"{where}: {meta['status']}"
        assert meta["step"] == int(option_values(args, "--max-steps")[0]), where
    if "--open" in args:
        assert place.opened and place.opened[-1].startswith("file://"), where
        assert Path(place.opened[-1].removeprefix("file://")).is_file(), where
    if "--install-completion" in args:
        assert (place.root / "home" / ".bash_completions" / "embcli.sh").is_file(), where


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_cache(shared_corpus, tmp_path_factory) -> Path:
    """A token cache for this file: the tests' corpus (as conftest tokenized it) and the default corpus."""
    from embcli.data import CorpusSpec, prepare

    folder = tmp_path_factory.mktemp("readme_cache") / "cache"
    shutil.copytree(shared_corpus[1], folder)
    with cache_at(folder):
        prepare(CorpusSpec(), progress=False)
    return folder


@pytest.fixture
def place(trained_run, shared_corpus, token_cache, tmp_path, monkeypatch) -> Place:
    import webbrowser

    import typer._completion_shared as completion

    monkeypatch.setenv("EMBCLI_CACHE", str(token_cache))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where --install-completion writes
    monkeypatch.setattr(completion, "_get_shell_name", lambda: "bash")
    where = Place(tmp_path, trained_run, shared_corpus[0])
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: where.opened.append(url) or True)
    return where


def test_the_readme_shows_commands_and_finds_them_all():
    texts = {s.text for s in SHOWN}
    # one of each kind: a fenced line, a continued line, an inline span across a line break, a pipe
    assert "embcli analogy king man woman --top 5" in texts
    assert any(t.startswith("torchrun --nnodes 2 --node-rank 1") and t.endswith("-m embcli train --config gpt2-small ...")
               for t in texts)
    assert "embcli explore --run runs/default -o page.html" in texts
    assert "sort words.txt | embcli neighbors - --json" in texts
    assert len(SHOWN) > 40


def test_commands_are_found_in_blocks_tables_and_prose():
    readme = "\n".join([
        "```console", "$ embcli neighbors cat   # a comment", "'cat' → ␣cat (3797; ...)", "```",
        "| `embcli similarity W1 W2` | `embcli[plot]`, `embcli/assets`, `embcli.runs` are no commands |",
        "```sh", "torchrun --nproc-per-node 2 \\", "    -m embcli train", "embcli neighbors cat", "```",
        "prose: `embcli explore --run runs/default", "-o page.html` and `sort w.txt | embcli neighbors -`."])
    shown, outputs = shown_commands(readme)
    assert [(s.text, s.lines) for s in shown] == [
        ("embcli neighbors cat", (2, 9)), ("torchrun --nproc-per-node 2 -m embcli train", (7,)),
        ("embcli similarity W1 W2", (5,)), ("embcli explore --run runs/default -o page.html", (11,)),
        ("sort w.txt | embcli neighbors -", (12,))]
    assert outputs == {"embcli neighbors cat": "'cat' → ␣cat (3797; ...)"}


@pytest.mark.parametrize("text", ["embcli neighbors cat --topp 5", "embcli neighbour cat", "embcli neighbors cat -k 0",
                                  "embcli export -f word3vec -o x", "embcli analogy king man",
                                  "torchrun --processes-per-node 2 -m embcli train"])
def test_a_command_the_tree_lacks_does_not_parse(text):
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        parse(text)


def test_a_shell_form_this_file_cannot_follow_fails():
    with pytest.raises(AssertionError, match="a shell form this test does not run"):
        split_command("embcli neighbors cat | grep dog")


def test_every_listed_command_is_still_in_the_readme():
    texts = {s.text for s in SHOWN}
    stale = [t for t in [*NOT_RUN, *STAND_INS, *BEFORE, *OUTPUT_DIFFERS] if t not in texts]
    assert not stale, f"listed here, no longer in the README: {stale}"


def shape(line: str) -> str:
    """A line with its numbers masked: what a README output line and ours share on another run."""
    return re.sub(r"\d[\d,.]*", "N", line).rstrip()


# `$ command` blocks whose first output line differs here for the tiny run's data, not the README's words
OUTPUT_DIFFERS = {
    "embcli neighbors . --run runs/default": "the tests' corpus writes ' .' after a space ('in the barn .'), so by "
                                             "the README's own rule '.' is ␣. (764) there",
    "embcli neighbors france -k 5 --run runs/default": "the tests' corpus has no France: the same form, 'never seen'",
}


@pytest.mark.parametrize("shown", SHOWN, ids=str)
def test_readme_command(shown: Shown, place: Place):
    if shown.text in NOT_RUN:
        parse(shown.text)
        pytest.skip(f"parsed, not run: {NOT_RUN[shown.text]}")
    if shown.text in STAND_INS:
        commands = STAND_INS[shown.text][0] or help_commands()
    else:
        parse(shown.text)
        commands = [shown.text]
    for text in BEFORE.get(shown.text, []) + commands:
        parse(text)
        printed = run(text, place)
    if shown.text in OUTPUTS and shown.text not in OUTPUT_DIFFERS:  # the README's output begins as ours does
        first = printed.splitlines()[0] if printed else ""
        assert shape(first).startswith(shape(OUTPUTS[shown.text])), (
            f"the README shows `{shown.text}` printing\n  {OUTPUTS[shown.text]}\nit prints\n  {first}")
