"""The ``embcli`` command line: one verb per job, each a thin layer over the library.

Heavy imports (torch, datasets) happen inside the commands that need them, so the query verbs
start fast. Every user error is an :class:`EmbcliError`: one line on stderr, exit code 2 (1 for
failures while running, 130 for an interrupt), never a traceback.
"""

from __future__ import annotations

import functools
import json
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


def _out():
    from rich.console import Console

    return Console(highlight=False)


def _err(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {message}", markup=True, soft_wrap=True)


def handle_errors(fn):
    """Turn EmbcliError into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EmbcliError as exc:
            _err(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _err("interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            raise typer.Exit(0) from None

    return wrapper


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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Tokenize the corpus (cached) and train a tied GPT; the table lands in runs/<name>/."""
    from .config import load_config

    budget = _parse_duration(time_budget)
    max_tokens = _parse_count(max_tokens, "--max-tokens")
    stops = {k: v for k, v in {"max_steps": max_steps, "max_tokens": max_tokens, "time_budget": budget}.items()
             if v is not None}
    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    cfg = None
    if resume:
        if set_ or seed is not None or corpus or dataset or config != "tiny":
            raise EmbcliError("--resume continues a run as it was configured; only --max-steps, --max-tokens, "
                              "--time-budget and --device may be given with it")
    else:
        cfg = load_config(config, overrides)
        for key, value in stops.items():
            setattr(cfg, key, value)
        if stops:  # a stop given on the command line replaces the config's stops
            for key in ("max_steps", "max_tokens", "time_budget"):
                if key not in stops:
                    setattr(cfg, key, 0 if key != "time_budget" else 0.0)
        cfg.validate()
    spec = _corpus_spec(corpus, dataset, dataset_config, split, text_field, data_files, streaming, val_fraction)
    from .progress import console
    from .train import train as run_training

    log = (lambda msg: None) if quiet else (lambda msg: console.print(msg, highlight=False))
    result = run_training(cfg, spec, name=name, resume=resume, device=device, runs_dir=runs_dir,
                          progress=not quiet, log=log, stop_overrides=stops)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return
    out = _out()
    loss = f"{result.train_loss:.3f}" if result.train_loss is not None else "-"
    if result.loss_kind == "sampled":
        loss += " (sampled-softmax estimate)"
    val = f"{result.val_loss:.3f}" if result.val_loss is not None else "-"
    out.print(f"[bold green]done[/]: {result.step:,} steps, {result.tokens:,} tokens in {result.seconds:.1f} s "
              f"({result.tokens_per_second:,.0f} tokens/s); train loss {loss}, val loss {val} (full softmax)")
    out.print(f"run: {result.run}   try: embcli neighbors cat --run {result.run}")


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

    spec = _corpus_spec(corpus, dataset, dataset_config, split, text_field, data_files, streaming, val_fraction)
    prepared = do_prepare(spec, force=force, progress=not json_out)
    m = prepared.manifest
    if json_out:
        print(json.dumps(dict(m, path=str(prepared.path)), indent=2))
        return
    _out().print(f"{m['description']}: {m['bytes']:,} bytes, {m['documents']:,} documents → "
                 f"{m['tokens']['train']:,} training + {m['tokens']['val']:,} validation tokens, "
                 f"{m['distinct_train_ids']:,} distinct ids\ncached at {prepared.path}")


@app.command()
@handle_errors
def runs(runs_dir: Optional[Path] = typer.Option(None, "--runs-dir"), json_out: bool = JsonOpt):
    """List the runs under ./runs, newest last."""
    from .checkpoint import list_runs, read_meta, runs_root

    found = list_runs(runs_dir)
    rows = []
    for run in found:
        meta = read_meta(run)
        rows.append({"run": run.name, "path": str(run), "status": meta.get("status"), "step": meta.get("step"),
                     "tokens": meta.get("tokens_seen"), "train_loss": meta.get("train_loss"),
                     "val_loss": meta.get("val_loss"), "parameters": (meta.get("model") or {}).get("parameters"),
                     "corpus": (meta.get("corpus") or {}).get("description", "")})
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        _out().print(f"no runs under {runs_dir or runs_root()}/ — start one with: embcli train")
        return
    from rich.table import Table

    table = Table("run", "status", "step", "tokens", "train loss", "val loss", "params", "corpus")
    fmt = lambda x: f"{x:.3f}" if isinstance(x, float) else "-"  # noqa: E731
    for r in rows:
        table.add_row(r["run"], r["status"] or "?", f"{r['step'] or 0:,}", f"{r['tokens'] or 0:,}", fmt(r["train_loss"]),
                      fmt(r["val_loss"]), f"{r['parameters'] or 0:,}", r["corpus"][:40])
    _out().print(table)


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------


def _space(run, step, min_count):
    from .space import EmbeddingSpace

    return EmbeddingSpace.from_run(run, step, min_count=min_count)


def _resolve_all(space, words, exact, combine):
    if combine not in (None, "mean"):
        raise EmbcliError(f"--combine takes 'mean' (got {combine!r})")
    return [space.resolve(w, exact=exact, combine=combine) for w in words]


def _describe(r) -> str:
    ids = ", ".join(str(i) for i in r.ids)
    return f"{r.text!r} → {' + '.join(r.pieces)} ({ids}; {r.how})"


def _excluded_note(space) -> str | None:
    n = space.excluded_count()
    if not n:
        return None
    seen = "never seen in training" if space.min_count == 1 else f"seen fewer than {space.min_count} times in training"
    return f"{n:,} rows {seen} left out: they are still mostly their random start (--min-count 0 keeps them)"


def _neighbor_table(title, neighbors):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("id", justify="right")
    table.add_column("token")
    table.add_column("cosine", justify="right")
    table.add_column("count", justify="right")
    for n in neighbors:
        table.add_row(str(n.rank), str(n.id), n.token, f"{n.similarity:.4f}", "?" if n.count is None else f"{n.count:,}")
    return table


def show_neighbors(space, words, top, exact, combine, json_out, out=None):
    out = out or _out()
    resolved = _resolve_all(space, words, exact, combine)
    results = [(r, space.most_similar([r], topn=top)) for r in resolved]
    if json_out:
        print(json.dumps([{"query": r.text, "ids": r.ids, "how": r.how, "neighbors": [n.as_dict() for n in ns]}
                          for r, ns in results], indent=2))
        return
    for r, ns in results:
        out.print(_neighbor_table(_describe(r), ns))
    note = _excluded_note(space)
    if note:
        out.print(f"[dim]{note}[/]")


@app.command()
@handle_errors
def neighbors(words: List[str] = typer.Argument(..., help="Words or tokens."), run: Optional[str] = RunOpt,
              step: Optional[int] = StepOpt, top: int = TopOpt, min_count: int = MinCountOpt, exact: bool = ExactOpt,
              combine: Optional[str] = CombineOpt, json_out: bool = JsonOpt):
    """Nearest neighbours by cosine similarity, like gensim's most_similar or fastText's nn."""
    show_neighbors(_space(run, step, min_count), words, top, exact, combine, json_out)


def show_analogy(space, a, b, c, top, method, exact, combine, json_out, out=None):
    out = out or _out()
    ra, rb, rc = _resolve_all(space, [a, b, c], exact, combine)
    answers = space.analogy(ra, rb, rc, topn=top, method=method)
    if json_out:
        print(json.dumps({"a": ra.ids, "b": rb.ids, "c": rc.ids, "method": method,
                          "answers": [n.as_dict() for n in answers]}, indent=2))
        return
    title = f"{a} − {b} + {c}  ({'3CosAdd' if method == 'add' else '3CosMul'})"
    out.print(_neighbor_table(title, answers))
    out.print(f"[dim]{'; '.join(_describe(r) for r in (ra, rb, rc))}[/]")
    note = _excluded_note(space)
    if note:
        out.print(f"[dim]{note}[/]")


@app.command()
@handle_errors
def analogy(a: str = typer.Argument(..., help="A, as in A − B + C (king)"), b: str = typer.Argument(..., help="B (man)"),
            c: str = typer.Argument(..., help="C (woman)"), run: Optional[str] = RunOpt, step: Optional[int] = StepOpt,
            top: int = TopOpt, method: str = typer.Option("add", "--method", help="add (3CosAdd) or mul (3CosMul)."),
            min_count: int = MinCountOpt, exact: bool = ExactOpt, combine: Optional[str] = CombineOpt,
            json_out: bool = JsonOpt):
    """A − B + C: 'king man woman' should give queen. Answers exclude A, B and C."""
    if method not in ("add", "mul"):
        raise EmbcliError(f"--method takes add or mul (got {method!r})")
    show_analogy(_space(run, step, min_count), a, b, c, top, method, exact, combine, json_out)


def show_similarity(space, w1, w2, exact, combine, json_out, out=None):
    r1, r2 = _resolve_all(space, [w1, w2], exact, combine)
    sim = space.similarity(r1, r2)
    if json_out:
        print(json.dumps({"a": r1.ids, "b": r2.ids, "similarity": sim}))
        return
    (out or _out()).print(f"cosine({_describe(r1)}, {_describe(r2)}) = [bold]{sim:.4f}[/]")


@app.command()
@handle_errors
def similarity(w1: str, w2: str, run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, exact: bool = ExactOpt,
               combine: Optional[str] = CombineOpt, json_out: bool = JsonOpt):
    """Cosine similarity of two words."""
    show_similarity(_space(run, step, 0), w1, w2, exact, combine, json_out)


def show_odd_one_out(space, words, exact, combine, json_out, out=None):
    resolved = _resolve_all(space, words, exact, combine)
    odd, ranked = space.doesnt_match(resolved)
    if json_out:
        print(json.dumps({"odd_one_out": odd.text, "scores": [{"word": r.text, "cosine_to_mean": s} for s, r in ranked]},
                         indent=2))
        return
    out = out or _out()
    out.print(f"odd one out: [bold]{odd.text}[/]")
    for s, r in ranked:
        out.print(f"  {r.text:<16} {s:.4f}  cosine to the mean")


@app.command("odd-one-out")
@handle_errors
def odd_one_out(words: List[str] = typer.Argument(..., help="Two or more words."), run: Optional[str] = RunOpt,
                step: Optional[int] = StepOpt, exact: bool = ExactOpt, combine: Optional[str] = CombineOpt,
                json_out: bool = JsonOpt):
    """Which word doesn't belong (gensim's doesnt_match)."""
    show_odd_one_out(_space(run, step, 0), words, exact, combine, json_out)


@app.command()
@handle_errors
def tokenize(text: str = typer.Argument(..., help="Text to split into GPT-2 tokens."), json_out: bool = JsonOpt):
    """Text → GPT-2 token ids and pieces ("The cat" → 464, 3797)."""
    show_tokenize(text, json_out)


def show_tokenize(text, json_out, out=None):
    from .tokenizer import encode, show_token

    ids = encode(text)
    if json_out:
        print(json.dumps({"text": text, "ids": ids, "pieces": [show_token(i) for i in ids]}))
        return
    out = out or _out()
    out.print(f"{len(ids)} token{'s' if len(ids) != 1 else ''}: " + "  ".join(f"[cyan]{show_token(i)}[/]({i})" for i in ids))


# ---------------------------------------------------------------------------------------------
# inspect
# ---------------------------------------------------------------------------------------------

SPARK = "▁▂▃▄▅▆▇█"


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


def show_row(space, token_id, top, json_out, how: str | None = None, out=None):
    import numpy as np

    stats = space.row_stats(token_id)
    row = np.asarray(space.vectors[token_id], dtype=np.float32)
    from .space import Resolved

    neighbors = space.most_similar([Resolved(str(token_id), [token_id], "id")], topn=top)
    if json_out:
        print(json.dumps(dict(stats, values=row.tolist(), neighbors=[n.as_dict() for n in neighbors]), indent=2))
        return
    out = out or _out()
    count = "unknown" if stats["count"] is None else f"{stats['count']:,}"
    out.print(f"row [bold]{token_id}[/] = [cyan]{stats['token']}[/]" + (f"  ({how})" if how else "")
              + f"   seen {count} times in training" + ("  [yellow](untrained: still noise)[/]" if stats["count"] == 0 else ""))
    out.print(f"norm {stats['norm']:.4f}   mean {stats['mean']:+.4f}   std {stats['std']:.4f}   "
              f"min {stats['min']:+.4f}   max {stats['max']:+.4f}   dim {stats['dim']}")
    out.print("first values: " + ", ".join(f"{x:+.4f}" for x in row[:8]) + (" ..." if len(row) > 8 else ""))
    width = 64
    out.print("all values (sparkline, low ▁ … █ high):")
    for i in range(0, len(row), width):
        out.print(f"  {i:>4} {sparkline(row[i:i + width]) if row.max() > row.min() else ''}")
    if out.color_system is not None:  # without colour every cell would be the same block
        out.print("heat strip (blue < 0 < red):")
        for i in range(0, len(row), width):
            out.print(f"  {i:>4} {heat_strip(row[i:i + width])}")
    out.print(_neighbor_table("nearest neighbours", neighbors))


@inspect_app.command("row", context_settings={"ignore_unknown_options": True})  # so "-1" reaches parse_row
@handle_errors
def inspect_row(row: str = typer.Argument(..., help="Row number = token id (3797 is ' cat')."), run: Optional[str] = RunOpt,
                step: Optional[int] = StepOpt, top: int = TopOpt, json_out: bool = JsonOpt):
    """One row of the table: its token, count, statistics, values and neighbours."""
    from .space import parse_row

    token_id = parse_row(row)
    show_row(_space(run, step, 1), token_id, top, json_out)


@inspect_app.command("token")
@handle_errors
def inspect_token(word: str, run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, top: int = TopOpt,
                  exact: bool = ExactOpt, json_out: bool = JsonOpt):
    """The same as 'inspect row', by word."""
    space = _space(run, step, 1)
    r = space.resolve(word, exact=exact)
    show_row(space, r.ids[0], top, json_out, how=_describe(r))


@inspect_app.command("table")
@handle_errors
def inspect_table(run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, json_out: bool = JsonOpt):
    """The whole table: shape, size, share of the model, tying, row norms, rows training touched."""
    from .checkpoint import read_meta

    space = _space(run, step, 1)
    meta = read_meta(Path(space.source))
    stats = space.table_stats(meta.get("model"))
    if json_out:
        print(json.dumps(stats, indent=2))
        return
    out = _out()
    out.print(f"table of {space.source}" + (f" at step {space.step}" if space.step is not None else ""))
    out.print(f"shape {stats['rows']:,} × {stats['dim']} = {stats['parameters']:,} parameters, {stats['dtype']}, "
              f"{stats['bytes'] / 2**20:.1f} MiB")
    if stats.get("model_parameters"):
        out.print(f"share of the model: {stats['share_of_model']:.1%} of {stats['model_parameters']:,} parameters; "
                  f"{'tied to the output layer' if stats.get('tied') else 'not tied'}")
    p = stats["norm_percentiles"]
    out.print("row norms: " + "  ".join(f"p{k} {v:.3f}" for k, v in p.items()))
    if "rows_trained" in stats:
        out.print(f"rows whose token occurred in training: {stats['rows_trained']:,}; never occurred: "
                  f"{stats['rows_untrained']:,}")
        if "median_norm_trained" in stats:
            out.print(f"median norm: trained rows {stats['median_norm_trained']:.3f}, untrained "
                      f"{stats['median_norm_untrained']:.3f}")


@inspect_app.command("model")
@handle_errors
def inspect_model(run: Optional[str] = RunOpt, config: Optional[str] = typer.Option(
        None, "--config", "-c", help="Describe a config instead of a run."),
        set_: Optional[List[str]] = typer.Option(None, "--set", "-s"), json_out: bool = JsonOpt):
    """Parameters of a run's model (or of a config) and the token table's share of them."""
    if config:
        from .config import load_config

        cfg = load_config(config, set_)
        info, shape = cfg.parameter_count(), cfg.to_dict()
        source = f"config {config}"
    else:
        from .checkpoint import CONFIG, find_run, read_meta

        run_dir = find_run(run)
        info = read_meta(run_dir).get("model") or {}
        shape = json.loads((run_dir / CONFIG).read_text()) if (run_dir / CONFIG).is_file() else {}
        source = str(run_dir)
    if json_out:
        print(json.dumps(dict(info, config={k: shape.get(k) for k in ("n_layer", "n_head", "n_embd", "block_size")}), indent=2))
        return
    out = _out()
    out.print(f"{source}: {shape.get('n_layer')} layers, {shape.get('n_head')} heads, d {shape.get('n_embd')}, "
              f"context {shape.get('block_size')}")
    out.print(f"{info['parameters']:,} parameters; token table {info['rows']:,} × {info['dim']} = "
              f"{info['table_parameters']:,} ({info['table_share']:.1%}), "
              f"{'tied: the same matrix is the output layer' if info.get('tied') else 'untied'}")


# ---------------------------------------------------------------------------------------------
# eval, export, import-hf
# ---------------------------------------------------------------------------------------------


def _fmt_score(value: float, used: int, total: int) -> str:
    import math

    shown = "n/a" if math.isnan(value) else f"{value:.3f}"
    return f"{shown}  ({used:,}/{total:,} = {used / total:.0%})" if total else shown


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
    from .evaluate import evaluate_analogies, evaluate_pairs

    if baseline not in (None, "word2vec"):
        raise EmbcliError(f"--baseline takes 'word2vec' (got {baseline!r})")
    space = _space(run, step, min_count)
    tables = [("embcli", space, None)]
    if baseline:
        tables.append(_word2vec_space(space, min_count))
    results = {}
    for name, sp, info in tables:
        ws, an = evaluate_pairs(sp, pairs), evaluate_analogies(sp, analogies)
        results[name] = {"wordsim_spearman": ws.spearman, "wordsim_pearson": ws.pearson, "pairs_used": ws.used,
                         "pairs_total": ws.total, "pairs_malformed": ws.malformed, "analogy_accuracy": an.accuracy,
                         "analogies_correct": an.correct, "analogies_used": an.used, "analogies_total": an.total,
                         "analogies_malformed": an.malformed, "sections": an.sections, **(info or {})}
    if json_out:
        print(json.dumps(results, indent=2, default=str))
        return
    from rich.table import Table

    out = _out()
    table = Table(title=f"evaluation of {space.source}" + (f" at step {space.step}" if space.step is not None else ""),
                  title_justify="left")
    table.add_column("")
    for name in results:
        table.add_column(name)
    table.add_row("WordSim353 Spearman ρ (pairs used)",
                  *[_fmt_score(r["wordsim_spearman"], r["pairs_used"], r["pairs_total"]) for r in results.values()])
    table.add_row("Google analogies accuracy (questions used)",
                  *[_fmt_score(r["analogy_accuracy"], r["analogies_used"], r["analogies_total"]) for r in results.values()])
    if sections:
        for i, sec in enumerate(results["embcli"]["sections"]):
            cells = []
            for r in results.values():
                s = r["sections"][i]
                cells.append(_fmt_score(s["correct"] / s["used"] if s["used"] else float("nan"), s["used"], s["total"]))
            table.add_row(f"  {sec['section']}", *cells)
    if baseline:
        table.add_row("training", "transformer LM (see embcli runs)", results["word2vec"]["settings"] +
                      f"; {results['word2vec']['seconds']:.1f} s")
    out.print(table)
    first = results["embcli"]
    malformed = first["pairs_malformed"] + first["analogies_malformed"]
    out.print("[dim]a pair or question counts only when each word is one GPT-2 token that training saw"
              + (f"; {malformed} malformed lines skipped" if malformed else "") + "[/]")


def _word2vec_space(space, min_count):
    from .baseline import Word2VecSettings, train_word2vec
    from .checkpoint import read_meta
    from .data import open_prepared
    from .progress import console
    from .space import EmbeddingSpace

    meta = read_meta(Path(space.source))
    if "corpus_path" not in meta:
        raise EmbcliError(f"{space.source} has no corpus to train a baseline on (imported runs have none)")
    corpus = open_prepared(Path(meta["corpus_path"]))
    settings = Word2VecSettings(vector_size=space.vectors.shape[1])
    with console.status(f"training gensim Word2Vec on the same {corpus.train_tokens:,} GPT-2 tokens "
                        f"({settings.describe()})"):
        table, seconds = train_word2vec(corpus.split("train"), settings)
    baseline = EmbeddingSpace(table, space.counts, min_count=min_count, vocab=space.vocab, source="word2vec")
    return "word2vec", baseline, {"settings": settings.describe(), "seconds": round(seconds, 2)}


@app.command()
@handle_errors
def export(fmt: str = typer.Option(..., "--format", "-f", help="word2vec, word2vec-bin, projector, npy, safetensors."),
           output: Path = typer.Option(..., "--output", "-o", help="Output file (a folder for projector)."),
           run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, min_count: int = MinCountOpt,
           top: Optional[int] = typer.Option(None, "--top", min=1, help="Only the N most frequent tokens.")):
    """Write the table for gensim, TensorBoard's projector, numpy or safetensors."""
    from .export import FORMATS
    from .export import export as do_export

    if fmt not in FORMATS:
        raise EmbcliError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
    info = do_export(_space(run, step, min_count), fmt, output, min_count=min_count, top=top)
    _out().print(f"wrote {info['rows']:,} rows × {info['dim']} ({info['format']}): {', '.join(info['files'])}")


@app.command("import-hf")
@handle_errors
def import_hf(source: str = typer.Argument(..., help="A local GPT2LMHeadModel folder, or a hub name when online."),
              name: Optional[str] = typer.Option(None, "--name", "-n", help="Run name (default: the folder name)."),
              runs_dir: Optional[Path] = typer.Option(None, "--runs-dir")):
    """Turn a Hugging Face GPT-2 checkpoint into a run, so the real GPT-2 table can be queried."""
    from .export import import_hf as do_import

    run = do_import(source, name, runs_dir)
    _out().print(f"imported {source} → {run} (token counts unknown: queries use every row)\n"
                 f"try: embcli neighbors cat --run {run}")


# ---------------------------------------------------------------------------------------------
# pictures
# ---------------------------------------------------------------------------------------------

plot_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Pictures (PNG, SVG or PDF; GIF for plot words over training) of a table or a run.")
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
               min_count: int = MinCountOpt, exact: bool = ExactOpt):
    """A 2-D PCA map of chosen tokens (cat dog king queen man woman ...), labelled; --steps: over training."""
    from .plots import check_output, word_groups

    over_training = steps or Path(output).suffix.lower() == ".gif"
    check_output(output, gif=over_training)
    if step and len(step) > 1 and not over_training:
        raise EmbcliError("several --step values need --steps (small multiples) or a .gif output")
    groups = word_groups(words)
    flat = [w for g in groups for w in g]
    group_of = [k for k, g in enumerate(groups) for _ in g]
    grouped = any(len(g) > 1 for g in groups)
    group_words = groups if grouped else None
    if over_training:
        from .checkpoint import find_run
        from .plots import plot_words_over_training

        space = _space(run, None, min_count)
        resolved = _resolve_all(space, flat, exact, None)
        path = plot_words_over_training(space, find_run(run), resolved, neighbors, output, steps=step or None,
                                        groups=group_of, group_words=group_words)
    else:
        from .plots import plot_words as draw

        space = _space(run, step[0] if step else None, min_count)
        resolved = _resolve_all(space, flat, exact, None)
        path = draw(space, resolved, neighbors, output, groups=group_of, group_words=group_words)
    _out().print(f"wrote {path}")


@plot_app.command("loss")
@handle_errors
def plot_loss(run: Optional[str] = typer.Argument(None, help="Run (default: the newest)."), output: Path = OutOpt):
    """Training and validation loss against tokens seen."""
    from .checkpoint import find_run, read_meta
    from .plots import plot_loss as draw

    run_dir = find_run(run)
    _out().print(f"wrote {draw(read_meta(run_dir), output, run_dir.name)}")


@app.command()
@handle_errors
def trace(word: str = typer.Argument(..., help="The word to follow through training."), run: Optional[str] = RunOpt,
          top: int = typer.Option(5, "--top", "-k", min=1), with_: Optional[List[str]] = typer.Option(
              None, "--with", help="Words whose similarity to WORD the picture follows (default: final top 3)."),
          output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also draw a picture (.png, .svg, .pdf)."),
          min_count: int = MinCountOpt, json_out: bool = JsonOpt):
    """WORD's nearest neighbours at every snapshot, from step 0 (noise) to the end."""
    from .checkpoint import find_run, list_snapshots
    from .space import EmbeddingSpace

    run_dir = find_run(run)
    snaps = list_snapshots(run_dir)
    if not snaps:
        raise EmbcliError(f"{run_dir} has no table snapshots (train with snapshots = true)")
    rows, series = [], {}
    final = EmbeddingSpace.from_run(run_dir, snaps[-1][0], min_count=min_count)
    target = final.resolve(word)
    others = [final.resolve(w) for w in with_] if with_ else \
        [final.resolve(n.token.replace("␣", " "), exact=True) for n in final.most_similar([target], topn=3)]
    for step_no, _ in snaps:
        space = EmbeddingSpace.from_run(run_dir, step_no, min_count=min_count, vocab=final.vocab)
        ns = space.most_similar([target], topn=top)
        rows.append({"step": step_no, "neighbors": [n.as_dict() for n in ns]})
        for o in others:
            series.setdefault(final.vocab.show(o.ids[0]), []).append(space.similarity(target, o))
    if json_out:
        print(json.dumps({"word": word, "id": target.ids, "snapshots": rows,
                          "similarity": {k: v for k, v in series.items()}}, indent=2))
    else:
        from rich.table import Table

        table = Table(title=f"{_describe(target)}: nearest neighbours over training", title_justify="left")
        table.add_column("step", justify="right")
        for k in range(top):
            table.add_column(f"#{k + 1}")
        for r in rows:
            table.add_row(f"{r['step']:,}", *[f"{n['token']} {n['similarity']:.2f}" for n in r["neighbors"]])
        out = _out()
        out.print(table)
        out.print("cosine over training: " + "; ".join(f"{word}–{k}: " + " → ".join(f"{x:.2f}" for x in v)
                                                      for k, v in series.items()))
    if output:
        from .plots import plot_trace

        path = plot_trace([s for s, _ in snaps], series, word, output)
        if not json_out:
            _out().print(f"wrote {path}")


# ---------------------------------------------------------------------------------------------
# explore: one self-contained page of the table at every snapshot (library: embcli/explore.py)
# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def explore(run: Optional[str] = RunOpt,
            output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                  help="HTML file to write (default: explore-<run>.html)."),
            tokens: int = typer.Option(3000, "--tokens", "-n", help="How many of the most frequent tokens (≤ 20000)."),
            min_count: int = typer.Option(1, "--min-count", help="Leave out tokens seen fewer times in training "
                                          "(the page never shows a token training did not see)."),
            open_: bool = typer.Option(False, "--open", help="Open the page in a web browser.")):
    """One HTML page: the table at every snapshot on one map, with search, neighbours and analogies."""
    from .explore import describe
    from .explore import explore as build

    info = build(run, output, tokens=tokens, min_count=min_count)
    _out().print(describe(info), soft_wrap=True)
    if open_:
        import webbrowser

        webbrowser.open(Path(info["path"]).resolve().as_uri())


# ---------------------------------------------------------------------------------------------
# shell
# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def shell(run: Optional[str] = RunOpt, step: Optional[int] = StepOpt, top: int = TopOpt, min_count: int = MinCountOpt):
    """An interactive prompt that keeps the table loaded (word2vec's distance, fastText's nn)."""
    from .shell import run_shell

    run_shell(_space(run, step, min_count), top)


def main() -> None:
    app(prog_name="embcli")


if __name__ == "__main__":
    main()
