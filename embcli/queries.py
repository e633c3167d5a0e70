"""Every question the query verbs ask, as a library: plain functions that return result records.

The CLI (``cli.py``) and the shell (``shell.py``) parse what a person typed, call one function
here and hand its result to ``render.py``. Nothing here prints, and nothing here imports torch:
a cold ``embcli neighbors`` starts in a fraction of a second, and an explorer page or a notebook
can call these functions and read the records (``to_json()`` gives the plain data).

``EmbeddingSpace`` (space.py) owns the vectors and the formulas; this module adds what a verb
needs around them — resolving several words at once, the rows left out, the snapshots of a run,
the run's own description — and names the answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np

from .directions import Concept, Direction, load_concepts, probe
from .errors import EmbcliError, SeveralTokens
from .evaluate import AnalogyScore, PairScore
from .runs import (
    CONFIG,
    TABLE,
    checkpoint_dir,
    find_run,
    list_runs,
    list_snapshots,
    live_status,
    metrics_history,
    read_meta,
    read_metrics,
    runs_root,
)
from .space import DEFAULT_MIN_COUNT, EmbeddingSpace, Neighbor, Resolved
from .tokenizer import token_json

# ---------------------------------------------------------------------------------------------
# A run's description, as the query side reads it
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """What the query verbs need from a run's meta.json: read in :func:`run_facts` and nowhere
    else on the query side, so a change to that file's format touches one function here."""

    path: Path
    status: str | None
    source: str | None  # an imported run: the model its table came from
    step: int | None
    tokens_seen: int | None
    seconds: float | None  # training time summed over sessions; None for imported runs (and very old ones)
    train_loss: float | None
    val_loss: float | None
    model: dict  # parameters, table_parameters, table_share, rows, dim, tied
    corpus_description: str  # "" for imported runs
    corpus_path: Path | None  # the prepared corpus the run trained on; None for imported runs
    loss_kind: str | None  # "sampled": train losses are the sampled-softmax estimate
    history: dict  # {"train": [[step, tokens, loss], ...], "val": [...]}


@dataclass(frozen=True)
class AnsweredBy:
    """Which run and step answered: every answer names it (a dim line under text, ``"run"`` in JSON).

    ``step`` is the step of the table the answer read (a snapshot's, or the final table's); None
    when the run has no training step (an imported model).
    """

    name: str
    path: str
    step: int | None

    @classmethod
    def of_run(cls, run_dir: Path | str, step: int | None) -> AnsweredBy:
        return cls(Path(run_dir).name, str(run_dir), step)

    @classmethod
    def of_space(cls, space: EmbeddingSpace) -> AnsweredBy | None:
        """The run a loaded table came from; None for a table that is no run's (a baseline, a test's)."""
        if not space.source or not Path(space.source).is_dir():
            return None
        return cls.of_run(space.source, space.step)

    def to_json(self) -> dict:
        return {"name": self.name, "path": self.path, "step": self.step}

    def describe(self) -> str:
        """``from run1 at step 1,000 (runs/run1)``: the line under a text answer."""
        at = f" at step {self.step:,}" if self.step is not None else ""
        return f"from {self.name}{at} ({self.path})"


def run_facts(run_dir: Path) -> RunFacts:
    meta = read_meta(run_dir)
    corpus_path = meta.get("corpus_path")
    return RunFacts(path=run_dir, status=live_status(run_dir, meta.get("status")), source=meta.get("source"),
                    step=meta.get("step"),
                    tokens_seen=meta.get("tokens_seen"), seconds=meta.get("seconds"),
                    train_loss=meta.get("train_loss"),
                    val_loss=meta.get("val_loss"), model=meta.get("model") or {},
                    corpus_description=(meta.get("corpus") or {}).get("description", ""),
                    corpus_path=Path(corpus_path) if corpus_path else None, loss_kind=meta.get("loss"),
                    history=meta.get("history") or {})


@dataclass(frozen=True)
class TrainingTime:
    """How long a run had trained when its table was at a step, and where that figure was read."""

    seconds: float
    source: str  # e.g. "meta.json: training time summed over sessions"


def training_time(run_dir: Path, step: int | None) -> TrainingTime | None:
    """The training seconds behind the run's table at ``step`` (None: its final table).

    The final table's is meta.json's ``seconds`` (summed over sessions); a snapshot's is
    metrics.jsonl's ``elapsed_s`` at that step, or at the nearest record before it (the source
    says so); step 0 is 0 s. None when the run has no time (an imported run, or one made before
    embcli recorded it).
    """
    facts = run_facts(run_dir)
    if step == 0:
        return TrainingTime(0.0, "step 0: the table before any training")
    if (step is None or step == facts.step) and isinstance(facts.seconds, (int, float)):
        return TrainingTime(float(facts.seconds), "meta.json: the run's training time, summed over sessions")
    if step is None:
        step = facts.step
    if step is None:
        return None
    timed = [r for r in read_metrics(run_dir) if r["step"] <= step and isinstance(r.get("elapsed_s"), (int, float))
             and not isinstance(r.get("elapsed_s"), bool)]
    if not timed:
        return None
    last = timed[-1]
    if last["step"] == step:
        return TrainingTime(float(last["elapsed_s"]), f"metrics.jsonl: elapsed_s at step {step:,}")
    return TrainingTime(float(last["elapsed_s"]), f"metrics.jsonl: no record at step {step:,}, so the nearest "
                                                  f"before it, step {last['step']:,}")


def loss_history(run_dir: Path) -> dict:
    """A run's losses, {"train"|"val": [[step, tokens, loss], ...]}: from metrics.jsonl, the training
    log, or for a run made before it existed, from meta.json's history."""
    return metrics_history(run_dir) or run_facts(run_dir).history


def model_shape(run_dir: Path) -> dict:
    """The run's config.json (n_layer, n_head, n_embd, block_size, ...); {} when it has none."""
    path = run_dir / CONFIG
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise EmbcliError(f"{path} is damaged (not valid JSON)") from None


def open_space(run: str | Path | None, step: int | None = None, min_count: int = 1,
               runs_dir: Path | None = None) -> EmbeddingSpace:
    """The table of a run (the newest under ``runs_dir`` when ``run`` is None), final or at a snapshot step."""
    return EmbeddingSpace.from_run(run, step, min_count=min_count, root=runs_dir)


# ---------------------------------------------------------------------------------------------
# Words → ids, and the rows answers leave out
# ---------------------------------------------------------------------------------------------

COMBINE = (None, "mean")


def resolve_all(space: EmbeddingSpace, words: list[str], exact: bool = False,
                combine: str | None = None) -> list[Resolved]:
    """Each typed word as token ids (see :meth:`EmbeddingSpace.resolve`); ``combine`` checked once."""
    if combine not in COMBINE:
        raise EmbcliError(f"--combine takes 'mean' (got {combine!r})")
    return [space.resolve(w, exact=exact, combine=combine) for w in words]


def word_json(r: Resolved) -> dict:
    """A typed word in JSON answers: as typed, how it was read, and the tokens it became."""
    return {"text": r.text, "how": r.how, "why": r.why, "tokens": [token_json(i) for i in r.ids]}


@dataclass(frozen=True)
class LeftOut:
    """Rows no answer may contain: trained fewer than ``min_count`` times, so still mostly noise."""

    rows: int
    min_count: int
    unseen: int  # of those rows, the ones training never saw (the rest were seen 1 to min_count − 1 times)

    @staticmethod
    def json_of(left: LeftOut | None) -> dict | None:
        return {"rows": left.rows, "min_count": left.min_count, "unseen": left.unseen} if left else None


def left_out(space: EmbeddingSpace) -> LeftOut | None:
    n = space.excluded_count()
    return LeftOut(n, space.min_count, int((space.counts == 0).sum())) if n else None


# ---------------------------------------------------------------------------------------------
# Similarity queries
# ---------------------------------------------------------------------------------------------


@dataclass
class WordNeighbors:
    query: Resolved
    neighbors: list[Neighbor]


@dataclass
class NeighborsResult:
    words: list[WordNeighbors]
    left_out: LeftOut | None

    def to_json(self) -> dict:
        return {"words": [{"query": word_json(w.query), "neighbors": [n.as_dict() for n in w.neighbors]}
                          for w in self.words],
                "left_out": LeftOut.json_of(self.left_out)}


def neighbors(space: EmbeddingSpace, words: list[str], top: int = 10, *, exact: bool = False,
              combine: str | None = None) -> NeighborsResult:
    """Each word's nearest rows by cosine (gensim's most_similar, fastText's nn)."""
    found = [WordNeighbors(r, space.most_similar([r], topn=top)) for r in resolve_all(space, words, exact, combine)]
    return NeighborsResult(found, left_out(space))


@dataclass
class AnalogyResult:
    a: Resolved
    b: Resolved
    c: Resolved
    method: str  # "add" (3CosAdd) or "mul" (3CosMul)
    answers: list[Neighbor]
    left_out: LeftOut | None

    def to_json(self) -> dict:
        return {"a": word_json(self.a), "b": word_json(self.b), "c": word_json(self.c), "method": self.method,
                "answers": [n.as_dict() for n in self.answers], "left_out": LeftOut.json_of(self.left_out)}


def analogy(space: EmbeddingSpace, a: str, b: str, c: str, top: int = 10, *, method: str = "add",
            exact: bool = False, combine: str | None = None) -> AnalogyResult:
    """a − b + c (king − man + woman → queen); the answers exclude a, b and c."""
    ra, rb, rc = resolve_all(space, [a, b, c], exact, combine)
    answers = space.analogy(ra, rb, rc, topn=top, method=method)  # space.analogy checks the method
    return AnalogyResult(ra, rb, rc, method, answers, left_out(space))


@dataclass
class SimilarityResult:
    a: Resolved
    b: Resolved
    similarity: float

    def to_json(self) -> dict:
        return {"a": word_json(self.a), "b": word_json(self.b), "similarity": self.similarity}


def similarity(space: EmbeddingSpace, w1: str, w2: str, *, exact: bool = False,
               combine: str | None = None) -> SimilarityResult:
    r1, r2 = resolve_all(space, [w1, w2], exact, combine)
    return SimilarityResult(r1, r2, space.similarity(r1, r2))


@dataclass
class OddOneOutResult:
    odd: Resolved
    ranked: list[tuple[float, Resolved]]  # (cosine to the mean, word), most typical first

    def to_json(self) -> dict:
        return {"odd_one_out": word_json(self.odd),
                "scores": [{"word": word_json(r), "cosine_to_mean": s} for s, r in self.ranked]}


def odd_one_out(space: EmbeddingSpace, words: list[str], *, exact: bool = False,
                combine: str | None = None) -> OddOneOutResult:
    """The word farthest from the mean of all (gensim's doesnt_match)."""
    odd, ranked = space.doesnt_match(resolve_all(space, words, exact, combine))
    return OddOneOutResult(odd, ranked)


@dataclass
class TokenizeResult:
    text: str
    ids: list[int]
    pieces: list[str]  # each id's bytes, shown with ␣ for the leading space (tables only)

    def to_json(self) -> dict:
        return {"text": self.text, "tokens": [token_json(i) for i in self.ids]}


def tokenize(text: str) -> TokenizeResult:
    """Text → GPT-2 token ids; needs no run."""
    from .tokenizer import encode, show_token

    ids = encode(text)
    return TokenizeResult(text, ids, [show_token(i) for i in ids])


# ---------------------------------------------------------------------------------------------
# Inspection: one row, the whole table, the model
# ---------------------------------------------------------------------------------------------


@dataclass
class RowResult:
    id: int
    token: str
    count: int | None  # occurrences in training; None when unknown (imported tables)
    norm: float
    mean: float
    std: float
    min: float
    max: float
    dim: int
    values: np.ndarray  # the row itself, float32
    neighbors: list[Neighbor]
    resolved: Resolved | None = None  # set when the row was asked for by word

    def to_json(self) -> dict:
        stats = {k: getattr(self, k) for k in ("count", "norm", "mean", "std", "min", "max", "dim")}
        return dict(token_json(self.id), **stats, values=self.values.tolist(),
                    neighbors=[n.as_dict() for n in self.neighbors],
                    word=word_json(self.resolved) if self.resolved else None)


def inspect_row(space: EmbeddingSpace, token_id: int, top: int = 10, *,
                resolved: Resolved | None = None) -> RowResult:
    """A row's token, training count, statistics, values and nearest neighbours."""
    stats = space.row_stats(token_id)
    values = np.asarray(space.vectors[token_id], dtype=np.float32)
    near = space.most_similar([Resolved(str(token_id), [token_id], "id")], topn=top)
    return RowResult(**stats, values=values, neighbors=near, resolved=resolved)


def inspect_token(space: EmbeddingSpace, word: str, top: int = 10, *, exact: bool = False) -> RowResult:
    """The same as :func:`inspect_row`, for the row a word resolves to."""
    try:
        r = space.resolve(word, exact=exact)
    except SeveralTokens as exc:  # there is nothing to average: a row is one token
        raise exc.advise("a row is one token: inspect row ID shows each piece") from None
    return inspect_row(space, r.ids[0], top, resolved=r)


# inspect table's JSON: every key always there, null where it is unknown (an imported table has no
# training counts; a table without a model record has no share of it)
TABLE_KEYS = ("rows", "dim", "parameters", "dtype", "bytes", "norm_percentiles", "rows_trained", "rows_untrained",
              "median_norm_trained", "median_norm_untrained", "model_parameters", "share_of_model", "tied")


@dataclass
class TableResult:
    source: str
    step: int | None
    stats: dict  # EmbeddingSpace.table_stats: shape, bytes, norm percentiles, trained rows, tying

    def to_json(self) -> dict:
        return {key: self.stats.get(key) for key in TABLE_KEYS}


def inspect_table(space: EmbeddingSpace) -> TableResult:
    """The whole table: shape, size, its share of the model, tying, row norms, rows trained."""
    model = run_facts(Path(space.source)).model
    return TableResult(space.source, space.step, space.table_stats(model))


SHAPE_KEYS = ("n_layer", "n_head", "n_embd", "block_size")


@dataclass
class ModelResult:
    source: str  # the run folder, or "config NAME"
    parameters: dict  # parameters, table_parameters, table_share, rows, dim, tied
    shape: dict  # n_layer, n_head, n_embd, block_size (and for a config, every field)
    answered_by: AnsweredBy | None = None  # the run described; None for a config

    def to_json(self) -> dict:
        return dict(self.parameters, config={k: self.shape.get(k) for k in SHAPE_KEYS},
                    config_name=self.source.removeprefix("config ") if self.answered_by is None else None)


def inspect_model(run: str | None = None, *, config: str | None = None,
                  overrides: list[str] | None = None, runs_dir: Path | None = None) -> ModelResult:
    """A run's model (or, with ``config``, the model a config would build) and the table's share."""
    if config:
        from .config import load_config

        cfg = load_config(config, overrides)
        return ModelResult(f"config {config}", cfg.parameter_count(), cfg.to_dict())
    run_dir = find_run(run, runs_dir)
    facts = run_facts(run_dir)
    return ModelResult(str(run_dir), facts.model, model_shape(run_dir), AnsweredBy.of_run(run_dir, facts.step))


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


@dataclass
class RunRow:
    run: str
    path: str
    status: str | None  # running, finished, interrupted, imported; "damaged" when meta.json cannot be read
    step: int | None
    tokens: int | None
    train_loss: float | None
    val_loss: float | None
    parameters: int | None
    corpus: str
    problem: str | None = None  # why a damaged run's meta.json cannot be read


@dataclass
class RunsResult:
    root: Path  # where the runs were looked for
    runs: list[RunRow]  # oldest first

    def to_json(self) -> dict:
        return {"root": str(self.root), "runs": [asdict(r) for r in self.runs]}


def runs(runs_dir: Path | None = None) -> RunsResult:
    """Every run under ``runs_dir``, oldest first; a run whose meta.json is damaged is listed as such."""
    rows = []
    for run_dir in list_runs(runs_dir):
        try:
            f = run_facts(run_dir)
        except EmbcliError as exc:  # one damaged run hides none of the others
            rows.append(RunRow(run_dir.name, str(run_dir), "damaged", None, None, None, None, None, "", str(exc)))
            continue
        rows.append(RunRow(run_dir.name, str(run_dir), f.status, f.step, f.tokens_seen, f.train_loss, f.val_loss,
                           f.model.get("parameters"), f.corpus_description))
    return RunsResult(runs_dir or runs_root(), rows)


# ---------------------------------------------------------------------------------------------
# Evaluation, optionally against word2vec on the same tokens
# ---------------------------------------------------------------------------------------------

BASELINES = (None, "word2vec")
Busy = Callable[[str], ContextManager]  # shows "working on ..." around a long step (a spinner in the CLI)


def check_baseline(baseline: str | None, epochs: int | None = None, seconds: float | None = None) -> None:
    """The one check of a baseline's name and its training length (the CLI calls it before loading
    the table): ``epochs`` or ``seconds`` (not both) replace the default, the run's own training time."""
    if baseline not in BASELINES:
        raise EmbcliError(f"--baseline takes 'word2vec' (got {baseline!r})")
    if (epochs is not None or seconds is not None) and not baseline:
        raise EmbcliError("--baseline-epochs and --baseline-seconds size the baseline: add --baseline word2vec")
    if epochs is not None and seconds is not None:
        raise EmbcliError("give --baseline-epochs or --baseline-seconds, not both")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise EmbcliError(f"--baseline-epochs must be a whole number ≥ 1 (got {epochs!r})")
    if seconds is not None and not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise EmbcliError(f"--baseline-seconds must be a positive, finite number of seconds (got {seconds!r})")


# The word2vec tables of an evaluation, by key (the JSON's and the column's): the chosen one first —
# equal time (the default), --baseline-seconds or --baseline-epochs — then the 5-epoch reference,
# left out when the chosen table is itself 5 epochs.
EQUAL_TIME, GIVEN_SECONDS, GIVEN_EPOCHS, FIVE_EPOCHS = ("word2vec_equal_time", "word2vec_seconds",
                                                         "word2vec_epochs", "word2vec_5_epochs")


@dataclass
class BaselineInfo:
    settings: str  # gensim's settings, epochs and threads included
    epochs: int
    seconds: float  # gensim's training time (its vocabulary is built once, apart)
    target_seconds: float | None = None  # the time its epochs were chosen to fill; None when epochs were given
    target_from: str | None = None  # where that time came from (meta.json, metrics.jsonl, --baseline-seconds)
    per_epoch_seconds: float | None = None  # measured here (the 5-epoch table's time / 5), that chose the epochs


@dataclass
class TableScores:
    pairs: PairScore
    analogies: AnalogyScore
    baseline: BaselineInfo | None = None  # how the table was trained, when it is a baseline

    def to_json(self) -> dict:
        ws, an = self.pairs, self.analogies
        return {"wordsim_spearman": ws.spearman, "wordsim_pearson": ws.pearson, "pairs_used": ws.used,
                "pairs_total": ws.total, "pairs_malformed": ws.malformed, "analogy_accuracy": an.accuracy,
                "analogies_correct": an.correct, "analogies_used": an.used, "analogies_total": an.total,
                "analogies_malformed": an.malformed, "sections": an.sections,
                **(asdict(self.baseline) if self.baseline else {})}


@dataclass
class EvalResult:
    source: str
    step: int | None
    tables: dict[str, TableScores]  # "embcli" first, then any baseline's tables (the keys above)

    def to_json(self) -> dict:
        return {"tables": {name: scores.to_json() for name, scores in self.tables.items()}}


def evaluate(space: EmbeddingSpace, *, pairs: Path | None = None, analogies: Path | None = None,
             baseline: str | None = None, baseline_epochs: int | None = None,
             baseline_seconds: float | None = None, busy: Busy | None = None) -> EvalResult:
    """WordSim353 (Spearman ρ) and Google analogies (accuracy), with coverage, for the run's table
    and (``baseline="word2vec"``) for gensim Word2Vec trained on the same tokens: for the run's own
    training time by default (:func:`word2vec_spaces`), ``baseline_seconds`` or ``baseline_epochs``
    when given, and for 5 epochs beside it."""
    from .evaluate import evaluate_analogies, evaluate_pairs

    check_baseline(baseline, baseline_epochs, baseline_seconds)
    tables = [("embcli", space, None)]
    if baseline:
        tables += word2vec_spaces(space, busy or (lambda _: contextlib.nullcontext()),
                                  epochs=baseline_epochs, seconds=baseline_seconds)
    return EvalResult(space.source, space.step, {
        name: TableScores(evaluate_pairs(sp, pairs), evaluate_analogies(sp, analogies), info)
        for name, sp, info in tables})


def word2vec_spaces(space: EmbeddingSpace, busy: Busy, *, epochs: int | None = None,
                    seconds: float | None = None) -> list[tuple[str, EmbeddingSpace, BaselineInfo]]:
    """gensim Word2Vec on the run's own training tokens, as wide as the run's table: (key, table, how).

    By default it gets the run's training time at the table's step (:func:`training_time`):
    5 epochs are trained and timed first, and their time per epoch chooses the epochs that fill
    the target (:func:`baseline.choose_epochs`); a fresh table is trained for that many. With
    ``seconds``, that time is the target; with ``epochs``, those epochs. The 5-epoch table comes
    second, unless the chosen table is 5 epochs itself.
    """
    from .baseline import REFERENCE_EPOCHS, Word2VecSettings, Word2VecTrainer, choose_epochs
    from .data import open_prepared

    run_dir = Path(space.source)
    corpus_path = run_facts(run_dir).corpus_path
    if corpus_path is None:
        raise EmbcliError(f"{space.source} has no corpus to train a baseline on (imported runs have none)")
    key, target, target_from = GIVEN_EPOCHS, None, None
    if seconds is not None:
        key, target, target_from = GIVEN_SECONDS, float(seconds), "--baseline-seconds"
    elif epochs is None:
        trained = training_time(run_dir, space.step)
        if trained is None:
            raise EmbcliError(f"{space.source} has no training time to give word2vec (a run made before embcli "
                              "recorded it): choose its length with --baseline-epochs N or --baseline-seconds S")
        key, target, target_from = EQUAL_TIME, trained.seconds, trained.source
    corpus = open_prepared(corpus_path)
    settings = Word2VecSettings(vector_size=space.vectors.shape[1])
    with busy(f"reading the same {corpus.train_tokens:,} GPT-2 tokens into gensim Word2Vec"):
        trainer = Word2VecTrainer(corpus.split("train"), settings)

    def train(n: int, why: str):
        with busy(f"training gensim Word2Vec for {n} epochs{why} "
                  f"({dataclasses.replace(trainer.settings, epochs=n).describe()})"):
            return trainer.train(n)

    reference = None
    if target is None:
        chosen = train(epochs, "")
        info = BaselineInfo(chosen.settings.describe(), epochs, round(chosen.seconds, 2))
    else:
        reference = train(REFERENCE_EPOCHS, ", timing its epochs")
        per_epoch = reference.seconds / REFERENCE_EPOCHS
        n = choose_epochs(target, per_epoch)
        chosen = reference if n == REFERENCE_EPOCHS else train(n, f" (about {n * per_epoch:,.0f} s, to match "
                                                                  f"{target:,.1f} s)")
        info = BaselineInfo(chosen.settings.describe(), n, round(chosen.seconds, 2), round(target, 3), target_from,
                            round(per_epoch, 4))
    found = [(key, chosen, info)]
    if info.epochs != REFERENCE_EPOCHS:
        reference = reference or train(REFERENCE_EPOCHS, " (the reference)")
        found.append((FIVE_EPOCHS, reference, BaselineInfo(reference.settings.describe(), REFERENCE_EPOCHS,
                                                           round(reference.seconds, 2))))
    return [(name, EmbeddingSpace(w.table, space.counts, min_count=space.min_count, vocab=space.vocab,
                                  source="word2vec"), how) for name, w, how in found]


# ---------------------------------------------------------------------------------------------
# Trace: one word through the snapshots of training
# ---------------------------------------------------------------------------------------------


@dataclass
class TraceStep:
    step: int
    neighbors: list[Neighbor]


@dataclass
class TraceResult:
    word: str  # as typed
    target: Resolved
    top: int
    snapshots: list[TraceStep]  # step 0 (the random start) first
    similarity: dict[str, list[float]] = field(default_factory=dict)  # other token (shown) → cosine at each snapshot
    followed: dict[str, int] = field(default_factory=dict)  # the same tokens (shown) → their ids
    answered_by: AnsweredBy | None = None  # the run, at its last snapshot

    @property
    def steps(self) -> list[int]:
        return [s.step for s in self.snapshots]

    def to_json(self) -> dict:
        return {"word": word_json(self.target), "top": self.top,
                "snapshots": [{"step": s.step, "neighbors": [n.as_dict() for n in s.neighbors]}
                              for s in self.snapshots],
                "followed": [dict(token_json(self.followed[shown]), cosine=cosines)
                             for shown, cosines in self.similarity.items()]}


def trace(run: str | Path | None, word: str, top: int = 5, *, others: list[str] | None = None,
          min_count: int = DEFAULT_MIN_COUNT, runs_dir: Path | None = None) -> TraceResult:
    """``word``'s nearest neighbours at every snapshot, and its cosine to ``others`` (default: its
    final top 3) over training. Words are resolved once, in the final table's vocabulary."""
    run_dir = find_run(str(run) if run is not None else None, runs_dir)
    snaps = list_snapshots(run_dir)
    if not snaps:
        raise EmbcliError(f"{run_dir} has no table snapshots (train with snapshots = true)")
    final = EmbeddingSpace.from_run(run_dir, snaps[-1][0], min_count=min_count)
    try:
        target = final.resolve(word)
        followed = [final.resolve(w) for w in others or []]
    except SeveralTokens as exc:
        raise exc.advise("trace follows one token per word: give words that are one GPT-2 token each") from None
    if not others:  # the final neighbours are rows already: follow them by id (the shown "\n" of a newline is no text to type)
        followed = [Resolved(n.token, [n.id], "id") for n in final.most_similar([target], topn=3)]
    result = TraceResult(word, target, top, [], answered_by=AnsweredBy.of_run(run_dir, snaps[-1][0]))
    for step, _ in snaps:
        space = EmbeddingSpace.from_run(run_dir, step, min_count=min_count, vocab=final.vocab)
        result.snapshots.append(TraceStep(step, space.most_similar([target], topn=top)))
        for o in dict.fromkeys(o.ids[0] for o in followed):  # each followed token once
            result.followed[final.vocab.show(o)] = o
            result.similarity.setdefault(final.vocab.show(o), []).append(
                space.similarity(target, Resolved(str(o), [o], "id")))
    return result


# ---------------------------------------------------------------------------------------------
# Predict: the trained model's next token, each score h · a row of the table
# ---------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """One possible next token: its probability under the model, and the score behind it."""

    rank: int
    id: int
    token: str
    probability: float
    logit: float  # the model's own output for this token
    count: int | None  # how often training saw it
    dot: float | None = None  # h · row(id), the row read from embeddings.npy (explain only)
    row_norm: float | None = None  # |row(id)|
    cosine: float | None = None  # cos(h, row): logit = |h| · |row| · cosine


@dataclass
class PredictResult:
    """What the model expects after a prompt."""

    text: str
    run: str
    step: int | None  # the step of the checkpoint the model was loaded from
    ids: list[int]  # the tokens the model read (the prompt's end when it is longer than the context)
    pieces: list[str]
    dropped: int  # tokens cut from the front of a prompt longer than the context
    context: int  # the model's context length (block_size)
    unseen: list[int]  # prompt tokens training never saw: their rows are still near their random start
    candidates: list[Candidate]
    explained: bool = False
    hidden_norm: float | None = None  # |h|, the last position's final hidden state
    max_difference: float | None = None  # largest |logit − h · row| over the candidates
    table_matches: bool | None = None  # is the checkpoint's output layer exactly embeddings.npy?
    table: str = ""  # the embeddings.npy the dot products read
    vocab_size: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def answered_by(self) -> AnsweredBy:
        """The run, at the step of the checkpoint the model was loaded from."""
        return AnsweredBy.of_run(self.run, self.step)

    def to_json(self) -> dict:
        """The envelope's ``run`` names the run and checkpoint step; tokens are real strings with ids."""
        data = asdict(self)
        for key in ("run", "step", "ids", "pieces", "candidates", "unseen"):
            del data[key]
        explained = ("dot", "row_norm", "cosine") if self.explained else ()
        return {"text": self.text, "tokens": [token_json(i) for i in self.ids],
                "unseen": [token_json(i) for i in self.unseen],
                "candidates": [{"rank": c.rank, **token_json(c.id), "probability": c.probability, "logit": c.logit,
                                "count": c.count, **{k: getattr(c, k) for k in explained}}
                               for c in self.candidates],
                **{k: v for k, v in data.items() if k != "text"}}


def prompt_ids(text: str) -> list[int]:
    """A prompt as GPT-2 ids; an empty prompt and text that is not UTF-8 are refused."""
    if not text:
        raise EmbcliError("nothing to predict from: give some text, e.g. embcli predict \"The cat sat on the\"")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes on the command line arrive as lone surrogates
        raise EmbcliError("the prompt is not valid UTF-8 text") from None
    from .tokenizer import encode

    return encode(text)


def _model_context(run_dir: Path) -> int:
    """The run's context length, checking first that the run has a model at all (before torch loads)."""
    facts = run_facts(run_dir)
    if facts.status == "imported":
        raise EmbcliError(f"{run_dir} holds only a table (imported from {facts.source or 'elsewhere'}), "
                          "no model to predict with; predict needs a run trained by embcli")
    try:
        checkpoint_dir(run_dir)
    except EmbcliError:
        raise EmbcliError(f"{run_dir} has no model to predict with: its checkpoint/ folder is missing "
                          "(the table alone answers the other queries)") from None
    context = model_shape(run_dir).get("block_size")
    if not isinstance(context, int) or context < 1:
        raise EmbcliError(f"cannot load the model of {run_dir}: its {CONFIG} has no block_size")
    return context


def predict(run: str | Path | None, text: str, top: int = 10, *, explain: bool = False,
            runs_dir: Path | None = None) -> PredictResult:
    """The trained model's next-token distribution after ``text``: the ``top`` most likely tokens.

    A prompt longer than the model's context keeps its end. ``explain`` adds, for each top token,
    h · row with the row read from the run's ``embeddings.npy`` (the table every query uses), the
    row's norm and its cosine with h: the logit is that dot product (to float32 rounding), since
    the output layer is the table. The model runs in torch (``predict.py``); the rest is numpy.
    """
    from .predict import next_token_scores

    if top < 1:
        raise EmbcliError(f"-k must be at least 1 (got {top})")
    ids = prompt_ids(text)
    run_dir = find_run(str(run) if run is not None else None, runs_dir)
    context = _model_context(run_dir)
    space = EmbeddingSpace.from_run(run_dir, min_count=0)
    dropped = max(0, len(ids) - context)
    used = ids[dropped:]
    unseen = [i for i in used if space.counts is not None and space.counts[i] == 0]
    if space.counts is not None and len(unseen) == len(used):
        shown = " ".join(space.vocab.show(i) for i in used[:8])
        raise EmbcliError(f"none of the prompt's {len(used)} tokens ({shown}) occurred in training: "
                          "their rows are untrained noise, so the model has nothing to predict from")

    scores = next_token_scores(run_dir, used, with_hidden=explain)
    logits = scores.logits.astype(np.float64)
    probs = np.exp(logits - np.logaddexp.reduce(logits))
    k = min(top, len(probs))
    part = np.argpartition(-probs, k - 1)[:k]
    best = part[np.lexsort((part, -probs[part]))]  # most likely first; on a tie, the lower id
    candidates = [Candidate(r + 1, int(i), space.vocab.show(int(i)), float(probs[i]), float(scores.logits[i]),
                            space.count(int(i))) for r, i in enumerate(best)]
    result = PredictResult(text=text, run=str(run_dir), step=scores.step, ids=used,
                           pieces=[space.vocab.show(i) for i in used], dropped=dropped, context=context,
                           unseen=unseen, candidates=candidates, table=str(run_dir / TABLE), vocab_size=len(probs))
    if dropped:
        result.notes.append(f"the prompt is {len(ids)} tokens and the model reads {context}: its last {context} "
                            f"were used, {dropped} cut from the front")
    if unseen:
        result.notes.append(f"{len(unseen)} of the prompt's tokens never occurred in training, so their rows are "
                            "still near their random start: " + " ".join(space.vocab.show(i) for i in unseen[:8]))
    table_step = run_facts(run_dir).step
    if scores.step is not None and table_step is not None and scores.step != table_step:
        result.notes.append(f"the model's checkpoint is from step {scores.step}, the run's table from step {table_step}")
    if explain:
        _explain(result, scores, space)
    return result


def _explain(result: PredictResult, scores, space: EmbeddingSpace) -> None:
    """Recompute each candidate's logit as h · row, the row read from embeddings.npy."""
    h, weight = scores.hidden, scores.output_layer
    table = space.vectors  # embeddings.npy, memory-mapped: the same table the query verbs read
    result.table_matches = weight.shape == table.shape and bool(np.array_equal(weight, table))
    result.explained = True
    result.hidden_norm = float(np.linalg.norm(h))
    diffs = []
    for c in result.candidates:
        row = np.asarray(table[c.id], dtype=np.float32)
        c.dot = float(np.dot(h, row))
        c.row_norm = float(np.linalg.norm(row))
        denominator = result.hidden_norm * c.row_norm
        c.cosine = c.dot / denominator if denominator > 0 else 0.0
        diffs.append(abs(c.dot - c.logit))
    result.max_difference = float(max(diffs)) if diffs else 0.0
    if not result.table_matches:
        result.notes.append(f"the checkpoint's output layer is not exactly {Path(result.table).name} "
                            "(saved at different steps?): the dot products below read the file")


# ---------------------------------------------------------------------------------------------
# Directions: is a concept a direction in the table, and where among the dimensions does it live?
# ---------------------------------------------------------------------------------------------


@dataclass
class DirectionsResult:
    run: str
    step: int | None
    dim: int
    min_count: int  # the rows the ends of each direction are drawn from
    directions: list[Direction]  # see directions.py: accuracy, controls, extremes, placement
    notes: list[str] = field(default_factory=list)

    @property
    def answered_by(self) -> AnsweredBy | None:
        return AnsweredBy.of_run(self.run, self.step) if self.run and Path(self.run).is_dir() else None

    def to_json(self) -> dict:
        """The envelope's ``run`` names the run and step; the ends' tokens are real strings with ids."""
        directions = []
        for d in self.directions:
            item = asdict(d)
            for side in ("positive", "negative"):
                item[side]["tokens"] = [token_json(i) for i in getattr(d, side).ids]
            for end in ("most_positive", "most_negative"):
                item[end] = [{**token_json(e.id), "cosine": e.cosine, "count": e.count} for e in getattr(d, end)]
            directions.append(item)
        return {"dim": self.dim, "min_count": self.min_count, "directions": directions, "notes": self.notes}


def directions(space: EmbeddingSpace, *, positive: list[str] | None = None, negative: list[str] | None = None,
               block: int = 64, top: int = 5) -> DirectionsResult:
    """Probe the built-in concepts (living/non-living, big/small, positive/negative, formal/casual),
    or one made of ``positive`` and ``negative`` words, in ``space`` (directions.py says how).

    The control is the same run's step-0 snapshot (the random start); ``top`` tokens are shown at
    each end of a direction, from the rows ``space`` allows. A user's own words must each be one
    token training saw; a built-in list keeps the words this run saw and says which it left out.
    """
    if block < 1:
        raise EmbcliError(f"--block must be at least 1 (got {block})")
    if (positive is None) != (negative is None):
        raise EmbcliError("give both --pos and --neg words, or neither for the built-in concepts")
    notes = []
    control = None
    try:
        control = EmbeddingSpace.from_run(space.source, 0, min_count=space.min_count, vocab=space.vocab)
    except EmbcliError:
        notes.append("no step-0 snapshot in this run, so no control (train with snapshots = true)")
    own = positive is not None
    concepts = [Concept("your words", "--pos", "--neg", positive, negative)] if own else load_concepts()
    found = []
    for concept in concepts:
        d = probe(space, concept, control=control, strict=own, block=block, n_extremes=top)
        if d is None:
            notes.append(f"{concept.name}: fewer than 2 of its words on a side are tokens this run saw; left out")
            continue
        if min(len(d.positive.ids), len(d.negative.ids)) < 10:
            notes.append(f"{concept.name}: under 10 words a side, so a held-out accuracy moves a lot with each "
                         "word (leaving one out also pulls its side's mean away from it); the chance column says how much")
        for p in (d.positive, d.negative):
            if p.missing:
                notes.append(f"{concept.name}, {p.label}: left out {', '.join(p.missing)}")
        found.append(d)
    return DirectionsResult(space.source, space.step, int(space.vectors.shape[1]), space.min_count, found, notes)


__all__ = [
    "AnalogyResult", "AnsweredBy", "Candidate", "DirectionsResult", "EvalResult", "LeftOut", "ModelResult",
    "NeighborsResult", "OddOneOutResult", "PredictResult", "RowResult", "RunFacts", "RunsResult", "SimilarityResult",
    "TableResult", "TokenizeResult", "TraceResult", "TrainingTime", "analogy", "check_baseline", "directions", "evaluate",
    "inspect_model", "inspect_row", "inspect_table", "inspect_token", "left_out", "loss_history", "model_shape",
    "neighbors", "odd_one_out", "open_space", "predict", "prompt_ids", "resolve_all", "run_facts", "runs",
    "similarity", "tokenize", "trace", "training_time",
]
