import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embcli import runs
from embcli.data import CorpusSpec
from embcli.errors import EmbcliError
from embcli.train import learning_rate, pick_device, train


def spec(path):
    return CorpusSpec(paths=[str(path)])


def losses(run):
    return [row[2] for row in runs.read_meta(run).history["train"]]


def test_loss_falls_and_run_is_complete(trained_run):
    run = trained_run  # TINY, 60 steps, on the test corpus
    hist = losses(run)
    assert len(hist) == 60
    assert np.mean(hist[-5:]) < hist[0] - 2.0  # from ~10.8 (uniform over 50257) down a long way
    meta = runs.read_meta(run)
    assert meta["status"] == "finished" and meta["step"] == 60 and meta["tokens_seen"] == 60 * 8 * 32
    assert meta["val_loss"] is not None and meta["corpus"]["tokens"]["train"] > 0
    assert meta["model"]["tied"] and meta["versions"]["torch"] == torch.__version__
    # the table as .npy equals the model's wte in safetensors; counts are the corpus's
    table = np.load(run / "embeddings.npy")
    weights = load_file(str(run / "checkpoint" / "model.safetensors"))
    assert table.dtype == np.float32 and table.shape == (50257, 32)
    np.testing.assert_array_equal(table, weights["wte.weight"].numpy())
    assert not any(k.startswith("lm_head") for k in weights)
    assert np.load(run / "counts.npy")[3797] > 0
    # snapshots at 0, 10, 30 and the end; step 0 is the untrained N(0, 0.02) table
    steps = [s for s, _ in runs.list_snapshots(run)]
    assert steps == [0, 10, 30, 60]
    start = np.load(run / "snapshots" / "step_00000000.npy")
    assert abs(start.std() - 0.02) < 0.001
    assert json.loads((run / "config.json").read_text())["n_embd"] == 32


def test_snapshot_every_adds_the_multiples_of_k(corpus_file, tiny):
    run = train(tiny(max_steps=7, snapshot_every=3), spec(corpus_file), name="dense", progress=False).run
    assert [s for s, _ in runs.list_snapshots(run)] == [0, 3, 6, 7]  # step 0, each multiple of 3, the end
    assert runs.is_snapshot_step(30, 7) and runs.is_snapshot_step(14, 7) and not runs.is_snapshot_step(15, 7)
    assert not runs.is_snapshot_step(14) and not runs.is_snapshot_step(14, 0)
    with pytest.raises(EmbcliError, match=r"snapshot_every must be >= 0 \(got -1\)"):
        tiny(snapshot_every=-1)


def test_same_seed_same_run(corpus_file, tiny):
    a = train(tiny(max_steps=8), spec(corpus_file), name="a", progress=False).run
    b = train(tiny(max_steps=8), spec(corpus_file), name="b", progress=False).run
    c = train(tiny(max_steps=8, seed=7), spec(corpus_file), name="c", progress=False).run
    assert losses(a) == losses(b)
    np.testing.assert_array_equal(np.load(a / "embeddings.npy"), np.load(b / "embeddings.npy"))
    assert losses(a) != losses(c)


@pytest.mark.slow
def test_resume_continues_the_same_trajectory(corpus_file, tiny):
    whole = train(tiny(max_steps=24), spec(corpus_file), name="whole", progress=False).run

    def interrupt(trainer):
        if trainer.step == 13:
            raise KeyboardInterrupt

    with pytest.raises(EmbcliError, match="interrupted at step 13") as info:
        train(tiny(max_steps=24), spec(corpus_file), name="cut", progress=False, on_step=interrupt)
    assert info.value.exit_code == 130
    cut = runs.find_run("cut")
    assert runs.read_meta(cut).status == "interrupted"
    result = train(None, resume="cut", progress=False)
    assert result.step == 24
    assert losses(cut) == losses(whole)
    np.testing.assert_array_equal(np.load(cut / "embeddings.npy"), np.load(whole / "embeddings.npy"))


def test_resume_can_extend_a_finished_run(copy_of_trained_run):
    copy_of_trained_run("r")  # finished at step 60
    result = train(None, resume="r", progress=False, stop_overrides={"max_steps": 63})
    assert result.step == 63 and len(losses(result.run)) == 63


def test_crash_while_saving_keeps_the_previous_checkpoint(copy_of_trained_run):
    run = copy_of_trained_run("c")
    before = load_file(str(run / "checkpoint" / "model.safetensors"))

    def broken_write(folder):
        (folder / "model.safetensors").write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    with pytest.raises(EmbcliError, match="previous one is intact"):
        runs.write_checkpoint_dir(run, broken_write)
    after = load_file(str(run / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not [p for p in run.iterdir() if p.name.startswith(".checkpoint-")]


def test_swap_cut_short_falls_back_to_old_checkpoint(copy_of_trained_run):
    run = copy_of_trained_run("s")  # finished at step 60
    (run / "checkpoint").rename(run / "checkpoint.old")  # the crash between the two renames
    assert runs.checkpoint_dir(run) == run / "checkpoint.old"
    assert train(None, resume="s", progress=False, stop_overrides={"max_steps": 62}).step == 62


def test_resume_from_damaged_run_is_one_clear_error(copy_of_trained_run):
    run = copy_of_trained_run("d")  # finished at step 60
    (run / "checkpoint" / "optimizer.safetensors").write_bytes(b"garbage")
    with pytest.raises(EmbcliError, match="damaged"):
        train(None, resume="d", progress=False, stop_overrides={"max_steps": 62})
    (run / "config.json").write_text("{not json")
    with pytest.raises(EmbcliError, match="config.json is missing or damaged"):
        train(None, resume="d", progress=False)
    with pytest.raises(EmbcliError, match="no run 'nope'"):
        train(None, resume="nope", progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(corpus_file, tiny, monkeypatch):
    from embcli import train as train_mod

    real = train_mod.Trainer.train_step

    def poisoned(self):
        loss = real(self)
        return float("nan") if self.step == 13 else loss

    monkeypatch.setattr(train_mod.Trainer, "train_step", poisoned)
    with pytest.raises(EmbcliError, match="diverged.*step 13.*step 10") as info:
        train(tiny(max_steps=20), spec(corpus_file), name="n", progress=False)
    assert info.value.exit_code == 1
    meta = runs.read_meta(runs.find_run("n"))
    assert (meta.step, meta.status) == (10, "failed") and "diverged" in meta.error
    assert json.loads((runs.find_run("n") / "checkpoint" / "state.json").read_text())["step"] == 10


def test_gradient_accumulation_matches_a_bigger_batch(corpus_file, tiny):
    big = train(tiny(max_steps=3, batch_size=8, grad_accum=1), spec(corpus_file), name="big", progress=False).run
    acc = train(tiny(max_steps=3, batch_size=4, grad_accum=2), spec(corpus_file), name="acc", progress=False).run
    np.testing.assert_allclose(losses(big), losses(acc), rtol=1e-4)


def test_stop_by_tokens_and_time(corpus_file, tiny):
    r = train(tiny(max_steps=0, max_tokens=5 * 256), spec(corpus_file), name="t", progress=False)
    assert r.step == 5
    r = train(tiny(max_steps=0, time_budget=0.5), spec(corpus_file), name="u", progress=False)
    assert r.step >= 1 and r.seconds < 30


def test_schedule_warms_up_then_decays(tiny):
    cfg = tiny(learning_rate=1.0, warmup_steps=10, min_lr_ratio=0.1, max_steps=100)
    assert learning_rate(cfg, 0, 0.0) == pytest.approx(0.1)
    assert learning_rate(cfg, 9, 0.09) == pytest.approx(1.0)
    assert learning_rate(cfg, 50, 0.5) == pytest.approx(0.55)
    assert learning_rate(cfg, 100, 1.0) == pytest.approx(0.1)


def test_devices():
    assert pick_device("cpu").type == "cpu"
    mps = getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    with pytest.raises(EmbcliError, match="unknown device"):
        pick_device("tpu7")
    if not torch.cuda.is_available():
        with pytest.raises(EmbcliError, match="no CUDA GPU"):
            pick_device("cuda")


def test_unwritable_runs_folder(corpus_file, tiny, tmp_path):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    with pytest.raises(EmbcliError, match="cannot write runs"):
        train(tiny(max_steps=1), spec(corpus_file), runs_dir=blocked / "runs", progress=False)


def test_compile_failure_falls_back_to_eager(corpus_file, tiny, monkeypatch):
    failure = type("BackendCompilerFailed", (RuntimeError,), {"__module__": "torch._dynamo.exc"})

    class NoCompiler(torch.nn.Module):
        def __init__(self, model, **options):
            super().__init__()
            self._orig_mod = model

        def forward(self, *args, **kwargs):
            raise failure("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", NoCompiler)
    said = []
    result = train(tiny(max_steps=3, compile=True), spec(corpus_file), name="nc", progress=False, log=said.append)
    assert result.step == 3 and any("torch.compile failed" in s for s in said)


def test_sampled_softmax_trains_and_validates_with_the_full_softmax(corpus_file, tiny):
    result = train(tiny(max_steps=30, loss="sampled", negatives=256), spec(corpus_file), name="ss", progress=False)
    hist = losses(result.run)
    assert np.mean(hist[-5:]) < hist[0] - 1.0
    assert 0 < result.val_loss < 10.8  # the full 50257-way loss, comparable across recipes


def adamw_step_on_cpu(monkeypatch):
    """make_optimizer for a tiny model, then one step; counts calls of torch's fused AdamW kernel."""
    from embcli.config import TrainConfig
    from embcli.model import GPT, GPTConfig
    from embcli.train import make_optimizer

    fused_calls = []
    real_kernel = torch._fused_adamw_

    def counting_kernel(*args, **kwargs):
        fused_calls.append(1)
        return real_kernel(*args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adamw_", counting_kernel)
    cfg = TrainConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, embedding_lr=1e-2)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_train_config(cfg))
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.randint(0, 50257, (2, 8)), torch.randint(0, 50257, (2, 8))).backward()
    opt.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert [g["name"] for g in opt.param_groups] == ["table", "matrices", "vectors"]
    assert opt.param_groups[0]["lr_scale"] == 1e-2 / cfg.learning_rate
    return opt, len(fused_calls), moved, set(before)


def test_cpu_training_uses_the_fused_adamw_kernel(monkeypatch):
    opt, fused_calls, moved, names = adamw_step_on_cpu(monkeypatch)
    assert opt.defaults["fused"] is True
    assert fused_calls > 0
    assert moved == names  # every parameter had a gradient, so AdamW moved every one


def test_adamw_falls_back_to_the_default_kernel_without_a_fused_one(monkeypatch):
    real = torch.optim.AdamW

    class AdamWWithoutFusedKernel(real):
        """What an older torch does on a device its fused AdamW does not cover: refuse fused=True."""

        def __init__(self, params, *args, fused=None, **kwargs):
            if fused:
                raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of "
                                   "supported devices: ['cuda']")
            super().__init__(params, *args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", AdamWWithoutFusedKernel)
    opt, fused_calls, moved, names = adamw_step_on_cpu(monkeypatch)
    assert isinstance(opt, AdamWWithoutFusedKernel) and not opt.defaults["fused"]
    assert fused_calls == 0
    assert moved == names


@pytest.mark.parametrize("flags, native", [("fpu sse avx512f avx512_bf16 avx512_vnni", True),
                                           ("fpu sse avx512f amx_bf16 amx_tile", True),
                                           ("fpu sse avx2 avx512f avx512bw", False)])
def test_dtype_auto_is_bf16_only_where_the_cpu_has_it_natively(tiny, monkeypatch, flags, native):
    import builtins
    import io

    from embcli import train as train_module

    real_open = builtins.open
    cpuinfo = f"processor\t: 0\nmodel name\t: some CPU\nflags\t\t: {flags}\n"
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: io.StringIO(cpuinfo) if path == "/proc/cpuinfo"
                        else real_open(path, *a, **k))
    cpu = torch.device("cpu")
    assert train_module.native_bf16(cpu) is native
    assert train_module.uses_bf16(tiny(dtype="auto", max_steps=10), cpu) is native
    assert train_module.uses_bf16(tiny(dtype="float32", max_steps=10), cpu) is False
    assert train_module.uses_bf16(tiny(dtype="bfloat16", max_steps=10), cpu) is True
