"""``embcli predict``: the trained model's next-token distribution, and why each score is h · row.

The model's output layer is tied to its token table: after reading a prompt, the last position's
final hidden state h (after the last LayerNorm) is scored against every row of the table, and
token t's logit is exactly h · row(t) — there is no separate output matrix and no bias. The rows
that ``neighbors`` compares are the very vectors the model scores its next word with.
:func:`predict` shows that on a run's own files: it runs the model from the run's checkpoint,
then recomputes each top logit as a dot product with the row read from ``embeddings.npy``.

This is the one query that needs torch (to run the transformer blocks); it is imported here only,
so every other query verb keeps its fast cold start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint import CONFIG, TABLE, checkpoint_dir, find_run, read_meta
from .errors import EmbcliError


@dataclass
class Candidate:
    """One possible next token: its probability under the model, and the score behind it."""

    rank: int
    id: int
    token: str
    probability: float
    logit: float  # the model's own output for this token
    count: int | None  # how often training saw it
    dot: float | None = None  # h · row(id), the row read from embeddings.npy (explain only)
    row_norm: float | None = None  # |row(id)|
    cosine: float | None = None  # cos(h, row): logit = |h| · |row| · cosine


@dataclass
class Prediction:
    """What the model expects after a prompt (the result of :func:`predict`)."""

    text: str
    run: str
    step: int | None
    ids: list[int]  # the tokens the model read (the prompt's end when it is longer than the context)
    pieces: list[str]
    dropped: int  # tokens cut from the front of a prompt longer than the context
    context: int  # the model's context length (block_size)
    unseen: list[int]  # prompt tokens training never saw: their rows are still near their random start
    candidates: list[Candidate]
    explained: bool = False
    hidden_norm: float | None = None  # |h|, the last position's final hidden state
    max_difference: float | None = None  # largest |logit − h · row| over the candidates
    table_matches: bool | None = None  # is the checkpoint's table exactly embeddings.npy?
    table: str = ""  # the embeddings.npy the dot products read
    vocab_size: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def load_model(run_dir: Path):
    """The run's GPT, from ``checkpoint/model.safetensors`` and ``config.json``, in eval mode on CPU.

    Returns ``(model, step)``. A run without a model (an ``import-hf`` table, a run whose
    ``checkpoint/`` was removed) is one clear error.
    """
    meta = read_meta(run_dir)
    if meta.get("status") == "imported":
        raise EmbcliError(f"{run_dir} holds only a table (imported from {meta.get('source', 'elsewhere')}), "
                          "no model to predict with; predict needs a run trained by embcli")
    try:
        folder = checkpoint_dir(run_dir)
    except EmbcliError:
        raise EmbcliError(f"{run_dir} has no model to predict with: its checkpoint/ folder is missing "
                          "(the table alone answers the other queries)") from None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .model import GPT, GPTConfig

    try:
        shape = json.loads((run_dir / CONFIG).read_text())
        config = GPTConfig(**{k: shape[k] for k in GPTConfig.__dataclass_fields__ if k in shape})
        state = json.loads((folder / "state.json").read_text())
        model = GPT(config)
        model.load_state_dict(load_file(str(folder / "model.safetensors"), device="cpu"))
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError, json.JSONDecodeError) as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise EmbcliError(f"cannot load the model of {run_dir}: its checkpoint is damaged "
                          f"({type(exc).__name__}: {detail})") from None
    model.eval()
    return model, state.get("step")


def encode_prompt(text: str) -> list[int]:
    """The prompt as GPT-2 ids; empty prompts and text that is not UTF-8 are refused."""
    if not text:
        raise EmbcliError("nothing to predict from: give some text, e.g. embcli predict \"The cat sat on the\"")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes on the command line arrive as lone surrogates
        raise EmbcliError("the prompt is not valid UTF-8 text") from None
    from .tokenizer import encode

    return encode(text)


def predict(text: str, run: str | Path | None = None, *, top: int = 10, explain: bool = False,
            root: Path | None = None) -> Prediction:
    """The next-token distribution after ``text``: the ``top`` most likely tokens.

    ``explain`` adds, for each of them, h · row with the row read from the run's
    ``embeddings.npy`` (the table every query uses), its norm and its cosine with h.
    """
    import torch

    from .space import EmbeddingSpace

    if top < 1:
        raise EmbcliError(f"-k must be at least 1 (got {top})")
    ids = encode_prompt(text)
    run_dir = find_run(str(run) if run is not None else None, root)
    space = EmbeddingSpace.from_run(run_dir, min_count=0)
    model, step = load_model(run_dir)
    context = model.config.block_size
    dropped = max(0, len(ids) - context)
    used = ids[dropped:]
    unseen = [i for i in used if space.counts is not None and space.counts[i] == 0]
    if space.counts is not None and len(unseen) == len(used):
        shown = " ".join(space.vocab.show(i) for i in used[:8])
        raise EmbcliError(f"none of the prompt's {len(used)} tokens ({shown}) occurred in training: "
                          "their rows are untrained noise, so the model has nothing to predict from")

    idx = torch.tensor([used], dtype=torch.long)
    with torch.inference_mode():
        logits = model(idx)
    if isinstance(logits, tuple):  # (logits, loss), as nanoGPT returns them
        logits = logits[0]
    logits = logits[0, -1].float().numpy()
    log_z = np.logaddexp.reduce(logits.astype(np.float64))
    probs = np.exp(logits.astype(np.float64) - log_z)
    k = min(top, len(probs))
    part = np.argpartition(-probs, k - 1)[:k]
    best = part[np.lexsort((part, -probs[part]))]
    candidates = [Candidate(r + 1, int(i), space.vocab.show(int(i)), float(probs[i]), float(logits[i]),
                            space.count(int(i))) for r, i in enumerate(best)]
    result = Prediction(text=text, run=str(run_dir), step=step, ids=used, pieces=[space.vocab.show(i) for i in used],
                        dropped=dropped, context=context, unseen=unseen, candidates=candidates,
                        table=str(run_dir / TABLE), vocab_size=len(probs))
    if dropped:
        result.notes.append(f"the prompt is {len(ids)} tokens and the model reads {context}: its last {context} "
                            f"were used, {dropped} cut from the front")
    if unseen:
        result.notes.append(f"{len(unseen)} of the prompt's tokens never occurred in training, so their rows are "
                            "still near their random start: " + " ".join(space.vocab.show(i) for i in unseen[:8]))
    meta_step = read_meta(run_dir).get("step")
    if step is not None and meta_step is not None and step != meta_step:
        result.notes.append(f"the model's checkpoint is from step {step}, the run's table from step {meta_step}")
    if explain:
        _explain(result, model, idx, space)
    return result


def _explain(result: Prediction, model, idx, space) -> None:
    """Recompute each candidate's logit as h · row, with the row from embeddings.npy."""
    import torch

    with torch.inference_mode():
        h = model.hidden(idx)[0, -1].float().numpy()  # the last position's final hidden state
        weight = model.output_weight.detach().float().numpy()
    table = space.vectors  # embeddings.npy, memory-mapped: the same table the query verbs read
    result.table_matches = weight.shape == table.shape and bool(np.array_equal(weight, table))
    result.explained = True
    result.hidden_norm = float(np.linalg.norm(h))
    diffs = []
    for c in result.candidates:
        row = np.asarray(table[c.id], dtype=np.float32)
        c.dot = float(np.dot(h, row))
        c.row_norm = float(np.linalg.norm(row))
        denominator = result.hidden_norm * c.row_norm
        c.cosine = c.dot / denominator if denominator > 0 else 0.0
        diffs.append(abs(c.dot - c.logit))
    result.max_difference = float(max(diffs)) if diffs else 0.0
    if not result.table_matches:
        result.notes.append(f"the checkpoint's output layer is not exactly {Path(result.table).name} "
                            "(saved at different steps?): the dot products below read the file")


__all__ = ["Candidate", "Prediction", "encode_prompt", "load_model", "predict"]
