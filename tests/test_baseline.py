"""eval --baseline word2vec at equal time: the epochs chosen from a measured epoch, the run's time at
a step, the columns and their JSON, and the flags that size the baseline."""

import json
import math

import pytest
from typer.testing import CliRunner

from embcli.baseline import choose_epochs
from embcli.cli import app
from embcli.queries import training_time
from embcli.runs import read_meta

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(result, fragment: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    return lines[0]


def with_seconds(run, seconds):
    """The run's meta.json with its training time set (a tiny target keeps word2vec to one epoch)."""
    meta = read_meta(run)
    meta.seconds = seconds
    meta.write(run)
    return run


# ----- the epochs that fill a time ---------------------------------------------------------------


@pytest.mark.parametrize("target, per_epoch, epochs", [
    (10.0, 2.0, 5),     # exactly five epochs' time
    (476.0, 7.6, 63),   # 62.6 epochs' time: the nearest whole number
    (2.5, 1.0, 3),      # a half rounds up
    (2.49, 1.0, 2),
    (0.0, 1.0, 1),      # step 0: no time, still one epoch (a table needs one)
    (0.3, 5.0, 1),      # less than an epoch's time: one
    (1e6, 0.5, 2_000_000),
])
def test_choose_epochs_is_the_nearest_whole_number_of_epochs(target, per_epoch, epochs):
    assert choose_epochs(target, per_epoch) == epochs


@pytest.mark.parametrize("target, per_epoch", [(10.0, 0.0), (10.0, -1.0), (math.nan, 1.0), (-1.0, 1.0),
                                               (math.inf, 1.0), (1.0, math.nan)])
def test_choose_epochs_refuses_times_that_choose_nothing(target, per_epoch):
    with pytest.raises(ValueError):
        choose_epochs(target, per_epoch)


# ----- the run's training time at a step -----------------------------------------------------------


def test_training_time_final_table_snapshot_and_a_step_without_a_record(copy_of_trained_run):
    run = copy_of_trained_run("timed")
    meta = read_meta(run)
    records = {json.loads(line)["step"]: json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()}
    final = training_time(run, None)
    assert final.seconds == meta.seconds and final.source.startswith("meta.json")
    assert training_time(run, meta.step).seconds == meta.seconds
    at30 = training_time(run, 30)
    assert at30.seconds == records[30]["elapsed_s"] and at30.source == "metrics.jsonl: elapsed_s at step 30"
    assert training_time(run, 0).seconds == 0.0
    # step 30's record lost: the nearest before it answers, and says so
    kept = [line for line in (run / "metrics.jsonl").read_text().splitlines() if json.loads(line)["step"] != 30]
    (run / "metrics.jsonl").write_text("\n".join(kept) + "\n")
    near = training_time(run, 30)
    assert near.seconds == records[29]["elapsed_s"]
    assert near.source == "metrics.jsonl: no record at step 30, so the nearest before it, step 29"


def test_training_time_of_a_run_with_no_time(copy_of_trained_run):
    run = with_seconds(copy_of_trained_run("untimed"), None)
    (run / "metrics.jsonl").unlink()
    assert training_time(run, None) is None and training_time(run, 30) is None


# ----- the command ------------------------------------------------------------------------------------


def test_eval_baseline_defaults_to_equal_time_beside_five_epochs(copy_of_trained_run):
    pytest.importorskip("gensim")
    run = with_seconds(copy_of_trained_run("fast"), 0.001)  # less than an epoch: one epoch fills it
    text = invoke("eval", "--run", run, "--baseline", "word2vec")
    assert text.exit_code == 0, text.output
    header = next(line for line in text.stdout.splitlines() if "embcli" in line and "word2vec" in line)
    cells = [c.strip() for c in header.split("┃")[1:-1]]
    assert cells[1] == "embcli"
    assert cells[2].startswith("word2vec (equal time: 1 epoch, ") and cells[2].endswith(" s)")
    assert cells[3].startswith("word2vec (5 epochs, ") and cells[3].endswith(" s)")
    assert "equal time: the run's table had trained 0.0 s (meta.json: the run's training time, summed over " \
           "sessions); word2vec's 5 epochs took" in " ".join(text.stdout.split())
    data = json.loads(invoke("eval", "--run", run, "--baseline", "word2vec", "--json").stdout)["tables"]
    assert list(data) == ["embcli", "word2vec_equal_time", "word2vec_5_epochs"]
    equal, five = data["word2vec_equal_time"], data["word2vec_5_epochs"]
    assert equal["epochs"] == 1 and equal["target_seconds"] == 0.001 and equal["per_epoch_seconds"] > 0
    assert equal["target_from"] == "meta.json: the run's training time, summed over sessions"
    assert "1 epoch," in equal["settings"] and "5 epochs" in five["settings"]
    assert five["epochs"] == 5 and five["target_seconds"] is None and five["seconds"] > 0
    for r in data.values():
        assert r["pairs_used"] == data["embcli"]["pairs_used"]  # the same restriction for every table


def test_eval_baseline_at_a_snapshot_times_that_step(copy_of_trained_run):
    pytest.importorskip("gensim")
    run = copy_of_trained_run("early")
    data = json.loads(invoke("eval", "--run", run, "--step", 0, "--baseline", "word2vec", "--json").stdout)
    equal = data["tables"]["word2vec_equal_time"]
    assert data["run"]["step"] == 0 and equal["target_seconds"] == 0.0 and equal["epochs"] == 1
    assert equal["target_from"] == "step 0: the table before any training"


def test_eval_baseline_epochs_and_seconds_choose_explicitly(trained_run):
    pytest.importorskip("gensim")
    two = json.loads(invoke("eval", "--run", trained_run, "--baseline", "word2vec", "--baseline-epochs", 2,
                            "--json").stdout)["tables"]
    assert list(two) == ["embcli", "word2vec_epochs", "word2vec_5_epochs"]
    assert two["word2vec_epochs"]["epochs"] == 2 and two["word2vec_epochs"]["target_seconds"] is None
    five = invoke("eval", "--run", trained_run, "--baseline", "word2vec", "--baseline-epochs", 5)
    assert five.exit_code == 0, five.output
    header = next(line for line in five.stdout.splitlines() if "embcli" in line)
    assert header.count("word2vec") == 1 and "word2vec (5 epochs, " in header  # 5 epochs asked: one column
    timed = invoke("eval", "--run", trained_run, "--baseline", "word2vec", "--baseline-seconds", 0.001)
    assert timed.exit_code == 0, timed.output
    assert "word2vec (0.001 s asked: 1 epoch, " in timed.stdout and "word2vec (5 epochs, " in timed.stdout
    assert "--baseline-seconds asked for 0.001 s; word2vec's 5 epochs took" in " ".join(timed.stdout.split())


@pytest.mark.parametrize("args, fragment", [
    (["--baseline-epochs", "0"], "invalid value for '--baseline-epochs': 0 is not in the range x>=1"),
    (["--baseline-epochs", "two"], "invalid value for '--baseline-epochs': 'two' is not a valid int"),
    (["--baseline-seconds", "0"], "--baseline-seconds must be a positive, finite number of seconds (got 0.0)"),
    (["--baseline-seconds", "-3"], "--baseline-seconds must be a positive, finite number of seconds (got -3.0)"),
    (["--baseline-seconds", "inf"], "--baseline-seconds must be a positive, finite number of seconds (got inf)"),
    (["--baseline-seconds", "nan"], "--baseline-seconds must be a positive, finite number of seconds (got nan)"),
    (["--baseline-epochs", "3", "--baseline-seconds", "9"], "give --baseline-epochs or --baseline-seconds, not both"),
])
def test_eval_baseline_flags_are_checked_in_one_line(trained_run, args, fragment):
    one_line(invoke("eval", "--run", trained_run, "--baseline", "word2vec", *args), fragment)


def test_eval_baseline_flags_need_the_baseline(trained_run):
    one_line(invoke("eval", "--run", trained_run, "--baseline-epochs", 3),
             "--baseline-epochs and --baseline-seconds size the baseline: add --baseline word2vec")


def test_eval_baseline_refuses_runs_it_cannot_time_or_train(copy_of_trained_run):
    untimed = with_seconds(copy_of_trained_run("untimed"), None)
    (untimed / "metrics.jsonl").unlink()
    line = one_line(invoke("eval", "--run", untimed, "--baseline", "word2vec"), "has no training time")
    assert "--baseline-epochs N or --baseline-seconds S" in line
    imported = copy_of_trained_run("imported")  # what import-hf leaves: no corpus, no training time
    meta = read_meta(imported)
    meta.status, meta.corpus, meta.corpus_path, meta.seconds = "imported", None, None, None
    meta.write(imported)
    one_line(invoke("eval", "--run", imported, "--baseline", "word2vec"),
             "has no corpus to train a baseline on (imported runs have none)")
    one_line(invoke("eval", "--run", imported, "--baseline", "word2vec", "--baseline-epochs", 2),
             "has no corpus to train a baseline on")
