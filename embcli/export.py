"""The table, out to the tools people already use — and the real GPT-2 table, in.

Formats:
- ``word2vec`` / ``word2vec-bin``: what gensim's ``load_word2vec_format`` reads. Keys are spelt so
  a person can type them (``--keys words``, the default; :func:`word_key`): the space-prefixed
  token " king" — the form a word takes in running text, and the one embcli's queries use — is
  ``king``; every other token is ``@@`` + GPT-2's byte-level spelling (the bare piece "king" is
  ``@@king``, a newline ``@@Ċ``, two spaces ``@@ĠĠ``), and ``<|endoftext|>`` is itself. Keys are
  unique and hold no whitespace. ``--keys gpt2`` writes GPT-2's own byte-level spelling
  (" king" is ``Ġking``, as in GPT-2's encoder.json).
- ``projector``: TensorBoard's embedding projector, ``vectors.tsv`` + ``metadata.tsv`` (token, id,
  count), tokens escaped (``\\t``, ``\\n``, ``\\r``, ``\\\\``) so tabs and newlines survive, and
  ``projector_config.pbtxt`` naming both, so ``tensorboard --logdir DIR`` shows the table.
- ``npy``: the rows as float32 ``.npy`` (+ ``.ids.npy`` naming the rows when a subset is taken).
- ``safetensors``: ``embeddings`` and ``ids`` tensors.
- ``hf``: the whole model as a Hugging Face GPT-2 folder (:func:`export_hf`): ``config.json`` +
  ``model.safetensors`` that ``GPT2LMHeadModel.from_pretrained`` loads, GPT-2's tokenizer files
  made from the shipped ranks, and a model card. The weights come from the run's checkpoint.

Exports never write into a run folder (any run's: its files are embcli's own) and replace only
regular files: a symlink is followed, a device, FIFO or socket is refused (``io.regular_target``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import EmbcliError
from .io import (
    atomic_path,
    fsync_dir,
    make_dir_public,
    regular_target,
    save_npy_atomic,
    write_bytes_atomic,
    write_error,
)

TABLE_FORMATS = ("word2vec", "word2vec-bin", "projector", "npy", "safetensors")
FORMATS = TABLE_FORMATS + ("hf",)
KEY_STYLES = ("words", "gpt2")
OTHER_TOKEN_MARK = "@@"  # the prefix of every key that is not a space-prefixed word (see word_key)
PROJECTOR_CONFIG = "projector_config.pbtxt"


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character map (printable bytes map to themselves)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in keep:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def gpt2_key(raw: bytes) -> str:
    """GPT-2's byte-level spelling of a token: " cat" is ``Ġcat``, "\\n" is ``Ċ`` (encoder.json's keys)."""
    table = byte_to_unicode()
    return "".join(table[b] for b in raw)


_WHITESPACE = re.compile(r"\s")


def word_key(raw: bytes) -> str:
    """A key a person can type for a token (``--keys words``).

    " king" → ``king``: one space, then text with no whitespace — a word as it occurs in running
    text, which is also what embcli's queries look up when you type ``king``. Every other token
    (the bare piece "king" at the start of a text or inside a word, runs of spaces, newlines,
    partial UTF-8 bytes) is ``@@`` + its GPT-2 byte-level spelling: ``@@king``, ``@@Ċ``. No
    space-prefixed word begins with ``@@`` + another token's spelling (``word_keys`` checks all
    50257), so the two kinds never collide, and byte-level spellings hold no whitespace.
    """
    if raw == b"<|endoftext|>":
        return "<|endoftext|>"
    if raw.startswith(b" ") and len(raw) > 1:
        try:
            rest = raw[1:].decode("utf-8")
        except UnicodeDecodeError:
            rest = None
        if rest is not None and not _WHITESPACE.search(rest):
            return rest
    return OTHER_TOKEN_MARK + gpt2_key(raw)


@lru_cache(maxsize=2)
def word_keys(style: str = "words") -> list[str]:
    """The key of every one of the 50257 ids in a key style, checked to be unique and whitespace-free."""
    from .tokenizer import Vocab

    vocab = Vocab.load()
    spell = word_key if style == "words" else gpt2_key
    keys = [spell(vocab.bytes_of(i)) for i in range(len(vocab))]
    if len(set(keys)) != len(keys) or any(_WHITESPACE.search(k) for k in keys):  # a different vocabulary
        raise EmbcliError(f"the {style!r} key spelling is not unique for this vocabulary")
    return keys


def escape_tsv(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def select_rows(counts: np.ndarray | None, min_count: int, top: int | None) -> np.ndarray:
    """Row ids to export: count ≥ min_count, most frequent first, at most ``top``."""
    if counts is None:
        ids = np.arange(50257)
    else:
        ids = np.flatnonzero(counts >= min_count)
        ids = ids[np.argsort(-counts[ids], kind="stable")]
    if top:
        ids = ids[:top]
    if not len(ids):
        raise EmbcliError(f"no rows to export: none was seen at least {min_count} times in training")
    return ids


def ids_path(out: Path) -> Path:
    """Where an npy export of a subset names its rows: ``x.npy`` → ``x.ids.npy``."""
    return out.with_name(out.name.removesuffix(".npy") + ".ids.npy")


def check_targets(fmt: str, out: Path) -> None:
    """Before anything is written: every file the export may write is outside every run folder
    and is a regular file or nothing yet; the projector's folder is a folder."""
    from .runs import refuse_run_files

    if fmt == "projector":
        if out.exists() and not out.is_dir():
            raise EmbcliError(f"{out} is not a folder: the projector export writes a folder")
        targets = [out, out / "vectors.tsv", out / "metadata.tsv", out / PROJECTOR_CONFIG]
    else:
        targets = [out, ids_path(out)] if fmt == "npy" else [out]
    for target in targets:
        refuse_run_files(target)
        if target != out or fmt != "projector":
            regular_target(target)


def export(space, fmt: str, out: Path, *, min_count: int = 1, top: int | None = None, keys: str = "words") -> dict:
    """Write the rows of ``space`` in one of the table formats (the ``hf`` model is :func:`export_hf`)."""
    if fmt not in TABLE_FORMATS:
        raise EmbcliError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
    if keys not in KEY_STYLES:
        raise EmbcliError(f"--keys takes {' or '.join(KEY_STYLES)} (got {keys!r})")
    out = Path(out)
    check_targets(fmt, out)
    parent = out if fmt == "projector" else out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(parent, exc) from None
    ids = select_rows(space.counts, min_count, top)
    if fmt in ("npy", "safetensors"):
        ids = np.sort(ids)  # arrays keep id order: row i of the full table is token i
    rows = np.asarray(space.vectors[ids], dtype=np.float32)
    if fmt in ("word2vec", "word2vec-bin"):
        files = _write_word2vec(out, ids, rows, word_keys(keys), binary=fmt == "word2vec-bin")
    elif fmt == "projector":
        files = _write_projector(space, out, ids, rows)
    elif fmt == "npy":
        files = _write_npy(out, ids, rows, len(space.vectors))
    else:
        files = _write_safetensors(out, ids, rows, space.source)
    return {"format": fmt, "rows": len(ids), "dim": rows.shape[1], "files": [str(f) for f in files]}



def _write_word2vec(out: Path, ids: np.ndarray, rows: np.ndarray, spelling, *, binary: bool) -> list[Path]:
    """word2vec's format: a "count dim" header, then a key and its row per line (text, or float32 after the key)."""
    header = f"{len(ids)} {rows.shape[1]}\n".encode()
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        fh.write(header)
        for i, row in zip(ids, rows):
            key = spelling[int(i)]
            if binary:
                fh.write(key.encode() + b" " + row.astype("<f4").tobytes() + b"\n")
            else:
                fh.write((key + " " + " ".join(f"{x:.6g}" for x in row) + "\n").encode())
    return [out]


def _write_projector(space, out: Path, ids: np.ndarray, rows: np.ndarray) -> list[Path]:
    """TensorBoard's projector: vectors.tsv, metadata.tsv (token, id, count) and the config naming them."""
    vec_lines = "".join("\t".join(f"{x:.6g}" for x in row) + "\n" for row in rows)
    write_bytes_atomic(out / "vectors.tsv", vec_lines.encode())
    meta = ["token\tid\tcount"]
    for i in ids:
        raw = space.vocab.bytes_of(int(i))
        text = raw.decode("utf-8", errors="backslashreplace")
        count = "" if space.counts is None else str(int(space.counts[i]))
        meta.append(f"{escape_tsv(text)}\t{int(i)}\t{count}")
    write_bytes_atomic(out / "metadata.tsv", ("\n".join(meta) + "\n").encode())
    # what TensorBoard's projector plugin looks for in a log folder; paths relative to it
    name = Path(str(space.source)).name + (f" step {space.step}" if space.step is not None else "")
    name = re.sub(r"[^\w .+-]", "_", name, flags=re.ASCII)  # nothing to escape in the text format
    config = (f'embeddings {{\n  tensor_name: "{name}"\n  tensor_path: "vectors.tsv"\n'
              f'  metadata_path: "metadata.tsv"\n}}\n')
    write_bytes_atomic(out / PROJECTOR_CONFIG, config.encode())
    return [out / "vectors.tsv", out / "metadata.tsv", out / PROJECTOR_CONFIG]


def _write_npy(out: Path, ids: np.ndarray, rows: np.ndarray, n_rows: int) -> list[Path]:
    """The rows as one .npy; beside it the ids (.ids.npy) unless they are the whole table in order."""
    save_npy_atomic(out, rows)
    if len(ids) != n_rows or not np.array_equal(ids, np.arange(len(ids))):
        save_npy_atomic(ids_path(out), ids.astype(np.int64))
        return [out, ids_path(out)]
    return [out]


def _write_safetensors(out: Path, ids: np.ndarray, rows: np.ndarray, source) -> list[Path]:
    """The rows and their ids as two tensors in one safetensors file."""
    from safetensors.numpy import save

    data = save({"embeddings": rows, "ids": ids.astype(np.int64)},
                metadata={"source": str(source), "tokenizer": "gpt2"})
    write_bytes_atomic(out, data)
    return [out]

# ---------------------------------------------------------------------------------------------
# The whole model out, as a Hugging Face GPT-2
# ---------------------------------------------------------------------------------------------

HF_MODEL = "model.safetensors"
EOT = "<|endoftext|>"


def gpt2_merges() -> list[tuple[bytes, bytes]]:
    """GPT-2's 50000 BPE merges, in rank order, recovered from the shipped ranks.

    tiktoken's ranks file is GPT-2's merges.txt folded up: the token a merge makes gets the
    merge's rank. To unfold it, run BPE on a token's own bytes using only the merges ranked
    below it: BPE stops at exactly the two pieces whose merge made the token.
    """
    from .tokenizer import load_ranks

    ranks = load_ranks()
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue  # the 256 single bytes are the alphabet, not merges
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            best = None
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) != 2:
            raise EmbcliError(f"cannot recover the BPE merge that made token {rank}")
        merges.append((parts[0], parts[1]))
    return merges


def hf_config(cfg: dict) -> dict:
    """config.json of a transformers GPT-2 with embcli's shape.

    Everything that is not a size is GPT-2's own choice and embcli's too: GELU with the tanh
    approximation (HF calls it "gelu_new"), LayerNorm eps 1e-5, attention scaled by
    1/sqrt(head dim), the output layer tied to the token table.
    """
    dropout = float(cfg.get("dropout", 0.0))
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": cfg["vocab_size"], "n_positions": cfg["block_size"], "n_embd": cfg["n_embd"],
        "n_layer": cfg["n_layer"], "n_head": cfg["n_head"], "n_inner": None,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
        "resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True, "bos_token_id": 50256, "eos_token_id": 50256, "use_cache": True,
        "dtype": "float32",
    }


def hf_weights(weights: dict[str, np.ndarray], cfg: dict) -> dict[str, np.ndarray]:
    """embcli's GPT weights (model.py's names) → GPT2LMHeadModel's names and layout.

    The architecture is the same; only names and one layout differ (nanoGPT's ``from_pretrained``
    does the reverse). HF's GPT-2 holds its four projections in ``Conv1D`` modules, which store
    the weight as (in, out), the transpose of ``nn.Linear``'s (out, in). No ``lm_head.weight`` is
    written: ``tie_word_embeddings`` makes HF score tokens with wte, as embcli does. A model
    trained with ``bias = false`` gets zero biases, since HF's GPT-2 always has them.
    """
    C, L, bias = cfg["n_embd"], cfg["n_layer"], cfg.get("bias", True)
    shapes = {"wte.weight": (cfg["vocab_size"], C), "wpe.weight": (cfg["block_size"], C), "ln_f.weight": (C,)}
    linear = {"attn.c_attn": (3 * C, C), "attn.c_proj": (C, C), "mlp.c_fc": (4 * C, C), "mlp.c_proj": (C, 4 * C)}
    for i in range(L):
        shapes.update({f"blocks.{i}.ln_1.weight": (C,), f"blocks.{i}.ln_2.weight": (C,)})
        shapes.update({f"blocks.{i}.{name}.weight": shape for name, shape in linear.items()})
    if bias:
        shapes.update({k.replace(".weight", ".bias"): (v[0],) for k, v in list(shapes.items())
                       if k.startswith(("blocks.", "ln_f"))})
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if got != shapes:
        wrong = sorted(set(got) ^ set(shapes)) or sorted(k for k in shapes if got[k] != shapes[k])
        raise EmbcliError(f"the checkpoint's weights do not match the run's config.json ({', '.join(wrong[:3])}"
                          f"{', ...' if len(wrong) > 3 else ''})")

    def vector(name: str, size: int) -> np.ndarray:
        return weights[name] if name in weights else np.zeros(size, dtype=np.float32)

    out = {"transformer.wte.weight": weights["wte.weight"], "transformer.wpe.weight": weights["wpe.weight"],
           "transformer.ln_f.weight": weights["ln_f.weight"], "transformer.ln_f.bias": vector("ln_f.bias", C)}
    for i in range(L):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            out[f"{theirs}{ln}.weight"] = weights[f"{ours}{ln}.weight"]
            out[f"{theirs}{ln}.bias"] = vector(f"{ours}{ln}.bias", C)
        for name, (n_out, _) in linear.items():
            out[f"{theirs}{name}.weight"] = np.ascontiguousarray(weights[f"{ours}{name}.weight"].T)  # Conv1D: (in, out)
            out[f"{theirs}{name}.bias"] = vector(f"{ours}{name}.bias", n_out)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def _read_checkpoint_model(run: Path, meta) -> tuple[dict[str, np.ndarray], int]:
    """The model weights of the run's checkpoint and the step they are from."""
    from safetensors import SafetensorError, safe_open

    from .runs import CHECKPOINT, CHECKPOINT_MODEL, checkpoint_dir

    try:
        folder = checkpoint_dir(run)
    except EmbcliError:
        origin = (f"it holds only the table imported from {meta.source}" if meta.status == "imported"
                  else "it was never saved or was deleted")
        raise EmbcliError(f"{run} has no model checkpoint ({CHECKPOINT}/{CHECKPOINT_MODEL}): -f hf needs the "
                          f"whole model, which embcli saves while training; {origin} "
                          "(the table alone exports with -f word2vec, npy or safetensors)") from None
    try:
        with safe_open(str(folder / CHECKPOINT_MODEL), "np") as f:
            step = int((f.metadata() or {})["step"])
            weights = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, KeyError, ValueError, TypeError, SafetensorError) as exc:
        raise EmbcliError(f"cannot read {folder / CHECKPOINT_MODEL}: the checkpoint is damaged "
                          f"({type(exc).__name__})") from None
    return weights, step


def _facts_at(run: Path, meta, step: int) -> dict:
    """Tokens and losses at ``step`` (the checkpoint's), from the run's log (metrics.jsonl, or
    meta.json's history for older runs); the validation loss is the last measured by then."""
    from .runs import metrics_history

    history = metrics_history(run) or meta.history or {}
    train = [row for row in history.get("train", []) if row[0] == step]
    val = [row for row in history.get("val", []) if row[0] <= step]
    facts = {"tokens": train[-1][1] if train else None, "train_loss": train[-1][2] if train else None,
             "val_loss": val[-1][2] if val else None, "val_step": val[-1][0] if val else None}
    if meta.step == step and meta.tokens_seen is not None:
        facts["tokens"] = meta.tokens_seen
    return facts


def _model_card(run: Path, meta, cfg: dict, step: int, parameters: int, folder: str) -> str:
    facts = _facts_at(run, meta, step)
    corpus = (meta.corpus or {}).get("description", "unknown")
    kind = {"sampled": "sampled-softmax estimate", "fused": "full softmax", "plain": "full softmax"}.get(meta.loss, "")
    number = lambda x, fmt: "unknown" if x is None else format(x, fmt)  # noqa: E731
    val = number(facts["val_loss"], ".4f")
    if facts["val_loss"] is not None and facts.get("val_step") not in (None, step):
        val += f" (measured at step {facts['val_step']:,})"
    versions = meta.versions or {}
    lines = [
        "---", "library_name: transformers", "pipeline_tag: text-generation", "tags:", "- gpt2", "- embcli", "---", "",
        f"# {run.name}: a GPT-2-style model trained by embcli", "",
        "A GPT-2 (learned positions, pre-LayerNorm blocks, GELU, output layer tied to the token table) "
        "trained with embcli, which trains GPT-2-style token embeddings; exported with "
        "`embcli export -f hf` from the run's checkpoint.", "",
        "| | |", "|---|---|",
        f"| corpus | {corpus} |",
        f"| steps | {step:,}" + (f" (the run went on to step {meta.step:,}; its checkpoint is from step {step:,})"
                                   if meta.step and meta.step != step else "") + " |",
        f"| tokens seen | {number(facts['tokens'], ',')} |",
        f"| training loss | {number(facts['train_loss'], '.4f')}" + (f" ({kind})" if kind else "") + " |",
        f"| validation loss | {val} (full softmax over 50,257 tokens, held-out split) |",
        f"| model | {cfg['n_layer']} layer{'s' if cfg['n_layer'] != 1 else ''}, {cfg['n_head']} heads, width {cfg['n_embd']}, context {cfg['block_size']}, "
        f"{parameters:,} parameters ({cfg['vocab_size']:,} × {cfg['n_embd']} token table) |",
        f"| trained with | embcli {versions.get('embcli', '?')}, torch {versions.get('torch', '?')}, "
        f"on {meta.device or '?'} |",
        "",
        "The tokenizer is GPT-2's byte-level BPE (`vocab.json`, `merges.txt`), written from the ranks "
        "embcli ships, so ids are GPT-2's: \"The cat\" is [464, 3797].",
    ]
    if cfg.get("output_vocab") == "corpus":
        lines += ["", "Trained with `output_vocab = \"corpus\"`: the softmax covered only the ids the corpus has, so "
                  "the logits of the other ids were never trained."]
    lines += ["", "```python", "from transformers import AutoTokenizer, GPT2LMHeadModel", "",
              f"tokenizer = AutoTokenizer.from_pretrained({folder!r})",
              f"model = GPT2LMHeadModel.from_pretrained({folder!r})",
              'ids = tokenizer("The cat", return_tensors="pt").input_ids',
              "print(tokenizer.decode(model.generate(ids, max_new_tokens=20, do_sample=False, "
              "pad_token_id=tokenizer.eos_token_id)[0]))", "```", ""]
    return "\n".join(lines)


def _tokenizer_files(block_size: int) -> dict[str, bytes]:
    """GPT-2's tokenizer files, made offline from the shipped ranks: vocab.json (byte-level
    spelling → id) and merges.txt (the merges in rank order), as in the original GPT-2 release."""
    from .tokenizer import Vocab

    vocab = Vocab.load()
    encoder = {gpt2_key(vocab.bytes_of(i)): i for i in range(len(vocab))}
    merges = "#version: 0.2\n" + "".join(f"{gpt2_key(a)} {gpt2_key(b)}\n" for a, b in gpt2_merges())
    special = {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT}
    settings = dict(special, tokenizer_class="GPT2Tokenizer", model_max_length=block_size,
                    add_prefix_space=False, add_bos_token=False, errors="replace")
    as_json = lambda obj: (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()  # noqa: E731
    return {"vocab.json": json.dumps(encoder, ensure_ascii=False).encode(), "merges.txt": merges.encode(),
            "tokenizer_config.json": as_json(settings), "special_tokens_map.json": as_json(special)}


def _check_output_folder(out: Path, run: Path, force: bool) -> None:
    """-o must be a folder to create, an empty one, or (--force) one to replace whole."""
    if out.exists() and not out.is_dir():
        raise EmbcliError(f"{out} is a file; -f hf writes a folder (give a new folder name with -o)")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise EmbcliError(f"{out} exists and is not empty; give --force to replace it, or another -o")
        here, target = Path.cwd().resolve(), out.resolve()
        for precious, what in ((here, "the current folder"), (run.resolve(), "the run")):
            if precious == target or target in precious.parents:
                raise EmbcliError(f"will not replace {out}: it holds {what}")


def export_hf(run: Path, out: Path, *, step: int | None = None, force: bool = False) -> dict:
    """The run's model as a Hugging Face GPT-2 folder: config.json + model.safetensors that
    ``GPT2LMHeadModel.from_pretrained`` loads, GPT-2's tokenizer files and a model card (README.md).

    The weights are the checkpoint's: it is the only place the whole model is kept (snapshots
    hold the table alone, and a table from one step with blocks from another is no model). So
    ``step`` may only name the checkpoint's step. The folder is written under a temporary name
    beside ``out`` and renamed into place; an existing non-empty ``out`` is replaced only with
    ``force``.
    """
    from safetensors.numpy import save

    from .runs import RunMeta, read_config

    run, out = Path(run), Path(out)
    meta = RunMeta.read(run)
    weights, saved_step = _read_checkpoint_model(run, meta)
    if step is not None and step != saved_step:
        raise EmbcliError(f"-f hf exports the whole model, which {run} keeps only at its checkpoint (step "
                          f"{saved_step:,}); the snapshot at step {step:,} is the token table alone (export it with "
                          f"-f word2vec/npy/safetensors --step {step}); drop --step or give --step {saved_step}")
    cfg = read_config(run)
    if not cfg or not all(isinstance(cfg.get(k), int) for k in ("n_layer", "n_head", "n_embd", "block_size",
                                                                  "vocab_size")):
        raise EmbcliError(f"{run}/config.json is missing or damaged: the model's shape is unknown")
    _check_output_folder(out, run, force)
    from .runs import refuse_run_files

    refuse_run_files(out)  # a run's folder holds embcli's own files: never an export's
    tensors = hf_weights(weights, cfg)
    parameters = sum(v.size for v in weights.values())
    files = {HF_MODEL: save(tensors, metadata={"format": "pt"}),
             "config.json": (json.dumps(hf_config(cfg), indent=2) + "\n").encode(),
             "generation_config.json": (json.dumps({"bos_token_id": 50256, "eos_token_id": 50256}, indent=2)
                                        + "\n").encode(),
             **_tokenizer_files(cfg["block_size"]),
             "README.md": _model_card(run, meta, cfg, saved_step, parameters, out.name).encode()}
    _write_folder(out, files)
    return {"format": "hf", "rows": cfg["vocab_size"], "dim": cfg["n_embd"], "files": [str(out / name) for name in files],
            "step": saved_step, "parameters": parameters, "folder": str(out)}


def _write_folder(out: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` into a fresh folder beside ``out``, then rename it into place (replacing
    ``out`` whole if it exists): ``out`` is never seen half-written."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        make_dir_public(work)
    except OSError as exc:
        raise write_error(out.parent, exc) from None
    old = None
    try:
        for name, data in files.items():
            with open(work / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        fsync_dir(work)
        if out.exists():  # moved aside, not deleted, until the new folder is in place
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old)
        try:
            os.replace(work, out)
        except OSError:
            if old is not None:
                os.replace(old, out)
                old = None
            raise
        fsync_dir(out.parent)
    except OSError as exc:
        raise write_error(out, exc, "; nothing was left half-written") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# A Hugging Face GPT-2 in, as a run
# ---------------------------------------------------------------------------------------------

HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[\w.-]{1,96})?$")  # "gpt2", "openai-community/gpt2"


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Can the Hugging Face hub be reached at all (one TCP connection, no retries)?"""
    import socket
    from urllib.parse import urlsplit

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except (OSError, ValueError):
        return False
    return True


def _hub_cached(name: str) -> bool:
    """Is this hub model in the local Hugging Face cache (its config.json, at least)?"""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # noqa: BLE001 - an odd name is simply not cached
        return False


def _check_source(source: str) -> bool:
    """A local model folder (True), or a hub name worth asking the hub about (False); anything
    else is one line at once — never half a minute of the hub's retries for a mistyped folder."""
    local = Path(source).expanduser()
    if local.exists():
        if not local.is_dir():
            raise EmbcliError(f"{source} is not a folder: import-hf takes a GPT2LMHeadModel folder or a hub name")
        if not (local / "config.json").is_file():
            raise EmbcliError(f"{source} has no config.json: not a Hugging Face model folder")
        return True
    looks_local = (source.startswith((".", "/", "~")) or source.endswith("/") or source.count("/") > 1
                   or not HUB_NAME.match(source) or "--" in source or ".." in source)
    if looks_local:
        raise EmbcliError(f"no such folder: {source}")
    return False


def import_hf(name_or_path: str, run_name: str | None = None, runs_dir: Path | None = None) -> Path:
    """A Hugging Face GPT-2 checkpoint (GPT2LMHeadModel) → an embcli run whose table is its wte."""
    from .runs import META, RunMeta, model_info, new_run_dir, runs_folder, save_table, write_config

    source = str(name_or_path)
    local = _check_source(source)
    name = run_name or Path(source.rstrip("/")).name.replace("/", "-") or "hf"
    existing = runs_folder(runs_dir) / name
    if (existing / META).exists():  # before the model is loaded; and imports have no --resume
        raise EmbcliError(f"run {existing} exists already: pick another --name")
    if not local and not _hub_cached(source) and not _hub_reachable():
        raise EmbcliError(f"no such folder: {source} (nor a model of that name in the Hugging Face cache, "
                          "and the hub cannot be reached)")
    try:
        from transformers import GPT2LMHeadModel
    except ImportError:
        raise EmbcliError("import-hf needs transformers: pip install 'embcli[hf]'") from None
    from . import __version__

    try:
        model = GPT2LMHeadModel.from_pretrained(source)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmbcliError(f"cannot load a GPT-2 model from {name_or_path}: {first}") from None
    cfg = model.config
    table = model.transformer.wte.weight.detach().float().cpu().numpy()
    if table.shape[0] != 50257:
        raise EmbcliError(f"{name_or_path} has {table.shape[0]} token rows; embcli needs GPT-2's 50257")
    tied = model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    total = sum(p.numel() for p in model.parameters())
    run = new_run_dir(name, runs_dir)
    save_table(run, table)
    write_config(run, {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd,
                       "block_size": cfg.n_positions, "vocab_size": cfg.vocab_size})
    RunMeta(status="imported", source=str(name_or_path), counts_known=False,  # no training counts: queries use every row
            model=model_info(total, table.shape[0], table.shape[1], bool(tied)),
            versions={"embcli": __version__}).write(run)
    return run
