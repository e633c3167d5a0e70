"""The one query that runs the trained model: its scores for the token after a prompt.

The model's output layer is tied to its token table: after reading a prompt, the last position's
final hidden state h (after the last LayerNorm, ``GPT.hidden``) is scored against every row of
the table, and token t's logit is exactly h · row(t) — there is no separate output matrix and no
bias. The rows that ``neighbors`` compares are the very vectors the model scores its next word
with. ``queries.predict`` turns these scores into the answer (probabilities, the top tokens) and,
with ``explain``, recomputes each top logit as h · row with the row read from ``embeddings.npy``.

This module imports torch (inside :func:`next_token_scores`, so importing it costs nothing); it
is the only query that does, and every other query verb keeps its fast cold start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class ModelScores:
    """What the model says after a prompt, as plain numpy arrays."""

    step: int | None  # the step the checkpoint's weights were saved at
    logits: np.ndarray  # (vocab,) float32: the model's own output at the last position
    hidden: np.ndarray | None = None  # (dim,) h, the last position's final hidden state (with_hidden)
    output_layer: np.ndarray | None = None  # (vocab, dim) the matrix the logits were scored with: the table


def next_token_scores(run_dir: Path, ids: list[int], *, with_hidden: bool = False) -> ModelScores:
    """Run the run's model on ``ids`` (at most its context long) and return the last position's logits.

    ``with_hidden`` also returns h and the model's output matrix, computed apart from the logits
    (``GPT.hidden``), so that logit = h · row can be checked rather than assumed.
    """
    import torch

    from .train import load_model

    model, step = load_model(run_dir)
    idx = torch.tensor([ids], dtype=torch.long)
    with torch.inference_mode():
        scores = ModelScores(step, model(idx)[0, -1].float().numpy())
        if with_hidden:
            scores.hidden = model.hidden(idx)[0, -1].float().numpy()
            scores.output_layer = model.wte.weight.detach().float().numpy()  # tied: the output layer is wte
    return scores


__all__ = ["ModelScores", "next_token_scores"]
