"""Many processes and hard crashes: DDP over gloo matches one process; kill -9 then --resume
reaches the same final loss as an uninterrupted run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import TINY

SETS = [x for item in TINY for x in ("--set", item)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def history(runs, name):
    return json.loads((runs / name / "meta.json").read_text())["history"]["train"]


def embcli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "embcli", *map(str, args)], capture_output=True, text=True,
                          env=env or dict(os.environ), timeout=timeout)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(corpus_file, tmp_path):
    runs = tmp_path / "runs"
    common = ["train", "--corpus", corpus_file, *SETS, "--set", "grad_accum=2", "--max-steps", 6, "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # the one-process run goes alongside the two-process one: three single-threaded processes
    single = subprocess.Popen([sys.executable, "-m", "embcli", *map(str, common), "--name", "one"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                              "--master-port", str(free_port()), "-m", "embcli", *map(str, common), "--name", "two"],
                             capture_output=True, text=True, env=env, timeout=300)
        _, single_err = single.communicate(timeout=300)
    finally:
        if single.poll() is None:
            single.kill()
    assert single.returncode == 0, single_err
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = history(runs, "one"), history(runs, "two")
    assert len(one) == len(two) == 6
    for (s1, t1, l1), (s2, t2, l2) in zip(one, two):
        assert (s1, t1) == (s2, t2)
        assert l2 == pytest.approx(l1, rel=1e-4, abs=1e-4)
    meta = json.loads((runs / "two" / "meta.json").read_text())
    assert meta["world_size"] == 2
    assert ddp.stdout.count("done:") == 1  # rank 0 alone reports


@pytest.mark.slow
def test_kill_9_then_resume_reaches_the_uninterrupted_loss(corpus_file, tmp_path):
    runs = tmp_path / "runs"
    steps = 20
    common = ["train", "--corpus", corpus_file, *SETS, "--set", "checkpoint_interval=5", "--max-steps", steps, "--quiet"]
    # The uninterrupted run and the one to kill go side by side, one thread each; the resume has
    # one thread too, so all three compute alike and their losses compare exactly.
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def start(name):
        return subprocess.Popen([sys.executable, "-m", "embcli", *map(str, common), "--name", name],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)

    whole, proc = start("whole"), start("killed")
    try:
        state = runs / "killed" / "checkpoint" / "state.json"
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if state.exists():
                try:
                    if json.loads(state.read_text())["step"] >= 10:
                        break
                except (ValueError, OSError):
                    pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        _, whole_err = whole.communicate(timeout=300)
    finally:
        for p in (whole, proc):  # never leave a training process behind
            if p.poll() is None:
                p.kill()
    assert proc.returncode == -signal.SIGKILL
    assert whole.returncode == 0, whole_err
    cut_at = json.loads((runs / "killed" / "meta.json").read_text())["step"]
    assert cut_at < steps  # it really died mid-run
    resumed = embcli("train", "--resume", "killed", "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert history(runs, "killed") == history(runs, "whole")
