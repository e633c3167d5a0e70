"""CUDA paths. Skipped where no GPU exists (CI); run on a GPU machine with `pytest tests/test_cuda.py`."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embcli.data import CorpusSpec
from embcli.losses import fused_linear_cross_entropy
from embcli.train import Trainer, pick_device, train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@cuda
def test_auto_device_is_cuda():
    assert pick_device("auto").type == "cuda"
    assert pick_device("cuda:0").index == 0


@cuda
def test_fused_loss_on_cuda_matches_plain():
    torch.manual_seed(0)
    h = torch.randn(1000, 64, device="cuda", requires_grad=True)
    w = (torch.randn(50257, 64, device="cuda") * 0.05).requires_grad_()
    y = torch.randint(0, 50257, (1000,), device="cuda")
    plain = F.cross_entropy(h @ w.t(), y)
    gh, gw = torch.autograd.grad(plain, [h, w])
    fused = fused_linear_cross_entropy(h, w, y, 256)
    fh, fw = torch.autograd.grad(fused, [h, w])
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fh, gh, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(fw, gw, rtol=1e-3, atol=1e-5)


@cuda
def test_training_on_cuda_uses_bf16_fused_adamw_and_learns(corpus_file, tiny):
    seen = {}

    def probe(trainer: Trainer):
        seen["amp"] = type(trainer.amp).__name__
        seen["fused"] = trainer.optimizer.defaults.get("fused")
        seen["tf32"] = torch.backends.cuda.matmul.allow_tf32

    result = train(tiny(max_steps=40), CorpusSpec(paths=[str(corpus_file)]), name="gpu", device="cuda",
                   progress=False, on_step=probe)
    assert seen == {"amp": "autocast", "fused": True, "tf32": True}
    assert result.train_loss < 8 and result.status == "finished"
    table = np.load(result.run / "embeddings.npy")
    assert table.dtype == np.float32 and table.shape == (50257, 32)
    resumed = train(None, resume="gpu", device="cuda", progress=False, stop_overrides={"max_steps": 45})
    assert resumed.step == 45


@cuda
def test_compiled_training_on_cuda(corpus_file, tiny):
    result = train(tiny(max_steps=10, compile=True), CorpusSpec(paths=[str(corpus_file)]), name="gpuc",
                   device="cuda", progress=False)
    assert result.step == 10 and np.isfinite(result.train_loss)
