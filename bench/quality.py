"""Does meaning emerge? Train the default recipe (or a named config, or take an existing run) and
print, side by side with gensim Word2Vec trained on the same GPT-2 tokens: the three analogies,
cat's and red's neighbours, WordSim353 ρ and Google-analogy accuracy with their coverage, and
the wall time of each.

    python bench/quality.py                    # trains configs/tiny.toml on the default corpus
    python bench/quality.py --config my.toml
    python bench/quality.py --run runs/run3    # no training: evaluate a run you have
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from embcli.baseline import Word2VecSettings, train_word2vec  # noqa: E402
from embcli.data import open_prepared  # noqa: E402
from embcli.evaluate import evaluate_analogies, evaluate_pairs  # noqa: E402
from embcli.runs import find_run, read_meta  # noqa: E402
from embcli.space import EmbeddingSpace  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--run", help="evaluate this run instead of training one")
    args = ap.parse_args()
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
