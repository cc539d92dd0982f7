"""The training loop, for any model whose `forward(batch)` returns logits shaped like `batch["label"]`.

Loss: binary cross entropy on the logits, averaged over the batch and summed over tasks; a model with
its own objective (DIEN's auxiliary loss) defines `training_loss(batch)`. Optimizers: a model may define
`optimizers(lr)` (Wide & Deep: a sparse one for the wide part); else Adam for dense weights and
SparseAdam for embedding rows (only the rows a batch touched are updated; see optim.py). The learning rate warms up
linearly over `warmup_steps` and then stays or follows a cosine to zero over all epochs. With a
`validate` function (the valid split's metric, higher is better) training stops after `patience` epochs
without improvement and the best epoch's weights are kept. What rides along with training (learning
curves, checkpoints, gradient exchange between ranks) is a `Callback` (callbacks.py).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from bluewhale.connector import Batch
from bluewhale.train.callbacks import Callback, TrainState
from bluewhale.train.optim import optimizers

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
    stopped: bool = False  # a callback stopped training early (a signal): the model is mid-training

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_time_s


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
    callbacks: Sequence[Callback] = (),
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
    state = TrainState(model, opts, schedulers, epochs)
    for callback in callbacks:
        callback.on_fit_start(state)
    recent: list[float] = []
    while state.epoch <= epochs and not state.stop:
        epoch = state.epoch
        model.train()
        start, epoch_losses = time.perf_counter(), []
        bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", unit="batch", disable=None if progress else True)
        done_before = state.batch  # a resumed run skips the batches its checkpoint had trained on
        for i, batch in enumerate(bar):
            if i < done_before:
                continue
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            loss = training_loss(model, batch)
            loss.backward()
            for callback in callbacks:
                callback.on_after_backward(state)
            for opt, sched in zip(opts, schedulers, strict=True):
                opt.step()
                sched.step()
            value, size = loss.item(), len(batch["label"])
            state.samples += size
            state.step += 1
            state.batch += 1
            epoch_losses.append(value)
            for callback in callbacks:
                callback.on_step_end(state, value, size)
            if len(epoch_losses) % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(epoch_losses[-50:]):.4f}")
            if state.stop:
                break
        state.elapsed_s += time.perf_counter() - start
        recent = epoch_losses[-50:] or recent
        if state.stop:  # stopped mid-epoch (a signal): no validation, the position stays for a resume
            break
        record = {"train_loss": float(np.mean(epoch_losses)) if epoch_losses else float("nan")}
        if not np.isfinite(record["train_loss"]):
            raise FloatingPointError(
                f"training diverged: loss is {record['train_loss']}; lower train.lr (now {lr})"
            )
        if validate is not None:
            record["valid"] = value = validate()
            if value > state.best:
                state.best, state.best_epoch = value, epoch
                state.best_state = copy.deepcopy(model.state_dict())
        state.history.append(record)
        state.epoch, state.batch = epoch + 1, 0
        for callback in callbacks:
            callback.on_epoch_end(state, record)
        log.info("epoch %d: %s", epoch, {k: round(v, 5) for k, v in record.items()})
        if state.best_epoch is not None and epoch - state.best_epoch >= patience:
            log.info(
                "early stop: no better valid metric for %d epochs (best: epoch %d)",
                patience,
                state.best_epoch,
            )
            break
    if state.best_state is not None and state.best_epoch != len(state.history):
        model.load_state_dict(state.best_state)  # the best epoch's weights, not the last one's
    final_loss = float(np.mean(recent)) if recent else float("nan")
    log.info(
        "trained on %d samples in %.1f s (%.0f samples/s)",
        state.samples,
        state.elapsed_s,
        state.samples / max(state.elapsed_s, 1e-9),
    )
    result = TrainResult(
        state.elapsed_s,
        state.samples,
        final_loss,
        len(state.history),
        state.best_epoch,
        state.history,
        stopped=state.stop,
    )
    for callback in callbacks:
        callback.on_fit_end(state, result)
    return result


@torch.no_grad()
def predict(model: nn.Module, batches) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels for every row of `batches`, in order: [n] for one task, [n, T] for T."""
    model.eval()
    scores, labels = [], []
    for batch in batches:
        scores.append(torch.sigmoid(model(batch)))
        labels.append(batch["label"])
    return torch.cat(scores).numpy(), torch.cat(labels).numpy()
