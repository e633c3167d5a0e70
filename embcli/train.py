"""The training loop: sample windows of the token stream, predict each next token, step AdamW.

One process or many: under ``torchrun`` each process is one rank of a DistributedDataParallel
job (nccl on CUDA, gloo on CPU). All ranks draw the *same* global batch from the same seeded
generator and each keeps only its own micro-batches, so N processes see exactly the data one
process would, and the loss curve matches a single process with the same global batch.

What makes a run reproducible and resumable: the batch generator's state, the model and AdamW
state, the step and the tokens seen are all saved in the checkpoint, so ``--resume`` continues
the very same trajectory.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from contextlib import nullcontext
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
    RunMeta,
    checkpoint_dir,
    find_run,
    is_snapshot_step,
    model_info,
    new_run_dir,
    read_config,
    read_meta,
    save_counts,
    save_snapshot,
    save_table,
    write_checkpoint_dir,
    write_config,
)

# ---------------------------------------------------------------------------------------------
# Devices and processes
# ---------------------------------------------------------------------------------------------


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
    """AdamW with three groups: the token table (its own learning rate if set), other matrices
    (weight decay), and vectors — biases and LayerNorm gains — which are not decayed."""
    table = model.wte.weight
    matrices = [p for n, p in model.named_parameters() if p.dim() >= 2 and p is not table]
    vectors = [p for n, p in model.named_parameters() if p.dim() < 2]
    table_lr = cfg.embedding_lr or cfg.learning_rate
    groups = [
        {"params": [table], "weight_decay": cfg.weight_decay, "lr_scale": table_lr / cfg.learning_rate, "name": "table"},
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
    seconds: float
    tokens_per_second: float
    status: str
    loss_kind: str = "fused"  # "sampled": the train loss is the sampled-softmax estimate


@dataclass
class _Session:
    """This process's share of the run (a resumed run has had others): for the speed it reports."""

    started: float = field(default_factory=time.perf_counter)
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
                 dist: Dist, *, log=None, progress: bool = True, on_step=None):
        self.cfg, self.corpus, self.run, self.device, self.dist = cfg, corpus, run, device, dist
        self.log = log or (lambda *a: None)
        self.show_progress = progress and dist.main
        self.on_step = on_step
        torch.manual_seed(cfg.seed)
        self.model = GPT(GPTConfig.from_train_config(cfg)).to(device)
        self.raw_model = self.model  # self.model may become a DDP or torch.compile wrapper of it
        self.optimizer = make_optimizer(self.model, cfg, device)
        self.sampler = BatchSampler(corpus.split("train"), cfg.block_size, cfg.seed)
        self.val = val_windows(corpus.split("val"), cfg.block_size, cfg.eval_batches * cfg.batch_size)
        use_bf16 = cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and device.type == "cuda")
        self.amp = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
        self._choose_losses()
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.step, self.tokens, self.seconds = 0, 0, 0.0
        self.history: dict[str, list] = {"train": [], "val": []}
        self.last_good_step = None
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
            loss, val = OverVocab(loss, ids, cfg.vocab_size), OverVocab(val, ids, cfg.vocab_size)
        self.loss_fn, self.val_loss_fn = loss, val

    # -- state ---------------------------------------------------------------------------------

    def save(self, status: str) -> None:
        """Table, meta and resume state; rank 0 only."""
        if not self.dist.main:
            return
        from safetensors.torch import save_file

        save_table(self.run, table_numpy(self.raw_model))
        opt_tensors, opt_meta = _optimizer_tensors(self.optimizer)
        state = {"step": self.step, "tokens": self.tokens, "seconds": self.seconds,
                 "sampler": self.sampler.rng.bit_generator.state, "optimizer": opt_meta,
                 "history": self.history}
        model_state = {k: v.detach().cpu().contiguous() for k, v in self.raw_model.state_dict().items()}

        def write(folder: Path) -> None:
            save_file(model_state, str(folder / CHECKPOINT_MODEL), metadata={"step": str(self.step)})
            save_file(opt_tensors, str(folder / CHECKPOINT_OPTIMIZER), metadata={"step": str(self.step)})
            rng = torch.get_rng_state()
            save_file({"torch_rng": rng}, str(folder / CHECKPOINT_RNG))
            (folder / CHECKPOINT_STATE).write_text(json.dumps(state, default=_json_default))

        write_checkpoint_dir(self.run, write)
        self.last_good_step = self.step
        self.meta(status).write(self.run)

    def snapshot(self) -> None:
        if self.dist.main and self.cfg.snapshots:
            save_snapshot(self.run, self.step, table_numpy(self.raw_model))

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
            rng = load_file(str(folder / CHECKPOINT_RNG))["torch_rng"]
            groups = state["optimizer"]["param_groups"]
            _load_optimizer(self.optimizer, opt, groups)
            torch.set_rng_state(rng)
            self.sampler.rng.bit_generator.state = state["sampler"]
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError, json.JSONDecodeError) as exc:
            raise EmbcliError(f"cannot resume from {self.run}: its checkpoint is damaged "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
        self.step, self.tokens, self.seconds = state["step"], state["tokens"], state["seconds"]
        self.history = state["history"]
        self.last_good_step = self.step

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
        """One optimizer step over the global batch (this rank's micro-batches of it); its mean loss."""
        cfg, dist = self.cfg, self.dist
        per_rank = cfg.grad_accum // dist.world
        x_all, y_all = self.sampler.draw(cfg.batch_size * cfg.grad_accum)
        if self.sampled is not None:  # one draw per step, so every process and micro-step shares it
            self.sampled.draw()
        total = torch.zeros((), device=self.device)
        x_all, y_all = torch.from_numpy(x_all), torch.from_numpy(y_all)
        if self.device.type == "cuda":
            # page-locked host memory: the copies below return at once and run in the stream's order,
            # so Python queues the micro-steps' kernels without waiting for the transfers
            x_all, y_all = x_all.pin_memory(), y_all.pin_memory()
        for micro in range(per_rank):
            g = micro * dist.world + dist.rank  # this rank's micro-steps of the global batch
            sl = slice(g * cfg.batch_size, (g + 1) * cfg.batch_size)
            x = x_all[sl].to(self.device, non_blocking=True)
            y = y_all[sl].to(self.device, non_blocking=True)
            sync = nullcontext() if (not dist.enabled or micro == per_rank - 1) else self.model.no_sync()
            with sync:
                with self.amp:
                    loss = self.model(x, y, loss_fn=self.loss_fn) / per_rank
                loss.backward()
            total += loss.detach().float()
        if dist.enabled:
            import torch.distributed as tdist

            tdist.all_reduce(total, op=tdist.ReduceOp.AVG)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        lr = learning_rate(cfg, self.step, run_progress(cfg, self.step, self.tokens, self.seconds))
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total.item()

    def done(self) -> bool:
        cfg = self.cfg
        return bool((cfg.max_steps and self.step >= cfg.max_steps) or (cfg.max_tokens and self.tokens >= cfg.max_tokens)
                    or (cfg.time_budget and self.seconds >= cfg.time_budget))

    # -- the loop ------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train until a stop is reached (or Ctrl-C: saved, and continued by --resume)."""
        from .progress import training_progress

        self._wrap_model()
        if self.step == 0:
            self.snapshot()
        bar = training_progress(self.show_progress)  # a bar on a terminal, plain lines in a log
        session = self.session = _Session()
        status = "finished"
        try:
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
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            if bar:
                bar.close()
            self.close_logs()
        return self.finish(status, session)

    def _wrap_model(self) -> None:
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.raw_model, device_ids=ids)
        if self.cfg.compile:
            self.model = torch.compile(self.model)

    def _timed_step(self, session: _Session) -> float:
        """train_step, counted and timed; a non-finite loss stops the run (the last save is kept)."""
        t0 = time.perf_counter()
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
        if not math.isfinite(loss):
            raise EmbcliError(f"training diverged: the loss became {loss} at step {self.step + 1}; "
                              f"the last good checkpoint (step {self.last_good_step}) is kept in {self.run} "
                              "(lower --set learning_rate=...)", exit_code=1)
        self.step += 1
        self.tokens += self.cfg.tokens_per_step
        session.tokens += self.cfg.tokens_per_step
        self.seconds += time.perf_counter() - t0
        return loss

    def after_step(self, loss: float) -> float | None:
        """Record the step's loss; validate, log, snapshot and checkpoint when their turn comes.
        Returns the validation loss when one was measured."""
        cfg = self.cfg
        self.history["train"].append([self.step, self.tokens, round(loss, 5)])
        val = None
        if self.step % cfg.eval_interval == 0 or self.done():
            val = self.validate()
        self.log_metrics(loss, val)  # before the checkpoint: a step it covers is always in the log
        if is_snapshot_step(self.step):
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

    def finish(self, status: str, session: _Session) -> TrainResult:
        """The end of a session: save where it stopped, with a validation loss and a snapshot there."""
        if status == "interrupted":
            self.save("interrupted")
            raise EmbcliError(f"interrupted at step {self.step}; saved. Continue with: embcli train --resume {self.run}",
                              exit_code=130)
        if not self.history["val"] or self.history["val"][-1][0] != self.step:
            val = self.validate()
            if val is not None:
                self.log_metrics(None, val)
                self.close_logs()
        if self.cfg.snapshots and not is_snapshot_step(self.step):
            self.snapshot()
        self.save(status)
        wall = time.perf_counter() - session.started
        meta = self.meta(status)
        return TrainResult(self.run, self.step, self.tokens, meta.train_loss, meta.val_loss, wall,
                           session.tokens / max(wall, 1e-9), status, self.cfg.loss)


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------


def train(cfg: TrainConfig, spec: CorpusSpec | None = None, *, name: str | None = None, resume: str | None = None,
          device: str = "auto", runs_dir: Path | None = None, cache_dir: Path | None = None,
          progress: bool = True, log=None, on_step=None, stop_overrides: dict | None = None) -> TrainResult:
    """Train (or resume) a run and return where it ended. The library entry point of ``embcli train``."""
    dist, dev = setup_distributed(device)
    log = log if (log and dist.main) else (lambda *a: None)  # one process speaks
    try:
        if resume:
            cfg, corpus, run, folder = _reopen_run(resume, runs_dir, cache_dir, stop_overrides,
                                                   progress=progress and dist.main)
        else:
            cfg.validate()
            corpus, run = _start_run(spec, name, runs_dir, cache_dir, dist, progress=progress)
        if cfg.grad_accum % dist.world:
            raise EmbcliError(f"grad_accum ({cfg.grad_accum}) must be a multiple of the number of processes ({dist.world})")
        trainer = Trainer(cfg, corpus, run, dev, dist, log=log, progress=progress, on_step=on_step)
        if resume:
            trainer.load(folder)
            log(f"resuming {run} at step {trainer.step} ({trainer.tokens:,} tokens seen)")
        elif dist.main:
            write_config(run, cfg.to_dict())
            save_counts(run, corpus.counts())
            trainer.meta("running").write(run)
        _announce(log, trainer, dev)
        return trainer.fit()
    finally:
        if dist.enabled:
            import torch.distributed as tdist

            if tdist.is_initialized():
                tdist.destroy_process_group()


def _reopen_run(resume: str, runs_dir: Path | None, cache_dir: Path | None, stop_overrides: dict | None, *,
                progress: bool) -> tuple[TrainConfig, PreparedCorpus, Path, Path]:
    """A run to resume: its config (with new stops), its corpus, its folder and its checkpoint."""
    run = find_run(resume, runs_dir)
    saved = read_config(run)
    try:
        cfg = TrainConfig(**saved)
    except TypeError:  # None (missing, not JSON) or keys this TrainConfig does not have
        raise EmbcliError(f"cannot resume {run}: its {CONFIG} is missing or damaged") from None
    for key, value in (stop_overrides or {}).items():
        setattr(cfg, key, value)
    cfg.validate()
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
    return cfg, corpus, run, folder


def _start_run(spec: CorpusSpec | None, name: str | None, runs_dir: Path | None, cache_dir: Path | None,
               dist: Dist, *, progress: bool) -> tuple[PreparedCorpus, Path]:
    """The corpus, tokenized (or found in the cache), and a new run folder.

    Under torchrun, rank 0 does both and the other ranks wait for it, then open what it made.
    """
    shared: list = [None, None, None]
    if dist.main:
        try:
            corpus = prepare(spec or CorpusSpec(), cache_dir, progress=progress)
            run = new_run_dir(name, runs_dir)
            shared = [str(corpus.path), str(run), None]
        except EmbcliError as exc:
            if not dist.enabled:
                raise
            shared = [None, None, str(exc)]
    if dist.enabled:
        import torch.distributed as tdist

        tdist.broadcast_object_list(shared, src=0)
        if shared[2] is not None:
            raise EmbcliError(shared[2])
        corpus, run = open_prepared(Path(shared[0])), Path(shared[1])
    return corpus, run


def _announce(log, trainer: Trainer, device: torch.device) -> None:
    info, corpus, cfg, dist = describe_model(trainer.raw_model), trainer.corpus, trainer.cfg, trainer.dist
    log(f"model: {info['parameters']:,} parameters; the token table is {info['rows']:,} × {info['dim']} = "
        f"{info['table_parameters']:,} ({info['table_share']:.0%}), tied to the output layer")
    log(f"corpus: {corpus.manifest['description']}: {corpus.train_tokens:,} training tokens, "
        f"{corpus.val_tokens:,} validation; device {device}"
        + (f" × {dist.world} processes" if dist.enabled else "")
        + f"; {cfg.tokens_per_step:,} tokens per step")
