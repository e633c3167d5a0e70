"""Training throughput: tokens/s and model-FLOPs utilisation of each speed option, against the
plain eager float32 loop, all measured in one run (these machines are noisy: compare ratios).

    python bench/train_speed.py                      # tiny config, CPU (~5 minutes on 2 cores)
    python bench/train_speed.py --config gpt2-small --steps 1 --rounds 1
    python bench/train_speed.py --device cuda --config gpt2-small

MFU = model FLOPs per second / the matmul peak this script measures itself (bf16 if the variant
uses bf16, and the bf16 peak is also printed for every row, as the issue's yardstick).
Model FLOPs per token = 6 × (parameters used in matmuls) + 12 × layers × d × context (attention).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from embcli.config import load_config  # noqa: E402
from embcli.losses import OverVocab, SampledSoftmax, cross_entropy, fused_linear_cross_entropy  # noqa: E402
from embcli.model import GPT, GPTConfig  # noqa: E402
from embcli.train import make_optimizer, pick_device  # noqa: E402


def matmul_peak(device: torch.device, dtype: torch.dtype, reps: int = 5) -> float:
    """The best FLOP/s of a few large matmuls: the "peak" that MFU divides by.

    Several shapes, because the fastest one differs between machines (on a 2-core Xeon with AMX,
    bf16 2048³ reached 2.0 TFLOP/s while 4096 × 768 × 4096 gave 0.95): a peak that is not the
    machine's best would flatter every MFU figure.
    """
    shapes = [(8192, 8192, 8192)] if device.type == "cuda" else [(4096, 768, 4096), (2048, 2048, 2048), (4096, 4096, 4096)]
    best_rate = 0.0
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        for _ in range(2):
            a @ b
        sync(device)
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            sync(device)
            best_rate = max(best_rate, 2 * m * k * n / (time.perf_counter() - t))
    return best_rate


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def output_matmul_ceiling(cfg, device: torch.device, reps: int = 3) -> float:
    """Tokens/s if a step did nothing but the fused loss's three bf16 matmuls, at its block sizes.

    The output layer is ~85% of the model FLOPs and its matmuls have a short inner dimension (d);
    this is the throughput torch's own matmuls allow at those shapes, an upper bound for any
    full-softmax step built from them.
    """
    n, d, v = cfg.batch_size * cfg.block_size, cfg.n_embd, cfg.vocab_size
    chunk, stage = cfg.loss_chunk, max(cfg.loss_stage, cfg.loss_chunk)
    bf = torch.bfloat16
    h = torch.randn(n, d, device=device, dtype=bf)
    w = torch.randn(v, d, device=device, dtype=bf)
    w_t = w.t().contiguous()
    staged = torch.randn(min(stage, n), v, device=device, dtype=bf)
    grad_h = torch.empty(n, d, device=device, dtype=bf)

    def once():
        for s0 in range(0, n, stage):
            rows = min(stage, n - s0)
            for c0 in range(0, rows, chunk):
                torch.mm(h[s0 + c0:s0 + min(c0 + chunk, rows)], w_t, out=staged[c0:min(c0 + chunk, rows)])
            torch.mm(staged[:rows], w, out=grad_h[s0:s0 + rows])
            staged[:rows].t() @ h[s0:s0 + rows]

    once()
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        once()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return n / best


def flops_per_token(cfg) -> float:
    model_params = cfg.parameter_count()["parameters"] - cfg.block_size * cfg.n_embd  # wpe is a lookup
    return 6 * model_params + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size


def make_stepper(cfg, device, loss, dtype, compile_, vocab_ids=None, sampled=None):
    """A model, its optimizer, and a function that trains it one step; warmed up (and compiled)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_train_config(cfg)).to(device)
    opt = make_optimizer(model, cfg, device)
    fwd = torch.compile(model) if compile_ else model
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else torch.autocast(device.type, enabled=False)
    g = torch.Generator().manual_seed(0)
    high = cfg.vocab_size if vocab_ids is None else len(vocab_ids)
    if loss == "plain":
        loss_fn = cross_entropy
    elif loss == "sampled":
        loss_fn = sampled
    else:
        loss_fn = partial(fused_linear_cross_entropy, chunk=cfg.loss_chunk, stage=cfg.loss_stage, compiled=compile_)
    if vocab_ids is not None:
        loss_fn = OverVocab(loss_fn, vocab_ids.to(device), cfg.vocab_size)

    def step():
        for _ in range(cfg.grad_accum):
            idx = torch.randint(0, high, (cfg.batch_size, cfg.block_size + 1), generator=g)
            if vocab_ids is not None:
                idx = vocab_ids[idx]
            idx = idx.to(device)
            with amp:
                out = fwd(idx[:, :-1], idx[:, 1:], loss_fn=loss_fn)
            (out / cfg.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up (and compilation)
        step()
    sync(device)
    return step


def tokens_per_second(cfg, device, step, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * cfg.tokens_per_step / (time.perf_counter() - t)


def bench_config(args, device: torch.device):
    if args.config == "tiny":
        # the reference shape of the speed goal: 4 layers, d 128, 4 heads, context 128, batch 32
        args.set = ["n_layer=4", "n_head=4", "n_embd=128", "block_size=128", "batch_size=32", *args.set]
    cfg = load_config(args.config, args.set)
    if device.type == "cpu":
        cfg.grad_accum = 1  # one micro-batch per step: a CPU step of GPT-2 small is slow enough
    else:
        torch.backends.cuda.matmul.allow_tf32 = False  # the baseline is plain fp32
        if not any(s.startswith("loss_chunk=") for s in args.set):
            cfg.loss_chunk = 8192  # a GPU wants big chunks: few launches, still no full logits
    return cfg


def all_variants(cfg, device: torch.device) -> tuple[list, dict]:
    """(name, loss, dtype, torch.compile, extra) rows, the first the baseline (the plain eager
    float32 loop), and notes for the rows that cut the work rather than speeding it up."""
    corpus_ids = torch.randperm(cfg.vocab_size, generator=torch.Generator().manual_seed(1))[:36600].sort().values
    sampled = SampledSoftmax(np.ones(cfg.vocab_size), cfg.negatives, device)  # a uniform proposal
    sampled.draw()  # once: the variant times the loss, not the drawing
    variants = [
        ("plain-fp32", "plain", "fp32", False, {}),
        ("fused-fp32", "fused", "fp32", False, {}),
        ("plain-bf16", "plain", "bf16", False, {}),
        ("fused-bf16", "fused", "bf16", False, {}),
        ("fused-fp32-compile", "fused", "fp32", True, {}),
        ("plain-bf16-compile", "plain", "bf16", True, {}),
        ("fused-bf16-compile", "fused", "bf16", True, {}),
        # options that cut the work itself, reported apart, not counted toward the speed ratio
        ("corpus-vocab", "fused", "bf16", True, {"vocab_ids": corpus_ids}),
        ("sampled", "sampled", "bf16", True, {"sampled": sampled}),
    ]
    notes = {"corpus-vocab": "fused-bf16-compile, softmax over 36.6k ids: less work, reported apart",
             "sampled": f"fused-bf16-compile, {cfg.negatives} shared negatives: less work, reported apart"}
    return variants, notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    ap.add_argument("--variants", default="", help="comma-separated subset of the variant names")
    args = ap.parse_args()
    device = pick_device(args.device)
    cfg = bench_config(args, device)

    def peaks():
        return matmul_peak(device, torch.float32), matmul_peak(device, torch.bfloat16)

    # Shared machines drift (a 2-core VM measured 480-2,200 GFLOP/s bf16 within minutes).
    peak32, peak16 = peaks()
    fpt = flops_per_token(cfg)
    print(f"device {device}; config {args.config}: {cfg.n_layer} layers, d {cfg.n_embd}, ctx {cfg.block_size}, "
          f"batch {cfg.batch_size}×{cfg.grad_accum}; {fpt / 1e6:.1f} MFLOP/token; threads {torch.get_num_threads()}; "
          f"fused loss: chunk {cfg.loss_chunk}, stage {cfg.loss_stage}")
    print(f"matmul peak measured before the variants: {peak32 / 1e9:,.0f} GFLOP/s fp32, {peak16 / 1e9:,.0f} GFLOP/s bf16")
    variants, notes = all_variants(cfg, device)
    if args.variants:
        wanted = set(args.variants.split(","))
        variants = [v for v in variants if v[0] in wanted or v[0] == "plain-fp32"]
    steppers = {}
    for name, loss, dtype, comp, extra in variants:
        try:
            steppers[name] = make_stepper(cfg, device, loss, dtype, comp, **extra)
        except Exception as exc:  # e.g. torch.compile without a compiler
            print(f"{name:<24} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
    # Rounds, each timing every variant in turn: a slow spell of a shared machine then hits all
    # variants of a round alike, and the ratio to the plain loop is taken within each round.
    # The peak and the matmul ceiling are measured in every round too, and MFU divides by the
    # highest peak seen: a peak caught in a slow spell would flatter every MFU figure.
    rates = {name: [] for name in steppers}
    ceilings = []
    for _ in range(args.rounds):
        for name, step in steppers.items():
            rates[name].append(tokens_per_second(cfg, device, step, args.steps))
        ceilings.append(output_matmul_ceiling(cfg, device))
        again32, again16 = peaks()
        peak32, peak16 = max(peak32, again32), max(peak16, again16)
    print(f"highest matmul peak seen over the run: {peak32 / 1e9:,.0f} GFLOP/s fp32, {peak16 / 1e9:,.0f} GFLOP/s bf16 "
          "(MFU divides by these)")
    print(f"{args.rounds} rounds of {args.steps} steps per variant; tokens/s and × plain are medians over the rounds")
    report(variants, notes, rates, ceilings, fpt, peak32, peak16)


def report(variants, notes, rates, ceilings, fpt, peak32, peak16) -> None:
    print(f"{'variant':<24}{'tokens/s':>12}{'× plain':>9}{'MFU(own)':>10}{'MFU(bf16)':>10}")
    base = rates["plain-fp32"]
    for name, _, dtype, _, _ in variants:
        if name not in rates:
            continue
        rate = statistics.median(rates[name])
        ratio = statistics.median(r / b for r, b in zip(rates[name], base))
        own = peak16 if dtype == "bf16" else peak32
        line = f"{name:<24}{rate:>12,.0f}{ratio:>9.2f}"
        if name in notes:
            print(f"{line}   ({notes[name]})")
        else:
            print(f"{line}{rate * fpt / own:>10.1%}{rate * fpt / peak16:>10.1%}")
    ceiling = statistics.median(ceilings)
    print(f"{'ceiling: 3 loss matmuls':<24}{ceiling:>12,.0f}{ceiling / statistics.median(base):>9.2f}{'':>10}"
          f"{ceiling * fpt / peak16:>10.1%}   (bf16 alone: the most torch's matmuls allow at these shapes)")


if __name__ == "__main__":
    main()
