"""Faults a careless user, a cluster or a full disk bring (issue #14's training and run-state
items): real signals to real processes, real small file systems and file-size limits, real
concurrent trainings. Each test names the item it covers; the CLI and query faults are in
tests/test_faults_cli.py."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embcli import queries, runs
from embcli.cli import app
from embcli.data import CorpusSpec
from embcli.errors import EmbcliError
from embcli.space import EmbeddingSpace
from embcli.train import train
from tests.conftest import TINY, make_corpus_text

runner = CliRunner()
SETS = [x for item in TINY for x in ("--set", item)]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(stderr: str, fragment: str) -> str:
    """The one line an error prints."""
    err = stderr.strip()
    assert err.startswith("error:") and fragment in " ".join(err.split()), err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def embcli(*args, env=None, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", "embcli", *map(str, args)], capture_output=True, text=True,
                          env=env or dict(os.environ), timeout=timeout, **kwargs)


def start_training(*args, env=None):
    # SIGINT and SIGTERM at their defaults, whatever the shell running the tests left them as
    def defaults():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return subprocess.Popen([sys.executable, "-m", "embcli", "train", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or dict(os.environ), preexec_fn=defaults)


def wait_for(condition, proc=None, timeout=240, what="the training process"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} ended early: {proc.communicate()[1][-2000:]}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def checkpoint_step(run: Path) -> int:
    try:
        return json.loads((run / "checkpoint" / "state.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def history(run: Path) -> list:
    return json.loads((run / "meta.json").read_text())["history"]["train"]


def leftovers(run: Path) -> list[str]:
    found = [p.name for p in run.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".checkpoint-")]
    snaps = run / "snapshots"
    return found + ([p.name for p in snaps.iterdir() if p.name.endswith(".tmp")] if snaps.is_dir() else [])


@pytest.fixture
def stop_procs():
    """Processes a test starts: none is left behind, whatever the test's outcome."""
    procs = []
    yield procs.append
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


# ---------------------------------------------------------------------------------------------
# 1. Row norms belong to their table
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["cp snapshot", "cp -p snapshot", "killed between table and norms"])
def test_1_norms_that_are_not_the_tables_are_recomputed(copy_of_trained_run, how):
    run = copy_of_trained_run("r")
    snapshot = run / "snapshots" / "step_00000010.npy"
    if how == "cp snapshot":
        shutil.copyfile(snapshot, run / "embeddings.npy")
    elif how == "cp -p snapshot":  # keeps the snapshot's mtime: the sampled rows still tell
        shutil.copy2(snapshot, run / "embeddings.npy")
    else:  # the table's write landed, the norms' did not
        from embcli.io import save_npy_atomic

        save_npy_atomic(run / "embeddings.npy", np.load(snapshot))
    table = np.load(run / "embeddings.npy")
    space = EmbeddingSpace.from_run(run)
    np.testing.assert_allclose(space.norms, np.linalg.norm(table, axis=1), rtol=1e-5)
    cosines = [n.similarity for n in space.most_similar([space.resolve("cat")], topn=10)]
    assert len(cosines) == 10 and all(-1.0 <= c <= 1.0 for c in cosines), cosines  # stale norms gave 1.17-2.94
    assert invoke("neighbors", "cat", "--run", run).exit_code == 0


# ---------------------------------------------------------------------------------------------
# 2. A signal in the middle of a step: the save is the state before it, the resume exact
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("where", ["after the batch is drawn", "inside the optimizer update"])
def test_2_a_signal_mid_step_then_resume_repeats_the_step_exactly(corpus_file, tiny, monkeypatch, request, where):
    import torch

    from embcli import train as train_mod

    # Under a background job (`make test &`, nohup, some CI runners) SIGINT starts ignored, and the
    # trainer rightly keeps it so: give this process Python's own handler for the test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    cfg = dict(max_steps=12, loss="sampled", negatives=64)  # the step draws from numpy's and torch's generators
    whole = train(tiny(**cfg), CorpusSpec(paths=[str(corpus_file)]), name="whole", progress=False).run

    calls = []

    def signal_on_the_8th(real):
        def wrapper(self, *args, **kwargs):
            out = real(self, *args, **kwargs)
            calls.append(1)
            if len(calls) == 8:
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, taken by the real handler
            return out

        return wrapper

    if where == "after the batch is drawn":
        monkeypatch.setattr(train_mod.BatchSampler, "draw", signal_on_the_8th(train_mod.BatchSampler.draw))
        saved_at = 7  # the 8th step never happened
    else:
        monkeypatch.setattr(torch.optim.AdamW, "step", signal_on_the_8th(torch.optim.AdamW.step))
        saved_at = 8  # the 8th step happened whole
    with pytest.raises(EmbcliError, match=f"interrupted at step {saved_at}; saved") as info:
        train(tiny(**cfg), CorpusSpec(paths=[str(corpus_file)]), name="cut", progress=False)
    assert info.value.exit_code == 130  # (the wrapper fires once: the resume below runs unhindered)
    cut = runs.find_run("cut")
    assert runs.read_meta(cut).status == "interrupted" and checkpoint_step(cut) == saved_at
    assert train(None, resume="cut", progress=False).step == 12
    assert history(cut) == history(whole)
    np.testing.assert_array_equal(np.load(cut / "embeddings.npy"), np.load(whole / "embeddings.npy"))


# ---------------------------------------------------------------------------------------------
# 3. One writer per run; 9. a run has its table from the start; 10. a dead run is stale
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_3_9_10_while_a_run_trains_it_answers_queries_refuses_a_second_writer_and_is_stale_once_killed(
        corpus_file, tmp_path, stop_procs):
    runs_dir = tmp_path / "runs"
    run = runs_dir / "busy"
    proc = start_training("--corpus", corpus_file, *SETS, "--max-steps", 100000, "--name", "busy", "--quiet")
    stop_procs(proc)
    # 9: meta.json appears with the step-0 save, after the table: a query never finds a run without one
    wait_for(lambda: (run / "meta.json").exists(), proc)
    assert (run / "embeddings.npy").is_file() and (run / "norms.npz").is_file()
    asked = invoke("neighbors", "cat", "--json")  # no --run: the newest run, this one
    assert asked.exit_code == 0, asked.output
    # 3: a second training of the same name, and a resume of it, are refused while it runs
    again = embcli("train", "--corpus", corpus_file, *SETS, "--max-steps", 5, "--name", "busy", "--seed", 7)
    assert again.returncode == 2
    one_line_error(again.stderr, f"is in use: process {proc.pid} on")
    resumed = embcli("train", "--resume", "busy", "--max-steps", 5)
    assert resumed.returncode == 2
    one_line_error(resumed.stderr, f"is in use: process {proc.pid} on")
    assert queries.run_facts(run).status == "running"
    # 10: killed by the OS (kill -9: no handler runs), the run is shown as stale, not "running"
    wait_for(lambda: checkpoint_step(run) >= 10, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert json.loads((run / "meta.json").read_text())["status"] == "running"  # what the file says
    assert queries.run_facts(run).status == "stale"
    assert "stale" in invoke("runs").stdout
    # the kernel let go of the lock with the process: the run resumes
    step = checkpoint_step(run)
    done = embcli("train", "--resume", "busy", "--max-steps", step + 2, "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "meta.json").read_text())["step"] == step + 2
    assert not (run / ".lock").exists()


@pytest.mark.slow
def test_3_a_second_training_of_a_name_in_the_middle_of_the_firsts_start_is_refused(corpus_file, tmp_path, stop_procs):
    # The first process is frozen (SIGSTOP) the moment its run folder appears: in the middle of its
    # start, before it has written anything there. Without a lock the second passes every check
    # (no meta.json yet), trains, and the first then writes over it when it wakes.
    run = tmp_path / "runs" / "same"
    first = start_training("--corpus", corpus_file, *SETS, "--max-steps", 3, "--name", "same", "--seed", 1, "--quiet")
    stop_procs(first)
    deadline = time.time() + 240
    while not run.is_dir() and time.time() < deadline and first.poll() is None:
        time.sleep(0.001)
    first.send_signal(signal.SIGSTOP)
    try:
        second = embcli("train", "--corpus", corpus_file, *SETS, "--max-steps", 3, "--name", "same", "--seed", 2,
                        "--quiet")
    finally:
        first.send_signal(signal.SIGCONT)
    _, first_err = first.communicate(timeout=300)
    outcome = {1: (first.returncode, first_err), 2: (second.returncode, second.stderr)}
    assert sorted(code for code, _ in outcome.values()) == [0, 2], outcome
    winner = next(seed for seed, (code, _) in outcome.items() if code == 0)
    one_line_error(next(err for code, err in outcome.values() if code == 2), "same")  # "in use" or "exists already"
    assert json.loads((run / "config.json").read_text())["seed"] == winner
    assert [row[0] for row in history(run)] == [1, 2, 3]
    np.testing.assert_array_equal(np.load(run / "embeddings.npy"), np.load(run / "snapshots" / "step_00000003.npy"))


def test_3_10_a_run_without_a_live_writer_is_stale(copy_of_trained_run):
    run = copy_of_trained_run("r")
    meta = runs.read_meta(run)
    meta.status = "running"
    meta.write(run)
    assert runs.live_status(run, "running") == "stale"  # no lock: nothing is training it
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / runs.LOCK).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    assert runs.live_status(run, "running") == "stale"
    lock = runs.RunLock.acquire(run)  # this process, alive
    try:
        assert runs.live_status(run, "running") == "running"
        with pytest.raises(EmbcliError, match=f"in use: process {os.getpid()}"):
            train(None, resume="r", progress=False, stop_overrides={"max_steps": 61})
    finally:
        lock.release()
    assert runs.live_status(run, "finished") == "finished"


# ---------------------------------------------------------------------------------------------
# 4. A full disk (or a file-size limit) during a save keeps the last save whole
# ---------------------------------------------------------------------------------------------


def assert_kept_step_0_save(run: Path, err: str, os_words: str) -> None:
    one_line_error(err, os_words)
    assert "keeps its last save (step 0)" in " ".join(err.split())
    meta = json.loads((run / "meta.json").read_text())
    assert (meta["status"], meta["step"], meta["tokens_seen"]) == ("failed", 0, 0)
    assert os_words in meta["error"]
    assert checkpoint_step(run) == 0
    np.testing.assert_array_equal(np.load(run / "embeddings.npy"), np.load(run / "snapshots" / "step_00000000.npy"))
    assert EmbeddingSpace.from_run(run)._norms is not None  # the norms are still the table's
    assert leftovers(run) == [] and not (run / "checkpoint.old").exists()
    assert [step for step, _ in runs.list_snapshots(run)] == [0]  # none from after the last save


@pytest.fixture
def small_filesystem(tmp_path):
    """``mount(size)``: a real tmpfs of that size (needs root); the test is skipped, saying why, where
    mounting is not allowed (the RLIMIT_FSIZE test below still covers a save that cannot be written)."""
    mounted = []

    def mount(size: str) -> Path:
        target = tmp_path / "small-fs"
        target.mkdir()
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
                                  capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            pytest.skip("SKIPPED LOUDLY: no mount command here, so no real small file system to fill")
        if done.returncode:
            pytest.skip(f"SKIPPED LOUDLY: cannot mount a small tmpfs here ({done.stderr.strip()}); "
                        "test_4_a_file_size_limit_during_a_save_keeps_the_last_save covers the same path")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=60)


@pytest.mark.slow
def test_4_a_full_disk_during_a_save_keeps_the_last_save(corpus_file, small_filesystem):
    # TINY's step-0 save is ~20 MB (table, snapshot, model); at step 10 the snapshot still fits in
    # 30 MiB and the next save's table does not: the disk fills in the middle of a save.
    disk = small_filesystem("30m")
    args = ["--corpus", corpus_file, *SETS, "--max-steps", 20, "--name", "full", "--runs-dir", disk, "--quiet"]
    failed = embcli("train", *args)
    assert failed.returncode == 1, failed.stderr
    assert_kept_step_0_save(disk / "full", failed.stderr, "No space left on device")
    # space again: the run continues from its last save
    subprocess.run(["mount", "-o", "remount,size=200m", str(disk)], check=True, timeout=60)
    resumed = embcli("train", "--resume", disk / "full", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((disk / "full" / "meta.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_4_a_file_size_limit_during_a_save_keeps_the_last_save(corpus_file, tmp_path):
    # 10 MB per file: the step-0 save fits (the optimizer has no state yet), the step-10 checkpoint's
    # optimizer.safetensors (~13 MB) does not. A real limit on real files, as `ulimit -f` sets.
    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000_000, 10_000_000))

    failed = subprocess.run([sys.executable, "-m", "embcli", "train", "--corpus", str(corpus_file), *SETS,
                             "--max-steps", "20", "--name", "big", "--quiet"], capture_output=True, text=True,
                            timeout=300, preexec_fn=limited)
    assert failed.returncode == 1, failed.stderr
    run = tmp_path / "runs" / "big"
    assert_kept_step_0_save(run, failed.stderr, "File too large")
    resumed = embcli("train", "--resume", "big", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "meta.json").read_text())["step"] == 20


def test_4_the_os_error_is_kept(tmp_path):
    from embcli.io import save_npy_atomic

    # numpy's own writer loses errno on a full disk; the table goes through write() and keeps it
    target = tmp_path / "t.npy"
    with pytest.raises(EmbcliError, match="cannot write .*t.npy: File too large"):
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, limit[1]))
        try:
            save_npy_atomic(target, np.zeros(100_000, dtype=np.float32))
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limit)
    assert not target.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 7. Non-finite settings; a NaN loss marks the run failed
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, name", [(["--set", "learning_rate=inf"], "learning_rate"),
                                        (["--set", "embedding_lr=inf"], "embedding_lr"),
                                        (["--set", "weight_decay=nan"], "weight_decay"),
                                        (["--set", "grad_clip=nan"], "grad_clip"),
                                        (["--time-budget", "inf"], "time_budget")])
def test_7_non_finite_settings_are_refused(args, name):
    result = invoke("train", *args)
    assert result.exit_code == 2
    one_line_error(result.stderr, f"{name} must be a finite number")
    assert not Path("runs").exists()


def test_7_a_nan_loss_at_the_first_steps_stops_and_marks_the_run_failed(corpus_file):
    # learning_rate 1e30 is finite; the first update makes every weight huge, the next loss NaN
    result = invoke("train", "--corpus", corpus_file, *SETS, "--set", "learning_rate=1e30", "--max-steps", 20,
                    "--name", "nan", "--quiet")
    assert result.exit_code == 1
    err = one_line_error(result.stderr, "training diverged: the loss became nan at step 2")
    assert "step None" not in err and "keeps its last save (step 0)" in " ".join(err.split())
    meta = json.loads(Path("runs/nan/meta.json").read_text())
    assert (meta["status"], meta["step"]) == ("failed", 0) and "diverged" in meta["error"]
    table = np.load("runs/nan/embeddings.npy")
    assert np.isfinite(table).all()  # the step-0 table, not the NaN one
    assert "failed" in invoke("runs").stdout


# ---------------------------------------------------------------------------------------------
# 8. SIGTERM is a stop like Ctrl-C: saved, marked, exit 143, resumed exactly
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_8_sigterm_saves_marks_and_exits_143(corpus_file, tmp_path, stop_procs):
    env = dict(os.environ, OMP_NUM_THREADS="1")  # all three processes compute alike
    args = ["--corpus", corpus_file, *SETS, "--set", "checkpoint_interval=5", "--max-steps", 30, "--quiet"]
    whole = start_training(*args, "--name", "whole", env=env)
    term = start_training(*args, "--name", "term", env=env)
    stop_procs(whole)
    stop_procs(term)
    run = tmp_path / "runs" / "term"
    wait_for(lambda: checkpoint_step(run) >= 5, term)
    time.sleep(0.3)  # somewhere in a step: the signal lands where it lands
    term.send_signal(signal.SIGTERM)
    _, err = term.communicate(timeout=120)
    assert term.returncode == 143, err
    one_line_error(err, "stopped by SIGTERM at step")
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["step"] == checkpoint_step(run) < 30
    assert f"at step {meta['step']};" in err
    assert whole.wait(timeout=300) == 0, whole.communicate()[1]
    resumed = embcli("train", "--resume", "term", "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert history(run) == history(tmp_path / "runs" / "whole")


# ---------------------------------------------------------------------------------------------
# 9. Queries without --run take the newest run that has a table
# ---------------------------------------------------------------------------------------------


def test_9_queries_take_the_newest_run_that_has_a_table(copy_of_trained_run, tmp_path):
    copy_of_trained_run("done")
    starting = tmp_path / "runs" / "starting"  # newer, and without a table (as a run of an older version began)
    starting.mkdir()
    runs.RunMeta(status="running", step=0, tokens_seen=0).write(starting)
    result = invoke("neighbors", "cat", "--json")
    assert result.exit_code == 0, result.output
    assert runs.find_run(None) == tmp_path / "runs" / "done"
    shutil.rmtree(tmp_path / "runs" / "done")
    result = invoke("neighbors", "cat")
    assert result.exit_code == 2
    one_line_error(result.stderr, "has a table yet")


# ---------------------------------------------------------------------------------------------
# 10. Leftovers: cleared on resume; a failed start leaves no run
# ---------------------------------------------------------------------------------------------


def test_10_resume_clears_what_killed_saves_left(copy_of_trained_run):
    run = copy_of_trained_run("r")
    (run / ".checkpoint-x1y2").mkdir()
    (run / ".checkpoint-x1y2" / "model.safetensors").write_bytes(b"half")
    (run / ".embeddings.npy.k3j4.tmp").write_bytes(b"half")
    (run / ".meta.json.a1.tmp").write_text("{")
    (run / "snapshots" / ".step_00000060.npy.z9.tmp").write_bytes(b"half")
    shutil.copytree(run / "checkpoint", run / "checkpoint.old")  # a swap whose last step was cut
    assert train(None, resume="r", progress=False, stop_overrides={"max_steps": 62}).step == 62
    assert leftovers(run) == [] and not (run / "checkpoint.old").exists()


@pytest.mark.parametrize("name", [None, "named"])
def test_10_a_failed_start_leaves_no_run_folder(tmp_path, tiny, name):
    small = tmp_path / "small.txt"
    small.write_text("a few words only\n")
    with pytest.raises(EmbcliError, match="corpus too small"):
        train(tiny(max_steps=3), CorpusSpec(paths=[str(small)], val_fraction=0.0), name=name, progress=False)
    assert list((tmp_path / "runs").iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 11. A config that cannot fit in memory is refused before anything is allocated
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["batch_size=1e9", "block_size=10000000"])
def test_11_a_config_that_cannot_fit_in_memory_is_refused_at_once(setting):
    t0 = time.perf_counter()
    result = invoke("train", "--set", setting)
    assert result.exit_code == 2
    err = one_line_error(result.stderr, "this config needs at least")
    assert "of memory to train, and this machine has" in " ".join(err.split())
    assert time.perf_counter() - t0 < 30  # nothing was tokenized, built or drawn
    assert not Path("runs").exists() and not Path("cache").exists()


def test_11_the_default_recipe_and_the_tests_fit():
    import torch

    from embcli.config import load_config
    from embcli.train import host_memory, memory_needed

    for cfg in (load_config("tiny"), load_config("tiny", TINY)):
        need = memory_needed(cfg, 1, torch.device("cpu"))["host"]
        assert 0 < need < 2 * 2**30 < host_memory()


# ---------------------------------------------------------------------------------------------
# 12. A seed out of range; 14. a run name is one folder name
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--seed", "-5"], ["--set", "seed=-5"], ["--seed", str(2**64)]])
def test_12_a_seed_out_of_range_is_one_line(args):
    result = invoke("train", *args)
    assert result.exit_code == 2
    one_line_error(result.stderr, "seed must be a whole number from 0 to 2**64 - 1")


@pytest.mark.parametrize("name", ["a/b", "../x", "ABS", ".", "..", ""])
def test_14_a_run_name_is_one_folder_name(tmp_path, name):
    if name == "ABS":
        name = str(tmp_path / "abs")
    result = invoke("train", "--name", name, "--max-steps", 1)
    assert result.exit_code == 2
    one_line_error(result.stderr, "a run name is one folder name under the runs folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing made, inside the runs folder or out


# ---------------------------------------------------------------------------------------------
# 21. Stops given on the command line mean the same on resume; a resumed run's speed
# ---------------------------------------------------------------------------------------------


def test_21_a_stop_given_on_resume_replaces_the_runs_stops(corpus_file):
    first = invoke("train", "--corpus", corpus_file, *SETS, "--max-tokens", 3 * 256, "--name", "r", "--quiet")
    assert first.exit_code == 0, first.output
    assert json.loads(Path("runs/r/meta.json").read_text())["step"] == 3
    again = invoke("train", "--resume", "r", "--max-steps", 5, "--quiet")  # max_tokens no longer holds
    assert again.exit_code == 0, again.output
    assert json.loads(Path("runs/r/meta.json").read_text())["step"] == 5
    assert json.loads(Path("runs/r/config.json").read_text())["max_tokens"] == 3 * 256  # the recipe is the run's
    # the summary: this session's tokens and seconds, and its speed is the one divided by the other
    line = " ".join(again.stdout.split())
    assert "steps 3 → 5, 512 tokens in " in line and ", 1,280 in all;" in line, line
    seconds = float(line.split("512 tokens in ")[1].split(" s ")[0])
    speed = float(line.split(" s (")[1].split(" tokens/s")[0].replace(",", ""))
    assert 512 / (seconds + 0.05) - 1 <= speed <= 512 / max(seconds - 0.05, 1e-3) + 1


# ---------------------------------------------------------------------------------------------
# 26. torchrun with the default recipe: the global batch is split over the processes
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                           str(free_port()), "-m", "embcli", "train", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.mark.slow
def test_26_torchrun_with_the_default_recipe_matches_one_process(corpus_file, tmp_path, stop_procs):
    # The README's `torchrun --nproc-per-node 2 -m embcli train`: the default recipe (one micro-batch of
    # 64 sequences) on the test corpus, a few steps; compile off and one validation batch only for time.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    common = ["--corpus", corpus_file, "--max-steps", 3, "--set", "compile=false", "--set", "eval_batches=1", "--quiet"]
    single = start_training(*common, "--name", "one", env=env)
    stop_procs(single)
    two = torchrun(*common, "--name", "two", env=env)
    assert single.wait(timeout=600) == 0, single.communicate()[1]
    assert two.returncode == 0, two.stderr[-3000:]
    one, both = history(tmp_path / "runs" / "one"), history(tmp_path / "runs" / "two")
    assert [r[:2] for r in one] == [r[:2] for r in both] == [[s, s * 64 * 64] for s in (1, 2, 3)]
    assert [r[2] for r in both] == pytest.approx([r[2] for r in one], rel=1e-4, abs=1e-4)
    assert json.loads((tmp_path / "runs" / "two" / "meta.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_26_a_global_batch_that_cannot_be_split_is_refused_once_before_any_work(tmp_path):
    corpus = tmp_path / "fresh.txt"  # not tokenized yet: a refusal must come before tokenizing
    corpus.write_text(make_corpus_text(200))
    result = torchrun("--corpus", corpus, *SETS, "--set", "batch_size=5", "--max-steps", 2, "--quiet",
                      env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode != 0
    message = "the global batch of 5 sequences (batch_size 5 × grad_accum 1) cannot be split evenly over 2 processes"
    assert result.stderr.count(message) == 1, result.stderr[-3000:]
    assert "Traceback (most recent call last)" not in result.stderr.split(message)[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_26_shares_of_the_global_batch():
    from embcli.config import TrainConfig
    from embcli.train import rank_share

    def share(batch, accum, world):
        return rank_share(TrainConfig(batch_size=batch, grad_accum=accum), world)

    assert share(64, 1, 1) == (1, 64) and share(64, 1, 2) == (1, 32) and share(64, 1, 8) == (1, 8)
    assert share(8, 4, 2) == (2, 8)  # as before: whole micro-batches when grad_accum divides
    assert share(8, 3, 2) == (2, 6)  # 12 sequences each, in two equal micro-steps of at most 8
    with pytest.raises(EmbcliError, match="cannot be split evenly over 2 processes"):
        share(5, 1, 2)
