"""Training configuration: one dataclass, loaded from TOML, overridden field by field.

``configs/*.toml`` hold named recipes; ``embcli train --config tiny --set n_layer=2`` starts from
one and changes what you name. Every key is checked: a misspelt key is an error that names it,
never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib

from .errors import EmbcliError
from .runs import model_info


@dataclass
class TrainConfig:
    # --- model (GPT-2 architecture) ---
    vocab_size: int = 50257  # GPT-2's BPE: 50256 merges + <|endoftext|>
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128  # context length in tokens
    dropout: float = 0.0
    bias: bool = True
    # --- optimisation ---
    batch_size: int = 32  # sequences per micro-step (at most, under torchrun: train.rank_share)
    grad_accum: int = 1  # micro-steps per optimizer step: the global batch is batch_size × grad_accum
    learning_rate: float = 3e-3
    embedding_lr: float = 0.0  # learning rate of the token table; 0 means learning_rate
    min_lr_ratio: float = 0.1  # the cosine schedule ends at learning_rate * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.1  # AdamW's decoupled decay of the blocks' matrices
    # ... and of the token table. Apart because decay pulls every row toward 0 at every step, while
    # a row's gradient comes only on the steps its token is in the batch: rare rows shrink.
    embedding_weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    # --- when to stop (the first reached wins; 0 means no limit) ---
    max_steps: int = 2000
    max_tokens: int = 0
    time_budget: float = 0.0  # seconds
    # --- evaluation and saving ---
    eval_interval: int = 200  # steps between validation losses
    eval_batches: int = 8
    checkpoint_interval: int = 500  # steps between checkpoints (and a last one at the end)
    snapshots: bool = True  # keep copies of the table at step 0 and 10, 30, 100, 300, ...
    snapshot_every: int = 0  # 0: only those log-spaced snapshots; N: also one every N steps (denser, for
    #                          quality over time: bench/quality.py --curve); a snapshot is 50257 × n_embd floats
    # --- speed ---
    dtype: str = "auto"  # auto | float32 | bfloat16 (autocast); auto: bf16 where the device has it natively
    #                      (CUDA; a CPU with AVX-512 BF16 or AMX), float32 elsewhere
    loss: str = "fused"  # fused: chunked linear + cross-entropy, never the full logits; plain;
    #                      sampled: sampled softmax over `negatives` shared negatives (less work)
    loss_chunk: int = 256  # rows per logits matmul of the fused loss (never the full logits)
    loss_stage: int = 1024  # rows per gradient matmul of the fused loss (large: efficient matmuls)
    negatives: int = 2048  # negatives per step for loss = sampled
    output_vocab: str = "full"  # full: softmax over all 50257 ids; corpus: only ids the corpus has (with
    #                             loss = sampled, whose negatives are corpus ids already, it changes validation only)
    compile: bool = False  # torch.compile the model
    # --- reproducibility ---
    seed: int = 1337

    def validate(self) -> TrainConfig:
        problems = []
        for f in fields(self):  # inf or nan in any setting trains a NaN table (or never stops)
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{f.name} must be a finite number (got {value})")
        if not 0 <= self.seed < 2**64:  # what numpy's and torch's generators accept
            problems.append(f"seed must be a whole number from 0 to 2**64 - 1 (got {self.seed})")
        positive = ["vocab_size", "n_layer", "n_head", "n_embd", "block_size", "batch_size", "grad_accum",
                    "eval_batches", "eval_interval", "checkpoint_interval", "loss_chunk", "loss_stage",
                    "negatives"]
        for name in positive:
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0 (got {getattr(self, name)})")
        for name in ["max_steps", "max_tokens", "time_budget", "warmup_steps", "weight_decay",
                     "embedding_weight_decay", "grad_clip", "embedding_lr", "snapshot_every"]:
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 (got {getattr(self, name)})")
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be > 0 (got {self.learning_rate})")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1) (got {self.dropout})")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1] (got {self.min_lr_ratio})")
        for name in ["beta1", "beta2"]:
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"{name} must be in [0, 1) (got {getattr(self, name)})")
        if self.n_head > 0 and self.n_embd % self.n_head:
            problems.append(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if self.vocab_size != 50257:
            problems.append(f"vocab_size must be 50257, GPT-2's tokenizer (got {self.vocab_size})")
        choices = {"dtype": ("auto", "float32", "bfloat16"), "loss": ("fused", "plain", "sampled"),
                   "output_vocab": ("full", "corpus")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {', '.join(allowed)} (got {getattr(self, name)!r})")
        if not (self.max_steps or self.max_tokens or self.time_budget):
            problems.append("set at least one of max_steps, max_tokens, time_budget")
        if problems:
            raise EmbcliError("invalid config: " + "; ".join(problems))
        return self

    def with_stops(self, stops: dict) -> TrainConfig:
        """The config with the stops given on a command line: when any is given, they replace all
        of the config's stops (one not given is off), for a new run and a resumed one alike."""
        if stops:
            for key in STOPS:
                setattr(self, key, stops.get(key, type(getattr(self, key))(0)))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def parameter_count(self) -> dict:
        """Parameters of the model this config builds, counted without building it."""
        d, bias = self.n_embd, int(self.bias)
        per_block = 12 * d * d + bias * 9 * d + 4 * d if bias else 12 * d * d + 2 * d
        total = self.vocab_size * d + self.block_size * d + self.n_layer * per_block + (1 + bias) * d
        return model_info(total, self.vocab_size, d, tied=True)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.block_size


FIELDS = {f.name: f for f in fields(TrainConfig)}
STOPS = ("max_steps", "max_tokens", "time_budget")


def _coerce(key: str, value, source: str):
    """Check a value against the field's type; strings from the command line are parsed."""
    kind = type(getattr(TrainConfig(), key))
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return text.lower() in ("true", "1", "yes")
            return kind(float(text)) if kind is int and "e" in text.lower() else kind(text)
        except ValueError:
            raise EmbcliError(f"{source}: {key} must be a {kind.__name__} (got {value!r})") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:
        raise EmbcliError(f"{source}: {key} must be a {kind.__name__} (got {value!r})")
    return value


def apply(config: TrainConfig, values: dict, source: str) -> TrainConfig:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise EmbcliError(f"{source}: unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
    changes = {k: _coerce(k, v, source) for k, v in values.items()}
    return dataclasses.replace(config, **changes)


def builtin_configs_dir() -> Path:
    """``configs/`` beside the package in a checkout, or the copy installed inside it."""
    checkout = Path(__file__).resolve().parent.parent / "configs"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("embcli") / "configs"))


def load_config(name_or_path: str = "tiny", overrides: list[str] | None = None) -> TrainConfig:
    """A named config (``tiny``, ``gpt2-small``) or a TOML path, then ``key=value`` overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = builtin_configs_dir() / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in builtin_configs_dir().glob("*.toml"))
        raise EmbcliError(f"no config {name_or_path!r} (built-in: {', '.join(known)}; or give a .toml path)")
    try:
        values = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EmbcliError(f"{path}: not valid TOML ({exc})") from None
    config = apply(TrainConfig(), values, str(path))
    pairs = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EmbcliError(f"--set takes KEY=VALUE (got {item!r})")
        pairs[key.strip()] = value
    return apply(config, pairs, "--set")
