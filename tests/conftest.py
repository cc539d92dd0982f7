"""Shared helpers: run the real `bluewhale` command in a scratch folder, compose configs, read MLflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from mlflow.tracking import MlflowClient

from bluewhale.app import CONF_DIR

BLUEWHALE = str(Path(sys.executable).parent / "bluewhale")


def run_bluewhale(cwd: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the console script as a user would, in `cwd`, with MLflow in `cwd/mlflow.db`."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [BLUEWHALE, *overrides], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    if check and result.returncode != 0:
        raise AssertionError(f"bluewhale {' '.join(overrides)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def compose_config(*overrides: str):
    """The composed config as the app sees it (with `hydra:` interpolations resolvable)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return cfg


def runs(cwd: Path):
    """All runs of the `bluewhale` experiment in `cwd/mlflow.db`, newest first."""
    mlflow.set_tracking_uri(f"sqlite:///{cwd}/mlflow.db")
    experiment = MlflowClient().get_experiment_by_name("bluewhale")
    return MlflowClient().search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


TINY_SWEEP = ["dataset.rows=4000", "train.epochs=2", "recdp.split.valid_fraction=0.2", "train.batch_size=128"]


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory):
    """Two DLRM runs (embedding_dim 4 and 8) as one sweep: curves every 5 steps, system metrics every second,
    the model logged; the sweep ends with its report. Read by tests/test_tracking.py and test_report.py."""
    cwd = tmp_path_factory.mktemp("tiny_sweep")
    args = ["-m", "model.embedding_dim=4,8", *TINY_SWEEP]
    result = run_bluewhale(cwd, *args, "tracking.log_every_n_steps=5", "tracking.system_metrics_interval_s=1")
    every = runs(cwd)
    parent = next(r for r in every if r.data.tags.get("bluewhale.role") == "sweep")
    children = sorted(
        (r for r in every if r is not parent), key=lambda r: r.data.params["model.embedding_dim"]
    )
    return cwd, result, parent, children
