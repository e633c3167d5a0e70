"""Does the explore page answer as the CLI does, on a real run? (a check, not a speed figure)

    python bench/explore_agreement.py PAGE.html RUN [--words 40]

Opens the page in headless Chromium and, for ``--words`` random tokens of the page at every
snapshot, compares the page's 10 nearest neighbours (computed in JavaScript from its float16
rows) with EmbeddingSpace's (float32) restricted to the page's tokens: the largest cosine
difference, and how many ranks hold another id — each such swap with the CLI's cosine gap.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embcli.space import EmbeddingSpace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("run")
    ap.add_argument("--words", type=int, default=40)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium,
                                    args=["--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
        page = browser.new_page()
        page.goto(args.page.resolve().as_uri())
        page.wait_for_function("window.embcli && window.embcli.ready", timeout=120_000)
        ids = page.evaluate("window.embcli.data.ids")
        steps = page.evaluate("window.embcli.data.frames.map(f => f.step)")
        queries = random.Random(0).sample(range(len(ids)), min(args.words, len(ids)))
        allowed = np.zeros(50257, bool)
        allowed[ids] = True
        worst, swaps, widest_tie, ranks = 0.0, 0, 0.0, 0
        for f, step in enumerate(steps):
            space = EmbeddingSpace.from_run(args.run, step)
            shown = page.evaluate("([f, qs]) => qs.map(i => window.embcli.neighboursOf(f, i).map(n => [n.id, n.cos]))",
                                  [f, queries])
            for q, answers in zip(queries, shown):
                sims = space.cosine_to(space.unit(ids[q]))
                sims[~allowed] = -np.inf
                sims[ids[q]] = -np.inf
                best = np.lexsort((np.arange(len(sims)), -sims))[:10]
                for (page_id, page_cos), cli_id in zip(answers, best):
                    ranks += 1
                    worst = max(worst, abs(page_cos - float(sims[cli_id])))
                    if page_id != cli_id:
                        swaps += 1
                        widest_tie = max(widest_tie, abs(float(sims[page_id]) - float(sims[cli_id])))
        browser.close()
    print(f"{len(queries)} words × {len(steps)} snapshots: largest |page cosine − CLI cosine| {worst:.1e}; "
          f"{swaps} of {ranks} ranks hold another id, each a swap of ids whose CLI cosines differ by ≤ {widest_tie:.0e}")


if __name__ == "__main__":
    main()
