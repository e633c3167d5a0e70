"""The table, out to the tools people already use — and the real GPT-2 table, in.

Formats:
- ``word2vec`` / ``word2vec-bin``: what gensim's ``load_word2vec_format`` reads. Keys are GPT-2's
  own byte-level spelling (" cat" is ``Ġcat``, as in GPT-2's encoder.json), so keys never contain
  spaces or newlines and every token, even a partial UTF-8 byte, has a unique name.
- ``projector``: TensorBoard's embedding projector, ``vectors.tsv`` + ``metadata.tsv`` (token, id,
  count), tokens escaped (``\\t``, ``\\n``, ``\\r``, ``\\\\``) so tabs and newlines survive.
- ``npy``: the rows as float32 ``.npy`` (+ ``.ids.npy`` naming the rows when a subset is taken).
- ``safetensors``: ``embeddings`` and ``ids`` tensors.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import EmbcliError
from .io import atomic_path, save_npy_atomic, write_bytes_atomic

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


def export(space, fmt: str, out: Path, *, min_count: int = 1, top: int | None = None) -> dict:
    if fmt not in FORMATS:
        raise EmbcliError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
    out = Path(out)
    parent = out if fmt == "projector" else out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbcliError(f"cannot write to {parent}: {exc.strerror}") from None
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
            ids_path = out.with_name(out.name.removesuffix(".npy") + ".ids.npy")
            save_npy_atomic(ids_path, ids.astype(np.int64))
            files.append(ids_path)
    else:
        from safetensors.numpy import save

        data = save({"embeddings": rows, "ids": ids.astype(np.int64)},
                    metadata={"source": str(space.source), "tokenizer": "gpt2"})
        write_bytes_atomic(out, data)
        files.append(out)
    return {"format": fmt, "rows": len(ids), "dim": rows.shape[1], "files": [str(f) for f in files]}


def import_hf(name_or_path: str, run_name: str | None = None, runs_dir: Path | None = None) -> Path:
    """A Hugging Face GPT-2 checkpoint (GPT2LMHeadModel) → an embcli run whose table is its wte."""
    try:
        from transformers import GPT2LMHeadModel
    except ImportError:
        raise EmbcliError("import-hf needs transformers: pip install 'embcli[hf]'") from None
    from . import __version__
    from .runs import RunMeta, model_info, new_run_dir, save_table, write_config

    try:
        model = GPT2LMHeadModel.from_pretrained(name_or_path)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmbcliError(f"cannot load a GPT-2 model from {name_or_path}: {first}") from None
    cfg = model.config
    table = model.transformer.wte.weight.detach().float().cpu().numpy()
    if table.shape[0] != 50257:
        raise EmbcliError(f"{name_or_path} has {table.shape[0]} token rows; embcli needs GPT-2's 50257")
    tied = model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    total = sum(p.numel() for p in model.parameters())
    name = run_name or Path(str(name_or_path).rstrip("/")).name.replace("/", "-") or "hf"
    run = new_run_dir(name, runs_dir)
    save_table(run, table)
    write_config(run, {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd,
                       "block_size": cfg.n_positions, "vocab_size": cfg.vocab_size})
    RunMeta(status="imported", source=str(name_or_path), counts_known=False,  # no training counts: queries use every row
            model=model_info(total, table.shape[0], table.shape[1], bool(tied)),
            versions={"embcli": __version__}).write(run)
    return run
