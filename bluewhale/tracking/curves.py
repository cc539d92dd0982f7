"""Learning curves in MLflow, logged while training runs: the training loss every N optimiser steps and
the throughput over that stretch (metric histories with the step), and per epoch the train loss and the
valid split's monitored metric (with the epoch as step), so the run's charts and the compare view draw
curves, not single points."""

from __future__ import annotations

import time

import mlflow

from bluewhale.train.callbacks import Callback, TrainState


class LearningCurves(Callback):
    """`step_train_loss` (the mean over the last `every_n_steps` steps) and `throughput_samples_per_s`
    every `every_n_steps` steps (0: never); `epoch_train_loss` and `epoch_valid_<monitor>` every epoch."""

    def __init__(self, monitor: str, higher_is_better: bool, every_n_steps: int = 50) -> None:
        if every_n_steps < 0:
            raise ValueError(f"tracking.log_every_n_steps: expected 0 (off) or more, got {every_n_steps}")
        self.monitor, self.sign, self.every = monitor, 1 if higher_is_better else -1, every_n_steps
        self._losses: list[float] = []
        self._samples, self._since = 0, 0.0

    def on_fit_start(self, state: TrainState) -> None:
        self._losses, self._samples, self._since = [], 0, time.perf_counter()

    def on_step_end(self, state: TrainState, loss: float, batch_size: int) -> None:
        if not self.every:
            return
        self._losses.append(loss)
        self._samples += batch_size
        if state.step % self.every == 0:
            now = time.perf_counter()
            metrics = {"step_train_loss": sum(self._losses) / len(self._losses)}
            if now > self._since:
                metrics["throughput_samples_per_s"] = self._samples / (now - self._since)
            mlflow.log_metrics(metrics, step=state.step)
            self._losses, self._samples, self._since = [], 0, now

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        epoch = len(state.history)
        metrics = {"epoch_train_loss": record["train_loss"]}
        if "valid" in record:
            metrics[f"epoch_valid_{self.monitor}"] = self.sign * record["valid"]
        mlflow.log_metrics(metrics, step=epoch)
        self._samples, self._since = 0, time.perf_counter()  # validation time is not training throughput
