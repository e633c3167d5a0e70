"""The ``embcli`` command line: one verb per job, each a thin Typer command.

A command parses its options, calls one function of the library (``queries.py`` for the query
verbs, ``train.py``, ``data.py``, ``export.py``, ``plots.py`` for the rest) and hands the answer to
``render.py``. Heavy imports (torch, datasets, rich's tables) happen inside the commands that need
them, so the query verbs start fast. This file holds only the commands and their options; what
they share (usage errors and every ``EmbcliError`` as one line on stderr with exit code 2, option
parsing, opening the table and naming the run that answered) is ``commandline.py``'s.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .commandline import (
    OneLineGroup,
    answered_by,
    choice_value,
    choices,
    corpus_spec,
    handle_errors,
    open_table,
    parse_count,
    parse_duration,
    print_version,
    read_words,
    run_app,
    show,
    stdout,
    train_config,
)
from .errors import EmbcliError
from .export import FORMATS, KEY_STYLES
from .queries import BASELINES
from .space import ANALOGY_METHODS

# rich_markup_mode=None: typer's rich help machinery is never imported on the query path.
# Shell completion is Typer's (--install-completion, --show-completion).
app = typer.Typer(cls=OneLineGroup, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})
inspect_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Look inside a model, its table, a row or a token.")
app.add_typer(inspect_app, name="inspect")
plot_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Pictures (PNG, SVG or PDF; GIF for plot words over training) of a table or a run.")


@app.callback()
def _main_options(version: bool = typer.Option(False, "--version", "-V", callback=print_version, is_eager=True,
                                              help="Print embcli's version and exit.")):
    """Train GPT-2-style token embeddings on a corpus and explore what the table learned.

    \b
    embcli train                          # the default recipe on the built-in corpus
    embcli neighbors cat                  # nearest tokens to ' cat' in the newest run
    embcli analogy king man woman         # king − man + woman
    embcli shell                          # a prompt that keeps the table loaded
    embcli COMMAND -h                     # each command's options and examples

    Runs live in ./runs (or $EMBCLI_RUNS, or --runs-dir); every answer says which run and step answered.
    """


# ---------------------------------------------------------------------------------------------
# Options shared by several commands
# ---------------------------------------------------------------------------------------------

CorpusOpt = typer.Option(None, "--corpus", help="Text files, folders or globs (.txt, .jsonl, .gz). "
                         "Default: the embedded WordNet glosses.")
DatasetOpt = typer.Option(None, "--dataset", help="Hugging Face dataset: hub name, or a local dataset folder.")
RunOpt = typer.Option(None, "--run", "-r", help="Run name or folder (default: the newest run).")
RunsDirOpt = typer.Option(None, "--runs-dir", help="Where runs live (default: $EMBCLI_RUNS, else ./runs).")
StepOpt = typer.Option(None, "--step", help="Use the table snapshot at this step instead of the final table.")
TopOpt = typer.Option(10, "--top", "-k", min=1, help="How many answers.")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output (one JSON object; README, \"JSON output\").")
MinCountOpt = typer.Option(1, "--min-count", min=0, help="Leave out rows seen fewer times in training.")
# Answers (neighbours, analogies, rows, traces, the shell, plotted neighbours, the ends of a direction)
# leave out rows seen fewer than 5 times: space.DEFAULT_MIN_COUNT, chosen by measurement (README,
# "--min-count"); a test holds the two equal. eval and export keep 1: their figures and files cover
# every row training saw.
AnswerMinCountOpt = typer.Option(5, "--min-count", min=0, help="Leave out rows seen fewer times in training "
                                 "(barely trained; 1 keeps every row training saw, 0 every row).")
ExactOpt = typer.Option(False, "--exact", help="Use the text exactly as typed (no leading space added).")
Combine = choices("Combine", ["mean"])
CombineOpt = typer.Option(None, "--combine", help="For words of several tokens: 'mean' averages the pieces.")
# The closed lists of values, from the modules that own them (--help shows them, completion offers them)
Method = choices("Method", ANALOGY_METHODS)
Baseline = choices("Baseline", [b for b in BASELINES if b])
Format = choices("Format", FORMATS)
KeyStyle = choices("KeyStyle", KEY_STYLES)
WordsArg = typer.Argument(..., help="Words or tokens; '-' reads them from standard input.")


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def train(
    config: str = typer.Option("tiny", "--config", "-c", help="Config name in configs/ or a .toml path."),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override a config field: KEY=VALUE."),
    corpus: Optional[List[str]] = CorpusOpt,
    dataset: Optional[str] = DatasetOpt,
    dataset_config: Optional[str] = typer.Option(None, "--dataset-config", help="The dataset's config name."),
    split: str = typer.Option("train", "--split", help="Dataset split."),
    text_field: str = typer.Option("text", "--text-field", help="Field holding the text (.jsonl, datasets)."),
    data_files: Optional[List[str]] = typer.Option(None, "--data-files", help="Data files for --dataset."),
    streaming: bool = typer.Option(False, "--streaming", help="Stream the dataset (larger than memory)."),
    val_fraction: float = typer.Option(0.01, "--val-fraction", help="Share of tokens held out for validation."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Run name (default run1, run2, ...)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue this run from its last checkpoint."),
    device: str = typer.Option("auto", "--device", metavar="<auto|cpu|cuda|cuda:N|mps>",
                               autocompletion=lambda: ["auto", "cpu", "cuda", "mps"], help="Where to train."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (same seed, same run on CPU)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=0, help="Stop after this many steps."),
    max_tokens: Optional[str] = typer.Option(None, "--max-tokens", help="Stop after this many tokens: 2000000, 2e6, 2M."),
    time_budget: Optional[str] = typer.Option(None, "--time-budget", help="Stop after this long: 600, 10m, 1h."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Where runs live (default ./runs)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or progress lines."),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON (progress stays on stderr)."),
):
    """Tokenize the corpus (cached) and train a tied GPT; the table lands in runs/<name>/.

    \b
    embcli train                                    # the default recipe, the built-in corpus
    embcli train --corpus notes/ --name mine        # your text: files, folders, globs, .jsonl, .gz
    embcli train --config gpt2-small --max-tokens 50M --time-budget 2h
    embcli train --resume mine --max-steps 20000    # continue a run from its checkpoint
    """
    budget = parse_duration(time_budget)
    stops = {"max_steps": max_steps, "max_tokens": parse_count(max_tokens, "--max-tokens"), "time_budget": budget}
    stops = {k: v for k, v in stops.items() if v is not None}
    overrides = list(set_ or []) + ([f"seed={seed}"] if seed is not None else [])
    try:
        cfg = train_config(config, overrides, resume, bool(overrides or corpus or dataset), stops)
    except EmbcliError as exc:  # under torchrun every process finds the same problem: rank 0 says it
        exc.quiet = os.environ.get("RANK", "0") != "0"
        raise
    spec = corpus_spec(corpus, dataset, dataset_config, split, text_field, data_files, streaming, val_fraction)
    from .progress import console
    from .render import train_summary
    from .train import train as run_training

    log = (lambda msg: None) if quiet else (lambda msg: console.print(msg, highlight=False, markup=False))  # paths, names: text
    result = run_training(cfg, spec, name=name, resume=resume, device=device, runs_dir=runs_dir,
                          progress=not quiet, log=log, stop_overrides=stops)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports
        train_summary(result, stdout(), as_json=json_out)


@app.command()
@handle_errors
def prepare(
    corpus: Optional[List[str]] = CorpusOpt,
    dataset: Optional[str] = DatasetOpt,
    dataset_config: Optional[str] = typer.Option(None, "--dataset-config"),
    split: str = typer.Option("train", "--split"),
    text_field: str = typer.Option("text", "--text-field"),
    data_files: Optional[List[str]] = typer.Option(None, "--data-files"),
    streaming: bool = typer.Option(False, "--streaming"),
    val_fraction: float = typer.Option(0.01, "--val-fraction"),
    force: bool = typer.Option(False, "--force", help="Tokenize again even if cached."),
    json_out: bool = JsonOpt,
):
    """Tokenize a corpus into cached uint16 shards with counts and a manifest (train does this too).

    \b
    embcli prepare --corpus 'books/*.txt.gz'
    embcli prepare --dataset wikitext --dataset-config wikitext-103-raw-v1 --json
    """
    from .data import prepare as do_prepare
    from .render import prepared

    spec = corpus_spec(corpus, dataset, dataset_config, split, text_field, data_files, streaming, val_fraction)
    prepared(do_prepare(spec, force=force, progress=not json_out), stdout(), as_json=json_out)


@app.command()
@handle_errors
def runs(runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """List the runs (under ./runs, $EMBCLI_RUNS or --runs-dir), newest last; a damaged one is marked."""
    from . import queries

    show(queries.runs(runs_dir), json_out)


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def neighbors(words: List[str] = WordsArg, run: Optional[str] = RunOpt, step: Optional[int] = StepOpt,
              top: int = TopOpt, min_count: int = AnswerMinCountOpt, exact: bool = ExactOpt,
              combine: Optional[Combine] = CombineOpt, runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """Nearest neighbours by cosine similarity, like gensim's most_similar or fastText's nn.

    \b
    embcli neighbors cat dog                     # ' cat' and ' dog' (the space-prefixed tokens)
    embcli neighbors cat --run mine --step 300   # a snapshot of another run
    embcli neighbors ornithology --combine mean  # a word of several tokens, averaged
    echo cat dog | embcli neighbors - --json     # words from standard input, JSON out
    """
    from . import queries

    words = read_words(words)
    space = open_table(run, step, min_count, runs_dir)
    show(queries.neighbors(space, words, top, exact=exact, combine=choice_value(combine)), json_out)


@app.command()
@handle_errors
def analogy(a: str = typer.Argument(..., help="A, as in A − B + C (king)"), b: str = typer.Argument(..., help="B (man)"),
            c: str = typer.Argument(..., help="C (woman)"), run: Optional[str] = RunOpt, step: Optional[int] = StepOpt,
            top: int = TopOpt, method: Method = typer.Option("add", "--method", help="add (3CosAdd) or mul (3CosMul)."),
            min_count: int = AnswerMinCountOpt, exact: bool = ExactOpt, combine: Optional[Combine] = CombineOpt,
            runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """A − B + C: 'king man woman' should give queen. Answers exclude A, B and C.

    \b
    embcli analogy king man woman
    embcli analogy paris france italy --method mul -k 5
    """
    from . import queries

    space = open_table(run, step, min_count, runs_dir)
    show(queries.analogy(space, a, b, c, top, method=choice_value(method), exact=exact, combine=choice_value(combine)),
         json_out)


@app.command()
@handle_errors
def similarity(w1: str, w2: str, run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, exact: bool = ExactOpt,
               combine: Optional[Combine] = CombineOpt, runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """Cosine similarity of two words.

    \b
    embcli similarity cat dog
    """
    from . import queries

    space = open_table(run, step, 0, runs_dir)
    show(queries.similarity(space, w1, w2, exact=exact, combine=choice_value(combine)), json_out)


@app.command("odd-one-out")
@handle_errors
def odd_one_out(words: List[str] = typer.Argument(..., help="Two or more words; '-' reads them from standard input."),
                run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, exact: bool = ExactOpt,
                combine: Optional[Combine] = CombineOpt, runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """Which word doesn't belong (gensim's doesnt_match).

    \b
    embcli odd-one-out cat dog horse blue
    """
    from . import queries

    words = read_words(words)
    space = open_table(run, step, 0, runs_dir)
    show(queries.odd_one_out(space, words, exact=exact, combine=choice_value(combine)), json_out)


@app.command()
@handle_errors
def tokenize(text: str = typer.Argument(..., help="Text to split into GPT-2 tokens; '-' reads standard input."),
             json_out: bool = JsonOpt):
    """Text → GPT-2 token ids and pieces ("The cat" → 464, 3797).

    \b
    embcli tokenize "The cat sat"
    embcli tokenize - --json < notes.txt
    """
    from . import queries

    show(queries.tokenize(sys.stdin.read() if text == "-" else text), json_out)


# ---------------------------------------------------------------------------------------------
# inspect
# ---------------------------------------------------------------------------------------------


@inspect_app.command("row", context_settings={"ignore_unknown_options": True})  # so "-1" reaches parse_row
@handle_errors
def inspect_row(row: str = typer.Argument(..., help="Row number = token id (3797 is ' cat')."), run: Optional[str] = RunOpt,
                step: Optional[int] = StepOpt, top: int = TopOpt, min_count: int = AnswerMinCountOpt, runs_dir: Optional[Path] = RunsDirOpt,
                json_out: bool = JsonOpt):
    """One row of the table: its token, count, statistics, values and neighbours.

    \b
    embcli inspect row 3797
    embcli inspect row 3797 --step 0      # the same row before training: noise
    """
    from . import queries
    from .space import parse_row

    token_id = parse_row(row)
    show(queries.inspect_row(open_table(run, step, min_count, runs_dir), token_id, top), json_out)


@inspect_app.command("token")
@handle_errors
def inspect_token(word: str, run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, top: int = TopOpt,
                  min_count: int = AnswerMinCountOpt, exact: bool = ExactOpt,
                  runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """The same as 'inspect row', by word.

    \b
    embcli inspect token cat
    """
    from . import queries

    show(queries.inspect_token(open_table(run, step, min_count, runs_dir), word, top, exact=exact), json_out)


@inspect_app.command("table")
@handle_errors
def inspect_table(run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, runs_dir: Optional[Path] = RunsDirOpt,
                  json_out: bool = JsonOpt):
    """The whole table: shape, size, share of the model, tying, row norms, rows training touched."""
    from . import queries

    show(queries.inspect_table(open_table(run, step, 1, runs_dir)), json_out)


@inspect_app.command("model")
@handle_errors
def inspect_model(run: Optional[str] = RunOpt, config: Optional[str] = typer.Option(
        None, "--config", "-c", help="Describe a config instead of a run."),
        set_: Optional[List[str]] = typer.Option(None, "--set", "-s"), runs_dir: Optional[Path] = RunsDirOpt,
        json_out: bool = JsonOpt):
    """Parameters of a run's model (or of a config) and the token table's share of them.

    \b
    embcli inspect model                       # the newest run's
    embcli inspect model --config gpt2-small   # a recipe, before training it
    """
    from . import queries

    show(queries.inspect_model(run, config=config, overrides=set_, runs_dir=runs_dir), json_out)


# ---------------------------------------------------------------------------------------------
# eval, export, import-hf
# ---------------------------------------------------------------------------------------------


@app.command("eval")
@handle_errors
def evaluate(run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, min_count: int = MinCountOpt,
             pairs: Optional[Path] = typer.Option(None, "--pairs", help="Word-pair file (default WordSim353)."),
             analogies: Optional[Path] = typer.Option(None, "--analogies", help="Analogy file (default Google's)."),
             baseline: Optional[Baseline] = typer.Option(None, "--baseline", help="Train gensim Word2Vec on the "
                                                         "same tokens, for as long as the run trained (and for "
                                                         "5 epochs), and compare."),
             baseline_epochs: Optional[int] = typer.Option(None, "--baseline-epochs", min=1, help="Train the "
                                                           "baseline for N epochs instead of the run's time."),
             baseline_seconds: Optional[float] = typer.Option(None, "--baseline-seconds", help="Give the baseline "
                                                              "S seconds instead of the run's time."),
             sections: bool = typer.Option(False, "--sections", help="Show analogy accuracy per section."),
             runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """WordSim353 (Spearman ρ) and Google analogies (accuracy), with coverage; optionally vs word2vec.

    --baseline word2vec gives gensim Word2Vec the run's own training time (at --step, its time
    there), in epochs measured on this machine, and shows its 5-epoch figure beside it.

    \b
    embcli eval
    embcli eval --baseline word2vec --sections
    embcli eval --baseline word2vec --baseline-epochs 40
    """
    from . import queries
    from .render import busy

    queries.check_baseline(choice_value(baseline), baseline_epochs, baseline_seconds)  # before the table is loaded
    result = queries.evaluate(open_table(run, step, min_count, runs_dir), pairs=pairs, analogies=analogies,
                              baseline=choice_value(baseline), baseline_epochs=baseline_epochs,
                              baseline_seconds=baseline_seconds, busy=busy)
    show(result, json_out, sections=sections)


@app.command()
@handle_errors
def export(fmt: Format = typer.Option(..., "--format", "-f", help="word2vec, word2vec-bin, projector, npy, safetensors, "
                                      "or hf (the whole model for transformers)."),
           output: Path = typer.Option(..., "--output", "-o", help="Output file (a folder for projector and hf)."),
           run: Optional[str] = RunOpt,
           step: Optional[int] = typer.Option(None, "--step", help="The table snapshot at this step instead of the "
                                              "final table (hf: the model exists only at the checkpoint's step)."),
           min_count: Optional[int] = typer.Option(None, "--min-count", min=0, help="Leave out rows seen fewer "
                                                   "times in training (default 1)."),
           top: Optional[int] = typer.Option(None, "--top", min=1, help="Only the N most frequent tokens."),
           keys: Optional[KeyStyle] = typer.Option(None, "--keys", help="word2vec keys: words (default; ' king' is "
                                                   "king, other tokens @@ + GPT-2's spelling) or gpt2 (Ġking)."),
           force: bool = typer.Option(False, "--force", help="hf: replace an output folder that is not empty."),
           runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """Write the table for gensim, TensorBoard's projector, numpy or safetensors, or the model for transformers.

    Never into a run folder, and never over anything but a regular file (a symlink is followed:
    the file it points to is replaced).

    \b
    embcli export -f word2vec -o cat.vec --top 20000
    embcli export -f projector -o projector/ --top 5000
    embcli export -f hf -o my-gpt2/               # the whole model: GPT2LMHeadModel.from_pretrained
    """
    from .render import exported

    fmt, keys = choice_value(fmt), choice_value(keys)
    if keys is not None and fmt not in ("word2vec", "word2vec-bin"):
        raise EmbcliError("--keys spells the keys of -f word2vec and word2vec-bin; other formats have none")
    if fmt == "hf":
        from .export import export_hf
        from .queries import AnsweredBy
        from .runs import find_run

        if top is not None or min_count is not None:
            raise EmbcliError("--top and --min-count choose rows of the table; -f hf exports the whole model")
        run_dir = find_run(run, runs_dir)
        info = export_hf(run_dir, output, step=step, force=force)
        exported(info, stdout(), as_json=json_out, run=AnsweredBy.of_run(run_dir, info["step"]))
        return
    from .export import export as do_export

    min_count = 1 if min_count is None else min_count
    space = open_table(run, step, min_count, runs_dir)
    exported(do_export(space, fmt, output, min_count=min_count, top=top, keys=keys or "words"), stdout(),
             as_json=json_out, run=answered_by())


@app.command("import-hf")
@handle_errors
def import_hf(source: str = typer.Argument(..., help="A local GPT2LMHeadModel folder, or a hub name when online."),
              name: Optional[str] = typer.Option(None, "--name", "-n", help="Run name (default: the folder name)."),
              runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """Turn a Hugging Face GPT-2 checkpoint into a run, so the real GPT-2 table can be queried.

    \b
    embcli import-hf ./gpt2-folder --name gpt2
    embcli neighbors cat --run gpt2
    """
    from .export import import_hf as do_import
    from .render import imported

    imported(source, do_import(source, name, runs_dir), stdout(), as_json=json_out)


# ---------------------------------------------------------------------------------------------
# pictures, trace
# ---------------------------------------------------------------------------------------------

app.add_typer(plot_app, name="plot")
OutOpt = typer.Option(..., "--output", "-o", help="File to write: .png, .svg or .pdf.")


@plot_app.command("words")
@handle_errors
def plot_words(words: List[str] = typer.Argument(..., help="Tokens to place on the map; words joined by commas "
                                                 "(cat,dog,horse) are a group and share a colour; '-' reads them "
                                                 "from standard input."),
               output: Path = typer.Option(..., "--output", "-o", help="File to write: .png, .svg, .pdf, or .gif "
                                           "(an animation over the snapshots)."),
               neighbors: int = typer.Option(0, "--neighbors", min=0, help="Add each word's K nearest neighbours."),
               run: Optional[str] = RunOpt,
               step: Optional[List[int]] = typer.Option(None, "--step", help="A snapshot instead of the final table; "
                                                        "given several times with --steps or a .gif: those snapshots."),
               steps: bool = typer.Option(False, "--steps", help="Small multiples of the snapshots (all, or those "
                                          "given with --step) on one set of axes."),
               min_count: int = AnswerMinCountOpt, exact: bool = ExactOpt, combine: Optional[Combine] = CombineOpt,
               runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """A 2-D PCA map of chosen tokens (cat dog king queen man woman ...), labelled; --steps: over training.

    \b
    embcli plot words cat dog horse red blue king queen -o map.png
    embcli plot words cat,dog,horse red,blue,green -o groups.svg
    embcli plot words cat dog king queen --steps -o training.png
    embcli plot words cat dog king queen -o training.gif
    """
    from .plots import word_map
    from .render import wrote

    words = read_words(words)
    over_training = steps or output.suffix.lower() == ".gif"
    # One table: the snapshot asked for. Over training: words resolved in the final table.
    space = open_table(run, None if over_training or not step else step[0], min_count, runs_dir)
    wrote(word_map(space, words, output, neighbors=neighbors, steps=step or None, over_training=over_training,
                   exact=exact, combine=choice_value(combine)), stdout(), as_json=json_out, verb="plot words",
          run=answered_by())


@plot_app.command("loss")
@handle_errors
def plot_loss(run_arg: Optional[str] = typer.Argument(None, metavar="[RUN]", help="Run (default: the newest)."),
              output: Path = OutOpt, run: Optional[str] = RunOpt, runs_dir: Optional[Path] = RunsDirOpt,
              json_out: bool = JsonOpt):
    """Training and validation loss against tokens seen.

    \b
    embcli plot loss -o loss.png
    embcli plot loss --run mine -o loss.png
    """
    from .plots import plot_loss as draw
    from .queries import AnsweredBy, loss_history, run_facts
    from .render import wrote
    from .runs import find_run

    if run_arg is not None and run is not None and run_arg != run:
        raise EmbcliError(f"two runs given ({run_arg} and --run {run}): give one")
    facts = run_facts(find_run(run if run is not None else run_arg, runs_dir))
    path = draw(loss_history(facts.path), facts.loss_kind, output, facts.path.name)
    wrote(path, stdout(), as_json=json_out, verb="plot loss", run=AnsweredBy.of_run(facts.path, facts.step))


@app.command()
@handle_errors
def trace(word: str = typer.Argument(..., help="The word to follow through training."), run: Optional[str] = RunOpt,
          top: int = typer.Option(5, "--top", "-k", min=1), with_: Optional[List[str]] = typer.Option(
              None, "--with", help="Words whose similarity to WORD the picture follows (default: final top 3)."),
          output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also draw a picture (.png, .svg, .pdf)."),
          min_count: int = AnswerMinCountOpt, runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """WORD's nearest neighbours at every snapshot, from step 0 (noise) to the end.

    \b
    embcli trace cat
    embcli trace king --with queen --with man -o king.png
    """
    from . import queries

    result = queries.trace(run, word, top, others=with_, min_count=min_count, runs_dir=runs_dir)
    show(result, json_out)
    if output:
        from .plots import plot_trace
        from .render import wrote

        path = plot_trace(result.steps, result.similarity, word, output)
        if not json_out:
            wrote(path, stdout())


# ---------------------------------------------------------------------------------------------
# predict and directions: the tied output layer speaks; concept directions
# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def predict(text: str = typer.Argument(..., help="The text whose next token the model predicts."),
            top: int = typer.Option(10, "--top", "-k", min=1, help="How many next tokens."), run: Optional[str] = RunOpt,
            explain: bool = typer.Option(False, "--explain", help="Show each logit as h · row of the table "
                                         "(embeddings.npy), with the row's norm and its cosine with h."),
            runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """The trained model's next-token distribution after TEXT; its output layer is the token table.

    \b
    embcli predict "The cat sat on the"
    embcli predict "a dog is an" -k 5 --explain --json
    """
    from . import queries

    show(queries.predict(run, text, top, explain=explain, runs_dir=runs_dir), json_out)


@app.command()
@handle_errors
def directions(run: Optional[str] = RunOpt, step: Optional[int] = StepOpt,
               pos: Optional[List[str]] = typer.Option(None, "--pos", help="Your own concept: words of one side "
                                                       "(repeat --pos, or 'big,large,huge')."),
               neg: Optional[List[str]] = typer.Option(None, "--neg", help="... and of the other side."),
               min_count: int = AnswerMinCountOpt,
               block: int = typer.Option(64, "--block", min=1, help="Dimensions per block when asking where a "
                                         "direction lives."),
               top: int = typer.Option(5, "--top", "-k", min=1, help="Tokens shown at each end of a direction."),
               runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """Concept directions (living/non-living, big/small, positive/negative, formal/casual): held-out accuracy
    against step 0, and whether each lives in a block of dimensions or all of them.

    \b
    embcli directions
    embcli directions --pos cat,dog,horse --neg red,blue,green --json
    """
    from . import queries
    from .directions import split_words

    positive = split_words(pos) if pos is not None else None
    negative = split_words(neg) if neg is not None else None
    space = open_table(run, step, min_count, runs_dir)
    show(queries.directions(space, positive=positive, negative=negative, block=block, top=top), json_out)


# ---------------------------------------------------------------------------------------------
# explore: one self-contained page of the table at every snapshot (library: embcli/explore.py)
# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def explore(run: Optional[str] = RunOpt,
            output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                  help="HTML file to write (default: explore-<run>.html)."),
            tokens: int = typer.Option(3000, "--tokens", "-n", help="How many of the most frequent tokens (≤ 20000)."),
            min_count: int = typer.Option(5, "--min-count", help="Only tokens seen this many times in training, as "
                                          "the answer verbs (the page never shows a token training did not see)."),
            open_: bool = typer.Option(False, "--open", help="Open the page in a web browser."),
            runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = JsonOpt):
    """One HTML page: the table at every snapshot on one map, with search, neighbours and analogies.

    \b
    embcli explore                        # explore-<newest run>.html, 3000 tokens
    embcli explore --run default --tokens 10000 -o default.html --open
    """
    from .explore import explore as build
    from .queries import AnsweredBy
    from .render import explored

    result = build(run, output, tokens=tokens, min_count=min_count, runs_dir=runs_dir)
    explored(result, stdout(), as_json=json_out, run=AnsweredBy.of_run(result.run_dir, result.last_step))
    if open_:
        import webbrowser

        webbrowser.open(Path(result.path).resolve().as_uri())


# ---------------------------------------------------------------------------------------------
# shell
# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def shell(run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, top: int = TopOpt,
          min_count: int = AnswerMinCountOpt,
          runs_dir: Optional[Path] = RunsDirOpt, json_out: bool = typer.Option(
              False, "--json", help="Each answer as one line of JSON (JSON Lines), for a pipe.")):
    """An interactive prompt that keeps the table loaded (word2vec's distance, fastText's nn).

    Fed from a pipe it prints no prompt, only the answers.

    \b
    embcli shell
    printf 'nn cat\\nanalogy king man woman\\n' | embcli shell --json
    """
    from .shell import run_shell

    run_shell(open_table(run, step, min_count, runs_dir), top, as_json=json_out)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
