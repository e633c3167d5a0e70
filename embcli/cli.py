"""The ``embcli`` command line: one verb per job, each a thin Typer command.

A command parses its options, calls one function of the library (``queries.py`` for the query
verbs, ``train.py``, ``data.py``, ``export.py``, ``plots.py`` for the rest) and hands the answer to
``render.py``. Heavy imports (torch, datasets, rich's tables) happen inside the commands that need
them, so the query verbs start fast. Every user error is an :class:`EmbcliError`: one line on
stderr, exit code 2 (1 for failures while running, 130 for an interrupt), never a traceback.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import List, Optional

import typer

from .errors import EmbcliError

# rich_markup_mode=None: plain click messages for usage errors (a few lines, not a drawn box), and
# typer's rich help machinery is never imported on the query path.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Train GPT-2-style token embeddings on a corpus and explore what the table learned.")
inspect_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Look inside a model, its table, a row or a token.")
app.add_typer(inspect_app, name="inspect")
plot_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Pictures (PNG, SVG or PDF; GIF for plot words over training) of a table or a run.")


def _out():
    from .render import console

    return console()


def _err(message: str) -> None:
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
                _err(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _err("interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            raise typer.Exit(0) from None

    return wrapper


def _show(result, json_out: bool = False, **options) -> None:
    from .render import show

    show(result, _out(), as_json=json_out, **options)


def _parse_duration(text: str | None) -> float | None:
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


def _parse_count(text: str | None, option: str) -> int | None:
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


# ---------------------------------------------------------------------------------------------
# Options shared by several commands
# ---------------------------------------------------------------------------------------------

CorpusOpt = typer.Option(None, "--corpus", help="Text files, folders or globs (.txt, .jsonl, .gz). "
                         "Default: the embedded WordNet glosses.")
DatasetOpt = typer.Option(None, "--dataset", help="Hugging Face dataset: hub name, or a local dataset folder.")
RunOpt = typer.Option(None, "--run", "-r", help="Run name or folder (default: the newest under ./runs).")
StepOpt = typer.Option(None, "--step", help="Use the table snapshot at this step instead of the final table.")
TopOpt = typer.Option(10, "--top", "-k", min=1, help="How many answers.")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")
MinCountOpt = typer.Option(1, "--min-count", min=0, help="Leave out rows seen fewer times in training.")
# Answers (neighbours, analogies, rows, traces, the shell, plotted neighbours, the ends of a direction)
# leave out rows seen fewer than 5 times: space.DEFAULT_MIN_COUNT, chosen by measurement (README,
# "--min-count"); a test holds the two equal. eval and export keep 1: their figures and files cover
# every row training saw.
AnswerMinCountOpt = typer.Option(5, "--min-count", min=0, help="Leave out rows seen fewer times in training "
                                 "(barely trained; 1 keeps every row training saw, 0 every row).")
ExactOpt = typer.Option(False, "--exact", help="Use the text exactly as typed (no leading space added).")
CombineOpt = typer.Option(None, "--combine", help="For words of several tokens: 'mean' averages the pieces.")


def _corpus_spec(corpus, dataset, dataset_config, split, text_field, data_files, streaming, val_fraction):
    from .data import CorpusSpec

    if corpus and dataset:
        raise EmbcliError("give either --corpus or --dataset, not both")
    return CorpusSpec(paths=list(corpus or []), dataset=dataset, dataset_config=dataset_config, split=split,
                      text_field=text_field, data_files=list(data_files or []), streaming=streaming,
                      val_fraction=val_fraction)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _train_config(config, overrides, resume, new_settings, stops):
    """The TrainConfig to start from (None when resuming: the run's own), stops from the command line applied."""
    from .config import load_config

    if resume:
        if new_settings or config != "tiny":
            raise EmbcliError("--resume continues a run as it was configured; only --max-steps, --max-tokens, "
                              "--time-budget and --device may be given with it")
        return None
    return load_config(config, overrides).with_stops(stops).validate()


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
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (same seed, same run on CPU)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=0, help="Stop after this many steps."),
    max_tokens: Optional[str] = typer.Option(None, "--max-tokens", help="Stop after this many tokens: 2000000, 2e6, 2M."),
    time_budget: Optional[str] = typer.Option(None, "--time-budget", help="Stop after this long: 600, 10m, 1h."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Where runs live (default ./runs)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or progress lines."),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON (progress stays on stderr)."),
):
    """Tokenize the corpus (cached) and train a tied GPT; the table lands in runs/<name>/."""
    budget = _parse_duration(time_budget)
    stops = {"max_steps": max_steps, "max_tokens": _parse_count(max_tokens, "--max-tokens"), "time_budget": budget}
    stops = {k: v for k, v in stops.items() if v is not None}
    overrides = list(set_ or []) + ([f"seed={seed}"] if seed is not None else [])
    try:
        cfg = _train_config(config, overrides, resume, bool(overrides or corpus or dataset), stops)
    except EmbcliError as exc:  # under torchrun every process finds the same problem: rank 0 says it
        exc.quiet = os.environ.get("RANK", "0") != "0"
        raise
    spec = _corpus_spec(corpus, dataset, dataset_config, split, text_field, data_files, streaming, val_fraction)
    from .progress import console
    from .render import train_summary
    from .train import train as run_training

    log = (lambda msg: None) if quiet else (lambda msg: console.print(msg, highlight=False))
    result = run_training(cfg, spec, name=name, resume=resume, device=device, runs_dir=runs_dir,
                          progress=not quiet, log=log, stop_overrides=stops)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports
        train_summary(result, _out(), as_json=json_out)


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
    """Tokenize a corpus into cached uint16 shards with counts and a manifest (train does this too)."""
    from .data import prepare as do_prepare
    from .render import prepared

    spec = _corpus_spec(corpus, dataset, dataset_config, split, text_field, data_files, streaming, val_fraction)
    prepared(do_prepare(spec, force=force, progress=not json_out), _out(), as_json=json_out)


@app.command()
@handle_errors
def runs(runs_dir: Optional[Path] = typer.Option(None, "--runs-dir"), json_out: bool = JsonOpt):
    """List the runs under ./runs, newest last."""
    from . import queries

    _show(queries.runs(runs_dir), json_out)


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------


def _space(run, step, min_count):
    from .queries import open_space

    return open_space(run, step, min_count)


@app.command()
@handle_errors
def neighbors(words: List[str] = typer.Argument(..., help="Words or tokens."), run: Optional[str] = RunOpt,
              step: Optional[int] = StepOpt, top: int = TopOpt, min_count: int = AnswerMinCountOpt,
              exact: bool = ExactOpt, combine: Optional[str] = CombineOpt, json_out: bool = JsonOpt):
    """Nearest neighbours by cosine similarity, like gensim's most_similar or fastText's nn."""
    from . import queries

    _show(queries.neighbors(_space(run, step, min_count), words, top, exact=exact, combine=combine), json_out)


@app.command()
@handle_errors
def analogy(a: str = typer.Argument(..., help="A, as in A − B + C (king)"), b: str = typer.Argument(..., help="B (man)"),
            c: str = typer.Argument(..., help="C (woman)"), run: Optional[str] = RunOpt, step: Optional[int] = StepOpt,
            top: int = TopOpt, method: str = typer.Option("add", "--method", help="add (3CosAdd) or mul (3CosMul)."),
            min_count: int = AnswerMinCountOpt, exact: bool = ExactOpt, combine: Optional[str] = CombineOpt,
            json_out: bool = JsonOpt):
    """A − B + C: 'king man woman' should give queen. Answers exclude A, B and C."""
    from . import queries
    from .space import check_analogy_method

    check_analogy_method(method)  # before the table is loaded: a typo costs nothing
    space = _space(run, step, min_count)
    _show(queries.analogy(space, a, b, c, top, method=method, exact=exact, combine=combine), json_out)


@app.command()
@handle_errors
def similarity(w1: str, w2: str, run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, exact: bool = ExactOpt,
               combine: Optional[str] = CombineOpt, json_out: bool = JsonOpt):
    """Cosine similarity of two words."""
    from . import queries

    _show(queries.similarity(_space(run, step, 0), w1, w2, exact=exact, combine=combine), json_out)


@app.command("odd-one-out")
@handle_errors
def odd_one_out(words: List[str] = typer.Argument(..., help="Two or more words."), run: Optional[str] = RunOpt,
                step: Optional[int] = StepOpt, exact: bool = ExactOpt, combine: Optional[str] = CombineOpt,
                json_out: bool = JsonOpt):
    """Which word doesn't belong (gensim's doesnt_match)."""
    from . import queries

    _show(queries.odd_one_out(_space(run, step, 0), words, exact=exact, combine=combine), json_out)


@app.command()
@handle_errors
def tokenize(text: str = typer.Argument(..., help="Text to split into GPT-2 tokens."), json_out: bool = JsonOpt):
    """Text → GPT-2 token ids and pieces ("The cat" → 464, 3797)."""
    from . import queries

    _show(queries.tokenize(text), json_out)


# ---------------------------------------------------------------------------------------------
# inspect
# ---------------------------------------------------------------------------------------------


@inspect_app.command("row", context_settings={"ignore_unknown_options": True})  # so "-1" reaches parse_row
@handle_errors
def inspect_row(row: str = typer.Argument(..., help="Row number = token id (3797 is ' cat')."), run: Optional[str] = RunOpt,
                step: Optional[int] = StepOpt, top: int = TopOpt, min_count: int = AnswerMinCountOpt,
                json_out: bool = JsonOpt):
    """One row of the table: its token, count, statistics, values and neighbours."""
    from . import queries
    from .space import parse_row

    token_id = parse_row(row)
    _show(queries.inspect_row(_space(run, step, min_count), token_id, top), json_out)


@inspect_app.command("token")
@handle_errors
def inspect_token(word: str, run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, top: int = TopOpt,
                  min_count: int = AnswerMinCountOpt, exact: bool = ExactOpt, json_out: bool = JsonOpt):
    """The same as 'inspect row', by word."""
    from . import queries

    _show(queries.inspect_token(_space(run, step, min_count), word, top, exact=exact), json_out)


@inspect_app.command("table")
@handle_errors
def inspect_table(run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, json_out: bool = JsonOpt):
    """The whole table: shape, size, share of the model, tying, row norms, rows training touched."""
    from . import queries

    _show(queries.inspect_table(_space(run, step, 1)), json_out)


@inspect_app.command("model")
@handle_errors
def inspect_model(run: Optional[str] = RunOpt, config: Optional[str] = typer.Option(
        None, "--config", "-c", help="Describe a config instead of a run."),
        set_: Optional[List[str]] = typer.Option(None, "--set", "-s"), json_out: bool = JsonOpt):
    """Parameters of a run's model (or of a config) and the token table's share of them."""
    from . import queries

    _show(queries.inspect_model(run, config=config, overrides=set_), json_out)


# ---------------------------------------------------------------------------------------------
# eval, export, import-hf
# ---------------------------------------------------------------------------------------------


@app.command("eval")
@handle_errors
def evaluate(run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, min_count: int = MinCountOpt,
             pairs: Optional[Path] = typer.Option(None, "--pairs", help="Word-pair file (default WordSim353)."),
             analogies: Optional[Path] = typer.Option(None, "--analogies", help="Analogy file (default Google's)."),
             baseline: Optional[str] = typer.Option(None, "--baseline", help="'word2vec': train gensim Word2Vec "
                                                    "on the same tokens and compare."),
             sections: bool = typer.Option(False, "--sections", help="Show analogy accuracy per section."),
             json_out: bool = JsonOpt):
    """WordSim353 (Spearman ρ) and Google analogies (accuracy), with coverage; optionally vs word2vec."""
    from . import queries
    from .render import busy

    queries.check_baseline(baseline)  # before the table is loaded: a typo costs nothing
    result = queries.evaluate(_space(run, step, min_count), pairs=pairs, analogies=analogies, baseline=baseline,
                              busy=busy)
    _show(result, json_out, sections=sections)


@app.command()
@handle_errors
def export(fmt: str = typer.Option(..., "--format", "-f", help="word2vec, word2vec-bin, projector, npy, safetensors, "
                                   "or hf (the whole model for transformers)."),
           output: Path = typer.Option(..., "--output", "-o", help="Output file (a folder for projector and hf)."),
           run: Optional[str] = RunOpt,
           step: Optional[int] = typer.Option(None, "--step", help="The table snapshot at this step instead of the "
                                              "final table (hf: the model exists only at the checkpoint's step)."),
           min_count: Optional[int] = typer.Option(None, "--min-count", min=0, help="Leave out rows seen fewer "
                                                   "times in training (default 1)."),
           top: Optional[int] = typer.Option(None, "--top", min=1, help="Only the N most frequent tokens."),
           keys: Optional[str] = typer.Option(None, "--keys", help="word2vec keys: words (default; ' king' is "
                                              "king, other tokens @@ + GPT-2's spelling) or gpt2 (Ġking)."),
           force: bool = typer.Option(False, "--force", help="hf: replace an output folder that is not empty.")):
    """Write the table for gensim, TensorBoard's projector, numpy or safetensors, or the model for transformers."""
    from .export import FORMATS
    from .render import exported

    if fmt not in FORMATS:
        raise EmbcliError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
    if keys is not None and fmt not in ("word2vec", "word2vec-bin"):
        raise EmbcliError("--keys spells the keys of -f word2vec and word2vec-bin; other formats have none")
    if fmt == "hf":
        from .export import export_hf
        from .runs import find_run

        if top is not None or min_count is not None:
            raise EmbcliError("--top and --min-count choose rows of the table; -f hf exports the whole model")
        exported(export_hf(find_run(run), output, step=step, force=force), _out())
        return
    from .export import export as do_export

    min_count = 1 if min_count is None else min_count
    exported(do_export(_space(run, step, min_count), fmt, output, min_count=min_count, top=top,
                       keys=keys or "words"), _out())


@app.command("import-hf")
@handle_errors
def import_hf(source: str = typer.Argument(..., help="A local GPT2LMHeadModel folder, or a hub name when online."),
              name: Optional[str] = typer.Option(None, "--name", "-n", help="Run name (default: the folder name)."),
              runs_dir: Optional[Path] = typer.Option(None, "--runs-dir")):
    """Turn a Hugging Face GPT-2 checkpoint into a run, so the real GPT-2 table can be queried."""
    from .export import import_hf as do_import
    from .render import imported

    imported(source, do_import(source, name, runs_dir), _out())


# ---------------------------------------------------------------------------------------------
# pictures, trace
# ---------------------------------------------------------------------------------------------

app.add_typer(plot_app, name="plot")
OutOpt = typer.Option(..., "--output", "-o", help="File to write: .png, .svg or .pdf.")


@plot_app.command("words")
@handle_errors
def plot_words(words: List[str] = typer.Argument(..., help="Tokens to place on the map; words joined by commas "
                                                 "(cat,dog,horse) are a group and share a colour."),
               output: Path = typer.Option(..., "--output", "-o", help="File to write: .png, .svg, .pdf, or .gif "
                                           "(an animation over the snapshots)."),
               neighbors: int = typer.Option(0, "--neighbors", min=0, help="Add each word's K nearest neighbours."),
               run: Optional[str] = RunOpt,
               step: Optional[List[int]] = typer.Option(None, "--step", help="A snapshot instead of the final table; "
                                                        "given several times with --steps or a .gif: those snapshots."),
               steps: bool = typer.Option(False, "--steps", help="Small multiples of the snapshots (all, or those "
                                          "given with --step) on one set of axes."),
               min_count: int = AnswerMinCountOpt, exact: bool = ExactOpt):
    """A 2-D PCA map of chosen tokens (cat dog king queen man woman ...), labelled; --steps: over training."""
    from .plots import word_map
    from .render import wrote

    wrote(word_map(run, words, output, neighbors=neighbors, steps=step or None, over_training=steps,
                   min_count=min_count, exact=exact), _out())


@plot_app.command("loss")
@handle_errors
def plot_loss(run: Optional[str] = typer.Argument(None, help="Run (default: the newest)."), output: Path = OutOpt):
    """Training and validation loss against tokens seen."""
    from .plots import plot_loss as draw
    from .queries import loss_history, run_facts
    from .render import wrote
    from .runs import find_run

    facts = run_facts(find_run(run))
    wrote(draw(loss_history(facts.path), facts.loss_kind, output, facts.path.name), _out())


@app.command()
@handle_errors
def trace(word: str = typer.Argument(..., help="The word to follow through training."), run: Optional[str] = RunOpt,
          top: int = typer.Option(5, "--top", "-k", min=1), with_: Optional[List[str]] = typer.Option(
              None, "--with", help="Words whose similarity to WORD the picture follows (default: final top 3)."),
          output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also draw a picture (.png, .svg, .pdf)."),
          min_count: int = AnswerMinCountOpt, json_out: bool = JsonOpt):
    """WORD's nearest neighbours at every snapshot, from step 0 (noise) to the end."""
    from . import queries

    result = queries.trace(run, word, top, others=with_, min_count=min_count)
    _show(result, json_out)
    if output:
        from .plots import plot_trace
        from .render import wrote

        path = plot_trace(result.steps, result.similarity, word, output)
        if not json_out:
            wrote(path, _out())


# ---------------------------------------------------------------------------------------------
# predict and directions: the tied output layer speaks; concept directions
# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def predict(text: str = typer.Argument(..., help="The text whose next token the model predicts."),
            top: int = typer.Option(10, "--top", "-k", min=1, help="How many next tokens."), run: Optional[str] = RunOpt,
            explain: bool = typer.Option(False, "--explain", help="Show each logit as h · row of the table "
                                         "(embeddings.npy), with the row's norm and its cosine with h."),
            json_out: bool = JsonOpt):
    """The trained model's next-token distribution after TEXT; its output layer is the token table."""
    from . import queries

    _show(queries.predict(run, text, top, explain=explain), json_out)


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
               json_out: bool = JsonOpt):
    """Concept directions (living/non-living, big/small, positive/negative, formal/casual): held-out accuracy
    against step 0, and whether each lives in a block of dimensions or all of them."""
    from . import queries
    from .directions import split_words

    positive = split_words(pos) if pos is not None else None
    negative = split_words(neg) if neg is not None else None
    space = _space(run, step, min_count)
    _show(queries.directions(space, positive=positive, negative=negative, block=block, top=top), json_out)


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
            open_: bool = typer.Option(False, "--open", help="Open the page in a web browser.")):
    """One HTML page: the table at every snapshot on one map, with search, neighbours and analogies."""
    from .explore import explore as build
    from .render import explored

    result = build(run, output, tokens=tokens, min_count=min_count)
    explored(result, _out())
    if open_:
        import webbrowser

        webbrowser.open(Path(result.path).resolve().as_uri())


# ---------------------------------------------------------------------------------------------
# shell
# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def shell(run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, top: int = TopOpt,
          min_count: int = AnswerMinCountOpt):
    """An interactive prompt that keeps the table loaded (word2vec's distance, fastText's nn)."""
    from .shell import run_shell

    run_shell(_space(run, step, min_count), top)


def main() -> None:
    app(prog_name="embcli")


if __name__ == "__main__":
    main()
