"""How big is the `embcli explore` page of a run, and how long does Chromium take to open it?

    python bench/explore_page.py [RUN] [--tokens 3000] [--rounds 5]

Writes the page for RUN (default: the newest run), then opens it in headless Chromium (Debian's
``chromium``, driven by playwright) ``--rounds`` times, each time in a fresh page, timing from
navigation to the moment the page says it is ready (map drawn, search live). Interleaved with
each round, the same browser opens a baseline page: plotly.js inlined the same way and a
scattergl map of the same number of random points — what any plotly page of this size costs —
so the figure reported beside the absolute time is a ratio against a baseline measured in the
same run on the same (possibly busy) machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embcli.explore import explore, plotly_js  # noqa: E402

BASELINE = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><div id="map" style="height:700px"></div>
<script>{js}</script><script>
const n = {n}, x = new Array(n), y = new Array(n);
for (let i = 0; i < n; i++) {{ x[i] = Math.sin(i * 12.9898) * 2; y[i] = Math.cos(i * 78.233) * 2; }}
Plotly.newPlot("map", [{{type: "scattergl", mode: "markers", x, y}}]).then(() => {{ window.ready = true; }});
</script></body></html>"""


def open_ms(browser, path: Path, ready: str) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 850})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    t0 = time.perf_counter()
    page.goto(path.resolve().as_uri())
    page.wait_for_function(ready, timeout=120_000, polling=20)
    ms = (time.perf_counter() - t0) * 1000
    assert requests == [path.resolve().as_uri()], requests
    page.close()
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?")
    ap.add_argument("--tokens", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="embcli-explore-bench-"))
    t0 = time.perf_counter()
    info = explore(args.run, work / "page.html", tokens=args.tokens).to_json()
    build_s = time.perf_counter() - t0
    baseline = work / "baseline.html"
    baseline.write_text(BASELINE.format(js=plotly_js(), n=info["tokens"]), encoding="utf-8")
    page_ms, base_ms = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium,
                                    args=["--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
        open_ms(browser, baseline, "window.ready")  # warm the browser's own caches once
        for _ in range(args.rounds):
            base_ms.append(open_ms(browser, baseline, "window.ready"))
            page_ms.append(open_ms(browser, work / "page.html", "window.embcli && window.embcli.ready"))
        browser.close()
    page, base = statistics.median(page_ms), statistics.median(base_ms)
    result = {
        "run": info["path"], "tokens": info["tokens"], "snapshots": info["snapshots"],
        "page_bytes": info["bytes"], "vectors_bytes_float16": info["vectors_bytes"],
        "plotly_js_bytes": len(plotly_js().encode()), "float16_max_cosine_error": info["max_cosine_error"],
        "build_s": round(build_s, 2), "open_ms_median": round(page), "open_ms_all": [round(m) for m in page_ms],
        "baseline_open_ms_median": round(base), "ratio_to_baseline": round(page / base, 2),
    }
    print(json.dumps(result, indent=2))
    print(f"page {info['bytes'] / 1e6:.1f} MB ({info['tokens']:,} tokens × {info['snapshots']} snapshots); opens in "
          f"{page / 1000:.2f} s (median of {args.rounds}) = {page / base:.2f}× a bare plotly page with as many points "
          f"({base / 1000:.2f} s)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
