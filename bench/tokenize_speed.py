"""(Named tokenize_speed.py, not tokenize.py: a script's folder comes first on sys.path, and a
file called tokenize.py would shadow the standard library's tokenize module that numpy needs.)

Corpus preparation speed and memory: `embcli prepare` (read, tokenize on every core, route into
train/val shards, count, write) against tiktoken's raw `encode_ordinary_batch` on the same text,
in one run; then peak memory of prepare on the corpus and on 4× the corpus, each in its own
process, to show memory does not grow with corpus size.

    python bench/tokenize_speed.py [--copies 4]
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from embcli.data import CorpusSpec, default_corpus_path, prepare  # noqa: E402
from embcli.tokenizer import gpt2_encoding  # noqa: E402


def peak_rss_of(cmd: list[str], env: dict) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(proc.stderr.read().decode()[-1000:])
    return time.perf_counter() - start, usage.ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--prepare-one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.prepare_one:  # child process: prepare one corpus, nothing else
        prepare(CorpusSpec(paths=[args.prepare_one]), progress=False)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        text = gzip.decompress(default_corpus_path().read_bytes()).decode()
        plain = tmp / "corpus.txt"
        plain.write_text(text)
        mb = len(text.encode()) / 1e6
        enc = gpt2_encoding()
        threads = os.cpu_count() or 1
        lines = text.splitlines(keepends=True)

        t = time.perf_counter()
        enc.encode_ordinary_batch(lines, num_threads=threads)
        raw_lines = mb / (time.perf_counter() - t)
        chunks = ["".join(lines[i:i + 8000]) for i in range(0, len(lines), 8000)]
        t = time.perf_counter()
        enc.encode_ordinary_batch(chunks, num_threads=threads)
        raw_chunks = mb / (time.perf_counter() - t)
        os.environ["EMBCLI_CACHE"] = str(tmp / "cache")
        t = time.perf_counter()
        prepared = prepare(CorpusSpec(paths=[str(plain)]), progress=False, force=True)
        ours = mb / (time.perf_counter() - t)
        tokens = prepared.train_tokens + prepared.val_tokens

        print(f"corpus: WordNet glosses, {mb:.1f} MB, {len(lines):,} lines, {tokens:,} tokens; {threads} threads")
        print(f"tiktoken encode_ordinary_batch, one call per line        {raw_lines:6.2f} MB/s")
        print(f"tiktoken encode_ordinary_batch, ~1 MB chunks (no writing) {raw_chunks:6.2f} MB/s")
        print(f"embcli prepare (tokenize + split + count + write shards)  {ours:6.2f} MB/s   "
              f"= {ours / raw_lines:.2f}× per-line, {ours / raw_chunks:.2f}× chunked")

        big = tmp / "big.txt"
        with open(big, "w") as fh:
            for _ in range(args.copies):
                fh.write(text)
        env = dict(os.environ, EMBCLI_CACHE=str(tmp / "cache2"))
        results = []
        for path in (plain, big):
            seconds, rss = peak_rss_of([sys.executable, __file__, "--prepare-one", str(path)], env)
            results.append((path.stat().st_size / 1e6, seconds, rss))
        for size, seconds, rss in results:
            print(f"prepare of {size:7.1f} MB in its own process: {seconds:5.1f} s, peak RSS {rss / 2**20:5.0f} MiB")
        print(f"peak memory ratio {args.copies}× corpus / 1× corpus: {results[1][2] / results[0][2]:.2f}")


if __name__ == "__main__":
    main()
