"""`embcli explore`: the page, in a real browser (headless Chromium driven by playwright).

The page computes neighbours and analogies itself, in JavaScript, from the rows it carries; these
tests hold its answers to the CLI's (`embcli neighbors/analogy --json`, restricted to the page's
tokens) and its word resolution to :meth:`EmbeddingSpace.resolve`. The browser is Debian's
``chromium`` (playwright's own browser download cannot work offline); ``.ci/run`` installs it.
Without a browser the browser tests skip with a reason that says why — or fail, where
``EMBCLI_REQUIRE_BROWSER=1`` (CI) says a browser must be there.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embcli.cli import app
from embcli.errors import EmbcliError

runner = CliRunner()
PAGE_TOKENS = 42  # of the tiny run's 47 trained tokens: " cat" is in, " dog" and " horse" are out
SHOTS = Path(os.environ.get("EMBCLI_SCREENSHOTS", "")) if os.environ.get("EMBCLI_SCREENSHOTS") else None


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def assert_one_line_error(result, fragment):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error:") and fragment in err, err
    assert "Traceback" not in result.output and len(err.splitlines()) <= 3


# ---------------------------------------------------------------------------------------------
# The browser: found once per module, or a loud skip
# ---------------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    for name in (os.environ.get("EMBCLI_CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def no_browser(reason: str):
    message = f"NO BROWSER, the explore page was not tested in one: {reason}"
    if os.environ.get("EMBCLI_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (EMBCLI_REQUIRE_BROWSER=1)")
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        no_browser("the playwright package is not installed (pip install 'embcli[dev]')")
    exe = find_chromium()
    if exe is None:
        no_browser("no chromium on PATH (apt-get install -y chromium, or set EMBCLI_CHROMIUM)")
    with sync_playwright() as p:
        try:
            # swiftshader: WebGL (plotly's scattergl) in software, since a headless machine has no GPU
            b = p.chromium.launch(executable_path=exe, args=["--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
        except Error as exc:
            no_browser(f"{exe} did not start: {str(exc).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def page_file(trained_run, tmp_path_factory):
    from embcli.explore import explore

    out = tmp_path_factory.mktemp("explore") / "page.html"
    info = explore(trained_run, out, tokens=PAGE_TOKENS)
    assert info["tokens"] == PAGE_TOKENS and info["snapshots"] == 4
    return out


@pytest.fixture(scope="module")
def loaded(browser, page_file):
    """The page, opened once from file://, with every request it made and every error it printed."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(page_file.resolve().as_uri())
    page.wait_for_function("window.embcli && window.embcli.ready", timeout=60_000)
    page.requests, page.errors = requests, errors
    yield page
    page.close()


def page_data(page) -> dict:
    return page.evaluate("({ids: window.embcli.data.ids, steps: window.embcli.data.frames.map(f => f.step)})")


def set_step(page, index: int) -> None:
    """Move the slider the way a hand does: set its value and fire its input event."""
    page.eval_on_selector("#slider", "(s, v) => { s.value = v; s.dispatchEvent(new Event('input')); }", index)
    page.wait_for_timeout(50)


def table_rows(page, selector: str) -> list[tuple[int, float]]:
    return page.eval_on_selector_all(f"{selector} tbody tr", "rows => rows.map(r => [Number(r.dataset.id), Number(r.dataset.cos)])")


def restricted(answers: list[dict], page_ids: list[int], top: int = 10) -> list[tuple[int, float]]:
    allowed = set(page_ids)
    return [(a["id"], a["similarity"]) for a in answers if a["id"] in allowed][:top]


def assert_same_answers(shown, expected, tol=1e-3):
    """Same ids in the same order and cosines within ``tol``; two ids may swap only if the CLI's
    own cosines for them are within ``tol`` (a tie that float16 rows may break either way)."""
    assert len(shown) == len(expected) and shown, (shown, expected)
    cli_score = dict(expected)
    for (sid, scos), (eid, ecos) in zip(shown, expected):
        assert abs(scos - ecos) < tol, (shown, expected)
        assert sid == eid or (sid in cli_score and abs(cli_score[sid] - ecos) < tol), (shown, expected)


def screenshot(page, name: str) -> bytes:
    png = page.screenshot()
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / name).write_bytes(png)
    return png


# ---------------------------------------------------------------------------------------------
# In the browser
# ---------------------------------------------------------------------------------------------


def test_page_makes_no_network_request_and_no_error(loaded, page_file):
    assert loaded.requests == [page_file.resolve().as_uri()], loaded.requests  # the file itself, nothing else
    assert loaded.evaluate("performance.getEntriesByType('resource').length") == 0
    assert loaded.errors == []
    assert loaded.evaluate("typeof Plotly.newPlot") == "function"  # the inlined library is live


def test_neighbours_at_each_step_equal_the_cli(loaded, trained_run):
    info = page_data(loaded)
    for index in (1, 2, len(info["steps"]) - 1):  # step 10, 30 and the end
        step = info["steps"][index]
        set_step(loaded, index)
        assert f"step {step}" in loaded.inner_text("#stepinfo")
        loaded.fill("#word", "cat")
        loaded.press("#word", "Enter")
        assert "'cat' → ␣cat (3797; space-prefixed)" in loaded.inner_text("#resolved")
        shown = table_rows(loaded, "#neighbours")
        result = cli("neighbors", "cat", "--run", trained_run, "--step", step, "--json", "--top", 100)
        assert result.exit_code == 0, result.output
        expected = restricted(json.loads(result.stdout)[0]["neighbors"], info["ids"])
        assert_same_answers(shown, expected)


def test_moving_the_slider_keeps_the_word_and_updates_its_neighbours(loaded, trained_run):
    info = page_data(loaded)
    set_step(loaded, len(info["steps"]) - 1)
    loaded.fill("#word", "red")
    loaded.press("#word", "Enter")
    at_end = table_rows(loaded, "#neighbours")
    set_step(loaded, 0)  # the noise: other neighbours, computed for the shown snapshot
    at_start = table_rows(loaded, "#neighbours")
    assert at_start != at_end
    result = cli("neighbors", "red", "--run", trained_run, "--step", 0, "--json", "--top", 100)
    assert_same_answers(at_start, restricted(json.loads(result.stdout)[0]["neighbors"], info["ids"]))
    assert "step 0" in loaded.inner_text("#row-msg")


def test_analogy_equals_the_cli(loaded, trained_run):
    info = page_data(loaded)
    last = len(info["steps"]) - 1
    set_step(loaded, last)
    loaded.fill("#ana-a", "king")
    loaded.fill("#ana-b", "man")
    loaded.fill("#ana-c", "woman")
    loaded.press("#ana-c", "Enter")
    shown = table_rows(loaded, "#analogy-out")
    result = cli("analogy", "king", "man", "woman", "--run", trained_run, "--json", "--top", 100)
    assert result.exit_code == 0, result.output
    assert_same_answers(shown, restricted(json.loads(result.stdout)["answers"], info["ids"]))


def test_unknown_and_absent_words_say_so_on_the_page(loaded, trained_run):
    loaded.fill("#word", "blorfquux")
    loaded.press("#word", "Enter")
    msg = loaded.locator("#resolved")
    assert "is not one GPT-2 token" in msg.inner_text() and "error" in msg.get_attribute("class")
    assert table_rows(loaded, "#neighbours") == []
    loaded.fill("#word", "piano")  # one GPT-2 token, never in the tiny corpus
    loaded.press("#word", "Enter")
    assert "not on this page, never seen in training" in msg.inner_text()
    # A trained token too rare for the page
    info = page_data(loaded)
    counts = np.load(Path(trained_run) / "counts.npy")
    from embcli.tokenizer import Vocab

    vocab = Vocab.load()
    rare = next(int(i) for i in np.argsort(counts) if counts[i] > 0 and int(i) not in info["ids"]
                and vocab.bytes_of(int(i)).startswith(b" ") and vocab.bytes_of(int(i))[1:].isalpha())
    loaded.fill("#word", vocab.bytes_of(rare).decode()[1:])
    loaded.press("#word", "Enter")
    assert f"seen {counts[rare]:,} times in training" in msg.inner_text()
    loaded.fill("#ana-a", "king")
    loaded.fill("#ana-b", "blorfquux")
    loaded.press("#ana-b", "Enter")
    assert "is not one GPT-2 token" in loaded.inner_text("#analogy-msg")


WORDS = ["cat", "Cat", "CAT", " cat", "  cat", "cat ", "the", "The", "king", "queen", "blorfquux", "", " ", "  ",
         "é", "naïve", "3", "123", "2024", ",", ".", "'s", "s", "<|endoftext|>", "\n", "\t", "New York", "ing",
         "the cat", "😀", "日本", "Ġcat", "\\", "'", '"', "zebra", "a", "I", "-", "--", "...", "\u00a0cat"]


def test_the_page_resolves_words_by_the_cli_rule(loaded, trained_run):
    from embcli.space import EmbeddingSpace

    space = EmbeddingSpace.from_run(trained_run)
    shown = loaded.evaluate("words => words.map(w => window.embcli.resolveWord(w))", WORDS)
    for word, js in zip(WORDS, shown):
        try:
            r = space.resolve(word)
        except EmbcliError:
            assert "error" in js, (word, js)
            continue
        assert "error" not in js, (word, js)
        assert (js["id"], js["how"]) == (r.ids[0], r.how), (word, js, r)
        assert js["shown"] == r.pieces[0], (word, js, r)


def test_click_shows_the_row_and_hover_the_token(loaded):
    set_step(loaded, page_data(loaded)["steps"].__len__() - 1)
    # the pixel of token 0 on the map (plotly's own axis scaling), then a real mouse
    x, y, token_id = loaded.evaluate("""() => {
        const gd = document.getElementById('map'), fl = gd._fullLayout, box = gd.getBoundingClientRect();
        const tr = gd.data[0];
        return [box.left + fl.xaxis._offset + fl.xaxis.l2p(tr.x[0]), box.top + fl.yaxis._offset + fl.yaxis.l2p(tr.y[0]),
                window.embcli.data.ids[0]];
    }""")
    loaded.mouse.move(x, y)
    loaded.wait_for_selector(".hoverlayer .hovertext", timeout=10_000)
    hover = loaded.text_content(".hoverlayer")
    shown = loaded.evaluate("window.embcli.data.shown[0]")
    assert shown.startswith("␣") and shown in hover and f"id {token_id}" in hover and "seen" in hover
    loaded.mouse.click(x, y)
    loaded.wait_for_function(f"document.getElementById('row-msg').textContent.startsWith('row {token_id} ')",
                             timeout=10_000)
    assert loaded.locator("#strip .heatmaplayer, #strip .hm, #strip canvas, #strip image").count() > 0
    assert table_rows(loaded, "#neighbours")  # and its neighbours


def test_preset_plays_from_noise_to_the_end(loaded):
    steps = page_data(loaded)["steps"]
    loaded.click("#preset-buttons button")
    assert "mean cosine between these" in loaded.inner_text("#preset-msg")
    loaded.wait_for_function(f"document.getElementById('slider').value === '{len(steps) - 1}' && "
                             "document.getElementById('play').textContent.includes('play')", timeout=30_000)
    assert f"step {steps[-1]}" in loaded.inner_text("#stepinfo")
    assert loaded.evaluate("document.getElementById('map').data[1].x.length") > 0  # the trails are drawn


def test_screenshot_is_not_blank(loaded):
    from PIL import Image

    set_step(loaded, len(page_data(loaded)["steps"]) - 1)
    loaded.fill("#word", "cat")
    loaded.press("#word", "Enter")
    loaded.wait_for_timeout(200)
    png = screenshot(loaded, "explore-tiny.png")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    box = loaded.eval_on_selector("#map", "e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }")
    pixels = np.asarray(image.crop(tuple(int(v) for v in box)))
    background = np.array([255, 255, 255])
    share = float((np.abs(pixels.astype(int) - background).sum(axis=2) > 60).mean())
    assert share > 0.005, share  # points, labels, axes: not an empty frame
    colours = {tuple(c) for c in pixels.reshape(-1, 3)[::7]}
    assert len(colours) > 50  # drawn, anti-aliased content, not a flat fill


# ---------------------------------------------------------------------------------------------
# Without a browser: the page's data, and bad input
# ---------------------------------------------------------------------------------------------


def test_float16_rows_keep_cosines_within_1e_3(trained_run):
    from embcli.explore import build_page_data

    page = build_page_data(trained_run, tokens=PAGE_TOKENS)
    assert 0 < page.max_cosine_error < 1e-3
    assert page.data["frames"][0]["step"] == 0 and page.data["frames"][-1]["step"] == 60


def test_page_is_self_contained(page_file):
    html = page_file.read_text(encoding="utf-8")
    assert "/*@PLOTLY_JS@*/" not in html and "/*@EMBCLI_DATA@*/" not in html
    for ref in ('src="http', "src='http", 'href="http', "@import", "<link "):
        assert ref not in html.split("<script", 1)[0] + html.rsplit("</script>", 1)[-1]


def test_explore_command_writes_one_line(trained_run, tmp_path):
    out = tmp_path / "page.html"
    result = cli("explore", "--run", trained_run, "-o", out, "--tokens", 10)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): 10 tokens × 4 snapshots, step 0 → 60"
    many = cli("explore", "--run", trained_run, "-o", out, "--tokens", 10000)
    assert many.exit_code == 0 and "(only 47 qualify)" in many.stdout


def test_explore_bad_input_is_one_line(trained_run, tmp_path):
    assert_one_line_error(cli("explore", "--run", trained_run, "--tokens", 0), "--tokens must be at least 1")
    assert_one_line_error(cli("explore", "--run", trained_run, "--tokens", -5), "--tokens must be at least 1")
    assert_one_line_error(cli("explore", "--run", trained_run, "--tokens", 10**6), "--tokens is at most")
    assert_one_line_error(cli("explore", "--run", trained_run, "-o", tmp_path), "it is a folder")
    (tmp_path / "plain").write_text("")
    assert_one_line_error(cli("explore", "--run", trained_run, "-o", tmp_path / "plain" / "x.html"), "cannot write")
    assert_one_line_error(cli("explore", "--run", trained_run, "-o", tmp_path / "x.png"), "ending in .html")
    assert_one_line_error(cli("explore", "--run", trained_run, "--min-count", 10**9), "no token seen")
    bare = tmp_path / "bare"
    shutil.copytree(trained_run, bare, ignore=shutil.ignore_patterns("snapshots", "checkpoint*"))
    assert_one_line_error(cli("explore", "--run", bare, "-o", tmp_path / "y.html"), "has no table snapshots")
    assert not (tmp_path / "y.html").exists()
    assert_one_line_error(cli("explore", "--run", tmp_path / "nowhere"), "no run")


def test_render_escapes_what_would_end_the_script_early():
    from embcli.explore import render_html

    data = {"shown": ["</script><b>x</b>"], "note": "<!-- not a comment -->"}
    html = render_html(data, js='var s = "</SCRIPT>"; var t = "<!--";')
    body = html.split("<script>", 1)[1]
    assert "</SCRIPT>" not in body and '"<\\/SCRIPT>"' in body and '"<\\!--"' in body
    payload = html.split('id="embcli-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(payload) == data  # the data survives, "<" escaped as \u003c
