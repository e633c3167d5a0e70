"""Screenshot an `embcli explore` page the way the README shows it (headless Chromium, playwright).

    python tools/screenshot_explore.py PAGE.html OUT.png [--word red] [--step -1] [--preset colours]

Opens the page from file://, optionally moves the slider to a snapshot (an index; -1 is the
last), finds a word, or replays a preset group to its end, and writes a palette PNG (small enough
to commit). Uses Debian's ``chromium`` (set --chromium to another).
"""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--word")
    ap.add_argument("--analogy", nargs=3, metavar=("A", "B", "C"))
    ap.add_argument("--step", type=int, default=-1, help="snapshot index (-1: the last)")
    ap.add_argument("--preset", help="name of a preset group to replay first")
    ap.add_argument("--size", default="1280x760")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()
    from PIL import Image
    from playwright.sync_api import sync_playwright

    width, height = (int(v) for v in args.size.split("x"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium,
                                    args=["--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
        page = browser.new_page(viewport={"width": width, "height": height})
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(args.page.resolve().as_uri())
        page.wait_for_function("window.embcli && window.embcli.ready", timeout=120_000)
        frames = page.evaluate("window.embcli.data.frames.length")
        if args.preset:
            page.click(f"#preset-buttons button:text-is('{args.preset}')")
            page.wait_for_function(f"document.getElementById('slider').value === '{frames - 1}' && "
                                   "document.getElementById('play').textContent.includes('play')", timeout=120_000)
        if args.analogy:
            for box, word in zip(("#ana-a", "#ana-b", "#ana-c"), args.analogy):
                page.fill(box, word)
            page.press("#ana-c", "Enter")
        if args.word:
            page.fill("#word", args.word)
            page.press("#word", "Enter")
        step = args.step % frames
        page.eval_on_selector("#slider", "(s, v) => { s.value = v; s.dispatchEvent(new Event('input')); }", step)
        page.wait_for_timeout(500)
        png = page.screenshot()
        browser.close()
    assert requests == [args.page.resolve().as_uri()], f"the page made requests: {requests}"
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
