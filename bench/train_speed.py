"""Training throughput: tokens/s and model-FLOPs utilisation of each speed option, against the
plain eager float32 loop, all measured in one run (these machines are noisy: compare ratios).

    python bench/train_speed.py                      # tiny config, CPU
    python bench/train_speed.py --config gpt2-small --steps 3
    python bench/train_speed.py --device cuda --config gpt2-small

MFU = model FLOPs per second / the matmul peak this script measures itself (bf16 if the variant
uses bf16, and the bf16 peak is also printed for every row, as the issue's yardstick).
Model FLOPs per token = 6 × (parameters used in matmuls) + 12 × layers × d × context (attention).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from embcli.config import load_config  # noqa: E402
from embcli.model import GPT, GPTConfig  # noqa: E402
from embcli.train import make_optimizer, pick_device  # noqa: E402


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 4096, k: int = 768, reps: int = 5) -> float:
    a = torch.randn(n, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n * k * n / best


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def flops_per_token(cfg) -> float:
    model_params = cfg.parameter_count()["parameters"] - cfg.block_size * cfg.n_embd  # wpe is a lookup
    return 6 * model_params + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size


def measure(cfg, device, loss, dtype, compile_, steps, vocab_ids=None, sampled=None) -> float:
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_train_config(cfg)).to(device)
    opt = make_optimizer(model, cfg, device)
    fwd = torch.compile(model) if compile_ else model
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else torch.autocast(device.type, enabled=False)
    g = torch.Generator().manual_seed(0)
    high = cfg.vocab_size if vocab_ids is None else len(vocab_ids)

    def step():
        for _ in range(cfg.grad_accum):
            idx = torch.randint(0, high, (cfg.batch_size, cfg.block_size + 1), generator=g)
            if vocab_ids is not None:
                idx = vocab_ids[idx]
            idx = idx.to(device)
            with amp:
                out = fwd(idx[:, :-1], idx[:, 1:], loss_impl=loss, chunk=cfg.loss_chunk,
                          vocab_ids=None if vocab_ids is None else vocab_ids.to(device), sampled=sampled)
            (out / cfg.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up (and compilation)
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * cfg.tokens_per_step / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    ap.add_argument("--variants", default="", help="comma-separated subset of the variant names")
    args = ap.parse_args()
    device = pick_device(args.device)
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
    size = 8192 if device.type == "cuda" else 4096
    peak32 = matmul_peak(device, torch.float32, n=size, k=size if device.type == "cuda" else 768)
    peak16 = matmul_peak(device, torch.bfloat16, n=size, k=size if device.type == "cuda" else 768)
    fpt = flops_per_token(cfg)
    print(f"device {device}; config {args.config}: {cfg.n_layer} layers, d {cfg.n_embd}, ctx {cfg.block_size}, "
          f"batch {cfg.batch_size}×{cfg.grad_accum}; {fpt / 1e6:.1f} MFLOP/token; threads {torch.get_num_threads()}")
    print(f"measured matmul peak: {peak32 / 1e9:,.0f} GFLOP/s fp32, {peak16 / 1e9:,.0f} GFLOP/s bf16")
    variants = [
        ("plain-fp32", "plain", "fp32", False),
        ("fused-fp32", "fused", "fp32", False),
        ("plain-bf16", "plain", "bf16", False),
        ("fused-bf16", "fused", "bf16", False),
        ("fused-fp32-compile", "fused", "fp32", True),
        ("plain-bf16-compile", "plain", "bf16", True),
        ("fused-bf16-compile", "fused", "bf16", True),
    ]
    if args.variants:
        wanted = set(args.variants.split(","))
        variants = [v for v in variants if v[0] in wanted or v[0] == "plain-fp32"]
    base = None
    print(f"{'variant':<24}{'tokens/s':>12}{'× plain':>9}{'MFU(own)':>10}{'MFU(bf16)':>10}")
    for name, loss, dtype, comp in variants:
        try:
            rate = measure(cfg, device, loss, dtype, comp, args.steps)
        except Exception as exc:  # e.g. torch.compile without a compiler
            print(f"{name:<24} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
            continue
        base = base or rate
        own = peak16 if dtype == "bf16" else peak32
        print(f"{name:<24}{rate:>12,.0f}{rate / base:>9.2f}{rate * fpt / own:>10.1%}{rate * fpt / peak16:>10.1%}")
    # An option that cuts the work (not counted toward the ratio): softmax over the ids a corpus has.
    corpus_ids = torch.randperm(cfg.vocab_size, generator=torch.Generator().manual_seed(1))[:36600].sort().values
    rate = measure(cfg, device, "fused", "bf16", False, args.steps, vocab_ids=corpus_ids)
    print(f"{'fused-bf16 corpus-vocab':<24}{rate:>12,.0f}{rate / base:>9.2f}   (36.6k-id softmax: less work, "
          "reported apart)")
    q = torch.ones(cfg.vocab_size) / cfg.vocab_size
    sampled = (torch.multinomial(q, cfg.negatives, replacement=True).to(device), torch.log(q).to(device))
    rate = measure(cfg, device, "sampled", "fp32", False, args.steps, sampled=sampled)
    print(f"{'sampled-fp32':<24}{rate:>12,.0f}{rate / base:>9.2f}   ({cfg.negatives} shared negatives: less work, "
          "reported apart)")


if __name__ == "__main__":
    main()
