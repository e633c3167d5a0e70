import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embcli.losses import OverVocab, SampledSoftmax, cross_entropy, fused_linear_cross_entropy, sampled_softmax_loss
from embcli.model import GPT, GPTConfig


def small(**kw):
    return GPT(GPTConfig(**dict(dict(n_layer=2, n_head=2, n_embd=32, block_size=16), **kw)))


def test_output_layer_is_the_embedding_table():
    torch.manual_seed(0)
    model = small()
    names = [n for n, _ in model.named_parameters()]
    assert "wte.weight" in names and not any("lm_head" in n for n in names)
    # the shared matrix is counted once: the count of the architecture, written out
    d, layers, blocks = 32, 2, 16
    per_layer = (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d
    assert model.num_parameters() == 50257 * d + blocks * d + layers * per_layer + 2 * d
    # a row of the table is also that token's output direction: moving row r (a token that is not
    # in the input) moves the logits of r and of nothing else
    x = torch.randint(0, 1000, (2, 8))
    r = 3797
    with torch.no_grad():
        before = model(x)
        model.wte.weight[r] += 1.0
        after = model(x)
    assert not torch.allclose(after[..., r], before[..., r])
    others = torch.ones(50257, dtype=torch.bool)
    others[r] = False
    torch.testing.assert_close(after[..., others], before[..., others], rtol=0, atol=0)


def test_gpt2_small_parameter_count():
    with torch.device("meta"):
        model = GPT(GPTConfig())
    assert model.num_parameters() == 124_439_808
    assert model.wte.weight.numel() == 50257 * 768


def test_table_starts_as_gpt2_noise():
    torch.manual_seed(0)
    w = small(n_embd=64).wte.weight.detach()
    assert abs(w.mean().item()) < 1e-3
    assert math.isclose(w.std().item(), 0.02, rel_tol=0.02)


@pytest.mark.parametrize(("chunk", "stage", "compiled"),
                         [(7, 1024, False), (64, 1024, False), (1000, 1024, False), (8, 24, False),
                          pytest.param(7, 50, True, marks=pytest.mark.slow)])  # torch.compile
def test_fused_loss_matches_plain_loss_and_gradients(chunk, stage, compiled):
    torch.manual_seed(0)
    h = torch.randn(300, 16, requires_grad=True)
    w = (torch.randn(1000, 16) * 0.3).requires_grad_()
    y = torch.randint(0, 1000, (300,))
    y[5] = y[77] = -100  # ignored positions, in different stages
    plain = F.cross_entropy(h @ w.t(), y)
    gh, gw = torch.autograd.grad(plain * 3, [h, w])
    fused = fused_linear_cross_entropy(h, w, y, chunk, stage, compiled)
    fh, fw = torch.autograd.grad(fused * 3, [h, w])
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fh, gh, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fw, gw, rtol=1e-4, atol=1e-6)


def test_fused_loss_under_bf16_autocast_is_close():
    torch.manual_seed(0)
    h = torch.randn(64, 32)
    w = torch.randn(500, 32) * 0.1
    y = torch.randint(0, 500, (64,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = fused_linear_cross_entropy(h, w, y)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, F.cross_entropy(h @ w.t(), y), rtol=2e-2, atol=2e-2)


def test_model_losses_agree_between_implementations_and_vocab_restriction():
    torch.manual_seed(0)
    model = small()
    x = torch.randint(0, 50257, (2, 16))
    y = torch.randint(0, 50257, (2, 16))
    plain = model(x, y)
    torch.testing.assert_close(plain, F.cross_entropy(model(x).reshape(-1, 50257), y.flatten()))
    torch.testing.assert_close(model(x, y, loss_fn=fused_linear_cross_entropy), plain)
    ids = torch.unique(torch.cat([y.flatten(), torch.arange(100)]))
    restricted = model(x, y, loss_fn=OverVocab(cross_entropy, ids, 50257))
    full_logits = model(x)[..., ids]
    remapped = torch.searchsorted(ids, y)
    torch.testing.assert_close(restricted, F.cross_entropy(full_logits.reshape(-1, len(ids)), remapped.flatten()))
    torch.testing.assert_close(model(x, y, loss_fn=OverVocab(fused_linear_cross_entropy, ids, 50257)), restricted)


def test_context_longer_than_block_size_is_refused():
    with pytest.raises(ValueError, match="longer than block_size"):
        small()(torch.zeros(1, 17, dtype=torch.long))


def test_sampled_softmax_with_all_ids_as_negatives_is_close_to_the_full_softmax():
    torch.manual_seed(0)
    h = torch.randn(50, 8)
    w = torch.randn(200, 8) * 0.5
    y = torch.randint(0, 200, (50,))
    negatives = torch.arange(200)
    log_q = torch.full((200,), -math.log(200))  # uniform proposal: the correction is a constant
    # every id is a negative once, the target's own copy is masked: exactly the full softmax
    torch.testing.assert_close(sampled_softmax_loss(h, w, y, negatives, log_q), F.cross_entropy(h @ w.t(), y))


def test_sampled_softmax_draws_its_negatives_from_the_corpus_ids():
    counts = np.zeros(50257, dtype=np.int64)
    counts[[5, 17, 3797]] = [100, 10, 1]
    loss = SampledSoftmax(counts, 64, torch.device("cpu"))
    with pytest.raises(RuntimeError, match="draw"):
        loss(torch.zeros(1, 4), torch.zeros(50257, 4), torch.zeros(1, dtype=torch.long))
    torch.manual_seed(0)
    loss.draw()
    assert set(loss.negatives.tolist()) <= {5, 17, 3797} and loss.negatives.numel() == 64
    assert (loss.negatives == 5).sum() > (loss.negatives == 3797).sum()  # q ∝ count^0.75


def loss_curve(loss: str, bf16: bool, compiled: bool, steps: int = 8) -> list[float]:
    """Train a small tied GPT (full 50257-way softmax) for a few steps from a fixed seed."""
    from functools import partial

    from embcli.config import TrainConfig
    from embcli.train import make_optimizer

    loss_fn = cross_entropy if loss == "plain" else partial(fused_linear_cross_entropy, chunk=16, stage=64,
                                                            compiled=compiled)

    cfg = TrainConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8, learning_rate=1e-2)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_train_config(cfg))
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    forward = torch.compile(model) if compiled else model
    data = torch.Generator().manual_seed(1)
    pattern = torch.randint(0, 50257, (40,), generator=data)  # a repeating text: the loss must fall
    losses = []
    for _ in range(steps):
        starts = torch.randint(0, 40, (8,), generator=data)
        rows = pattern[(starts[:, None] + torch.arange(33)) % 40]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            value = forward(rows[:, :-1], rows[:, 1:], loss_fn=loss_fn)
        value.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(value.item())
    return losses


@pytest.mark.slow
def test_fast_paths_follow_the_plain_loss_curve():
    # the guard on the speed work: same seed, same batches -> the same losses, step by step
    plain = loss_curve("plain", bf16=False, compiled=False)
    assert plain[-1] < plain[0] - 1.0  # it learns, so the curves are compared while they move
    fused = loss_curve("fused", bf16=False, compiled=False)
    torch.testing.assert_close(torch.tensor(fused), torch.tensor(plain), rtol=1e-4, atol=1e-4)
    # what bench/train_speed.py's fastest row runs: bf16, torch.compile (~25 s to compile here)
    fast = loss_curve("fused", bf16=True, compiled=True)
    torch.testing.assert_close(torch.tensor(fast), torch.tensor(plain), rtol=2e-3, atol=1e-2)
