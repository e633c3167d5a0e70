"""Training logs: metrics.jsonl, TensorBoard scalars, progress lines for logs, train --json."""

import io
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from embcli import progress, runs
from embcli.cli import app
from embcli.queries import loss_history
from embcli.train import train
from tests.conftest import TINY

runner = CliRunner()
SETS = [x for item in TINY for x in ("--set", item)]
LINE = re.compile(r"step [\d,]+ \(\d+\.\d%\)  loss \d+\.\d{3}  val (-|\d+\.\d{3})  [\d,]+ tok/s  "
                  r"elapsed \d+:\d\d:\d\d  ETA (-|\d+:\d\d:\d\d)")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_metrics_jsonl_has_every_step(trained_run):
    lines = (trained_run / runs.METRICS).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == list(range(1, 61))  # TINY, 60 steps
    meta = runs.read_meta(trained_run)
    assert [[r["step"], r["tokens"], r["train_loss"]] for r in records] == meta.history["train"]
    assert [[r["step"], r["tokens"], r["val_loss"]] for r in records if "val_loss" in r] == meta.history["val"]
    first, last = records[0], records[-1]
    assert first["tokens"] == 8 * 32 and first["train_loss_kind"] == "fused"
    assert set(first["lr"]) == {"table", "matrices", "vectors"}
    assert first["lr"]["matrices"] == pytest.approx(1e-2 / 5)  # the first of 5 warmup steps
    assert last["lr"]["matrices"] < first["lr"]["matrices"] * 5  # decayed by the end
    assert all(r["tokens_per_s"] > 0 for r in records)
    assert [r["elapsed_s"] for r in records] == sorted(r["elapsed_s"] for r in records)
    assert records[-1]["time"] >= records[0]["time"] > 1.7e9
    assert runs.read_metrics(trained_run) == records


def test_tensorboard_scalars(trained_run):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                      reason="tensorboard is an optional extra: pip install 'embcli[tensorboard]'")
    events = accumulator.EventAccumulator(str(trained_run / runs.TENSORBOARD))
    events.Reload()
    records = runs.read_metrics(trained_run)
    assert {"loss/train", "loss/val", "lr/table", "lr/matrices", "lr/vectors", "speed/tokens_per_s"} <= set(
        events.Tags()["scalars"])
    train = events.Scalars("loss/train")
    assert [e.step for e in train] == list(range(1, 61))
    np.testing.assert_allclose([e.value for e in train], [r["train_loss"] for r in records], rtol=1e-6)
    assert [e.step for e in events.Scalars("loss/val")] == [10, 20, 30, 40, 50, 60]


def test_read_metrics_after_a_crash_and_a_resume(tmp_path):
    def rec(step, **more):
        return json.dumps({"step": step, "tokens": step * 10, **more})

    lines = [rec(1, train_loss=9.0), rec(2, train_loss=8.0, val_loss=8.5), rec(3, train_loss=7.0),
             rec(4, train_loss=6.0),
             '{"step": 5, "tokens": 50, "train_lo',  # cut short by kill -9
             ]
    (tmp_path / runs.METRICS).write_text("\n".join(lines))  # no newline at the end either
    log = runs.MetricsLog(tmp_path)  # a resumed session: its checkpoint was at step 2
    for step, loss in ((3, 7.5), (4, 6.5), (5, 5.5)):
        log.write({"step": step, "tokens": step * 10, "train_loss": loss})
    log.write({"step": 5, "tokens": 50, "val_loss": 6.0})  # the final validation, no step of its own
    log.close()
    records = runs.read_metrics(tmp_path)
    assert [(r["step"], r["train_loss"]) for r in records] == [(1, 9.0), (2, 8.0), (3, 7.5), (4, 6.5), (5, 5.5)]
    assert records[-1]["val_loss"] == 6.0 and records[1]["val_loss"] == 8.5
    assert runs.metrics_history(tmp_path) == {"train": [[1, 10, 9.0], [2, 20, 8.0], [3, 30, 7.5], [4, 40, 6.5],
                                                        [5, 50, 5.5]], "val": [[2, 20, 8.5], [5, 50, 6.0]]}
    assert runs.read_metrics(tmp_path / "nowhere") == [] and runs.metrics_history(tmp_path / "nowhere") is None


def test_a_log_that_cannot_be_written_does_not_stop_training(tmp_path):
    (tmp_path / runs.METRICS).mkdir()  # open() fails: a folder stands where the file should be
    log = runs.MetricsLog(tmp_path)
    log.write({"step": 1})
    assert log.error and "training goes on without it" in log.error


def test_resume_appends_and_the_resumed_steps_win(copy_of_trained_run):
    run = copy_of_trained_run("r")  # finished at step 60, checkpoint at 60
    with open(run / runs.METRICS, "a") as fh:  # a session that went past the checkpoint, then crashed
        for step in (61, 62):
            fh.write(json.dumps({"step": step, "tokens": 0, "train_loss": 99.0}) + "\n")
    train(None, resume="r", progress=False, stop_overrides={"max_steps": 63})
    records = runs.read_metrics(run)
    assert [r["step"] for r in records] == list(range(1, 64))
    assert all(r["train_loss"] < 99 for r in records)
    meta = runs.read_meta(run)
    assert loss_history(run) == {"train": meta.history["train"], "val": meta.history["val"]}


def test_plot_loss_reads_metrics_and_falls_back_to_meta(copy_of_trained_run, tmp_path):
    pytest.importorskip("matplotlib")
    run = copy_of_trained_run("r")
    meta = runs.read_meta(run)
    history = meta.history
    meta.history = {"train": [], "val": []}
    meta.write(run)  # only metrics.jsonl has the losses now
    assert loss_history(run)["train"] == history["train"]
    assert invoke("plot", "loss", run, "-o", tmp_path / "a.png").exit_code == 0
    (run / runs.METRICS).unlink()  # neither has them
    bad = invoke("plot", "loss", run, "-o", tmp_path / "b.png")
    assert bad.exit_code == 2 and "no training losses to plot" in bad.stderr
    meta.history = history
    meta.write(run)  # a run from before metrics.jsonl: meta.json's history
    assert loss_history(run) == history
    assert invoke("plot", "loss", run, "-o", tmp_path / "c.png").exit_code == 0


def test_progress_lines_in_a_log(corpus_file, monkeypatch):
    # CliRunner's stderr is not a terminal: plain lines, the first step's, then one each interval
    # (an hour here: none), and the last one's
    monkeypatch.setattr(progress, "PLAIN_INTERVAL", 3600)
    result = invoke("train", "--corpus", corpus_file, *SETS, "--max-steps", 12, "--name", "a")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("step ")]
    assert len(lines) == 2 and all(LINE.fullmatch(line) for line in lines), lines
    assert lines[0].startswith("step 1 (8.3%)") and lines[1].startswith("step 12 (100.0%)")
    assert lines[1].endswith("ETA 0:00:00") and "val -" not in lines[1]
    monkeypatch.setattr(progress, "PLAIN_INTERVAL", 0)  # a line at every step
    every = invoke("train", "--corpus", corpus_file, *SETS, "--max-steps", 5, "--name", "b")
    lines = [line for line in every.stderr.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1", "2", "3", "4", "5"]
    quiet = invoke("train", "--corpus", corpus_file, *SETS, "--max-steps", 3, "--name", "c", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_progress_bar_on_a_terminal(monkeypatch):
    from rich.console import Console

    monkeypatch.setattr(progress, "console", Console(file=io.StringIO(), force_terminal=True))
    bar = progress.training_progress(True)
    assert isinstance(bar, progress._TrainingBar)
    bar.update(5, 0.5, 3.25, "3.500", 1234.0)
    bar.close()
    assert "step 5" in progress.console.file.getvalue()
    assert progress.training_progress(False) is None


def test_train_json_summary(corpus_file):
    result = invoke("train", "--corpus", corpus_file, *SETS, "--max-steps", 4, "--name", "j", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["step"] == 4 and summary["status"] == "finished" and summary["tokens"] == 4 * 256
    assert summary["verb"] == "train" and summary["run"]["name"] == "j" and summary["run"]["step"] == 4
    assert summary["run"]["path"].endswith("j") and summary["metrics"].endswith("j/metrics.jsonl")
    assert summary["train_loss_kind"] == "fused" and summary["val_loss"] > 0
    assert "done" not in result.stdout and "token table" in result.stderr
