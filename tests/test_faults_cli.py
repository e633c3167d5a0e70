"""The command line, query and export faults of issue #14 (items 5, 6, 13, 15–20, 22–25).

Each test names its item. They go through Typer's runner, or a real process where the fault lives
in the process itself (a closed pipe, a terminal-less shell, the hub's retries), and assert the
exact line a user sees where it is practical.
"""

import errno
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embcli.cli import app

runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], prog_name="embcli", **kwargs)


def one_line_error(result, code: int = 2) -> str:
    """The single error line of a failed command (asserting it is one line, no traceback, no usage block)."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "Usage:" not in result.stderr
    return lines[0]


def embcli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "embcli", *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kwargs)


def fingerprint(folder: Path) -> dict:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder nothing can be written into: read-only for a normal user; for root (who ignores
    permissions) a path under /sys, where even root cannot create files."""
    if os.geteuid() != 0:
        folder = tmp_path / "readonly"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    probe = Path("/sys/embcli-probe")
    try:
        probe.write_bytes(b"")
    except OSError:
        yield Path("/sys")
        return
    probe.unlink()
    pytest.skip("no unwritable folder on this machine")


# ---------------------------------------------------------------------------------------------
# 5. export never writes into a run folder
# ---------------------------------------------------------------------------------------------


def test_5_export_refuses_the_runs_own_files(trained_run, tmp_path):
    before = fingerprint(trained_run)
    line = one_line_error(invoke("export", "-f", "npy", "-o", trained_run / "embeddings.npy", "--top", 5,
                                 "--run", trained_run))
    assert line == (f"error: {trained_run / 'embeddings.npy'} is in the run folder {trained_run}: a run's files "
                    "are embcli's own; write somewhere else")
    # however the path is spelled: through '..', through a symlink to the folder, into a snapshot
    (tmp_path / "link").symlink_to(trained_run)
    for target in (trained_run / ".." / trained_run.name / "norms.npy", tmp_path / "link" / "embeddings.npy",
                   trained_run / "snapshots" / "step_00000010.npy"):
        assert "is in the run folder" in one_line_error(
            invoke("export", "-f", "npy", "-o", target, "--top", 5, "--run", trained_run))
    # the projector writes a folder: not the run folder either
    assert "is in the run folder" in one_line_error(
        invoke("export", "-f", "projector", "-o", trained_run, "--run", trained_run))
    assert fingerprint(trained_run) == before


def test_5_export_refuses_another_runs_files_too(trained_run, copy_of_trained_run):
    other = copy_of_trained_run("other")
    before = fingerprint(other)
    line = one_line_error(invoke("export", "-f", "word2vec", "-o", other / "meta.json", "--run", trained_run))
    assert f"is in the run folder {other}" in line
    assert fingerprint(other) == before


def test_5_pictures_stay_out_of_run_folders_too(trained_run):
    pytest.importorskip("matplotlib")
    line = one_line_error(invoke("plot", "loss", "--run", trained_run, "-o", trained_run / "loss.png"))
    assert "is in the run folder" in line and not (trained_run / "loss.png").exists()


# ---------------------------------------------------------------------------------------------
# 6. export replaces only regular files; a symlink is followed; a device is never replaced
# ---------------------------------------------------------------------------------------------


def test_6_export_refuses_a_fifo(trained_run, tmp_path):
    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    line = one_line_error(invoke("export", "-f", "npy", "-o", fifo, "--top", 5, "--run", trained_run))
    assert line == (f"error: {fifo} is a FIFO, not a regular file: embcli writes only regular files and never "
                    "replaces a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_6_export_never_replaces_a_device(trained_run, tmp_path):
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    for fmt in ("npy", "word2vec", "safetensors"):
        line = one_line_error(invoke("export", "-f", fmt, "-o", device, "--top", 5, "--run", trained_run))
        assert line.endswith("is a character device, not a regular file: embcli writes only regular files and "
                             "never replaces a character device")
        assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_6_export_follows_a_symlink_and_keeps_it(trained_run, tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old\n")
    (tmp_path / "link.txt").symlink_to(real)
    result = invoke("export", "-f", "word2vec", "-o", tmp_path / "link.txt", "--top", 3, "--run", trained_run)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "link.txt").is_symlink() and os.readlink(tmp_path / "link.txt") == str(real)
    assert real.read_text().startswith("3 32\n")


def test_6_a_folder_is_no_file_and_a_file_is_no_folder(trained_run, tmp_path):
    (tmp_path / "dir.npy").mkdir()
    assert "is a folder, not a regular file" in one_line_error(
        invoke("export", "-f", "npy", "-o", tmp_path / "dir.npy", "--run", trained_run))
    (tmp_path / "plain").write_text("")
    assert one_line_error(invoke("export", "-f", "projector", "-o", tmp_path / "plain", "--run", trained_run)) == (
        f"error: {tmp_path / 'plain'} is not a folder: the projector export writes a folder")


# ---------------------------------------------------------------------------------------------
# 13. meta.json of the wrong shape: one line in every reader; `runs` lists the good runs
# ---------------------------------------------------------------------------------------------

WRONG_SHAPES = [
    ("[1, 2, 3]", "not a JSON object but list"),
    ('"finished"', "not a JSON object but str"),
    ('{"status": "finished", "step": "ten"}', 'step should be a whole number, not "ten"'),
    ('{"status": "finished", "step": 5, "model": [1]}', "model should be an object, not [1]"),
    ('{"status": "finished", "step": 5, "model": {"parameters": 10}}', "model.table_parameters is missing"),
    ('{"status": "finished", "step": 5, "history": {"train": [[1, 2]]}}', "history.train should be rows of"),
    ('{"status": "finished", "step": 5, "history": []}', "history should be an object, not []"),
    ('{"status": 7}', "status should be text, not 7"),
]


@pytest.mark.parametrize("text, problem", WRONG_SHAPES)
def test_13_every_reader_says_the_meta_is_damaged(copy_of_trained_run, text, problem, tmp_path):
    run = copy_of_trained_run("bad")
    (run / "meta.json").write_text(text)
    expected = f"error: {run}/meta.json is damaged ({problem}"
    readers = [["neighbors", "cat"], ["inspect", "table"], ["inspect", "model"], ["inspect", "row", "3797"],
               ["trace", "cat"], ["export", "-f", "npy", "-o", tmp_path / "x.npy"], ["eval"],
               ["similarity", "cat", "dog"], ["plot", "loss", "-o", tmp_path / "l.png"]]
    for reader in readers:
        line = one_line_error(invoke(*reader, "--run", "bad"))
        assert line.startswith(expected), (reader, line)
    line = one_line_error(invoke("train", "--resume", "bad", "--max-steps", 70))
    assert line.startswith(expected), line


def test_13_runs_lists_the_good_runs_and_marks_the_damaged_one(copy_of_trained_run):
    copy_of_trained_run("good")
    bad = copy_of_trained_run("zbad")
    (bad / "meta.json").write_text("[1, 2, 3]")
    result = invoke("runs")
    assert result.exit_code == 0, result.output
    assert "good" in result.stdout and "finished" in result.stdout and "damaged" in result.stdout
    assert f"damaged: {bad}/meta.json is damaged (not a JSON object but list)" in result.stdout
    listed = json.loads(invoke("runs", "--json").stdout)["runs"]
    by_name = {r["run"]: r for r in listed}
    assert by_name["good"]["status"] == "finished" and by_name["good"]["problem"] is None
    assert by_name["zbad"]["status"] == "damaged" and "not a JSON object" in by_name["zbad"]["problem"]


# ---------------------------------------------------------------------------------------------
# 15. prepare --corpus of a FIFO or a device: the right reason
# ---------------------------------------------------------------------------------------------


def test_15_corpus_that_is_no_regular_file(tmp_path):
    fifo = tmp_path / "text.fifo"
    os.mkfifo(fifo)
    assert one_line_error(invoke("prepare", "--corpus", fifo)) == (
        f"error: corpus: {fifo} is not a regular file (a FIFO); give text files, folders or globs")
    assert one_line_error(invoke("prepare", "--corpus", "/dev/null")) == (
        "error: corpus: /dev/null is not a regular file (a character device); give text files, folders or globs")
    assert one_line_error(invoke("train", "--corpus", "/dev/null")).endswith("(a character device); give text "
                                                                              "files, folders or globs")
    assert "does not exist" in one_line_error(invoke("prepare", "--corpus", tmp_path / "missing.txt"))


# ---------------------------------------------------------------------------------------------
# 16. import-hf of a folder that is not there: said at once, no hub retries; no --resume advice
# ---------------------------------------------------------------------------------------------


def test_16_import_of_a_missing_folder_is_refused_at_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # as unreachable as the hub is here, without leaving the machine
    env["HF_HOME"] = str(tmp_path / "hf")
    for source, expected in [
        ("missing/dir", "error: no such folder: missing/dir (nor a model of that name in the Hugging Face cache, "
                        "and the hub cannot be reached)"),
        ("./missing/dir", "error: no such folder: ./missing/dir"),
        (str(tmp_path / "gone"), f"error: no such folder: {tmp_path / 'gone'}"),
    ]:
        start = time.monotonic()
        out = embcli("import-hf", source, env=env)
        assert time.monotonic() - start < 30  # the hub's retries took 28 s before the first line
        assert (out.returncode, out.stdout, out.stderr) == (2, "", expected + "\n")


def test_16_an_existing_name_is_refused_without_resume_advice(tmp_path):
    (tmp_path / "runs" / "gpt2").mkdir(parents=True)
    (tmp_path / "runs" / "gpt2" / "meta.json").write_text('{"format": 1, "status": "imported", "step": null}')
    folder = tmp_path / "models" / "gpt2"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    line = one_line_error(invoke("import-hf", folder))
    assert line == f"error: run {tmp_path / 'runs' / 'gpt2'} exists already: pick another --name"
    assert "--resume" not in line
    assert one_line_error(invoke("import-hf", tmp_path / "models")) == (
        f"error: {tmp_path / 'models'} has no config.json: not a Hugging Face model folder")


# ---------------------------------------------------------------------------------------------
# 17. one exit code for one cause: a target that cannot be written is 2, in every format
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, name", [("word2vec", "x.vec"), ("word2vec-bin", "x.bin"), ("projector", "proj"),
                                       ("npy", "x.npy"), ("safetensors", "x.safetensors")])
def test_17_unwritable_target_is_exit_2_in_every_format(trained_run, unwritable, fmt, name):
    for target in (unwritable / name, unwritable / "sub" / name):  # into the folder, and a folder to be made
        line = one_line_error(invoke("export", "-f", fmt, "-o", target, "--top", 5, "--run", trained_run), code=2)
        assert line.startswith("error: cannot write ") and line.endswith(("Permission denied",
                                                                          "Operation not permitted")), line


def test_17_pictures_and_runs_too(trained_run, unwritable, corpus_file):
    pytest.importorskip("matplotlib")
    line = one_line_error(invoke("plot", "loss", "--run", trained_run, "-o", unwritable / "l.png"), code=2)
    assert line.startswith("error: cannot write ")
    line = one_line_error(invoke("train", "--corpus", corpus_file, "--runs-dir", unwritable / "runs"), code=2)
    assert line.startswith("error: cannot write runs to ")


def test_17_the_machine_failing_is_1_and_the_target_2():
    from embcli.io import write_error

    assert write_error(Path("x"), OSError(errno.ENOSPC, "No space left on device")).exit_code == 1
    assert write_error(Path("x"), OSError(errno.EIO, "Input/output error")).exit_code == 1
    for code in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
        assert write_error(Path("x"), OSError(code, os.strerror(code))).exit_code == 2
    # an OSError without an errno still says something (it said "None")
    assert str(write_error(Path("x"), OSError("disk went away"))) == "cannot write x: disk went away"


# ---------------------------------------------------------------------------------------------
# 18. click's usage errors: one line like every other error, exit 2
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, line", [
    (["neighbors", "cat", "--top", "0"],
     "error: invalid value for '--top' / '-k': 0 is not in the range x>=1 (see: embcli neighbors --help)"),
    (["neighbors"], "error: missing argument 'words' (see: embcli neighbors --help)"),
    (["neighbors", "cat", "--tpo", "3"], "error: no such option: --tpo; did you mean --step or --top? (see: embcli neighbors --help)"),
    (["nieghbors", "cat"], "error: no such command 'nieghbors'. Did you mean 'neighbors'? (see: embcli --help)"),
    (["inspect", "rwo", "1"], "error: no such command 'rwo'. Did you mean 'row'? (see: embcli inspect --help)"),
    (["analogy", "a", "b", "c", "--method", "div"],
     "error: invalid value for '--method': 'div' is not one of 'add', 'mul' (see: embcli analogy --help)"),
    (["export", "-f", "glove", "-o", "x"], "error: invalid value for '--format' / '-f': 'glove' is not one of "
                                           "'word2vec', 'word2vec-bin', 'projector', 'npy', 'safetensors', "
                                           "'hf' (see: embcli export --help)"),
    (["trace", "cat", "-k", "-3"],
     "error: invalid value for '--top' / '-k': -3 is not in the range x>=1 (see: embcli trace --help)"),
    (["--bogus"], "error: no such option: --bogus (see: embcli --help)"),
])
def test_18_usage_errors_are_one_line(args, line):
    assert one_line_error(invoke(*args)) == line


def test_18_in_a_real_process_too():
    out = embcli("neighbors", "cat", "-k", "0")
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == ("error: invalid value for '--top' / '-k': 0 is not in the range x>=1 "
                          "(see: embcli neighbors --help)\n")


# ---------------------------------------------------------------------------------------------
# 19. a long word echoes a shortened form; a runs folder that is a file says so
# ---------------------------------------------------------------------------------------------


def test_19_a_5000_character_word_is_echoed_short(trained_run):
    word = "abcdefgh" * 625
    line = one_line_error(invoke("neighbors", word, "--run", trained_run))
    assert len(line) < 400, len(line)
    assert line.startswith("error: 'abcdefghabcdefghabcdefghabcd…abcdefgh (5,000 characters)' is not one GPT-2 "
                           "token: ' abcdefghabcdefghabcdefghabc…abcdefgh (5,001 characters)' is 1,876 tokens, ")
    assert line.endswith(" + 1,868 more; use --combine mean to average them")
    for args in (["neighbors", "cat", "--run", word], ["inspect", "row", word, "--run", trained_run],
                 ["export", "-f", "npy", "-o", word, "--run", trained_run], ["import-hf", word]):
        assert len(one_line_error(invoke(*args))) < 400, args


def test_19_runs_dir_that_is_a_file(tmp_path, corpus_file):
    plain = tmp_path / "hostname"
    plain.write_text("box\n")
    expected = f"error: the runs folder {plain} is not a folder (it comes from --runs-dir or EMBCLI_RUNS)"
    for args in (["runs"], ["neighbors", "cat"], ["train", "--corpus", corpus_file, "--max-steps", 1],
                 ["inspect", "model"], ["trace", "cat"]):
        assert one_line_error(invoke(*args, "--runs-dir", plain)) == expected, args
    assert one_line_error(invoke("runs", env={"EMBCLI_RUNS": str(plain)})) == expected


# ---------------------------------------------------------------------------------------------
# 20. Python 3.10: tomllib's fallback (CI also runs a smoke test on 3.10 itself: .ci/run)
# ---------------------------------------------------------------------------------------------


def test_20_configs_load_without_tomllib():
    pytest.importorskip("tomli")
    code = ("import sys; sys.modules['tomllib'] = None  # as on Python 3.10: no tomllib\n"
            "from embcli.config import load_config\n"
            "print(load_config('tiny', ['n_layer=3']).n_layer)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stdout, out.stderr) == (0, "3\n", "")


def test_20_every_module_imports_without_tomllib():
    """Not only configs: every module of embcli (directions.py reads a TOML file too) on a Python
    without tomllib, and the built-in concepts still load."""
    pytest.importorskip("tomli")
    code = ("import sys; sys.modules['tomllib'] = None  # as on Python 3.10: no tomllib\n"
            "import importlib, pkgutil, embcli\n"
            "for m in pkgutil.iter_modules(embcli.__path__):\n"
            "    if m.name == '__main__':  # that one runs the CLI\n"
            "        continue\n"
            "    try:\n"
            "        importlib.import_module('embcli.' + m.name)\n"
            "    except ModuleNotFoundError as exc:  # CI's Python 3.10 has no torch: those modules wait\n"
            "        if exc.name != 'torch':\n"
            "            raise\n"
            "from embcli.directions import load_concepts\n"
            "print(len(load_concepts()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert int(out.stdout) >= 4


def test_20_the_floor_in_pyproject_is_what_ci_runs():
    text = Path(__file__).resolve().parents[1].joinpath("pyproject.toml").read_text()
    assert 'requires-python = ">=3.10"' in text and "tomli>=1.1; python_version < '3.11'" in text
    ci = Path(__file__).resolve().parents[1].joinpath(".ci", "run").read_text()
    assert "3.10" in ci


# ---------------------------------------------------------------------------------------------
# 22. --version, -h, shell completion, choice lists and examples in --help
# ---------------------------------------------------------------------------------------------


def test_22_version_and_short_help():
    from embcli import __version__

    assert invoke("--version").stdout == f"embcli {__version__}\n"
    assert invoke("-V").stdout == f"embcli {__version__}\n"
    top = invoke("-h")
    assert top.exit_code == 0 and "Usage: embcli" in top.stdout and "--install-completion" in top.stdout
    assert invoke("neighbors", "-h").stdout == invoke("neighbors", "--help").stdout


def test_22_choice_lists_and_examples_in_help():
    def help_of(*command):
        result = invoke(*command, "--help")
        assert result.exit_code == 0, result.output
        return " ".join(result.stdout.split())  # as one line: the help wraps where the terminal ends

    assert "<word2vec|word2vec-bin|projector|npy|safetensors|hf>" in help_of("export")
    assert "--method <add|mul>" in help_of("analogy")
    assert "--combine <mean>" in help_of("neighbors") and "--combine <mean>" in help_of("plot", "words")
    assert "--device <auto|cpu|cuda|cuda:N|mps>" in help_of("train")
    assert "--baseline <word2vec>" in help_of("eval")
    for command, example in [(["train"], "embcli train --corpus notes/ --name mine"),
                             (["neighbors"], "embcli neighbors cat dog"), (["analogy"], "embcli analogy king man woman"),
                             (["export"], "embcli export -f word2vec -o cat.vec"), (["trace"], "embcli trace cat"),
                             (["eval"], "embcli eval --baseline word2vec"), (["shell"], "embcli shell"),
                             (["plot", "words"], "embcli plot words cat dog"), (["inspect", "row"], "inspect row 3797")]:
        assert example in help_of(*command), command


def test_22_shell_completion_is_offered():
    # typer asks shellingham which shell runs it, by walking up the process tree: run it from bash,
    # as a user would (under make's /bin/sh it would find sh, which typer does not complete)
    command = f"{shlex.quote(sys.executable)} -m embcli --show-completion bash; exit $?"
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, SHELL="/bin/bash"))
    assert out.returncode == 0 and "complete" in out.stdout and "_EMBCLI_COMPLETE" in out.stdout.upper(), out.stderr


# ---------------------------------------------------------------------------------------------
# 23. every query verb takes --runs-dir (and EMBCLI_RUNS); every answer names its run and step
# ---------------------------------------------------------------------------------------------


def test_23_query_verbs_find_runs_by_runs_dir_and_env(trained_run, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(trained_run, elsewhere / "mine")
    line = f"from mine at step 60 ({elsewhere / 'mine'})"
    verbs = [["neighbors", "cat"], ["analogy", "king", "man", "woman"], ["similarity", "cat", "dog"],
             ["odd-one-out", "cat", "dog", "blue"], ["inspect", "row", "3797"], ["inspect", "token", "cat"],
             ["inspect", "table"], ["inspect", "model"], ["trace", "cat"],
             ["export", "-f", "npy", "-o", tmp_path / "x.npy", "--top", 3]]
    assert invoke("neighbors", "cat").exit_code == 2  # the default runs folder is empty
    for verb in verbs:
        result = invoke(*verb, "--runs-dir", elsewhere)
        assert result.exit_code == 0, (verb, result.output)
        assert result.stdout.endswith(line + "\n"), (verb, result.stdout[-300:])
        assert json.loads(invoke(*verb, "--runs-dir", elsewhere, "--json").stdout)["run"]["path"] == str(
            elsewhere / "mine"), verb
    by_env = invoke("neighbors", "cat", env={"EMBCLI_RUNS": str(elsewhere)})
    assert by_env.exit_code == 0 and by_env.stdout.endswith(line + "\n")
    assert "mine" in invoke("runs", "--runs-dir", elsewhere).stdout


def test_23_the_line_names_the_snapshot_step(trained_run):
    result = invoke("neighbors", "cat", "-k", 2, "--step", 10, "--run", trained_run)
    assert result.stdout.splitlines()[-1] == f"from {trained_run.name} at step 10 ({trained_run})"
    data = json.loads(invoke("neighbors", "cat", "--step", 10, "--run", trained_run, "--json").stdout)
    assert data["run"] == {"name": trained_run.name, "path": str(trained_run), "step": 10}


# ---------------------------------------------------------------------------------------------
# 24. pipes: words from stdin, a reader that leaves early, a shell without a terminal
# ---------------------------------------------------------------------------------------------


def test_24_words_from_standard_input(trained_run):
    piped = invoke("neighbors", "-", "--run", trained_run, "--json", input="cat\ndog horse\n")
    assert piped.exit_code == 0, piped.output
    assert [w["query"]["text"] for w in json.loads(piped.stdout)["words"]] == ["cat", "dog", "horse"]
    typed = invoke("neighbors", "cat", "dog", "horse", "--run", trained_run, "--json")
    assert piped.stdout == typed.stdout
    odd = json.loads(invoke("odd-one-out", "-", "--run", trained_run, "--json", input="cat dog blue").stdout)
    assert odd["odd_one_out"]["text"] == "blue"
    tok = json.loads(invoke("tokenize", "-", "--json", input="The cat").stdout)
    assert [t["id"] for t in tok["tokens"]] == [464, 3797]
    assert one_line_error(invoke("neighbors", "-", "--run", trained_run, input="")) == (
        "error: '-' reads words from standard input, and it had none")


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_24_a_reader_that_leaves_early_is_no_error(trained_run, extra):
    """`neighbors cat -k 3000 | head -1`: more than a pipe holds, so the reader leaves mid-answer."""
    proc = subprocess.Popen([sys.executable, "-m", "embcli", "neighbors", "cat", "-k", "3000", "--min-count", "0",
                             "--run", str(trained_run), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does
    try:
        err = proc.stderr.read()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert first.strip() and (proc.returncode, err) == (0, b"")


def test_24_shell_from_a_pipe_prints_no_prompt(trained_run):
    out = embcli("shell", "--run", trained_run, "-k", 2, input="nn cat\nsim cat dog\n")
    assert out.returncode == 0 and out.stderr == ""
    assert "embcli>" not in out.stdout and "Ctrl-D" not in out.stdout
    assert out.stdout.startswith("'cat' → ␣cat (3797; space-prefixed: seen ")
    lines = embcli("shell", "--run", trained_run, "-k", 2, "--json", input="nn cat\nsim cat dog\nnn ornithology\n")
    answers = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [a["verb"] for a in answers] == ["neighbors", "similarity", "nn"]
    assert all(a["run"] == {"name": trained_run.name, "path": str(trained_run), "step": 60} for a in answers)
    assert answers[2]["error"].startswith("'ornithology' is not one GPT-2 token")


# ---------------------------------------------------------------------------------------------
# 25. plot loss --run; plot words takes the --combine its errors suggest
# ---------------------------------------------------------------------------------------------


def test_25_plot_loss_takes_run_as_an_option(trained_run, tmp_path):
    pytest.importorskip("matplotlib")
    result = invoke("plot", "loss", "--run", trained_run, "-o", tmp_path / "l.png")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {tmp_path / 'l.png'}\nfrom {trained_run.name} at step 60 ({trained_run})\n"
    assert (tmp_path / "l.png").read_bytes()[:4] == b"\x89PNG"
    assert one_line_error(invoke("plot", "loss", "a", "--run", "b", "-o", tmp_path / "m.png")) == (
        "error: two runs given (a and --run b): give one")


def test_25_plot_words_has_the_option_its_errors_suggest(trained_run, tmp_path):
    pytest.importorskip("matplotlib")
    line = one_line_error(invoke("plot", "words", "ornithology", "cat", "--run", trained_run, "-o", tmp_path / "w.png"))
    assert line.endswith("use --combine mean to average them")
    result = invoke("plot", "words", "ornithology", "cat", "dog", "--combine", "mean", "--neighbors", 2,
                    "--run", trained_run, "-o", tmp_path / "w.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"


def test_25_every_option_an_error_suggests_exists_on_that_command():
    """The cause, not the example: each '--option' a query's error can suggest is an option of every
    command whose words go through the same resolution."""
    from typer.main import get_command

    group = get_command(app)
    suggested = "--combine"  # space.resolve's advice for a word of several tokens
    for path in (["neighbors"], ["analogy"], ["similarity"], ["odd-one-out"], ["plot", "words"]):
        command = group
        for name in path:
            command = command.commands[name]
        assert any(suggested in p.opts for p in command.params), path


def test_json_tokens_are_real_strings(trained_run):
    """#11 item 4 in brief (tests/test_json.py walks every verb): no ␣ in JSON, ids beside strings."""
    data = invoke("neighbors", "cat", "-k", 3, "--run", trained_run, "--json").stdout
    assert "␣" not in data and '"token": " cat"' in data
    assert np.all([n["token"].startswith(" ") for n in json.loads(data)["words"][0]["neighbors"]])


# ---------------------------------------------------------------------------------------------
# Found while making the README's commands run (tests/test_readme.py)
# ---------------------------------------------------------------------------------------------


def test_sampled_softmax_with_the_corpus_output_vocabulary_trains(corpus_file):
    """loss=sampled with output_vocab=corpus crashed on its first step (an id of the whole table used
    as a row of the corpus's rows). The sampled loss scores corpus ids already, so training is the
    same as with the full vocabulary, and validation is the softmax over the corpus's ids."""
    from tests.conftest import TINY

    sets = [x for item in TINY + ["loss=sampled", "negatives=64"] for x in ("--set", item)]
    answers = {}
    for vocab in ("corpus", "full"):
        result = invoke("train", "--corpus", corpus_file, *sets, "--set", f"output_vocab={vocab}", "--max-steps", 10,
                        "--name", vocab, "--quiet", "--json")
        assert result.exit_code == 0, result.output
        answers[vocab] = json.loads(result.stdout)
    corpus, full = answers["corpus"], answers["full"]
    assert corpus["status"] == "finished" and corpus["train_loss_kind"] == "sampled"
    assert corpus["train_loss"] == full["train_loss"]  # the same training, step for step
    # the same model scored over fewer ids: every target is among them, so its share can only grow
    assert 0 < corpus["val_loss"] < full["val_loss"]


def test_tokens_words_and_run_names_print_as_typed(copy_of_trained_run):
    """Token text and what the user typed reach rich as text, never as markup: "[/" or "[bold]"
    is shown as it is, a trailing backslash escapes nothing (tests/test_render.py: every answer)."""
    result = invoke("tokenize", "[bold]x[/bold] C:\\")
    assert result.stdout == "9 tokens: [(58)  bold(36575)  ](60)  x(87)  [/(13412)  bold(36575)  ](60)  ␣C(327)  :\\(7479)\n"
    name = "[bold]run"  # read as markup it would show as "run", in bold
    copy_of_trained_run(name)
    listed = invoke("runs")
    assert listed.exit_code == 0 and f"│ {name} " in listed.stdout, listed.output
    result = invoke("neighbors", "[bold]x[/bold]", "--combine", "mean", "-k", 2, "--run", name)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("'[bold]x[/bold]' → ␣[ + bold + ] + x + [/ + bold + ] (685, 36575, 60, 87, 13412, ")
    assert lines[-1].startswith(f"from {name} at step 60 (")
    row = invoke("inspect", "row", 59, "-k", 2, "--run", name)
    assert row.exit_code == 0 and row.stdout.startswith("row 59 = \\   seen "), row.output
    traced = invoke("trace", "cat", "-k", 2, "--with", "[", "--run", name)
    assert traced.exit_code == 0 and "cosine over training: cat–␣[: " in traced.stdout, traced.output


@pytest.mark.parametrize("args", [["neighbors", "ornithology"], ["analogy", "ornithology", "man", "woman"],
                                  ["similarity", "ornithology", "cat"], ["odd-one-out", "ornithology", "cat", "dog"],
                                  ["inspect", "token", "ornithology"], ["trace", "ornithology"],
                                  ["trace", "cat", "--with", "ornithology"]])
def test_a_word_of_several_tokens_is_refused_with_advice_that_works_there(trained_run, args):
    """The advice names only options the command has: --combine where it averages the pieces; the
    verbs that take one token (a row, a trace) say so instead."""
    import re

    from typer.main import get_command

    line = one_line_error(invoke(*args, "--run", trained_run))
    assert line.startswith("error: 'ornithology' is not one GPT-2 token: ' ornithology' is 3 tokens, "), line
    command = get_command(app)
    for name in args[:2] if args[0] == "inspect" else args[:1]:
        command = command.commands[name]
    offered = {opt for p in command.params for opt in p.opts}
    assert set(re.findall(r"--[a-z-]+", line)) <= offered, line
    if "--combine" not in offered:
        assert "one token" in line.split(";")[-1], line


def test_the_shell_advises_what_works_in_the_shell(trained_run):
    """The shell's verbs take no --combine: it offers 'combine mean', a setting for the session."""
    from embcli.shell import run_shell
    from embcli.space import EmbeddingSpace

    space = EmbeddingSpace.from_run(trained_run)

    def answers(*lines):
        from io import StringIO

        from rich.console import Console

        buffer = StringIO()
        run_shell(space, 2, lines=list(lines), out=Console(file=buffer, width=300, highlight=False))
        return buffer.getvalue()

    refused = "error: 'ornithology' is not one GPT-2 token: ' ornithology' is 3 tokens, '␣orn'(25322) + 'ith'(342) + 'ology'(1435); "
    averaged = "'ornithology' → ␣orn + ith + ology (25322, 342, 1435; mean of 3 pieces)"
    text = answers("nn ornithology", "token ornithology", "combine mean", "nn ornithology", "sim ornithology cat",
                   "token ornithology", "combine off", "odd ornithology cat dog")
    assert "--combine" not in text
    lines = text.splitlines()
    combine = "type 'combine mean' to average the pieces of such words ('combine off' refuses them again)"
    row = "a row is one token: 'tok WORD' shows its pieces and 'row ID' each one"
    assert lines[0] == refused + combine and lines[1] == refused + row
    assert lines[2] == averaged and lines.count(averaged) == 1  # nn, averaged
    assert any(line.startswith(f"cosine({averaged}, 'cat' → ␣cat") for line in lines)  # sim, averaged
    assert lines[-2:] == [refused + row, refused + combine]  # token: still one row; after 'combine off', refused
    assert "combine mean|off" in answers("help")


def test_train_names_a_corpus_as_typed(corpus_file, tmp_path):
    """train's log lines (model, corpus) carry paths: text, never markup."""
    from tests.conftest import TINY

    named = tmp_path / "[bold]notes.txt"
    shutil.copy(corpus_file, named)
    sets = [x for item in TINY for x in ("--set", item)]
    result = invoke("train", "--corpus", "[bold]notes.txt", *sets, "--max-steps", 1, "--name", "[bold]run")
    assert result.exit_code == 0, result.output
    assert "corpus: [bold]notes.txt: " in result.stderr
    assert "run: " in result.stdout and "[bold]run   try: embcli neighbors cat --run " in result.stdout
