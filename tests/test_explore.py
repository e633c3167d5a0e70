"""`embcli explore`: the page, in a real browser (headless Chromium driven by playwright).

The page computes neighbours and analogies itself, in JavaScript, from the rows it carries; these
tests hold its answers to the CLI's (`embcli neighbors/analogy --json`, restricted to the page's
tokens). Words typed into it are looked up in a table Python resolved with
:meth:`EmbeddingSpace.resolve` (by the run's counts); the tests hold the page's lookups to that
rule, also on a run whose counts make the rule matter ("." → the bare ".", "france" → " France",
"man" → " man"). The browser is Debian's
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
def page_file(_trained_run, tmp_path_factory):
    from embcli.explore import explore

    out = tmp_path_factory.mktemp("explore") / "page.html"
    result = explore(_trained_run, out, tokens=PAGE_TOKENS)
    assert result.tokens == PAGE_TOKENS and result.snapshots == 4 and result.min_count == 5
    return out


def open_page(browser, path: Path):
    """A page opened from file://, with every request it made and every error it printed."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(path.resolve().as_uri())
    page.wait_for_function("window.embcli && window.embcli.ready", timeout=60_000)
    page.requests, page.errors = requests, errors
    return page


@pytest.fixture(scope="module")
def loaded(browser, page_file):
    """The page of the tiny run, opened once."""
    page = open_page(browser, page_file)
    yield page
    page.close()


# Counts that make the resolution rule matter (the tiny corpus has no bare "." and no "France"):
# "." seen more than BARE_MARGIN × " ." (the bare form wins), " France" seen and "france" no token
# (the capitalised form), "man" seen more than " man" but under BARE_MARGIN × (the spaced form
# wins). " man" and the bare "France" are made the rarest, so the page leaves them out.
EVIDENCE = {".": 30_000, " France": 700, "man": 1_000, " man": 150, "France": 5}
EVIDENCE_TOKENS = 49  # of the 51 tokens seen ≥ 5 times: all but "France" and " man"


@pytest.fixture(scope="module")
def evidence_run(_trained_run, tmp_path_factory):
    """A copy of the tiny run with EVIDENCE's training counts (its rows unchanged)."""
    from embcli import runs
    from embcli.tokenizer import Vocab

    run = Path(shutil.copytree(_trained_run, tmp_path_factory.mktemp("evidence") / "evidence"))
    counts = np.load(run / runs.COUNTS)
    vocab = Vocab.load()
    for text, n in EVIDENCE.items():
        counts[vocab.id_of(text.encode())] = n
    runs.save_counts(run, counts)
    return run


@pytest.fixture(scope="module")
def evidence_page(evidence_run, tmp_path_factory):
    from embcli.explore import explore

    out = tmp_path_factory.mktemp("explore") / "evidence.html"
    assert explore(evidence_run, out, tokens=EVIDENCE_TOKENS).tokens == EVIDENCE_TOKENS
    return out


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


def said(query: dict, shown: str) -> str:
    """The CLI's description of a resolved word (render.describe), from its --json word object."""
    return f"{query['text']!r} → {shown} ({query['tokens'][0]['id']}; {query['how']}: {query['why']})"


def test_neighbours_at_each_step_equal_the_cli(loaded, trained_run):
    info = page_data(loaded)
    # "cat" → " cat"; "she" → the bare "she" (the tiny corpus opens lines with it, never " she")
    for word, shown in (("cat", "␣cat"), ("she", "she")):
        for index in (1, 2, len(info["steps"]) - 1):  # step 10, 30 and the end
            step = info["steps"][index]
            set_step(loaded, index)
            assert f"step {step}" in loaded.inner_text("#stepinfo")
            loaded.fill("#word", word)
            loaded.press("#word", "Enter")
            on_page = table_rows(loaded, "#neighbours")
            result = cli("neighbors", word, "--run", trained_run, "--step", step, "--json", "--top", 100)
            assert result.exit_code == 0, result.output
            (found,) = json.loads(result.stdout)["words"]
            query = found["query"]
            assert said(query, shown) in loaded.inner_text("#resolved")  # which token, and the evidence
            assert_same_answers(on_page, restricted(found["neighbors"], info["ids"]))
    assert said(query, "she") == "'she' → she (7091; bare: seen 586 times in training; ␣she 0 times)"


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
    assert_same_answers(at_start, restricted(json.loads(result.stdout)["words"][0]["neighbors"], info["ids"]))
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
    from embcli.render import describe
    from embcli.space import EmbeddingSpace

    space = EmbeddingSpace.from_run(trained_run)
    assert loaded.inner_text("#analogy-msg").startswith("␣king (5822) − ␣man (582) + ␣woman (2415) (3CosAdd)")
    assert loaded.get_attribute("#analogy-msg", "title") == "\n".join(describe(space.resolve(w)) for w in ("king", "man", "woman"))


def test_unknown_and_absent_words_say_so_on_the_page(loaded, trained_run):
    msg = loaded.locator("#resolved")
    for word in ("blorfquux", "piano"):  # not one GPT-2 token; one, never in the tiny corpus
        loaded.fill("#word", word)
        loaded.press("#word", "Enter")
        assert f"'{word}' resolves to none of this page's {PAGE_TOKENS} tokens" in msg.inner_text()
        assert "error" in msg.get_attribute("class")
        assert table_rows(loaded, "#neighbours") == []
    # A trained token too rare for the page: the CLI answers for it, the page says it has not got it
    from embcli.tokenizer import Vocab

    info = page_data(loaded)
    counts = np.load(Path(trained_run) / "counts.npy")
    rare = next(int(i) for i in np.flatnonzero(counts) if int(i) not in info["ids"])
    word = Vocab.load().bytes_of(rare).decode().lstrip(" ")
    assert cli("neighbors", word, "--run", trained_run).exit_code == 0
    loaded.fill("#word", word)
    loaded.press("#word", "Enter")
    assert f"'{word}' resolves to none of this page's" in msg.inner_text()
    loaded.fill("#ana-a", "king")
    loaded.fill("#ana-b", "blorfquux")
    loaded.press("#ana-b", "Enter")
    assert "'blorfquux' resolves to none of this page's" in loaded.inner_text("#analogy-msg")
    loaded.fill("#word", " ")
    loaded.press("#word", "Enter")
    assert msg.inner_text() == "empty word: give a word or token to look up"


WORDS = ["cat", "Cat", "CAT", " cat", "  cat", "cat ", "the", "The", "king", "queen", "blorfquux", "", " ", "  ",
         "é", "naïve", "3", "123", "2024", ",", ".", " .", "'s", "s", "<|endoftext|>", "\n", "\t", "New York", "ing",
         "the cat", "😀", "日本", "Ġcat", "\\", "'", '"', "zebra", "a", "A", "I", "-", "--", "...", "\u00a0cat",
         "she", "She", "man", " man", "Man", "france", "France", " France", "FRANCE", "constructor", "__proto__"]


def page_resolves_as_the_cli(page, run) -> dict:
    """Every word of WORDS, resolved in the page and by EmbeddingSpace.resolve on the page's run:
    a word the CLI resolves to a token on the page gets the same token, form and description; one
    it resolves to a token off the page is refused or shown with the CLI's description; one it
    refuses is refused. Returns the page's answers by word."""
    from embcli.render import describe
    from embcli.space import EmbeddingSpace

    space = EmbeddingSpace.from_run(run)
    on_page = set(page_data(page)["ids"])
    answers = page.evaluate("words => words.map(w => window.embcli.resolveWord(w))", WORDS)
    for word, js in zip(WORDS, answers):
        try:
            r = space.resolve(word)
        except EmbcliError:
            assert "error" in js, (word, js)
            continue
        if r.ids[0] in on_page or "error" not in js:
            assert "error" not in js, (word, js, r)
            assert (js["id"], js["how"], js["said"]) == (r.ids[0], r.how, describe(r)), (word, js, r)
    return dict(zip(WORDS, answers))


def test_the_page_resolves_words_by_the_cli_rule(loaded, trained_run):
    answers = page_resolves_as_the_cli(loaded, trained_run)
    assert (answers["she"]["id"], answers["she"]["how"]) == (7091, "bare")  # no " she" in the tiny corpus
    assert answers["man"]["id"] == 582 and answers["cat"]["id"] == 3797


def test_the_page_follows_the_evidence(browser, evidence_page, evidence_run):
    """Where the counts make the rule matter: "." → the bare "." (13), "france" → " France" (4881),
    "man" → " man" (582), which is off this page: the page says so, with the CLI's reason."""
    page = open_page(browser, evidence_page)
    try:
        answers = page_resolves_as_the_cli(page, evidence_run)
        assert (answers["."]["id"], answers["."]["how"]) == (13, "bare")
        assert (answers["france"]["id"], answers["france"]["how"]) == (4881, "capitalised, space-prefixed")
        assert (answers["man"]["id"], answers["man"]["how"]) == (582, "space-prefixed")
        page.fill("#word", "man")
        page.press("#word", "Enter")
        text = page.inner_text("#resolved")
        assert text.startswith("'man' → ␣man (582; space-prefixed: seen 150 times in training; man 1,000 times "
                               "(a bare form needs 10× the count: it also ends longer words)): not on this page"), text
        page.fill("#word", ".")
        page.press("#word", "Enter")
        text = page.inner_text("#resolved")
        assert text.startswith("'.' → . (13; bare: seen 30,000 times in training; ␣. 2,963 times)"), text
        assert table_rows(page, "#neighbours")
        assert page.errors == [] and page.requests == [evidence_page.resolve().as_uri()]
    finally:
        page.close()


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


def test_page_words_hold_every_word_that_resolves_onto_the_page(evidence_run):
    """The page's word table against the rule itself, over many typed words: every GPT-2 token as
    it reads, without its space, in lower case and capitalised. Each one the CLI resolves to a token
    on the page is in the table with the CLI's answer, so the page refuses no word it has."""
    from embcli.explore import build_page_data
    from embcli.render import describe
    from embcli.space import EmbeddingSpace
    from embcli.tokenizer import EOT_ID

    data = build_page_data(evidence_run, tokens=EVIDENCE_TOKENS).data
    space = EmbeddingSpace.from_run(evidence_run)
    on_page, table = set(data["ids"]), data["words"]
    typed = set()
    for i in range(EOT_ID):
        try:
            text = space.vocab.bytes_of(i).decode("utf-8")
        except UnicodeDecodeError:
            continue
        typed |= {text, text.lstrip(" "), text.lower(), text.lstrip(" ").capitalize()}
    reached = 0
    for word in typed:
        try:
            r = space.resolve(word)
        except EmbcliError:
            assert word not in table, word
            continue
        if r.ids[0] in on_page:
            reached += 1
            assert table.get(word) == [r.ids[0], r.how, describe(r)], (word, table.get(word), r)
        elif word in table:
            assert table[word] == [r.ids[0], r.how, describe(r)], word
    assert reached >= len(on_page)
    assert table["."][0] == 13 and table["france"][0] == 4881 and table["man"][0] == 582


def test_the_page_holds_the_tokens_the_answer_verbs_use(trained_run):
    """explore's --min-count is the answer verbs' (space.DEFAULT_MIN_COUNT): the page's neighbours
    are `embcli neighbors`'s with its defaults, restricted to the page."""
    import inspect

    from embcli.cli import explore as command
    from embcli.explore import build_page_data
    from embcli.explore import explore as build
    from embcli.space import DEFAULT_MIN_COUNT

    assert inspect.signature(command).parameters["min_count"].default.default == DEFAULT_MIN_COUNT
    assert inspect.signature(build).parameters["min_count"].default == DEFAULT_MIN_COUNT
    assert build_page_data(trained_run, tokens=5).data["min_count"] == DEFAULT_MIN_COUNT


def test_explore_command_says_what_it_wrote_and_from_which_run(trained_run, tmp_path):
    out = tmp_path / "page.html"
    result = cli("explore", "--run", trained_run, "-o", out, "--tokens", 10)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == [
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): 10 tokens × 4 snapshots, step 0 → 60",
        f"from {trained_run.name} at step 60 ({trained_run})"]
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
