"""Does meaning emerge? Train the default recipe (or a named config, or take an existing run) and
print, side by side with gensim Word2Vec trained on the same GPT-2 tokens: the three analogies,
cat's and red's neighbours, WordSim353 ρ and Google-analogy accuracy with their coverage, and
the wall time of each.

    python bench/quality.py                    # trains configs/tiny.toml on the default corpus
    python bench/quality.py --config my.toml
    python bench/quality.py --run runs/run3    # no training: evaluate a run you have

Quality over time (``--curve``): every snapshot of a run scored (WordSim353 ρ, Google analogy
accuracy) against the training seconds at its step (metrics.jsonl's ``elapsed_s``; step 0 is 0 s),
and gensim Word2Vec trained on the same training tokens for several epoch counts, each timed and
scored the same way; a markdown table of every point, one of where each method stands at 1, 2, 5
and 10 minutes (its last point at or before the mark), a PNG and the raw points as JSON:

    python bench/quality.py --curve --run runs/run3 --plot curve.png --json curve.json
    python bench/quality.py --curve --run runs/run3 --epochs 1,2,5   # fewer word2vec points

A run trained with ``--set snapshot_every=N`` has a snapshot every N steps, and so a denser curve.
Word2Vec's seconds are gensim's training alone (its vocabulary is built once, before them), as
the run's are its training loop's (the corpus was tokenized before).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from embcli.baseline import Word2VecSettings, Word2VecTrainer, train_word2vec  # noqa: E402
from embcli.data import open_prepared  # noqa: E402
from embcli.errors import EmbcliError  # noqa: E402
from embcli.evaluate import evaluate_analogies, evaluate_pairs  # noqa: E402
from embcli.queries import training_time  # noqa: E402
from embcli.runs import find_run, list_snapshots, read_meta, read_metrics  # noqa: E402
from embcli.space import EmbeddingSpace  # noqa: E402

MARKS = (60, 120, 300, 600)  # where each method stands: 1, 2, 5 and 10 minutes

ANALOGIES = [("king", "man", "woman", "queen"), ("husband", "man", "woman", "wife"), ("boy", "man", "woman", "girl")]


def rank_of(answers, token: str) -> str:
    for n in answers:
        if n.token == "␣" + token:
            return str(n.rank)
    return f">{len(answers)}"


def report(name: str, space: EmbeddingSpace, seconds: float) -> dict:
    row = {"name": name, "seconds": seconds}
    for a, b, c, want in ANALOGIES:
        answers = space.analogy(space.resolve(a), space.resolve(b), space.resolve(c), topn=10)
        row[f"{a}-{b}+{c}"] = (rank_of(answers, want), [n.token for n in answers[:3]])
    for w in ("cat", "red"):
        row[w] = [n.token for n in space.most_similar([space.resolve(w)], topn=10)]
    ws, an = evaluate_pairs(space), evaluate_analogies(space)
    row["wordsim"] = f"{ws.spearman:.3f} ({ws.used}/{ws.total})"
    row["analogies"] = f"{an.accuracy:.3f} ({an.used}/{an.total})"
    return row


# ---------------------------------------------------------------------------------------------
# --curve: quality against wall time
# ---------------------------------------------------------------------------------------------


def machine() -> str:
    """The CPU model and the load average: what the seconds below were measured on."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return f"cpu: {model}, {os.cpu_count()} cores; load average (1, 5, 15 min): {load}"


def score(space: EmbeddingSpace) -> dict:
    ws, an = evaluate_pairs(space), evaluate_analogies(space)
    return {"wordsim_spearman": ws.spearman, "pairs_used": ws.used, "analogy_accuracy": an.accuracy,
            "analogies_used": an.used}


def tokens_at(records: list[dict], step: int) -> int | None:
    """Tokens seen at ``step``: its metrics record's, or the nearest record's before it."""
    if step == 0:
        return 0
    before = [r for r in records if r["step"] <= step and isinstance(r.get("tokens"), int)]
    return before[-1]["tokens"] if before else None


def run_points(run: Path) -> list[dict]:
    """Each snapshot of the run, scored, at the training seconds of its step."""
    records = read_metrics(run)
    points = []
    for step, _ in list_snapshots(run):
        when = training_time(run, step)
        if when is None:
            raise EmbcliError(f"{run} has no training time at step {step} (no metrics.jsonl record at or before it)")
        space = EmbeddingSpace.from_run(run, step)
        points.append({"method": "embcli", "seconds": round(when.seconds, 2), "step": step, "epochs": None,
                       "tokens": tokens_at(records, step), **score(space)})
        print(f"  embcli step {step:,}: {when.seconds:,.1f} s", file=sys.stderr, flush=True)
    if not points:
        raise EmbcliError(f"{run} has no snapshots (train with snapshots = true)")
    return points


def word2vec_points(run: Path, epoch_counts: list[int]) -> list[dict]:
    """gensim Word2Vec on the run's training tokens for each epoch count: timed, scored."""
    meta = read_meta(run)
    if not meta.get("corpus_path"):
        raise EmbcliError(f"{run} has no corpus to train word2vec on (an imported run)")
    corpus = open_prepared(Path(meta["corpus_path"]))
    final = EmbeddingSpace.from_run(run)
    trainer = Word2VecTrainer(corpus.split("train"), Word2VecSettings(vector_size=final.vectors.shape[1]))
    print(f"word2vec: {trainer.settings.describe(with_epochs=False)}; vocabulary built in {trainer.vocab_seconds:.1f} s",
          flush=True)
    points = []
    for n in epoch_counts:
        trained = trainer.train(n)
        space = EmbeddingSpace(trained.table, final.counts, vocab=final.vocab, source="word2vec")
        points.append({"method": "word2vec", "seconds": round(trained.seconds, 2), "step": None, "epochs": n,
                       "tokens": corpus.train_tokens * n, **score(space)})
        print(f"  word2vec {where(points[-1])}: {trained.seconds:,.1f} s", file=sys.stderr, flush=True)
    return points


def standing(points: list[dict], method: str, mark: float) -> dict | None:
    """The method's last point at or before ``mark`` seconds (None: it had none by then)."""
    before = [p for p in points if p["method"] == method and p["seconds"] <= mark]
    return max(before, key=lambda p: p["seconds"]) if before else None


def fmt(value, digits: int = 3) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"


def where(p: dict) -> str:
    return f"step {p['step']:,}" if p["epochs"] is None else f"{p['epochs']} epoch{'s' if p['epochs'] != 1 else ''}"


def print_tables(points: list[dict]) -> None:
    print("\n| method | seconds | step or epochs | tokens | WordSim353 ρ (pairs) | analogy acc. (questions) |")
    print("|---|---|---|---|---|---|")
    for p in points:
        tokens = f"{p['tokens']:,}" if p["tokens"] is not None else "—"
        print(f"| {p['method']} | {p['seconds']:,.1f} | {where(p)} | {tokens} | "
              f"{fmt(p['wordsim_spearman'])} ({p['pairs_used']}) | {fmt(p['analogy_accuracy'])} ({p['analogies_used']}) |")
    methods = list(dict.fromkeys(p["method"] for p in points))
    print("\nwhere each stands at 1, 2, 5 and 10 minutes (its last point at or before the mark):\n")
    print("| at | " + " | ".join(f"{m}: point | {m} ρ | {m} acc." for m in methods) + " |")
    print("|---|" + "---|---|---|" * len(methods))
    for mark in MARKS:
        cells = []
        for m in methods:
            p = standing(points, m, mark)
            cells += ["—", "—", "—"] if p is None else [f"{where(p)}, {p['seconds']:,.1f} s",
                                                       fmt(p["wordsim_spearman"]), fmt(p["analogy_accuracy"])]
        print(f"| {mark // 60} min | " + " | ".join(cells) + " |")


def plot(points: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    styles = {"embcli": ("tab:blue", "o"), "word2vec": ("tab:orange", "s")}
    for ax, key, label in ((axes[0], "wordsim_spearman", "WordSim353 Spearman ρ"),
                           (axes[1], "analogy_accuracy", "Google analogy accuracy")):
        for method in dict.fromkeys(p["method"] for p in points):
            mine = sorted((p for p in points if p["method"] == method), key=lambda p: p["seconds"])
            colour, marker = styles.get(method, (None, "^"))
            ax.plot([p["seconds"] for p in mine], [p[key] for p in mine], marker=marker, color=colour,
                    label=method if method != "word2vec" else "word2vec (one point per epoch count)")
            if method == "word2vec":
                for p in mine:
                    ax.annotate(str(p["epochs"]), (p["seconds"], p[key]), textcoords="offset points",
                                xytext=(4, 4), fontsize=7, color=colour)
        for mark in MARKS:
            ax.axvline(mark, color="grey", linestyle="--", linewidth=0.8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for mark in MARKS:
        axes[0].annotate(f"{mark // 60} min", (mark, 1), xycoords=("data", "axes fraction"), xytext=(2, -10),
                         textcoords="offset points", fontsize=8, color="grey")
    axes[0].legend(loc="lower right", fontsize=8)
    axes[1].set_xlabel("wall seconds of training")
    axes[1].set_xlim(left=-0.02 * max(MARKS), right=1.05 * max(max(p["seconds"] for p in points), max(MARKS)))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def curve(args) -> None:
    try:
        epoch_counts = [int(e) for e in args.epochs.split(",") if e.strip()]
    except ValueError:
        raise SystemExit(f"--epochs takes whole numbers separated by commas (got {args.epochs!r})") from None
    if not epoch_counts or min(epoch_counts) < 1:
        raise SystemExit(f"--epochs takes whole numbers >= 1 (got {args.epochs!r})")
    info = machine()
    print(info, flush=True)
    run = find_run(args.run)
    meta = read_meta(run)
    print(f"run {run}: step {meta.get('step'):,}, {meta.get('tokens_seen') or 0:,} tokens seen, "
          f"{meta.get('seconds') or 0:,.1f} s of training, {len(list_snapshots(run))} snapshots", flush=True)
    points = run_points(run) + word2vec_points(run, epoch_counts)
    print_tables(points)
    if args.plot:
        plot(points, Path(args.plot), f"{run.name} vs gensim Word2Vec on the same tokens\n{info}")
        print(f"\nplot: {args.plot}")
    if args.json:
        marks = {f"{m // 60}min": {method: standing(points, method, m)
                                   for method in dict.fromkeys(p["method"] for p in points)} for m in MARKS}
        Path(args.json).write_text(json.dumps({"machine": info, "run": str(run), "points": points, "marks": marks},
                                              indent=1) + "\n")
        print(f"points: {args.json}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--run", help="evaluate this run instead of training one")
    ap.add_argument("--curve", action="store_true", help="quality over time: the run's snapshots and word2vec "
                                                         "at several epoch counts against wall seconds (needs --run)")
    ap.add_argument("--epochs", default="1,2,5,10,20,40", help="--curve: word2vec's epoch counts")
    ap.add_argument("--plot", help="--curve: write the picture here (PNG)")
    ap.add_argument("--json", help="--curve: write the points here")
    args = ap.parse_args()
    if args.curve:
        if not args.run:
            ap.error("--curve needs --run (a trained run; --set snapshot_every=N gives it more snapshots)")
        try:
            return curve(args)
        except EmbcliError as exc:
            raise SystemExit(f"error: {exc}") from None
    if args.plot or args.json:
        ap.error("--plot and --json go with --curve")
    if args.run:
        run = find_run(args.run)
        seconds = float("nan")
    else:
        name = f"quality-{time.strftime('%Y%m%d-%H%M%S')}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "embcli", "train", "--config", args.config, "--name", name, "--quiet"],
                       check=True)
        seconds = time.perf_counter() - start
        run = find_run(name)
    space = EmbeddingSpace.from_run(run)
    meta = read_meta(run)
    corpus = open_prepared(Path(meta["corpus_path"]))
    settings = Word2VecSettings(vector_size=space.vectors.shape[1])
    start = time.perf_counter()
    table, _ = train_word2vec(corpus.split("train"), settings)
    w2v_seconds = time.perf_counter() - start
    baseline = EmbeddingSpace(table, space.counts, vocab=space.vocab, source="word2vec")
    rows = [report(f"embcli ({run.name})", space, seconds), report("word2vec", baseline, w2v_seconds)]
    print(f"run {run}: {meta.get('tokens_seen') or 0:,} tokens seen, val loss {meta.get('val_loss')}, "
          f"{os.cpu_count()} cores")
    print(f"word2vec: {settings.describe()}")
    for key in rows[0]:
        if key == "name":
            print(f"{'':<22}" + "".join(f"{r['name']:<48}" for r in rows))
            continue
        cells = []
        for r in rows:
            v = r[key]
            if isinstance(v, tuple):
                v = f"rank {v[0]}; top 3 {' '.join(v[1])}"
            elif isinstance(v, list):
                v = " ".join(v)
            elif isinstance(v, float):
                v = f"{v:.1f} s wall" if v == v else "(an existing run)"
            cells.append(f"{str(v)[:46]:<48}")
        print(f"{key:<22}" + "".join(cells))


if __name__ == "__main__":
    main()
