"""Which default --min-count? Rows seen once or twice in training are barely moved from their
random start, yet they compete in every answer. For a run, at several thresholds, this prints:

- WordSim353 ρ and Google-analogy accuracy as ``embcli eval --min-count N`` gives them (a pair or
  question counts only when its words pass the threshold, so coverage falls as N rises);
- analogy accuracy on one fixed set of questions (those whose words pass the highest threshold),
  only the answer candidates limited by N: what noise rows cost, apart from coverage;
- for a fixed word list chosen before measuring, the share of the top-10 neighbours at
  --min-count 1 that are rows seen fewer than N times (the noise a threshold of N removes), and
  the neighbours themselves at each threshold.

    python bench/min_count.py --run runs/run1 [--thresholds 1,2,3,5,10,20] [--word2vec]

``--word2vec`` measures, instead of the run's table, gensim Word2Vec trained on the run's tokens
(the same counts): a well-trained table to set a short run's figures against.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from embcli.evaluate import (  # noqa: E402
    analogies_answered,
    default_analogies_path,
    evaluate_analogies,
    evaluate_pairs,
    read_analogies,
    unit_rows,
)
from embcli.queries import run_facts  # noqa: E402
from embcli.render import describe  # noqa: E402
from embcli.runs import find_run  # noqa: E402
from embcli.space import EmbeddingSpace  # noqa: E402

WORDS = [".", ",", "cat", "king", "red", "france", "water", "run", "big", "happy"]  # fixed before measuring


def fixed_set_accuracy(space: EmbeddingSpace, questions: list[tuple[int, int, int, int]]) -> float:
    """3CosAdd accuracy on the given id quadruples, candidates limited to the space's allowed rows
    (what ``embcli eval`` scores, on a fixed set of questions)."""
    if not questions:
        return float("nan")
    return analogies_answered(unit_rows(space), questions, space.allowed()) / len(questions)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--thresholds", default="1,2,3,5,10,20")
    ap.add_argument("--word2vec", action="store_true", help="measure gensim Word2Vec on the run's tokens instead")
    args = ap.parse_args()
    thresholds = [int(t) for t in args.thresholds.split(",")]
    run = find_run(args.run)
    facts = run_facts(run)
    base = EmbeddingSpace.from_run(run, min_count=1)
    counts = base.counts
    if args.word2vec:
        from embcli.baseline import Word2VecSettings, train_word2vec
        from embcli.data import open_prepared

        settings = Word2VecSettings(vector_size=base.vectors.shape[1])
        table, seconds = train_word2vec(open_prepared(facts.corpus_path).split("train"), settings)
        print(f"table: gensim Word2Vec on the run's training tokens ({settings.describe()}; {seconds:.0f} s)")
        base = EmbeddingSpace(table, counts, min_count=1, vocab=base.vocab, source="word2vec")
    highest = EmbeddingSpace(base.vectors, counts, min_count=max(thresholds), vocab=base.vocab)
    sections, _ = read_analogies(default_analogies_path())
    fixed = []
    for _, qs in sections:
        for q in qs:
            try:
                ids = [highest.resolve(w) for w in q]
            except Exception:
                continue
            if all(r.single and counts[r.ids[0]] >= max(thresholds) for r in ids):
                fixed.append(tuple(r.ids[0] for r in ids))
    resolved = [base.resolve(w) for w in WORDS]
    top1 = {r.text: base.most_similar([r], topn=10) for r in resolved}
    print(f"run {run}: step {facts.step}, {facts.tokens_seen or 0:,} tokens seen, val loss {facts.val_loss}")
    print(f"fixed analogy set: {len(fixed):,} questions whose words were seen ≥ {max(thresholds)} times")
    print(f"word list: {' '.join(WORDS)}\n")
    print("| --min-count | rows left out | WordSim353 ρ (pairs) | analogies (questions) | analogies, fixed set "
          "| top-10 noise removed |")
    print("|---|---|---|---|---|---|")
    for n in thresholds:
        space = EmbeddingSpace(base.vectors, counts, min_count=n, vocab=base.vocab)
        space._norms = base.norms
        ws, an = evaluate_pairs(space), evaluate_analogies(space)
        noise = sum(1 for ns in top1.values() for x in ns if x.count is not None and x.count < n)
        total = sum(len(ns) for ns in top1.values())
        print(f"| {n} | {space.excluded_count():,} | {ws.spearman:.3f} ({ws.used}/{ws.total}) | "
              f"{an.accuracy:.3f} ({an.used:,}/{an.total:,}) | {fixed_set_accuracy(space, fixed):.3f} | "
              f"{noise}/{total} |")
    print()
    for r in resolved:
        print(describe(r))
        for n in thresholds:
            space = EmbeddingSpace(base.vectors, counts, min_count=n, vocab=base.vocab)
            space._norms = base.norms
            shown = "  ".join(f"{x.token}({x.count})" for x in space.most_similar([r], topn=6))
            print(f"  ≥{n:<3} {shown}")


if __name__ == "__main__":
    main()
