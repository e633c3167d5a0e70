"""The training loop: sample windows of the token stream, predict each next token, step AdamW.

One process or many: under ``torchrun`` each process is one rank of a DistributedDataParallel
job (nccl on CUDA, gloo on CPU). All ranks draw the *same* global batch from the same seeded
generator and each keeps only its own share of its sequences, so N processes see exactly the data
one process would, and the loss curve matches a single process with the same global batch.

What makes a run reproducible and resumable: the batch generator's state, the model and AdamW
state, the step and the tokens seen are all saved in the checkpoint, so ``--resume`` continues
the very same trajectory. A stop signal (Ctrl-C, SIGTERM) saves the run first; a step it cuts
short is rolled back, so the save is the state before that step and the resume repeats it exactly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .config import TrainConfig
from .data import CorpusSpec, PreparedCorpus, open_prepared, prepare
from .errors import EmbcliError
from .losses import OverVocab, SampledSoftmax, cross_entropy, fused_linear_cross_entropy
from .model import GPT, GPTConfig
from .runs import (
    CHECKPOINT_MODEL,
    CHECKPOINT_OPTIMIZER,
    CHECKPOINT_RNG,
    CHECKPOINT_STATE,
    CONFIG,
    TENSORBOARD,
    MetricsLog,
    RunLock,
    RunMeta,
    check_run_name,
    checkpoint_dir,
    clean_leftovers,
    create_run,
    discard_new_run,
    find_run,
    is_snapshot_step,
    list_snapshots,
    model_info,
    read_config,
    read_meta,
    save_counts,
    save_run_state,
    save_snapshot,
    write_config,
)

# ---------------------------------------------------------------------------------------------
# Devices and processes
# ---------------------------------------------------------------------------------------------


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 or AMX instructions (on other CPUs bf16 is emulated and slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:  # not Linux: no way to ask cheaply, so float32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def uses_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """dtype "bfloat16" always; "auto" where the device computes in bf16 natively (see native_bf16)."""
    return cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and native_bf16(device))


def pick_device(name: str = "auto") -> torch.device:
    """cuda if present, then mps, else cpu; or exactly what the user asked for, if it exists."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise EmbcliError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EmbcliError(f"device {name!r} asked for, but no CUDA GPU is available here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise EmbcliError(f"device {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EmbcliError("device 'mps' asked for, but Apple's MPS is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise EmbcliError(f"unsupported device {name!r} (use auto, cpu, cuda, cuda:N or mps)")
    return device


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Read torchrun's environment; start the process group (nccl for CUDA, gloo for CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), pick_device(device_name)
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local_rank), device


def rank_share(cfg: TrainConfig, world: int) -> tuple[int, int]:
    """One process's share of the global batch: (micro-steps, sequences per micro-step).

    The global batch is batch_size × grad_accum sequences, however many processes there are;
    each takes an equal, contiguous slice of them, in equal micro-steps of at most batch_size
    sequences. Equal sizes everywhere make the mean of the micro-steps' mean losses, averaged over
    the processes, the global batch's mean loss: the loss curve of one process.
    """
    total = cfg.batch_size * cfg.grad_accum
    if total % world:
        raise EmbcliError(f"the global batch of {total} sequences (batch_size {cfg.batch_size} × grad_accum "
                          f"{cfg.grad_accum}) cannot be split evenly over {world} processes: make batch_size × "
                          f"grad_accum a multiple of {world}")
    share = total // world
    micro_steps = -(-share // cfg.batch_size)
    while share % micro_steps:
        micro_steps += 1
    return micro_steps, share // micro_steps


def memory_needed(cfg: TrainConfig, world: int, device: torch.device) -> dict[str, int]:
    """A lower bound of the bytes one process needs to train ``cfg``: {"device": ..., "host": ...}.

    Counted: the weights, their gradients and AdamW's two moments (16 bytes a parameter); the
    activations a micro-step keeps for its backward pass (at least 8 numbers per token, layer and
    dimension, and the attention matrix where model.py writes it out); the loss's logits; and
    the global batch's windows, which every process draws (as uint16, then int64). What is left
    out is smaller or depends on the corpus, so a config this refuses could never have run.
    """
    _, size = rank_share(cfg, world)
    d, T, L, V = cfg.n_embd, cfg.block_size, cfg.n_layer, cfg.vocab_size
    number = 2 if uses_bf16(cfg, device) else 4
    tokens = size * T
    weights = 16 * cfg.parameter_count()["parameters"]
    activations = 8 * L * tokens * d * number
    if device.type == "cpu" and T <= 256:  # CausalSelfAttention writes the (T × T) matrix out here
        activations += L * size * cfg.n_head * T * T * number
    if cfg.loss == "sampled":
        logits = tokens * (cfg.negatives + 1) * 4
    elif cfg.loss == "plain" and cfg.output_vocab == "full":
        logits = 2 * tokens * V * 4  # the logits and their gradient
    else:
        logits = min(cfg.loss_chunk, tokens) * (V if cfg.output_vocab == "full" else 1) * 4
    windows = cfg.batch_size * cfg.grad_accum * (T + 1) * (2 + 8)
    model = weights + activations + logits
    if device.type == "cuda":
        return {"device": model, "host": windows}
    return {"device": 0, "host": model + windows}


def host_memory() -> int | None:
    """The machine's memory, or the container's limit when that is lower; None if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError


def check_fits(cfg: TrainConfig, dist: Dist, device: torch.device) -> None:
    """Refuse, before anything is allocated, a config that cannot fit in this machine's memory."""
    need = memory_needed(cfg, dist.world, device)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world))  # processes sharing this machine's memory
    processes = f" ({local} processes)" if local > 1 else ""
    have = host_memory()
    if have and need["host"] * local > have:
        raise EmbcliError(f"this config needs at least {_size(need['host'] * local)} of memory to train{processes}, "
                          f"and this machine has {_size(have)}: lower batch_size, block_size or the model's size")
    if need["device"] and device.type == "cuda":
        gpu = torch.cuda.get_device_properties(device)
        if need["device"] > gpu.total_memory:
            raise EmbcliError(f"this config needs at least {_size(need['device'])} of GPU memory per process, and "
                              f"{device} ({gpu.name}) has {_size(gpu.total_memory)}: lower batch_size, block_size "
                              "or the model's size")


# ---------------------------------------------------------------------------------------------
# Stop signals
# ---------------------------------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """A stop signal taken while training: SIGINT (Ctrl-C) or SIGTERM."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM (what SLURM, Kubernetes and ``timeout`` send) while training.

    Either raises :class:`Interrupted` wherever the program is, except inside :meth:`held` (an
    optimizer update with its step count, a save), where it waits for the section's end: a step
    is applied whole or not at all, and a save is never cut in half. Installed in the main thread
    only (Python runs signal handlers there); a signal a shell set to be ignored stays ignored.
    """

    def __init__(self):
        self.pending: int | None = None
        self.depth = 0
        self.previous: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def _handle(self, signum, frame) -> None:
        if self.depth:
            self.pending = signum
        else:
            raise Interrupted(signum)

    @contextmanager
    def held(self, deliver: bool = True):
        """Signals wait until the block is done; then one that came is raised (or, if not
        ``deliver``, left pending for :meth:`deliver`)."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if deliver:
            self.deliver()

    def deliver(self) -> None:
        """Raise the signal that came while signals were held, if one did."""
        if self.pending is not None and not self.depth:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


class BatchSampler:
    """Random windows of block_size + 1 tokens from the training shards.

    Window starts are drawn from a numpy Generator whose state is saved with each checkpoint.
    """

    def __init__(self, shards: list[np.ndarray], block_size: int, seed: int):
        self.shards = [s for s in shards if len(s) > block_size + 1]
        if not self.shards:
            longest = max((len(s) for s in shards), default=0)
            raise EmbcliError(f"corpus too small: its longest shard has {longest} tokens, "
                              f"fewer than block_size + 2 = {block_size + 2}")
        self.block = block_size
        starts = np.array([len(s) - block_size - 1 for s in self.shards])
        self.cum = np.concatenate([[0], np.cumsum(starts)])
        self.rng = np.random.default_rng(seed)

    def draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        flat = self.rng.integers(0, self.cum[-1], size=n)
        shard = np.searchsorted(self.cum, flat, side="right") - 1
        offset = flat - self.cum[shard]
        rows = np.stack([self.shards[s][o:o + self.block + 1] for s, o in zip(shard, offset)]).astype(np.int64)
        return rows[:, :-1], rows[:, 1:]


def val_windows(shards: list[np.ndarray], block_size: int, n: int) -> np.ndarray:
    """n windows evenly spaced over the validation split: the same every evaluation."""
    stream = np.concatenate(shards) if shards else np.zeros(0, dtype=np.uint16)
    if len(stream) < block_size + 1:
        return np.zeros((0, block_size + 1), dtype=np.int64)
    last = len(stream) - block_size - 1
    starts = np.linspace(0, last, num=min(n, last + 1)).astype(np.int64)
    return np.stack([stream[s:s + block_size + 1] for s in starts]).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Optimizer and schedule
# ---------------------------------------------------------------------------------------------


def make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with three groups: the token table (its own learning rate and weight decay), other
    matrices (weight decay), and vectors — biases and LayerNorm gains — which are not decayed."""
    table = model.wte.weight
    matrices = [p for n, p in model.named_parameters() if p.dim() >= 2 and p is not table]
    vectors = [p for n, p in model.named_parameters() if p.dim() < 2]
    table_lr = cfg.embedding_lr or cfg.learning_rate
    groups = [
        {"params": [table], "weight_decay": cfg.embedding_weight_decay, "lr_scale": table_lr / cfg.learning_rate, "name": "table"},
        {"params": matrices, "weight_decay": cfg.weight_decay, "lr_scale": 1.0, "name": "matrices"},
        {"params": vectors, "weight_decay": 0.0, "lr_scale": 1.0, "name": "vectors"},
    ]
    # the fused kernel: one pass over each parameter instead of a dozen (4× faster on a 2-core CPU)
    if device.type in ("cuda", "cpu"):
        try:
            return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), fused=True)
        except RuntimeError:  # a torch whose fused AdamW does not cover this device yet
            pass
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2))


def learning_rate(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warmup over warmup_steps, then a cosine from learning_rate down to min_lr_ratio of it.

    The cosine runs on *progress* (0 → 1), the largest of the step, token and time fractions, so
    a run stopped by --time-budget anneals as well as one stopped by --max-steps.
    """
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def run_progress(cfg: TrainConfig, step: int, tokens: int, seconds: float) -> float:
    parts = []
    if cfg.max_steps:
        parts.append(step / cfg.max_steps)
    if cfg.max_tokens:
        parts.append(tokens / cfg.max_tokens)
    if cfg.time_budget:
        parts.append(seconds / cfg.time_budget)
    return max(parts)


# ---------------------------------------------------------------------------------------------
# Saving and loading training state
# ---------------------------------------------------------------------------------------------


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """AdamW's state as flat named tensors (for safetensors) plus its JSON-able settings."""
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous() if torch.is_tensor(value) \
                else torch.tensor(value)
    return tensors, {"param_groups": sd["param_groups"]}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def _save_safetensors(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    """safetensors' save_file, its I/O errors as the OSError they were (a full disk says so)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as exc:
        code = re.search(r"(?:os error|code:) (\d+)", str(exc))
        if code:
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None
        raise OSError(str(exc)) from None


def tensorboard_writer(run: Path, first_step: int):
    """A SummaryWriter on runs/<name>/tb/, or None: tensorboard is an optional extra
    (pip install 'embcli[tensorboard]'); without it torch.utils.tensorboard does not import.

    A resumed session starts over from its checkpoint: ``purge_step`` hides what an earlier
    session logged from ``first_step`` on, as read_metrics drops it from metrics.jsonl."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    try:
        return SummaryWriter(str(run / TENSORBOARD), flush_secs=30, purge_step=first_step if first_step > 1 else None)
    except OSError:
        return None


def table_numpy(model: GPT) -> np.ndarray:
    return model.wte.weight.detach().float().cpu().numpy()


def describe_model(model: GPT) -> dict:
    # tied: the model has no output matrix of its own; its forward reads wte.weight (model.py)
    return model_info(model.num_parameters(), model.config.vocab_size, model.config.n_embd, tied=True)


def load_model(run: Path) -> tuple[GPT, int | None]:
    """A run's trained GPT for inference, and the step its weights were saved at.

    The shape comes from the run's config.json, the weights from its checkpoint (the folder
    ``Trainer.save`` writes; the optimizer and sampler state are not read). On CPU, in eval mode.
    A missing checkpoint is ``runs.checkpoint_dir``'s error; a damaged one is one clear line.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = checkpoint_dir(run)
    try:
        shape = read_config(run)
        config = GPTConfig(**{k: shape[k] for k in GPTConfig.__dataclass_fields__ if k in shape})
        state = json.loads((folder / CHECKPOINT_STATE).read_text())
        model = GPT(config)
        model.load_state_dict(load_file(str(folder / CHECKPOINT_MODEL), device="cpu"))
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError, json.JSONDecodeError) as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise EmbcliError(f"cannot load the model of {run}: its checkpoint is damaged "
                          f"({type(exc).__name__}: {detail})") from None
    return model.eval(), state.get("step")


def _versions() -> dict:
    return {"embcli": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj).__name__)


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    run: Path
    step: int
    tokens: int
    train_loss: float | None
    val_loss: float | None
    seconds: float  # this session's (a resumed run's earlier sessions are not in it)
    tokens_per_second: float  # this session's tokens over this session's seconds
    status: str
    loss_kind: str = "fused"  # "sampled": the train loss is the sampled-softmax estimate
    first_step: int = 0  # where this session began (> 0: a resumed run)
    session_tokens: int | None = None  # tokens trained in this session (None: all of them)


@dataclass
class _Session:
    """This process's share of the run (a resumed run has had others): for the speed it reports."""

    started: float = field(default_factory=time.perf_counter)
    first_step: int = 0
    steps: int = 0
    tokens: int = 0
    val_text: str = "-"  # the last validation loss measured in this session, for the progress bar

    def tokens_per_second(self) -> float:
        return self.tokens / max(time.perf_counter() - self.started, 1e-9)


class Trainer:
    """Owns one training run: the model, the optimizer, the data, and the run folder.

    :meth:`fit` is the loop: :meth:`train_step` (one optimizer step), then the bookkeeping of
    :meth:`after_step` (history, validation, snapshots, checkpoints on their cadence), and at the
    end :meth:`finish` (last validation, last snapshot, final save).
    """

    def __init__(self, cfg: TrainConfig, corpus: PreparedCorpus, run: Path, device: torch.device,
                 dist: Dist, *, log=None, progress: bool = True, on_step=None, signals: StopSignals | None = None):
        self.cfg, self.corpus, self.run, self.device, self.dist = cfg, corpus, run, device, dist
        self.log = log or (lambda *a: None)
        self.show_progress = progress and dist.main
        self.on_step = on_step
        self.signals = signals or StopSignals()  # not installed: held() still orders the work
        self.share = rank_share(cfg, dist.world)
        torch.manual_seed(cfg.seed)
        self.model = GPT(GPTConfig.from_train_config(cfg)).to(device)
        self.raw_model = self.model  # self.model may become a DDP or torch.compile wrapper of it
        self.optimizer = make_optimizer(self.model, cfg, device)
        self.sampler = BatchSampler(corpus.split("train"), cfg.block_size, cfg.seed)
        self.val = val_windows(corpus.split("val"), cfg.block_size, cfg.eval_batches * cfg.batch_size)
        self.amp = torch.autocast(device.type, dtype=torch.bfloat16) if uses_bf16(cfg, device) else nullcontext()
        self._choose_losses()
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.step, self.tokens, self.seconds = 0, 0, 0.0
        self.history: dict[str, list] = {"train": [], "val": []}
        self.saved: RunMeta | None = None  # meta.json as the last save wrote it (what a failure falls back to)
        self.session = _Session()
        self.metrics: MetricsLog | None = None  # opened at the first record (rank 0): metrics.jsonl
        self.tensorboard = None  # and TensorBoard's SummaryWriter, when tensorboard is installed

    def _choose_losses(self) -> None:
        """The training loss the config names (losses.py), and validation's: the full softmax."""
        cfg = self.cfg
        self.sampled = None
        if cfg.loss == "sampled":  # unigram^0.75 over the training split, as word2vec samples negatives
            self.sampled = loss = SampledSoftmax(self.corpus.counts(), cfg.negatives, self.device)
        elif cfg.loss == "plain":
            loss = cross_entropy
        else:
            loss = partial(fused_linear_cross_entropy, chunk=cfg.loss_chunk, stage=cfg.loss_stage,
                           compiled=cfg.compile)
        val = cross_entropy
        if cfg.output_vocab == "corpus":
            ids = torch.from_numpy(np.flatnonzero(self.corpus.counts())).to(self.device)
            val = OverVocab(val, ids, cfg.vocab_size)
            # sampled softmax already scores only corpus ids: its negatives come from the training
            # counts (an id never seen has probability 0) and the targets are corpus tokens; it reads
            # the table by token id, so it keeps the whole table rather than the corpus's rows
            if self.sampled is None:
                loss = OverVocab(loss, ids, cfg.vocab_size)
        self.loss_fn, self.val_loss_fn = loss, val

    # -- state ---------------------------------------------------------------------------------

    def save(self, status: str) -> None:
        """Table, checkpoint and meta, as one save (runs.save_run_state); rank 0 only.
        A save that cannot be written stops the run: :meth:`fail`."""
        if not self.dist.main:
            return
        opt_tensors, opt_meta = _optimizer_tensors(self.optimizer)
        state = {"step": self.step, "tokens": self.tokens, "seconds": self.seconds,
                 "sampler": self.sampler.rng.bit_generator.state, "optimizer": opt_meta,
                 "history": self.history}
        model_state = {k: v.detach().cpu().contiguous() for k, v in self.raw_model.state_dict().items()}
        rng = {"torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":  # the sampled softmax draws its negatives there
            rng["cuda_rng"] = torch.cuda.get_rng_state(self.device)

        def write(folder: Path) -> None:
            _save_safetensors(model_state, folder / CHECKPOINT_MODEL, metadata={"step": str(self.step)})
            _save_safetensors(opt_tensors, folder / CHECKPOINT_OPTIMIZER, metadata={"step": str(self.step)})
            _save_safetensors(rng, folder / CHECKPOINT_RNG)
            (folder / CHECKPOINT_STATE).write_text(json.dumps(state, default=_json_default))

        meta = self.meta(status)
        try:
            with self.signals.held():
                save_run_state(self.run, table_numpy(self.raw_model), write, meta)
        except EmbcliError as exc:
            raise self.fail(str(exc), "free some space (or fix the cause), then continue it with: "
                                      f"embcli train --resume {self.run}") from None
        self.saved = meta

    def fail(self, reason: str, advice: str) -> EmbcliError:
        """Mark the run failed at its last save, which stays as it was, and the error that says so."""
        if self.saved is None or not self.dist.main:  # nothing saved: a start that failed (train() tidies it)
            return EmbcliError(reason, exit_code=1, quiet=not self.dist.main)
        marked = dataclasses.replace(self.saved, status="failed", error=reason)
        try:
            marked.write(self.run)
        except EmbcliError:  # the disk that failed the save may refuse this too: meta.json stays the last save's
            pass
        for step, path in list_snapshots(self.run):  # the run's files describe its last save, and no later step
            if step > marked.step:
                path.unlink(missing_ok=True)
        return EmbcliError(f"{reason}; {self.run} is marked failed and keeps its last save (step {marked.step})"
                           + (f"; {advice}" if advice else ""), exit_code=1)

    def snapshot(self) -> None:
        if self.dist.main and self.cfg.snapshots:
            try:
                with self.signals.held():
                    save_snapshot(self.run, self.step, table_numpy(self.raw_model))
            except EmbcliError as exc:
                raise self.fail(str(exc), "free some space (or fix the cause), then continue it with: "
                                          f"embcli train --resume {self.run}") from None

    def meta(self, status: str) -> RunMeta:
        train, val = self.history["train"], self.history["val"]
        return RunMeta(status=status, step=self.step, tokens_seen=self.tokens, seconds=round(self.seconds, 3),
                       train_loss=train[-1][2] if train else None, val_loss=val[-1][2] if val else None,
                       model=describe_model(self.raw_model), device=str(self.device), world_size=self.dist.world,
                       versions=_versions(), loss=self.cfg.loss, corpus=self.corpus.manifest,
                       corpus_path=str(self.corpus.path), history=self.history)

    def load(self, folder: Path) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = json.loads((folder / CHECKPOINT_STATE).read_text())
            self.raw_model.load_state_dict(load_file(str(folder / CHECKPOINT_MODEL), device=str(self.device)))
            opt = load_file(str(folder / CHECKPOINT_OPTIMIZER), device=str(self.device))
            rng = load_file(str(folder / CHECKPOINT_RNG))
            groups = state["optimizer"]["param_groups"]
            _load_optimizer(self.optimizer, opt, groups)
            torch.set_rng_state(rng["torch_rng"])
            if "cuda_rng" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda_rng"], self.device)
            self.sampler.rng.bit_generator.state = state["sampler"]
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError, json.JSONDecodeError) as exc:
            raise EmbcliError(f"cannot resume from {self.run}: its checkpoint is damaged "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
        self.step, self.tokens, self.seconds = state["step"], state["tokens"], state["seconds"]
        self.history = state["history"]

    # -- steps ---------------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """The mean full-softmax loss over the fixed validation windows (None: no validation split)."""
        if not len(self.val):
            return None
        self.model.eval()
        losses = []
        bs = self.cfg.batch_size
        for i in range(0, len(self.val), bs):
            rows = torch.from_numpy(self.val[i:i + bs]).to(self.device)
            with self.amp:
                loss = self.raw_model(rows[:, :-1], rows[:, 1:], loss_fn=self.val_loss_fn)
            losses.append(loss.float().item() * len(rows))
        self.model.train()
        return sum(losses) / len(self.val)

    def validate(self) -> float | None:
        """Evaluate now and record the loss in the history."""
        val = self.evaluate()
        if val is not None:
            self.history["val"].append([self.step, self.tokens, round(val, 5)])
        return val

    def train_step(self) -> float:
        """One optimizer step over the global batch (this rank's share of it); its mean loss.

        Drawing the batch and computing the gradients may be cut short by a stop signal: then the
        generators are put back as they were before the step, so a save made now is the state
        before it and a resume repeats it exactly. The update and the step count run with the
        signals held (:class:`StopSignals`): a step is applied, counted and recorded in the history
        whole, or not at all.
        """
        t0 = time.perf_counter()
        before = self._generators()
        try:
            total = self._gradients()
        except BaseException:
            self._set_generators(before)
            self.optimizer.zero_grad(set_to_none=True)
            raise
        with self.signals.held(deliver=False):  # delivered once the step is recorded (fit)
            if self.cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            lr = learning_rate(self.cfg, self.step, run_progress(self.cfg, self.step, self.tokens, self.seconds))
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            loss = total.item()
            self.step += 1
            self.tokens += self.cfg.tokens_per_step
            self.seconds += time.perf_counter() - t0
            self.history["train"].append([self.step, self.tokens, round(loss, 5)])
        return loss

    def _gradients(self) -> torch.Tensor:
        """Draw the global batch, and backpropagate this rank's share of it; the batch's mean loss."""
        cfg, dist = self.cfg, self.dist
        micro_steps, size = self.share
        x_all, y_all = self.sampler.draw(cfg.batch_size * cfg.grad_accum)
        if self.sampled is not None:  # one draw per step, so every process and micro-step shares it
            self.sampled.draw()
        total = torch.zeros((), device=self.device)
        mine = slice(dist.rank * micro_steps * size, (dist.rank + 1) * micro_steps * size)
        x_all, y_all = torch.from_numpy(x_all[mine]), torch.from_numpy(y_all[mine])
        if self.device.type == "cuda":
            # page-locked host memory: the copies below return at once and run in the stream's order,
            # so Python queues the micro-steps' kernels without waiting for the transfers
            x_all, y_all = x_all.pin_memory(), y_all.pin_memory()
        for micro in range(micro_steps):
            sl = slice(micro * size, (micro + 1) * size)
            x = x_all[sl].to(self.device, non_blocking=True)
            y = y_all[sl].to(self.device, non_blocking=True)
            sync = nullcontext() if (not dist.enabled or micro == micro_steps - 1) else self.model.no_sync()
            with sync:
                with self.amp:
                    loss = self.model(x, y, loss_fn=self.loss_fn) / micro_steps
                loss.backward()
            total += loss.detach().float()
        if dist.enabled:
            import torch.distributed as tdist

            tdist.all_reduce(total, op=tdist.ReduceOp.AVG)
        return total

    def _generators(self) -> tuple:
        """Every random generator a step draws from: the batch sampler's, torch's (and CUDA's)."""
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return self.sampler.rng.bit_generator.state, torch.get_rng_state(), cuda

    def _set_generators(self, states: tuple) -> None:
        sampler, cpu, cuda = states
        self.sampler.rng.bit_generator.state = sampler
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, self.device)

    def done(self) -> bool:
        cfg = self.cfg
        return bool((cfg.max_steps and self.step >= cfg.max_steps) or (cfg.max_tokens and self.tokens >= cfg.max_tokens)
                    or (cfg.time_budget and self.seconds >= cfg.time_budget))

    # -- the loop ------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train until a stop is reached (or a stop signal: saved, and continued by --resume)."""
        from .progress import training_progress

        self._wrap_model()
        bar = training_progress(self.show_progress)  # a bar on a terminal, plain lines in a log
        session = self.session = _Session(first_step=self.step)
        status, signum = "finished", None
        try:
            if self.step == 0:  # the table at once: queries can read a run from its first second
                self.snapshot()
                self.save("running")
            elif self.saved is not None:  # resumed: running again (the saved state is unchanged)
                self.saved = dataclasses.replace(self.saved, status="running", error=None)
                with self.signals.held():
                    self.saved.write(self.run)
            while not self.done():
                loss = self._timed_step(session)
                val = self.after_step(loss)
                if val is not None:
                    session.val_text = f"{val:.3f}"
                if bar:
                    progress = min(run_progress(self.cfg, self.step, self.tokens, self.seconds), 1)
                    bar.update(self.step, progress, loss, session.val_text, session.tokens_per_second())
                if self.on_step:
                    self.on_step(self)
                if not self.done():  # a signal that came during the update: the step is whole now
                    self.signals.deliver()
        except KeyboardInterrupt as exc:  # Interrupted, or a KeyboardInterrupt from elsewhere
            status, signum = "interrupted", getattr(exc, "signum", signal.SIGINT)
        finally:
            if bar:
                bar.close()
            self.close_logs()
        return self.finish(status, session, signum)

    def _wrap_model(self) -> None:
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.raw_model, device_ids=ids)
        if self.cfg.compile:
            self.model = torch.compile(self.model)

    def _timed_step(self, session: _Session) -> float:
        """train_step, counted for this session; a non-finite loss stops the run (the last save is kept)."""
        try:
            loss = self.train_step()
        except Exception as exc:  # torch.compile needs a C++ compiler; without one, run eager
            compile_error = type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))
            if not (self.cfg.compile and session.steps == 0 and compile_error):
                raise
            self.log(f"torch.compile failed ({type(exc).__name__}); training without it")
            self.optimizer.zero_grad(set_to_none=True)
            self.model = self.model._orig_mod
            loss = self.train_step()
        session.steps += 1
        session.tokens += self.cfg.tokens_per_step
        if not math.isfinite(loss):
            raise self.fail(f"training diverged: the loss became {loss} at step {self.step}",
                            f"start again with a lower learning_rate (it was {self.cfg.learning_rate:g})")
        return loss

    def after_step(self, loss: float) -> float | None:
        """Validate, log, snapshot and checkpoint when their turn comes (the step's loss is in the
        history already: train_step records it with the step). Returns the validation loss when
        one was measured."""
        cfg = self.cfg
        val = None
        if self.step % cfg.eval_interval == 0 or self.done():
            val = self.validate()
        self.log_metrics(loss, val)  # before the checkpoint: a step it covers is always in the log
        if is_snapshot_step(self.step, cfg.snapshot_every):
            self.snapshot()
        if self.step % cfg.checkpoint_interval == 0 and not self.done():
            self.save("running")
        return val

    def log_metrics(self, loss: float | None, val: float | None) -> None:
        """This step's record in metrics.jsonl (runs.MetricsLog) and, when tensorboard is installed,
        the same scalars in runs/<name>/tb/. ``loss`` None: a validation with no step of its own."""
        if not self.dist.main:
            return
        if self.metrics is None:
            self.metrics = MetricsLog(self.run)
            self.tensorboard = tensorboard_writer(self.run, self.step if loss is not None else self.step + 1)
        record = {"step": self.step, "tokens": self.tokens}
        if loss is not None:
            record.update(train_loss=round(loss, 5), train_loss_kind=self.cfg.loss)
        if val is not None:
            record["val_loss"] = round(val, 5)
        if loss is not None:
            record["lr"] = {g["name"]: float(f"{g['lr']:.6g}") for g in self.optimizer.param_groups}
            record.update(tokens_per_s=round(self.session.tokens_per_second(), 1), elapsed_s=round(self.seconds, 3))
        record["time"] = round(time.time(), 3)
        failed = self.metrics.error
        self.metrics.write(record)
        if self.metrics.error and not failed:
            self.log(self.metrics.error)
        if self.tensorboard is not None:
            scalars = {"loss/train": record.get("train_loss"), "loss/val": record.get("val_loss"),
                       "speed/tokens_per_s": record.get("tokens_per_s")}
            scalars.update({f"lr/{name}": lr for name, lr in record.get("lr", {}).items()})
            for tag, value in scalars.items():
                if value is not None:
                    self.tensorboard.add_scalar(tag, value, self.step)

    def close_logs(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None

    def finish(self, status: str, session: _Session, signum: int | None = None) -> TrainResult:
        """The end of a session: save where it stopped, with a validation loss and a snapshot there.
        Stop signals that come now are let go: the run is stopping already, and saves."""
        with self.signals.held(deliver=False):
            self.signals.pending = None
            if status == "interrupted":
                self.save("interrupted")
                how = "interrupted" if signum in (None, signal.SIGINT) else f"stopped by {signal.Signals(signum).name}"
                raise EmbcliError(f"{how} at step {self.step}; saved. Continue with: embcli train --resume {self.run}",
                                  exit_code=128 + (signum or signal.SIGINT), quiet=not self.dist.main)
            if not self.history["val"] or self.history["val"][-1][0] != self.step:
                val = self.validate()
                if val is not None:
                    self.log_metrics(None, val)
                    self.close_logs()
            if self.cfg.snapshots and not is_snapshot_step(self.step, self.cfg.snapshot_every):
                self.snapshot()
            self.save(status)
            self.signals.pending = None
        wall = time.perf_counter() - session.started
        meta = self.meta(status)
        return TrainResult(self.run, self.step, self.tokens, meta.train_loss, meta.val_loss, wall,
                           session.tokens / max(wall, 1e-9), status, self.cfg.loss, session.first_step,
                           session.tokens)


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------


def train(cfg: TrainConfig, spec: CorpusSpec | None = None, *, name: str | None = None, resume: str | None = None,
          device: str = "auto", runs_dir: Path | None = None, cache_dir: Path | None = None,
          progress: bool = True, log=None, on_step=None, stop_overrides: dict | None = None) -> TrainResult:
    """Train (or resume) a run and return where it ended. The library entry point of ``embcli train``.

    The run folder is locked for the whole session (one writer per run). A new run whose start
    fails before its first save is removed; a failure after it marks the run failed; SIGINT and
    SIGTERM save the run and end with exit code 130 or 143.
    """
    dist, dev = setup_distributed(device)
    log = log if (log and dist.main) else (lambda *a: None)  # one process speaks
    lock: RunLock | None = None
    trainer: Trainer | None = None
    try:
        with StopSignals() as signals:
            try:
                run, cfg = _check_start(cfg, name, resume, runs_dir, stop_overrides, dist, dev)
                if resume:
                    lock, corpus, folder = _reopen_run(run, cache_dir, dist, progress=progress and dist.main)
                else:
                    lock, corpus, run = _start_run(spec, name, runs_dir, cache_dir, dist, progress=progress)
                trainer = Trainer(cfg, corpus, run, dev, dist, log=log, progress=progress, on_step=on_step,
                                  signals=signals)
                if resume:
                    trainer.load(folder)
                    if dist.main:
                        trainer.saved = read_meta(run)
                    log(f"resuming {run} at step {trainer.step} ({trainer.tokens:,} tokens seen)")
                elif dist.main:
                    write_config(run, cfg.to_dict())
                    save_counts(run, corpus.counts())
                _announce(log, trainer, dev)
                return trainer.fit()
            except BaseException as exc:
                saved = trainer is not None and trainer.saved is not None
                if lock is not None and not resume and not saved:
                    discard_new_run(lock)  # a start that failed leaves no run behind
                    lock = None
                elif saved and dist.main and not isinstance(exc, (EmbcliError, KeyboardInterrupt)):
                    trainer.fail(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}", "")
                if isinstance(exc, KeyboardInterrupt):  # a stop signal before training began
                    raise _stopped_before_training(exc, dist) from None
                raise
    finally:
        if lock is not None:
            lock.release()
        if dist.enabled:
            import torch.distributed as tdist

            if tdist.is_initialized():
                tdist.destroy_process_group()


def _check_start(cfg: TrainConfig, name: str | None, resume: str | None, runs_dir: Path | None,
                 stop_overrides: dict | None, dist: Dist, dev: torch.device) -> tuple[Path | None, TrainConfig]:
    """Everything that can be said before any work, the same in every process (rank 0 says it):
    the run to resume (None for a new one) and the config to train with."""
    try:
        run = find_run(resume, runs_dir) if resume else None
        cfg = _resumed_config(run, stop_overrides) if resume else cfg.validate()
        if name is not None and not resume:
            check_run_name(name)
        check_fits(cfg, dist, dev)
        return run, cfg
    except EmbcliError as exc:
        exc.quiet = not dist.main
        raise


def _stopped_before_training(exc: KeyboardInterrupt, dist: Dist) -> EmbcliError:
    """SIGINT or SIGTERM before the first step: nothing to save, the signal's exit code."""
    signum = getattr(exc, "signum", signal.SIGINT)
    return EmbcliError(f"{'interrupted' if signum == signal.SIGINT else 'stopped by ' + signal.Signals(signum).name}"
                       " before training began; nothing was saved", exit_code=128 + signum, quiet=not dist.main)


def _resumed_config(run: Path, stop_overrides: dict | None) -> TrainConfig:
    """The config a run was made with, with the stops given now (as for a new run: TrainConfig.with_stops)."""
    saved = read_config(run)
    try:
        cfg = TrainConfig(**saved)
    except TypeError:  # None (missing, not JSON) or keys this TrainConfig does not have
        raise EmbcliError(f"cannot resume {run}: its {CONFIG} is missing or damaged") from None
    return cfg.with_stops(stop_overrides or {}).validate()


def _reopen_run(run: Path, cache_dir: Path | None, dist: Dist, *,
                progress: bool) -> tuple[RunLock | None, PreparedCorpus, Path]:
    """A run to resume, locked by rank 0 and cleared of leftovers: its corpus and its checkpoint."""
    lock, error = None, None
    if dist.main:
        try:
            lock = RunLock.acquire(run)
            clean_leftovers(run)
        except EmbcliError as exc:
            error = str(exc)
    _share_outcome(dist, error)
    folder = checkpoint_dir(run)
    meta = read_meta(run)
    corpus = None
    if meta.corpus_path:
        try:
            corpus = open_prepared(Path(meta.corpus_path))
        except EmbcliError:  # the token cache was deleted: tokenize the same sources again
            pass
    if corpus is None:
        corpus = prepare(CorpusSpec(**meta.corpus["spec"]), cache_dir, progress=progress)
    return lock, corpus, folder


def _share_outcome(dist: Dist, error: str | None) -> None:
    """Under torchrun: rank 0's error, raised in every process (said by rank 0 alone)."""
    if dist.enabled:
        import torch.distributed as tdist

        box = [error]
        tdist.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise EmbcliError(error, quiet=not dist.main)


def _start_run(spec: CorpusSpec | None, name: str | None, runs_dir: Path | None, cache_dir: Path | None,
               dist: Dist, *, progress: bool) -> tuple[RunLock | None, PreparedCorpus, Path]:
    """The corpus, tokenized (or found in the cache), and a new run folder, locked.

    Under torchrun, rank 0 does both and the other ranks wait for it, then open what it made.
    """
    shared: list = [None, None, None]
    lock = None
    if dist.main:
        try:
            corpus = prepare(spec or CorpusSpec(), cache_dir, progress=progress)
            lock = create_run(name, runs_dir)
            shared = [str(corpus.path), str(lock.run), None]
        except EmbcliError as exc:
            if not dist.enabled:
                raise
            shared = [None, None, str(exc)]
    if dist.enabled:
        import torch.distributed as tdist

        tdist.broadcast_object_list(shared, src=0)
        if shared[2] is not None:
            raise EmbcliError(shared[2], quiet=not dist.main)
        corpus = open_prepared(Path(shared[0]))
    return lock, corpus, Path(shared[1])


def _announce(log, trainer: Trainer, device: torch.device) -> None:
    info, corpus, cfg, dist = describe_model(trainer.raw_model), trainer.corpus, trainer.cfg, trainer.dist
    log(f"model: {info['parameters']:,} parameters; the token table is {info['rows']:,} × {info['dim']} = "
        f"{info['table_parameters']:,} ({info['table_share']:.0%}), tied to the output layer")
    log(f"corpus: {corpus.manifest['description']}: {corpus.train_tokens:,} training tokens, "
        f"{corpus.val_tokens:,} validation; device {device}"
        + (f" × {dist.world} processes" if dist.enabled else "")
        + f"; {cfg.tokens_per_step:,} tokens per step")
