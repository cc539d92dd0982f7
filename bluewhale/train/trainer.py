"""The training loop: binary cross-entropy on click logits, Adam for dense weights and SparseAdam for
embedding rows (only the rows a batch touched are updated)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from bluewhale.connector import Batch

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    train_time_s: float
    samples: int
    final_loss: float

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_time_s


def optimizers(model: nn.Module, lr: float) -> list[torch.optim.Optimizer]:
    """SparseAdam for parameters whose gradients are sparse (embeddings built with sparse=True), Adam else."""
    sparse = [p for m in model.modules() if getattr(m, "sparse", False) for p in m.parameters(recurse=False)]
    sparse_ids = {id(p) for p in sparse}
    dense = [p for p in model.parameters() if id(p) not in sparse_ids]
    chosen: list[torch.optim.Optimizer] = [torch.optim.Adam(dense, lr=lr)]
    if sparse:
        chosen.append(torch.optim.SparseAdam(sparse, lr=lr))
    return chosen


def fit(
    model: nn.Module, batches: Iterable[Batch], epochs: int, lr: float, progress: bool = True
) -> TrainResult:
    """Train `model` in place for `epochs` passes over `batches`."""
    opts = optimizers(model, lr)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    samples, recent = 0, []
    start = time.perf_counter()
    for epoch in range(epochs):
        bar = tqdm(
            batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", disable=None if progress else True
        )
        for dense, sparse, label in bar:
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(dense, sparse), label)
            loss.backward()
            for opt in opts:
                opt.step()
            samples += len(label)
            recent.append(loss.item())
            if len(recent) % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(recent[-50:]):.4f}")
    elapsed = time.perf_counter() - start
    final_loss = float(np.mean(recent[-50:])) if recent else float("nan")
    if not np.isfinite(final_loss):
        raise FloatingPointError(f"training diverged: loss is {final_loss}; lower train.lr (now {lr})")
    log.info("trained on %d samples in %.1f s (%.0f samples/s)", samples, elapsed, samples / elapsed)
    return TrainResult(train_time_s=elapsed, samples=samples, final_loss=final_loss)


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[Batch]) -> tuple[np.ndarray, np.ndarray]:
    """Click probabilities and labels for every row of `batches`, in order."""
    model.eval()
    scores, labels = [], []
    for dense, sparse, label in batches:
        scores.append(torch.sigmoid(model(dense, sparse)))
        labels.append(label)
    return torch.cat(scores).numpy(), torch.cat(labels).numpy()
