"""Hooks into the training loop, so that what rides along with training (learning curves in MLflow,
checkpoints, gradient exchange between ranks, pruning schedules) lives in its own module, not in `fit`.

A callback overrides the hooks it needs; each gets the loop's `TrainState`, which it may read and, where
a hook says so, change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from bluewhale.train.trainer import TrainResult


@dataclass
class TrainState:
    """Everything the loop knows; a checkpoint saves it and a resumed run restores it in `on_fit_start`."""

    model: nn.Module
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[torch.optim.lr_scheduler.LRScheduler]
    epochs: int
    epoch: int = 1  # 1-based, the epoch running (or to run next)
    batch: int = 0  # batches done in this epoch; on resume, the loop skips that many of the epoch's batches
    step: int = 0  # optimiser steps done over all epochs
    samples: int = 0
    elapsed_s: float = 0.0  # optimisation time so far, validation passes not counted
    best: float = -math.inf  # the best valid value so far (higher is better)
    best_epoch: int | None = None
    best_state: dict[str, Any] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False  # set by a callback to end training after the current step (e.g. on SIGTERM)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds: weights, optimiser and schedule states, and the loop's position."""
        return {
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "position": {k: getattr(self, k) for k in ("epoch", "batch", "step", "samples", "elapsed_s")},
            "best": {"best": self.best, "best_epoch": self.best_epoch, "best_state": self.best_state},
            "history": self.history,
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.model.load_state_dict(saved["model"])
        for opt, opt_state in zip(self.optimizers, saved["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        for sched, sched_state in zip(self.schedulers, saved["schedulers"], strict=True):
            sched.load_state_dict(sched_state)
        for key, value in {**saved["position"], **saved["best"]}.items():
            setattr(self, key, value)
        self.history = list(saved["history"])


class Callback:
    """Each hook does nothing unless overridden."""

    def on_fit_start(self, state: TrainState) -> None:
        """Before the first step; may restore `state` (a resumed run)."""

    def on_after_backward(self, state: TrainState) -> None:
        """Gradients are ready and the optimisers have not stepped (e.g. exchange them between ranks)."""

    def on_step_end(self, state: TrainState, loss: float, batch_size: int) -> None:
        """After an optimiser step; `state.step` and `state.batch` count it already."""

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        """After an epoch and its validation; `record` has train_loss and, with validation, valid."""

    def on_fit_end(self, state: TrainState, result: TrainResult) -> None:
        """After training, with the best epoch's weights in the model."""
