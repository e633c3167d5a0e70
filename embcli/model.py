"""A GPT-2-style transformer whose output layer *is* its token-embedding table.

Read top to bottom, as nanoGPT's model.py: token + learned position embeddings, pre-LayerNorm
blocks (causal self-attention, GELU MLP), a final LayerNorm, and logits = h @ wte.T. Because the
same matrix reads tokens in and scores tokens out ("weight tying", as GPT-2 does), every row of
the table is pushed by both jobs: a row must be a good input for its token and a good target
direction for contexts that predict it. That is why similar tokens end up near each other.

For GPT-2 small the table is 50257 × 768 = 38.6M of the model's 124M parameters, and the output
matmul against it is most of the compute of a small model. :func:`fused_linear_cross_entropy`
computes that layer and the loss block by block, so the (tokens × 50257) logits never exist whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    block_size: int = 1024
    dropout: float = 0.0
    bias: bool = True

    @classmethod
    def from_train_config(cls, cfg) -> GPTConfig:
        return cls(**{k: getattr(cfg, k) for k in cls.__dataclass_fields__})


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, heads, T, head_dim)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        dropout = self.dropout if self.training else 0.0
        if x.device.type == "cpu" and T <= 256:
            # Short contexts on CPU: the attention matrix written out (as nanoGPT's fallback does).
            # PyTorch's CPU flash-attention backward is ~3.5× slower at T = 128 (47 vs 13 ms for a
            # layer's forward + backward, batch 32, 4 heads, bf16, 2 cores); from T ≈ 512 flash
            # attention wins, and it never holds the T × T matrix.
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = F.dropout(F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1), dropout, self.training)
            y = att @ v
        else:  # flash attention on CUDA, a fused kernel on CPU; the causal mask is built in
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # the table: embcli's product
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        # No separate lm_head: the output layer reads self.wte.weight, so tying is not an
        # aliasing trick but a single Parameter, saved once and counted once.
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2 * n_layer), so the residual stream's
        # variance does not grow with depth
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # Every row of the table starts as N(0, 0.02) noise: no token means anything yet.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def output_weight(self) -> torch.Tensor:
        return self.wte.weight

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # parameters() yields a shared one once

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """The final hidden states (B, T, C), before the output layer."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *, loss_impl: str = "fused",
                chunk: int = 256, stage: int = 1024, compiled_softmax: bool = False,
                vocab_ids: torch.Tensor | None = None, sampled: tuple | None = None):
        """Logits when ``targets`` is None, else the mean next-token cross-entropy.

        ``vocab_ids`` restricts the softmax to those ids (targets must be among them); it is the
        "corpus" output vocabulary, an option that cuts work rather than doing it faster.
        ``loss_impl="sampled"`` scores each target against shared sampled negatives instead of all
        50257 ids (see :func:`sampled_softmax_loss`); also an option that cuts the work.
        """
        h = self.hidden(idx)
        weight = self.output_weight
        if targets is None:
            return h @ weight.t()
        h, targets = h.reshape(-1, h.size(-1)), targets.reshape(-1)
        if vocab_ids is not None:
            weight = weight[vocab_ids]
            targets = remap_targets(targets, vocab_ids, self.config.vocab_size)
        if loss_impl == "plain":
            return F.cross_entropy(h @ weight.t(), targets)
        if loss_impl == "sampled":
            if sampled is None:
                raise ValueError("loss_impl='sampled' needs sampled=(negative ids, log proposal probabilities)")
            return sampled_softmax_loss(h, weight, targets, *sampled)
        return fused_linear_cross_entropy(h, weight, targets, chunk, stage, compiled_softmax)


def remap_targets(targets: torch.Tensor, vocab_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    lookup = torch.full((vocab_size,), -100, dtype=torch.long, device=targets.device)
    lookup[vocab_ids] = torch.arange(len(vocab_ids), device=targets.device)
    return lookup[targets]


def _softmax_rows_(z: torch.Tensor) -> torch.Tensor:
    """Overwrite each row of ``z`` with its softmax, computed in float32; return the rows' logsumexp.

    Written for torch.compile: Inductor turns it into one loop that finds the max and the sum of
    exponentials together (an "online" softmax) and one that writes the result back in place, so
    a block of logits is read twice and written once. Eagerly it is a handful of passes.
    """
    zf = z.float()
    m = zf.amax(1, keepdim=True)
    e = torch.exp(zf - m)
    s = e.sum(1, keepdim=True)
    z.copy_((e * (1.0 / s)).to(z.dtype))
    return (m + s.log()).squeeze(1)


def _softmax_rows_eager_(z: torch.Tensor) -> torch.Tensor:
    """:func:`_softmax_rows_` without a compiler: fewer temporaries than the compilable form."""
    zf = z.float()  # z itself when z is float32, so the passes below work in place
    lse = torch.logsumexp(zf, 1)
    zf.sub_(lse[:, None]).exp_()
    if zf is not z:
        z.copy_(zf)
    return lse


_compiled_softmax = None  # torch.compile(_softmax_rows_), made on first use; False once it has failed


def _softmax_rows_in_place(z: torch.Tensor, compiled: bool) -> torch.Tensor:
    global _compiled_softmax
    if compiled and _compiled_softmax is not False:
        if _compiled_softmax is None:
            _compiled_softmax = torch.compile(_softmax_rows_, dynamic=False)
        try:
            return _compiled_softmax(z)
        except Exception as exc:  # no C++ compiler, or an Inductor bug: fall back for good
            if not type(exc).__module__.startswith(("torch._dynamo", "torch._inductor")):
                raise
            _compiled_softmax = False
    return _softmax_rows_eager_(z)


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """mean CE(h @ W.T, y) with its gradients formed during the forward pass, a block at a time.

    The loss is a scalar, so d(loss)/d(logits) is known as soon as a row's softmax is: it is
    softmax(z) - onehot(y), scaled by 1/N. So the forward pass computes the logits of ``chunk``
    rows at a time (into a reused buffer), turns them *in place* into that gradient, and once
    ``stage`` rows are staged, multiplies them out into d(loss)/d(h) and d(loss)/d(W). The
    (N × vocab) logits never exist whole, and there is no second pass; backward only scales.

    Why two block sizes: the logits matmul has a short inner dimension (d), so it needs a few
    hundred rows to run well, while the two gradient matmuls want many rows (their inner
    dimension, or their output, is that count) and the float32 d(loss)/d(W) is then read and
    written once per stage, not once per chunk. On a 2-core CPU with bf16 this is ~2.5× faster
    than doing all three matmuls 128 rows at a time (bench/train_speed.py).
    """

    @staticmethod
    def forward(ctx, h, weight, targets, chunk, stage, compiled):
        n, d = h.shape
        vocab = weight.size(0)
        on = h.device.type
        compute = torch.get_autocast_dtype(on) if torch.is_autocast_enabled(on) else h.dtype
        with torch.autocast(on, enabled=False):
            w, hs = weight.to(compute), h.to(compute)
            # (d, vocab) laid out row by row: oneDNN's matmul h @ w_t is ~1.5× faster on it than on
            # the transposed view w.t() (CPU, bf16); it costs one copy of the table per step.
            w_t = w.t().contiguous()
            stage = max(stage, chunk)
            # On a CPU the softmax goes a few rows at a time (the forward matmul wants more rows
            # than that: ~25% faster on the output layer at 256 + 32 than at 64 + 64); on a GPU
            # one kernel over the whole chunk.
            piece = min(chunk, 32) if h.device.type == "cpu" else chunk
            staged = torch.empty(min(stage, n), vocab, dtype=compute, device=h.device)  # reused
            grad_h = torch.empty(n, d, dtype=compute, device=h.device)
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device)
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            valid = targets != -100
            some_ignored = bool((~valid).any())
            for s0 in range(0, n, stage):
                s_rows = min(stage, n - s0)
                for c0 in range(s0, s0 + s_rows, chunk):
                    c_rows = min(chunk, s0 + s_rows - c0)
                    torch.mm(hs[c0:c0 + c_rows], w_t, out=staged[c0 - s0:c0 - s0 + c_rows])
                    for p0 in range(c0, c0 + c_rows, piece):
                        rows = min(piece, c0 + c_rows - p0)
                        z = staged[p0 - s0:p0 - s0 + rows]
                        ok = valid[p0:p0 + rows]
                        y = targets[p0:p0 + rows].clamp(min=0)
                        at = torch.arange(rows, device=h.device)
                        z_y = z[at, y].float()
                        lse = _softmax_rows_in_place(z, compiled)  # z is now softmax(logits)
                        total -= ((z_y - lse) * ok).sum()  # log-probability of each target
                        # softmax - onehot at the target, formed in float32: p - 1 near p = 1
                        # would cancel to nothing if p were rounded to bf16 first
                        z[at, y] = (torch.exp(z_y - lse) - 1.0).to(compute)
                        if some_ignored:
                            z.mul_(ok[:, None])  # ignored positions (-100) contribute nothing
                grad = staged[:s_rows]
                torch.mm(grad, w, out=grad_h[s0:s0 + s_rows])
                grad_w.add_(grad.t() @ hs[s0:s0 + s_rows])  # summed in float32 whatever the compute dtype
        scale = 1.0 / valid.sum().clamp(min=1).to(torch.float32)
        ctx.save_for_backward(grad_h, grad_w, scale)
        ctx.dtypes = (h.dtype, weight.dtype)
        return total * scale

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w, scale = ctx.saved_tensors
        s = grad_out * scale
        h_dtype, w_dtype = ctx.dtypes
        return (grad_h.float() * s).to(h_dtype), (grad_w * s).to(w_dtype), None, None, None, None


@torch.compiler.disable  # under torch.compile(model) this runs as written, with its own compiled kernel
def fused_linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int = 256,
                               stage: int = 1024, compiled: bool = False):
    """mean cross-entropy of (h @ weight.T) against targets (-100 = ignored), never holding the
    full logits: logits ``chunk`` rows at a time, gradient matmuls ``stage`` rows at a time.
    ``compiled`` runs the softmax through torch.compile (falls back to eager without a compiler).
    """
    return _FusedLinearCrossEntropy.apply(h, weight, targets, chunk, stage, compiled)


def sampled_softmax_loss(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor,
                         log_q: torch.Tensor) -> torch.Tensor:
    """Sampled softmax (Jean et al., 2015): the target against K negatives shared by the batch.

    Negatives are drawn (with replacement) from a proposal q — the corpus unigram distribution to
    the 3/4 power, as word2vec does — and every logit is corrected by −log(K·q), which makes the
    loss an estimate of the full softmax's. A negative that happens to be the target is masked.
    Cost per token: K + 1 dot products instead of 50257; the full-softmax loss is still what
    validation reports.
    """
    k = negatives.numel()
    correction = log_q + math.log(k)
    pos = (h * weight[targets].to(h.dtype)).sum(-1) - correction[targets]
    neg = h @ weight[negatives].to(h.dtype).t() - correction[negatives]
    neg = neg.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([pos[:, None], neg], dim=1).float()
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()
