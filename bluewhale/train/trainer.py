"""The training loop, for any model whose `forward(batch)` returns logits shaped like `batch["label"]`.

Loss: binary cross entropy on the logits, averaged over the batch and summed over tasks; a model with
its own objective (DIEN's auxiliary loss) defines `training_loss(batch)`. Optimizers: a model may define
`optimizers(lr)` (Wide & Deep: a sparse one for the wide part); else Adam for dense weights and
SparseAdam for embedding rows (only the rows a batch touched are updated). The learning rate warms up
linearly over `warmup_steps` and then stays or follows a cosine to zero over all epochs. With a
`validate` function (the valid split's metric, higher is better) training stops after `patience` epochs
without improvement and the best epoch's weights are kept.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from bluewhale.connector import Batch

log = logging.getLogger(__name__)
SCHEDULES = ("constant", "cosine")


@dataclass
class TrainResult:
    train_time_s: float  # optimisation only: validation passes are not counted
    samples: int
    final_loss: float
    epochs: int  # epochs run
    best_epoch: int | None = None  # 1-based; None without validation
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: train_loss, valid

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_time_s


def optimizers(model: nn.Module, lr: float) -> list[torch.optim.Optimizer]:
    """The model's own choice, else SparseAdam for parameters whose gradients are sparse (embeddings built
    with sparse=True) and Adam for the rest."""
    if hasattr(model, "optimizers"):
        return model.optimizers(lr)
    sparse = [p for m in model.modules() if getattr(m, "sparse", False) for p in m.parameters(recurse=False)]
    sparse_ids = {id(p) for p in sparse}
    dense = [p for p in model.parameters() if id(p) not in sparse_ids]
    chosen: list[torch.optim.Optimizer] = [torch.optim.Adam(dense, lr=lr)]
    if sparse:
        chosen.append(torch.optim.SparseAdam(sparse, lr=lr))
    return chosen


def bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross entropy, mean over the batch, summed over tasks (one task: the plain mean)."""
    per_row = nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return per_row.mean(0).sum()


def training_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    if hasattr(model, "training_loss"):
        return model.training_loss(batch)
    return bce(model(batch), batch["label"])


def lr_factor(step: int, total: int, warmup_steps: int, schedule: str) -> float:
    """The learning rate at `step` (0-based) of `total`, as a fraction of the configured one."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    return warm


def fit(
    model: nn.Module,
    batches: Iterable[Batch],
    epochs: int,
    lr: float,
    *,
    validate: Callable[[], float] | None = None,
    patience: int = 2,
    warmup_steps: int = 0,
    schedule: str = "constant",
    progress: bool = True,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train `model` in place for up to `epochs` passes over `batches` (iterable again each epoch)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"train.schedule: expected one of {SCHEDULES}, got {schedule!r}")
    if schedule == "cosine" and not isinstance(batches, Sized):
        raise ValueError("train.schedule=cosine needs batches that know their length")
    opts = optimizers(model, lr)
    total = epochs * len(batches) if isinstance(batches, Sized) else 0
    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(s, total, warmup_steps, schedule))
        for o in opts
    ]
    samples, recent, elapsed = 0, [], 0.0
    best, best_epoch, best_state, history = -math.inf, None, None, []
    for epoch in range(1, epochs + 1):
        model.train()
        start, epoch_losses = time.perf_counter(), []
        bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", unit="batch", disable=None if progress else True)
        for batch in bar:
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            loss = training_loss(model, batch)
            loss.backward()
            for opt, sched in zip(opts, schedulers, strict=True):
                opt.step()
                sched.step()
            samples += len(batch["label"])
            epoch_losses.append(loss.item())
            if len(epoch_losses) % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(epoch_losses[-50:]):.4f}")
        elapsed += time.perf_counter() - start
        recent = epoch_losses[-50:] or recent
        record = {"train_loss": float(np.mean(epoch_losses)) if epoch_losses else float("nan")}
        if not np.isfinite(record["train_loss"]):
            raise FloatingPointError(
                f"training diverged: loss is {record['train_loss']}; lower train.lr (now {lr})"
            )
        if validate is not None:
            record["valid"] = value = validate()
            if value > best:
                best, best_epoch = value, epoch
                best_state = copy.deepcopy(model.state_dict())
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record)
        log.info("epoch %d: %s", epoch, {k: round(v, 5) for k, v in record.items()})
        if best_epoch is not None and epoch - best_epoch >= patience:
            log.info(
                "early stop: no better valid metric for %d epochs (best: epoch %d)", patience, best_epoch
            )
            break
    if best_state is not None and best_epoch != len(history):
        model.load_state_dict(best_state)  # the best epoch's weights, not the last one's
    final_loss = float(np.mean(recent)) if recent else float("nan")
    log.info(
        "trained on %d samples in %.1f s (%.0f samples/s)", samples, elapsed, samples / max(elapsed, 1e-9)
    )
    return TrainResult(elapsed, samples, final_loss, len(history), best_epoch, history)


@torch.no_grad()
def predict(model: nn.Module, batches) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels for every row of `batches`, in order: [n] for one task, [n, T] for T."""
    model.eval()
    scores, labels = [], []
    for batch in batches:
        scores.append(torch.sigmoid(model(batch)))
        labels.append(batch["label"])
    return torch.cat(scores).numpy(), torch.cat(labels).numpy()
