"""Stopped jobs and resumed work: a run stopped by SIGTERM (Slurm's time limit, preemption) or SIGINT (Ctrl-C)
is marked KILLED in MLflow and leaves a checkpoint; a run killed outright (SIGKILL) leaves its last periodic
one. Resuming (the same command in the same Hydra output folder, or `train.resume=<path>`) ends with exactly
the metrics of an uninterrupted run of the same seed, in the same MLflow run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from bluewhale.app import compose_experiment
from bluewhale.pipeline import run
from bluewhale.train import checkpoint
from bluewhale.train.signals import Stopped
from tests.conftest import BLUEWHALE

# a narrow DLRM, 2 epochs of about 50 steps, a checkpoint every 10 steps
SMALL = [
    "dataset.rows=4000",
    "train.batch_size=64",
    "train.epochs=2",
    "model.embedding_dim=8",
    "model.bottom_mlp=[16]",
    "model.top_mlp=[16]",
    "train.checkpoint_every=10",
    "train.progress=false",
    "tracking.log_model=false",
    "tracking.system_metrics=false",
]
METRICS = ("test_auc", "test_logloss", "valid_auc", "valid_logloss")


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """Data and MLflow shared by this module's runs (the data is processed once)."""
    return tmp_path_factory.mktemp("checkpoint")


def overrides(folder: Path, *more: str) -> list[str]:
    return [*SMALL, f"paths.data_dir={folder}/data", f"tracking.uri=sqlite:///{folder}/mlflow.db", *more]


def experiment(folder: Path, *more: str) -> dict[str, float]:
    return run(compose_experiment(overrides(folder, *more)))


@pytest.fixture(scope="module")
def uninterrupted(shared) -> dict[str, float]:
    return experiment(shared)


def wait_for(condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def status(folder: Path, run_id: str) -> str:
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    return MlflowClient().get_run(run_id).info.status


def same_metrics(resumed: dict[str, float], uninterrupted: dict[str, float]) -> None:
    """Same data order, same RNG, same state: the same numbers (to float32 rounding of the scores)."""
    for name in METRICS:
        assert resumed[name] == pytest.approx(uninterrupted[name], abs=1e-6), name


@pytest.mark.slow
def test_sigterm_then_sigkill_then_resume_reaches_the_uninterrupted_metrics(shared, uninterrupted, tmp_path):
    out = tmp_path / "job"
    command = [BLUEWHALE, *overrides(shared), f"hydra.run.dir={out}"]
    saved = out / "checkpoints" / checkpoint.CHECKPOINT
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}

    # 1. SIGTERM at the first checkpoint: training stops after its step, checkpoints, the run is KILLED
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: saved.exists() or job.poll() is not None)
    job.send_signal(signal.SIGTERM)
    log = job.communicate(timeout=300)[0]
    assert job.returncode != 0, log
    assert "stopped by SIGTERM" in log, log
    run_id = checkpoint.plan(compose_experiment([f"train.checkpoint_dir={out}/checkpoints"])).run_id
    assert status(shared, run_id) == "KILLED"
    stopped_at = torch.load(saved, weights_only=False)["state"]["position"]
    assert 0 < stopped_at["step"] < 100 and stopped_at["batch"] > 0  # mid-epoch

    # 2. the same command resumes; SIGKILL (no handler runs) once it has written a later checkpoint
    before = mtime(saved)
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: mtime(saved) != before or job.poll() is not None)
    job.kill()
    log = job.communicate(timeout=60)[0]
    assert job.returncode == -signal.SIGKILL, log
    assert "resumed from" in log, log
    killed_at = torch.load(saved, weights_only=False)["state"]["position"]
    assert killed_at["step"] > stopped_at["step"]
    assert status(shared, run_id) == "RUNNING"  # nothing can mark a SIGKILLed run

    # 3. resumed from the checkpoint's path, in this process: the uninterrupted run's metrics, same MLflow run
    resumed = experiment(shared, f"train.resume={out}/checkpoints")
    same_metrics(resumed, uninterrupted)
    assert status(shared, run_id) == "FINISHED"
    mlflow.set_tracking_uri(f"sqlite:///{shared}/mlflow.db")
    assert MlflowClient().get_run(run_id).data.metrics["test_auc"] == pytest.approx(uninterrupted["test_auc"])
    assert not saved.exists()  # training completed: nothing left to resume


@pytest.mark.slow
def test_ctrl_c_marks_the_run_killed_and_the_run_resumes(shared, uninterrupted, tmp_path):
    folder = tmp_path / "checkpoints"
    saved = folder / checkpoint.CHECKPOINT

    def interrupt() -> None:
        wait_for(saved.exists)
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends this (main) thread

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(Stopped, match="stopped by SIGINT"):
        experiment(shared, f"train.checkpoint_dir={folder}")
    run_id = checkpoint.plan(compose_experiment([f"train.checkpoint_dir={folder}"])).run_id
    assert status(shared, run_id) == "KILLED"
    resumed = experiment(shared, f"train.checkpoint_dir={folder}")  # train.resume=auto finds it
    same_metrics(resumed, uninterrupted)
    assert status(shared, run_id) == "FINISHED"


def test_a_checkpoint_of_another_config_is_refused(shared, tmp_path):
    folder = tmp_path / "checkpoints"
    state = {"state": {}, "rng": torch.get_rng_state(), "config": {"model.embedding_dim": 4}}
    folder.mkdir()
    torch.save(state, folder / checkpoint.CHECKPOINT)
    saver = checkpoint.Checkpoint(
        folder, 10, {"model.embedding_dim": 8}, resume=folder / checkpoint.CHECKPOINT
    )
    with pytest.raises(ValueError, match=r"another config \(model.embedding_dim: 4 -> 8\)"):
        saver.on_fit_start(None)
    with pytest.raises(ValueError, match="train.resume=.*: no checkpoint at"):
        checkpoint.plan(compose_experiment([f"train.resume={tmp_path}/nowhere"]))
    with pytest.raises(ValueError, match="train.checkpoint_every"):
        checkpoint.Checkpoint(folder, -1, {})


def test_a_submitit_requeue_resubmits_the_same_job(tmp_path):
    job = checkpoint.ResumableJob(["model=logistic", "train.resume=false"], tmp_path)
    again = job.checkpoint()
    assert again.function.overrides == ["model=logistic"]  # resume is always auto, from the same folder
    assert again.function.checkpoint_dir == str(tmp_path)
