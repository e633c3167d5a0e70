"""Every snapshot on one set of axes (embcli/projection.py) and the pictures drawn from it."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from embcli.cli import app
from embcli.projection import aligned_frames, frequent_ids, pca2, procrustes

runner = CliRunner()
WORDS = ["cat,dog,horse,cow", "red,blue,green", "king,queen,man,woman"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def random_rotation(dim, rng):
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def test_procrustes_recovers_a_rotation_and_scale():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(300, 16))
    rot = random_rotation(16, rng)
    source = (target - 0.5) @ rot.T / 7.0 + 3.0  # rotated, shrunk and shifted: the same rows in another frame
    align = procrustes(source, target)
    assert np.allclose(align.rotation @ align.rotation.T, np.eye(16), atol=1e-10)
    assert align.scale == pytest.approx(7.0)
    assert np.allclose(align.apply(source), target, atol=1e-9)
    assert align.fit == pytest.approx(1.0)
    noise = procrustes(rng.normal(size=(3000, 16)), rng.normal(size=(3000, 16)))
    assert noise.fit < 0.15  # nothing to align: the fit says so


def test_cross_fitting_shows_noise_as_noise():
    """Fitted on the rows it moves, a rotation makes pure noise look like the target; out of fold it cannot."""
    from embcli.projection import cross_fitted

    rng = np.random.default_rng(4)
    dim, n = 64, 600
    target = rng.normal(size=(n, dim)) * np.linspace(3, 0.1, dim)  # structure in a few directions
    noise = rng.normal(size=(n, dim))
    ids = np.arange(n)
    in_sample = procrustes(noise, target, scale=False)
    moved, fit, rotate = cross_fitted(noise, target, ids)
    assert in_sample.fit > 0.2  # the illusion: noise "fits" the target
    assert abs(fit) < 0.1  # out of fold: nothing there
    assert np.allclose(rotate(noise[:10], ids[:10]), moved[:10])
    real = target @ np.linalg.qr(rng.normal(size=(dim, dim)))[0] + rng.normal(scale=0.1, size=(n, dim))
    assert cross_fitted(real, target, ids)[1] > 0.99  # a rotated copy is found again


def test_alignment_keeps_every_cosine_and_distance():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    align = procrustes(a, b)
    moved = align.apply(a) - align.target_mean
    centred = a - align.source_mean
    gram = centred @ centred.T * align.scale**2
    assert np.allclose(moved @ moved.T, gram, atol=1e-8)  # a rotation and one scale: shapes unchanged


def test_pca2_axes_and_explained_variance():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 6)) * np.array([5.0, 2.0, 1.0, 0.5, 0.5, 0.5])
    p = pca2(x)
    total = 25 + 4 + 1 + 0.75
    assert p.explained[0] == pytest.approx(25 / total, abs=0.04) and p.explained[1] == pytest.approx(4 / total, abs=0.03)
    assert abs(p.components[0, 0]) > 0.99 and p.components[0, 0] > 0  # sign fixed: largest loading positive
    assert "of the variance" in p.axis_label(0)


def test_frequent_ids_respect_min_count():
    counts = np.array([5, 0, 9, 9, 1, 3])
    assert frequent_ids(counts, 3).tolist() == [2, 3, 0]
    assert frequent_ids(counts, 10, min_count=3).tolist() == [2, 3, 0, 5]
    assert frequent_ids(None, 3, n_rows=10).tolist() == [0, 1, 2]


def test_frames_share_the_final_axes(trained_run):
    from pathlib import Path

    from embcli.space import EmbeddingSpace

    final = EmbeddingSpace.from_run(trained_run)
    ids = frequent_ids(final.counts, 40)
    frames = aligned_frames(Path(trained_run), ids)
    assert frames.steps == [0, 10, 30, 60]
    last = frames.frames[-1]
    assert last.scale == pytest.approx(1.0) and last.fit == pytest.approx(1.0)
    assert np.allclose(last.coords, frames.pca.apply(np.asarray(final.vectors[ids])), atol=1e-4)
    assert np.array_equal(last.rows, np.asarray(final.vectors[ids]))  # the final snapshot is the final table
    fit = [f.fit for f in frames.frames]
    assert fit[0] < fit[-2] < fit[-1]  # the table settles into its final frame as it trains
    for f in frames.frames:  # each snapshot zoomed to spread as far as the final table on the map
        spread = np.sqrt(((f.coords - f.coords.mean(axis=0)) ** 2).sum(axis=1).mean())
        assert spread == pytest.approx(np.sqrt(((last.coords - last.coords.mean(axis=0)) ** 2).sum(axis=1).mean()))
    (x0, x1), (y0, y1) = frames.limits()
    for f in frames.frames:
        assert (f.coords[:, 0] >= x0).all() and (f.coords[:, 0] <= x1).all() and (f.coords[:, 1] <= y1).all()
    picked = aligned_frames(Path(trained_run), ids, steps=[0, 60])
    assert picked.steps == [0, 60] and np.allclose(picked.frames[1].coords, last.coords)


def label_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    from matplotlib.text import Text

    # the text's own box (an Annotation's box would include its leader line)
    return [Text.get_window_extent(t, renderer) for ax in fig.axes for t in ax.texts]


def test_labels_do_not_overlap_in_a_crowd():
    pytest.importorskip("matplotlib")
    from embcli.plots import _pyplot, place_labels

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6))
    rng = np.random.default_rng(3)
    xy = np.vstack([rng.normal(0, 0.05, size=(12, 2)), rng.normal(1, 0.3, size=(8, 2))])  # a tight clump and a few more
    ax.set_xlim(-1.5, 2.5)
    ax.set_ylim(-1.5, 2.5)
    ax.scatter(xy[:, 0], xy[:, 1])
    words = [f"␣word{i}" for i in range(len(xy))]
    texts = place_labels(ax, xy, words, colours=["k"] * len(xy), sizes=[9] * len(xy), weights=["normal"] * len(xy))
    assert len(texts) == len(xy)
    boxes = label_boxes(fig)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (words[i], words[j])
    for (px, py) in ax.transData.transform(xy):  # and no label hides a point
        assert not any(b.x0 < px < b.x1 and b.y0 < py < b.y1 for b in boxes)
    plt.close(fig)


def test_plot_words_over_training_small_multiples_and_gif(trained_run, tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    r = invoke("plot", "words", *WORDS, "--run", trained_run, "--steps", "-o", tmp_path / "steps.png")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().splitlines() == [f"wrote {tmp_path / 'steps.png'}",
                                             f"from {trained_run.name} at step 60 ({trained_run})"]
    image = Image.open(tmp_path / "steps.png")
    assert image.size[0] > 3 * image.size[1]  # 4 panels side by side
    r = invoke("plot", "words", *WORDS, "--run", trained_run, "-o", tmp_path / "training.gif")
    assert r.exit_code == 0, r.output
    gif = Image.open(tmp_path / "training.gif")
    assert gif.format == "GIF" and gif.size == (640, 480) and gif.n_frames > 4  # snapshots and the frames between
    assert gif.info.get("loop") == 0
    r = invoke("plot", "words", "cat", "dog", "--run", trained_run, "--step", 0, "--step", 60, "--steps",
               "-o", tmp_path / "two.svg")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "two.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_every_plot_verb_writes_png_svg_and_pdf(trained_run, tmp_path, suffix, magic):
    pytest.importorskip("matplotlib")
    for args in (["plot", "words", "cat", "red", "--neighbors", 2], ["plot", "loss", trained_run],
                 ["trace", "cat", "--with", "dog"], ["plot", "words", "cat", "red", "--steps"]):
        out = tmp_path / f"{args[1]}{len(args)}{suffix}"
        extra = [] if "loss" in args else ["--run", trained_run]
        r = invoke(*args, *extra, "-o", out)
        assert r.exit_code == 0, (args, r.output)
        assert out.read_bytes()[:len(magic)] == magic, args


def test_plot_axes_name_their_explained_variance(trained_run, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import embcli.plots as plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda fig, out: drawn.append(fig) or out)
    for extra in ([], ["--steps"]):
        r = invoke("plot", "words", *WORDS, "--run", trained_run, *extra, "-o", tmp_path / "w.png")
        assert r.exit_code == 0, r.output
    single, multiples = drawn
    assert single.axes[0].get_xlabel().startswith("PC 1 (") and "% of the variance of these rows" in single.axes[0].get_xlabel()
    assert single.axes[0].get_ylabel().startswith("PC 2 (")
    assert "% of the variance of these rows in the final table" in multiples._supxlabel.get_text()
    legend = [t.get_text() for t in single.legends[0].get_texts()]
    assert legend == ["cat, dog, horse, cow", "red, blue, green", "king, queen, man, woman"]
    colours = {tuple(c) for ax in single.axes for coll in ax.collections for c in coll.get_facecolors()[:, :3].round(3)}
    assert len(colours) == 3  # one colour per group of words, not one per word


@pytest.mark.parametrize("args, fragment", [
    (["plot", "words", "cat", "-o", "w.jpg"], "PNG, SVG or PDF"),
    (["plot", "words", "cat", "--steps", "-o", "w.bmp"], "or .gif"),
    (["plot", "words", "cat", "--step", 0, "--step", 60, "-o", "w.png"], "need --steps"),
    (["plot", "words", "cat", "--steps", "--step", 7, "-o", "w.png"], "no snapshot at step 7"),
    (["plot", "loss", "-o", "l.gif"], "PNG, SVG or PDF"),
])
def test_plot_bad_input_is_one_line(trained_run, args, fragment):
    extra = [] if "loss" in args else ["--run", trained_run]
    r = invoke(*args, *extra) if "loss" not in args else invoke("plot", "loss", trained_run, *args[2:])
    assert r.exit_code == 2, r.output
    assert fragment in r.stderr and len(r.stderr.strip().splitlines()) <= 3, r.stderr
