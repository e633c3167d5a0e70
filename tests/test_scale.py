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


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(corpus_file, tmp_path):
    runs = tmp_path / "runs"
    common = ["train", "--corpus", corpus_file, *SETS, "--set", "grad_accum=2", "--max-steps", 6, "--quiet"]
    single = embcli(*common, "--name", "one")
    assert single.returncode == 0, single.stderr
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(free_port()), "-m", "embcli", *map(str, common), "--name", "two"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = history(runs, "one"), history(runs, "two")
    assert len(one) == len(two) == 6
    for (s1, t1, l1), (s2, t2, l2) in zip(one, two):
        assert (s1, t1) == (s2, t2)
        assert l2 == pytest.approx(l1, rel=1e-4, abs=1e-4)
    meta = json.loads((runs / "two" / "meta.json").read_text())
    assert meta["world_size"] == 2
    assert ddp.stdout.count("done:") == 1  # rank 0 alone reports


def test_grad_accum_must_split_over_processes(corpus_file):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(free_port()), "-m", "embcli", "train", "--corpus", str(corpus_file),
                          *SETS, "--set", "grad_accum=3", "--max-steps", "2", "--quiet"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode != 0 and "must be a multiple of the number of processes" in ddp.stderr


def test_kill_9_then_resume_reaches_the_uninterrupted_loss(corpus_file, tmp_path):
    runs = tmp_path / "runs"
    steps = 40
    common = ["train", "--corpus", corpus_file, *SETS, "--set", "checkpoint_interval=5", "--max-steps", steps, "--quiet"]
    whole = embcli(*common, "--name", "whole")
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen([sys.executable, "-m", "embcli", *map(str, common), "--name", "killed"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = runs / "killed" / "checkpoint" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if state.exists():
            try:
                if json.loads(state.read_text())["step"] >= 10:
                    break
            except (ValueError, OSError):
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    cut_at = json.loads((runs / "killed" / "meta.json").read_text())["step"]
    assert cut_at < steps  # it really died mid-run
    resumed = embcli("train", "--resume", "killed", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert history(runs, "killed") == history(runs, "whole")
