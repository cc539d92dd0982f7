"""Training checkpoints, so a stopped job resumes where it was instead of starting over.

A job checkpoints every `train.checkpoint_every` optimiser steps and when a stop signal ends training, to
`train.checkpoint_dir` (default: `checkpoints/` in the job's Hydra output folder, so a requeued Slurm job
or a rerun into the same folder finds it). A checkpoint holds the `TrainState` (weights, optimiser and
schedule states, position in the epoch, best epoch so far), the torch RNG state and the config it was
made with; it is written to a temporary file and renamed, so a kill mid-write leaves the previous one.
`run.json` beside it names the MLflow run, which a resumed job continues (one run per job).

`train.resume`: `auto` (the default) resumes from the folder's checkpoint when there is one; a path (a
checkpoint file or its folder) resumes from it; `false` starts afresh. A resumed job replays the same
data order (the connector shuffles by (seed, epoch) and the loop skips the batches already done), so it
ends with the metrics of an uninterrupted run of the same seed. A checkpoint made with another config
(a different model, data or training setting) is refused, naming the keys that differ. The checkpoint is
deleted once training completes: it exists only for unfinished work.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from bluewhale.train.callbacks import Callback, TrainState

log = logging.getLogger(__name__)
CHECKPOINT, RUN_FILE = "checkpoint.pt", "run.json"
# the sections whose settings make a different training; within `train`, keys that do not
SECTIONS = ("dataset", "recdp", "connector", "model", "train", "evaluate")
NEUTRAL = {
    "resume",
    "checkpoint_every",
    "checkpoint_dir",
    "progress",
    "collective_timeout_s",
    "eval_batch_size",
}


@dataclass(frozen=True)
class Plan:
    folder: Path | None  # where this job writes checkpoints (None: it does not)
    resume: Path | None  # the checkpoint it resumes from
    run_id: str | None  # the MLflow run it continues


def job_folder(cfg: DictConfig) -> Path | None:
    """`train.checkpoint_dir`, else `checkpoints/` in the Hydra job's output folder, else None."""
    if cfg.train.get("checkpoint_dir"):
        return Path(cfg.train.checkpoint_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        output = OmegaConf.select(
            HydraConfig.get(), "runtime.output_dir", default=None, throw_on_missing=False
        )
        if output:
            return Path(output) / "checkpoints"
    return None


def plan(cfg: DictConfig) -> Plan:
    """Where to checkpoint and what to resume from, per `train.resume` (see the module's doc)."""
    folder = job_folder(cfg)
    resume = cfg.train.get("resume", "auto")
    if resume in (None, False, "false", "never", ""):
        return Plan(folder, None, None)
    if resume == "auto":
        path = folder / CHECKPOINT if folder is not None else None
        if path is None or not path.is_file():
            return Plan(folder, None, None)
    else:
        path = Path(str(resume))
        path = path / CHECKPOINT if path.is_dir() else path
        if not path.is_file():
            raise ValueError(
                f"train.resume={resume}: no checkpoint at {path} (expected a {CHECKPOINT} or its folder)"
            )
        folder = folder or path.parent
    run_file = path.parent / RUN_FILE
    run_id = json.loads(run_file.read_text())["run_id"] if run_file.is_file() else None
    return Plan(folder, path, run_id)


def record_run(folder: Path, run_id: str) -> None:
    """Name the MLflow run beside the checkpoints, so a resumed job continues it."""
    _write(folder / RUN_FILE, lambda tmp: Path(tmp).write_text(json.dumps({"run_id": run_id})))


def _write(target: Path, write: Any) -> None:
    """Write `target` through a temporary file in its folder and an atomic rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def training_config(cfg: DictConfig) -> dict[str, Any]:
    """The flattened settings a checkpoint must share with the job that resumes it."""
    from bluewhale.tracking import flatten

    tree = {s: OmegaConf.to_container(cfg[s], resolve=True) for s in SECTIONS if s in cfg}
    return {k: v for k, v in flatten(tree).items() if not (k.startswith("train.") and k[6:] in NEUTRAL)}


class Checkpoint(Callback):
    """Restores a checkpoint at fit start; writes one every `every` steps and when training is stopped;
    deletes it when training completes. Only the `writer` (rank 0) writes; every rank restores."""

    def __init__(
        self,
        folder: Path | None,
        every: int,
        config: dict[str, Any],
        resume: Path | None = None,
        loader: Any = None,
        writer: bool = True,
    ) -> None:
        if every < 0:
            raise ValueError(f"train.checkpoint_every: expected steps >= 0 (0: only on a stop), got {every}")
        self.folder, self.every, self.config = folder, every, config
        self.resume, self.loader, self.writer = resume, loader, writer
        self.saved_at: int | None = None

    @property
    def path(self) -> Path | None:
        return self.folder / CHECKPOINT if self.folder is not None else None

    def on_fit_start(self, state: TrainState) -> None:
        if self.resume is None:
            return
        saved = torch.load(self.resume, weights_only=False)
        differ = sorted(
            k for k in set(saved["config"]) | set(self.config) if saved["config"].get(k) != self.config.get(k)
        )
        if differ:
            shown = ", ".join(
                f"{k}: {saved['config'].get(k)!r} -> {self.config.get(k)!r}" for k in differ[:5]
            )
            raise ValueError(
                f"train.resume: the checkpoint {self.resume} was made with another config ({shown}); "
                "resume with the same settings, or set train.resume=false to start afresh"
            )
        state.load_state_dict(saved["state"])
        torch.set_rng_state(saved["rng"])
        if self.loader is not None:  # the epoch's shuffle: the same order as the interrupted pass
            self.loader.epoch = state.epoch - 1
        log.info(
            "resumed from %s: epoch %d, batch %d, step %d", self.resume, state.epoch, state.batch, state.step
        )

    def on_step_end(self, state: TrainState, loss: float, batch_size: int) -> None:
        if state.stop or (self.every and state.step % self.every == 0):
            self.save(state)

    def save(self, state: TrainState) -> None:
        if not self.writer or self.path is None or self.saved_at == state.step:
            return
        saved = {"state": state.state_dict(), "rng": torch.get_rng_state(), "config": self.config}
        _write(self.path, lambda tmp: torch.save(saved, tmp))
        self.saved_at = state.step
        log.info("checkpoint at step %d: %s", state.step, self.path)

    def on_fit_end(self, state: TrainState, result: Any) -> None:
        if self.writer and not result.stopped and self.path is not None and self.path.exists():
            self.path.unlink()  # training is complete: nothing left to resume


class ResumableJob:
    """`bluewhale <overrides>` as a submitit job that Slurm can time out or preempt and requeue: submitit
    calls `checkpoint()` on its signal (after bluewhale has written its checkpoint, see signals.py) and
    resubmits the job it returns, which resumes from `checkpoint_dir`. (Through Hydra's submitit launcher
    this is built in: its requeued job reruns in the same output folder, where `train.resume=auto` finds
    the checkpoint.)"""

    def __init__(self, overrides: list[str], checkpoint_dir: str | Path) -> None:
        self.overrides = [
            o for o in overrides if not o.startswith(("train.checkpoint_dir=", "train.resume="))
        ]
        self.checkpoint_dir = str(checkpoint_dir)

    def __call__(self) -> dict[str, float]:
        from bluewhale.app import compose_experiment
        from bluewhale.pipeline import run

        more = [f"train.checkpoint_dir={self.checkpoint_dir}", "train.resume=auto"]
        return run(compose_experiment([*self.overrides, *more]))

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(ResumableJob(self.overrides, self.checkpoint_dir))
