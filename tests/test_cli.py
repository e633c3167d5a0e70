"""The command line as a user meets it: through Typer's runner, and once as a real process."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from embcli.cli import app
from tests.conftest import TINY

runner = CliRunner()
SETS = [x for item in TINY for x in ("--set", item)]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, code, fragment):
    assert result.exit_code == code, result.output
    err = result.stderr.strip()
    assert err.startswith("error:") and fragment in err, err
    assert "Traceback" not in result.output and len(err.splitlines()) <= 3  # one line, possibly wrapped


def test_train_then_query_through_the_cli(corpus_file):
    result = invoke("train", "--corpus", corpus_file, *SETS, "--max-steps", 12, "--name", "cli", "--quiet")
    assert result.exit_code == 0, result.output
    assert "done" in result.stdout and "train loss" in result.stdout
    listed = invoke("runs", "--json")
    rows = json.loads(listed.stdout)["runs"]
    assert rows[0]["run"] == "cli" and rows[0]["step"] == 12 and rows[0]["status"] == "finished"
    assert "cli" in invoke("runs").stdout
    model = invoke("inspect", "model", "--run", "cli", "--json")
    info = json.loads(model.stdout)
    assert info["rows"] == 50257 and info["dim"] == 32 and info["tied"]


def test_train_shows_model_and_summary(corpus_file):
    result = invoke("train", "--corpus", corpus_file, *SETS, "--max-steps", 3)
    assert result.exit_code == 0, result.output
    assert "token table is 50,257 × 32" in result.stderr
    assert "tied to the output layer" in result.stderr


def test_inspect_model_of_a_config():
    result = invoke("inspect", "model", "--config", "gpt2-small")
    assert result.exit_code == 0
    assert "124,439,808 parameters" in result.stdout and "38,597,376" in result.stdout


@pytest.mark.parametrize("text, count", [("2000000", 2_000_000), ("2e6", 2_000_000), ("10_500_000", 10_500_000),
                                         ("2M", 2_000_000), ("500k", 500_000), ("0", 0)])
def test_token_counts_are_read_as_people_write_them(text, count):
    from embcli.commandline import parse_count

    assert parse_count(text, "--max-tokens") == count


@pytest.mark.parametrize("args, code, fragment", [
    (["train", "--corpus", "missing.txt"], 2, "does not exist"),
    (["train", "--set", "n_layers=3"], 2, "unknown config key n_layers"),
    (["train", "--set", "learning_rate=-1"], 2, "learning_rate must be > 0"),
    (["train", "--set", "n_layer"], 2, "--set takes KEY=VALUE"),
    (["train", "--device", "quantum"], 2, "unknown device"),
    (["train", "--config", "nope"], 2, "no config 'nope'"),
    (["train", "--time-budget", "soon"], 2, "--time-budget takes"),
    (["train", "--max-tokens", "lots"], 2, "--max-tokens takes a count"),
    (["train", "--max-tokens", "1.5"], 2, "--max-tokens must be a whole number"),
    (["train", "--resume", "ghost"], 2, "no run 'ghost'"),
    (["runs", "--json"], 0, None),
])
def test_bad_input_is_one_line(args, code, fragment):
    result = invoke(*args)
    if fragment is None:
        assert result.exit_code == code
        return
    assert_one_line_error(result, code, fragment)


def test_empty_and_binary_corpus(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert_one_line_error(invoke("train", "--corpus", tmp_path / "empty.txt"), 2, "is empty")
    (tmp_path / "blob.txt").write_bytes(bytes(range(256)) * 10)
    assert_one_line_error(invoke("train", "--corpus", tmp_path / "blob.txt"), 2, "looks binary")


def test_unwritable_output_folder(corpus_file, tmp_path):
    (tmp_path / "plainfile").write_text("")
    result = invoke("train", "--corpus", corpus_file, "--runs-dir", tmp_path / "plainfile" / "runs", *SETS,
                    "--max-steps", 1)
    assert_one_line_error(result, 2, "cannot write runs")


def test_resume_from_damaged_run(copy_of_trained_run):
    copy_of_trained_run("x")  # finished at step 60
    from pathlib import Path

    state = Path(os.environ["EMBCLI_RUNS"]) / "x" / "checkpoint" / "model.safetensors"
    state.write_bytes(state.read_bytes()[:100])
    assert_one_line_error(invoke("train", "--resume", "x", "--max-steps", 62), 2, "damaged")


def test_resume_refuses_new_settings():
    assert_one_line_error(invoke("train", "--resume", "x", "--set", "n_layer=2"), 2, "--resume continues a run")


def test_python_dash_m_runs_as_a_real_process(tmp_path):
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "embcli", "tokenize", "The cat"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0 and "464" in out.stdout and "3797" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "embcli", "inspect", "row", "-5"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_interrupt_saves_and_exits_cleanly(corpus_file, tmp_path):
    """A real Ctrl-C (SIGINT) to a training process: checkpoint saved, one line, exit 130."""
    import signal
    import time

    env = dict(os.environ)
    cmd = [sys.executable, "-m", "embcli", "train", "--corpus", str(corpus_file), *SETS, "--max-steps", "100000",
           "--name", "sig", "--quiet"]
    # A shell's background job (`make test &`, nohup, some CI runners) starts with SIGINT ignored,
    # and a process that inherits that never gets a KeyboardInterrupt: give the child the default.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    state = tmp_path / "runs" / "sig" / "checkpoint" / "state.json"

    def saved_step() -> int:  # the run saves at step 0 at once, then every 10 steps
        try:
            return json.loads(state.read_text()).get("step", 0)
        except (OSError, ValueError):
            return -1

    deadline = time.time() + 300
    while saved_step() < 10 and time.time() < deadline and proc.poll() is None:  # wait until it is training
        time.sleep(0.2)
    assert saved_step() >= 10, "training never reached its step-10 checkpoint"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:  # never leave a training process behind
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "Traceback" not in err
    meta = json.loads((tmp_path / "runs" / "sig" / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["step"] >= 10
