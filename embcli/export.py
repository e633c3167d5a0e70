"""The table, out to the tools people already use — and the real GPT-2 table, in.

Formats:
- ``word2vec`` / ``word2vec-bin``: what gensim's ``load_word2vec_format`` reads. Keys are GPT-2's
  own byte-level spelling (" cat" is ``Ġcat``, as in GPT-2's encoder.json), so keys never contain
  spaces or newlines and every token, even a partial UTF-8 byte, has a unique name.
- ``projector``: TensorBoard's embedding projector, ``vectors.tsv`` + ``metadata.tsv`` (token, id,
  count), tokens escaped (``\\t``, ``\\n``, ``\\r``, ``\\\\``) so tabs and newlines survive.
- ``npy``: the rows as float32 ``.npy`` (+ ``.ids.npy`` naming the rows when a subset is taken).
- ``safetensors``: ``embeddings`` and ``ids`` tensors.

Exports never write into a run folder (any run's: its files are embcli's own) and replace only
regular files: a symlink is followed, a device, FIFO or socket is refused (``io.regular_target``).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import EmbcliError
from .io import atomic_path, regular_target, save_npy_atomic, write_bytes_atomic, write_error

FORMATS = ("word2vec", "word2vec-bin", "projector", "npy", "safetensors")


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
    table = byte_to_unicode()
    return "".join(table[b] for b in raw)


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
        targets = [out, out / "vectors.tsv", out / "metadata.tsv"]
    else:
        targets = [out, ids_path(out)] if fmt == "npy" else [out]
    for target in targets:
        refuse_run_files(target)
        if target != out or fmt != "projector":
            regular_target(target)


def export(space, fmt: str, out: Path, *, min_count: int = 1, top: int | None = None) -> dict:
    if fmt not in FORMATS:
        raise EmbcliError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
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
    vocab = space.vocab
    files = []
    if fmt in ("word2vec", "word2vec-bin"):
        header = f"{len(ids)} {rows.shape[1]}\n".encode()
        keys = [gpt2_key(vocab.bytes_of(int(i))) for i in ids]
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            fh.write(header)
            for key, row in zip(keys, rows):
                if fmt == "word2vec":
                    fh.write((key + " " + " ".join(f"{x:.6g}" for x in row) + "\n").encode())
                else:
                    fh.write(key.encode() + b" " + row.astype("<f4").tobytes() + b"\n")
        files.append(out)
    elif fmt == "projector":
        vec_lines = "".join("\t".join(f"{x:.6g}" for x in row) + "\n" for row in rows)
        write_bytes_atomic(out / "vectors.tsv", vec_lines.encode())
        meta = ["token\tid\tcount"]
        for i in ids:
            raw = vocab.bytes_of(int(i))
            text = raw.decode("utf-8", errors="backslashreplace")
            count = "" if space.counts is None else str(int(space.counts[i]))
            meta.append(f"{escape_tsv(text)}\t{int(i)}\t{count}")
        write_bytes_atomic(out / "metadata.tsv", ("\n".join(meta) + "\n").encode())
        files += [out / "vectors.tsv", out / "metadata.tsv"]
    elif fmt == "npy":
        save_npy_atomic(out, rows)
        files.append(out)
        if len(ids) != len(space.vectors) or not np.array_equal(ids, np.arange(len(ids))):
            save_npy_atomic(ids_path(out), ids.astype(np.int64))
            files.append(ids_path(out))
    else:
        from safetensors.numpy import save

        data = save({"embeddings": rows, "ids": ids.astype(np.int64)},
                    metadata={"source": str(space.source), "tokenizer": "gpt2"})
        write_bytes_atomic(out, data)
        files.append(out)
    return {"format": fmt, "rows": len(ids), "dim": rows.shape[1], "files": [str(f) for f in files]}


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
