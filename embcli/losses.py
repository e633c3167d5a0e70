"""The training losses: next-token cross-entropy through the tied output layer, three ways.

Every loss here has the same shape, ``loss_fn(h, weight, targets) -> mean loss``: ``h`` the final
hidden states (N, d), ``weight`` the output layer (vocab, d) — in embcli the token table itself —
and ``targets`` the next token ids (N,), -100 where a position does not count. The model applies
whichever one the trainer hands it (``GPT.forward(idx, targets, loss_fn)``), so a new loss is a
new function (or callable object) here and one line where train.py chooses it.

- :func:`cross_entropy`: logits = h @ W.T, then softmax cross-entropy. Simple; holds the whole
  (N × vocab) logits, which for GPT-2's 50257 ids is most of a small model's memory and time.
- :func:`fused_linear_cross_entropy`: the same loss and gradients, computed block by block so the
  logits never exist whole, with the gradients formed during the forward pass.
- :class:`SampledSoftmax`: scores each target against shared sampled negatives instead of all
  50257 ids; less work, an estimate of the full loss (validation always uses the full one).
- :class:`OverVocab`: any of them, restricted to a subset of the ids (the "corpus" output
  vocabulary: ids the corpus never has cannot be targets).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean CE(h @ weight.T, targets): the plain loss, every logit held at once."""
    return F.cross_entropy(h @ weight.t(), targets)


# ---------------------------------------------------------------------------------------------
# Fused linear + cross-entropy
# ---------------------------------------------------------------------------------------------


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


# torch.compile(_softmax_rows_), made on first use and shared by every call (compiling is slow:
# once per process); False once compiling has failed, so later calls go straight to the eager form.
_compiled_softmax = None


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
        # One loop nest, kept whole (~50 lines) so the buffer reuse that makes it fast can be
        # read in one place: stage -> chunk (logits matmul) -> piece (softmax, gradient in place).
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


# ---------------------------------------------------------------------------------------------
# Sampled softmax
# ---------------------------------------------------------------------------------------------


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


class SampledSoftmax:
    """:func:`sampled_softmax_loss` with its proposal, unigram^0.75 over the training counts.

    :meth:`draw` picks the step's negatives (from torch's generator, so a seed fixes them); the
    trainer draws once per optimizer step, so every process and micro-step shares them.
    """

    def __init__(self, counts: np.ndarray, k: int, device: torch.device):
        q = counts.astype(np.float64) ** 0.75
        self.proposal = torch.from_numpy(q / q.sum()).to(device=device, dtype=torch.float32)
        self.log_q = torch.log(self.proposal.clamp(min=1e-30))
        self.k = k
        self.negatives: torch.Tensor | None = None

    def draw(self) -> None:
        self.negatives = torch.multinomial(self.proposal, self.k, replacement=True)

    def __call__(self, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.negatives is None:
            raise RuntimeError("SampledSoftmax: call draw() before the first loss")
        return sampled_softmax_loss(h, weight, targets, self.negatives, self.log_q)


# ---------------------------------------------------------------------------------------------
# A restricted output vocabulary
# ---------------------------------------------------------------------------------------------


def remap_targets(targets: torch.Tensor, vocab_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Each target's position in ``vocab_ids`` (-100, ignored, for an id not among them)."""
    lookup = torch.full((vocab_size,), -100, dtype=torch.long, device=targets.device)
    lookup[vocab_ids] = torch.arange(len(vocab_ids), device=targets.device)
    return lookup[targets]


class OverVocab:
    """``loss_fn`` with the softmax over ``vocab_ids`` only: the rows of the output layer for those
    ids, and each target renumbered to its place among them. It cuts work rather than doing it
    faster (a corpus that uses 36.6k of the 50257 ids skips the other 27% of the output layer).
    """

    def __init__(self, loss_fn: LossFn, vocab_ids: torch.Tensor, vocab_size: int):
        self.loss_fn, self.vocab_ids, self.vocab_size = loss_fn, vocab_ids, vocab_size

    def __call__(self, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(h, weight[self.vocab_ids], remap_targets(targets, self.vocab_ids, self.vocab_size))
