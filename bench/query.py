"""Query speed: cold `embcli neighbors cat` as a whole process, against a cold gensim
KeyedVectors.load(mmap="r") + most_similar on the same table, and a warm query (as in `embcli
shell`), all in one run; plus peak memory. A GPT-2-small-sized table: 50257 × 768 float32.

    python bench/query.py [--repeats 7] [--dim 768]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed_process(cmd: list[str], env: dict) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    return wall, usage.ru_maxrss * 1024


def setup(tmp: Path, dim: int) -> None:
    """Write the run and the gensim file (in a child process, so the parent stays small and the
    processes it starts inherit none of its memory in their peak RSS)."""
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    table = rng.standard_normal((50257, dim), dtype=np.float32) * 0.02
    run = tmp / "runs" / "bench"
    run.mkdir(parents=True)
    from embcli.runs import RunMeta, save_counts, save_table

    save_table(run, table)  # the table and its norms, as training saves them
    save_counts(run, np.ones(50257, dtype=np.int64))
    RunMeta(status="finished", step=0).write(run)
    kv = KeyedVectors(dim)
    kv.add_vectors([str(i) for i in range(50257)], table)
    kv.save(str(tmp / "table.kv"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--setup", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.setup:
        setup(Path(args.setup), args.dim)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, __file__, "--setup", str(tmp), "--dim", str(args.dim)], check=True)
        run = tmp / "runs" / "bench"
        env = dict(os.environ, EMBCLI_CACHE=str(tmp / "cache"), COLUMNS="120")
        embcli = [sys.executable, "-m", "embcli", "neighbors", "cat", "--run", str(run)]
        subprocess.run(embcli, env=env, capture_output=True, check=True)  # builds the vocab cache once
        gensim_cmd = [sys.executable, "-c",
                      "from gensim.models import KeyedVectors as K; "
                      f"kv = K.load({str(tmp / 'table.kv')!r}, mmap='r'); print(kv.most_similar('3797', topn=10))"]
        subprocess.run(gensim_cmd, env=env, capture_output=True, check=True)  # page cache warm for both

        ours, theirs = [], []
        for _ in range(args.repeats):  # interleaved, so drift hits both alike
            ours.append(timed_process(embcli, env))
            theirs.append(timed_process(gensim_cmd, env))
        ours_t = statistics.median(t for t, _ in ours)
        theirs_t = statistics.median(t for t, _ in theirs)
        ours_mem = max(m for _, m in ours)
        theirs_mem = max(m for _, m in theirs)

        os.environ["EMBCLI_CACHE"] = env["EMBCLI_CACHE"]
        from embcli.space import EmbeddingSpace

        space = EmbeddingSpace.from_run(run)
        space.most_similar([space.resolve("cat")])
        warm = []
        for w in ["cat", "dog", "king", "red", "house", "water", "music", "green", "river", "bread"] * 3:
            t = time.perf_counter()
            space.most_similar([space.resolve(w)], topn=10)
            warm.append(time.perf_counter() - t)
        warm_t = statistics.median(warm)
        size = space.vectors.nbytes

    print(f"table 50257 × {args.dim} float32 = {size / 2**20:.0f} MiB; {args.repeats} cold runs each, interleaved")
    print(f"cold `embcli neighbors cat`            median {ours_t:.3f} s   peak RSS {ours_mem / 2**20:.0f} MiB "
          f"(table + {(ours_mem - size) / 2**20:.0f} MiB)")
    print(f"cold gensim load(mmap) + most_similar  median {theirs_t:.3f} s   peak RSS {theirs_mem / 2**20:.0f} MiB")
    print(f"speed-up over gensim: {theirs_t / ours_t:.2f}×")
    print(f"warm query (as in `embcli shell`): median {warm_t * 1000:.1f} ms")


if __name__ == "__main__":
    main()
