"""A GPT-2-style transformer whose output layer *is* its token-embedding table.

Read top to bottom, as nanoGPT's model.py: token + learned position embeddings, pre-LayerNorm
blocks (causal self-attention, GELU MLP), a final LayerNorm, and logits = h @ wte.T. Because the
same matrix reads tokens in and scores tokens out ("weight tying", as GPT-2 does), every row of
the table is pushed by both jobs: a row must be a good input for its token and a good target
direction for contexts that predict it. That is why similar tokens end up near each other.

For GPT-2 small the table is 50257 × 768 = 38.6M of the model's 124M parameters, and the output
matmul against it is most of the compute of a small model. So the model does not fix its loss:
``forward(idx, targets, loss_fn)`` hands the final hidden states and the table to the trainer's
loss (losses.py), which may compute the output layer block by block, never holding the
(tokens × 50257) logits whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from .losses import LossFn, cross_entropy


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

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # parameters() yields a shared one once

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """The final hidden states h (B, T, C), after the last LayerNorm: what the output layer scores.

        Token t's logit at a position is h · wte.weight[t], nothing more (no bias, no other
        matrix); ``embcli predict --explain`` recomputes it from h and the saved table.
        """
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, loss_fn: LossFn = cross_entropy):
        """Logits (B, T, vocab) when ``targets`` is None, else the mean next-token loss.

        The loss is ``loss_fn(h, W, targets)`` over all B·T positions, W being the table: which
        loss is the trainer's choice (losses.py). The default, plain cross-entropy, holds every
        logit; training passes the fused one, which never does.
        """
        h = self.hidden(idx)
        if targets is None:
            return h @ self.wte.weight.t()  # the output layer is the table
        return loss_fn(h.reshape(-1, h.size(-1)), self.wte.weight, targets.reshape(-1))
