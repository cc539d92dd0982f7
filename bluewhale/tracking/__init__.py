"""MLflow tracking: one run per job with the resolved config, overrides and git commit; a parent run
per sweep (made by the `SweepRun` Hydra callback) that every job of the sweep links to."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # runs are offline; nothing phones home

import mlflow  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.experimental.callback import Callback  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from bluewhale.tracking.curves import LearningCurves  # noqa: E402
from bluewhale.tracking.datasets import log_processed as log_processed  # noqa: E402
from bluewhale.tracking.model import log_model as log_model  # noqa: E402
from bluewhale.tracking.names import run_name  # noqa: E402
from bluewhale.train.signals import Stopped  # noqa: E402

log = logging.getLogger(__name__)

# the experiment's kind as MLflow 3 records it (model training, not GenAI); 3.17's UI reads its own view
# switch first, so `make ui` also prints links that open the runs table (tracking/ui.py)
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
SWEEP_FILE = "mlflow_sweep.json"  # in the sweep folder: the parent run every job links to
ROLE, SWEEP_ID = "bluewhale.role", "bluewhale.sweep_id"
# matched in each part of a dotted key, lower-cased with separators dropped (api_key, api-key, apiKey, APIKEY)
SECRET_WORDS = ("token", "password", "passwd", "secret", "apikey", "privatekey", "credential")
# user:password@ in a URL's authority (up to its first / ? #), anywhere in a string; the password runs to the
# authority's last @, so an unescaped @ in it is hidden too
URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)[^\s/?#]+@")


def _secret_key(key: str) -> bool:
    """Any part of the dotted key looks secret; `*_env` names the variable that holds a secret, not the secret."""
    for part in str(key).split("."):
        word = re.sub(r"[^a-z0-9]", "", part.lower())
        if any(secret in word for secret in SECRET_WORDS) and not word.endswith("env"):
            return True
    return False


def redact(key: str, value: Any) -> Any:
    """Keep secrets out of MLflow: blank values of secret-looking keys (a whole section under one) and
    passwords inside URLs, also inside lists and mappings; every other value is returned as it is."""
    if _secret_key(key):
        return "***"
    if isinstance(value, dict):
        return {k: redact(f"{key}.{k}" if key else str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(key, v) for v in value)
    if isinstance(value, str) and "@" in value:
        return URL_PASSWORD.sub(r"\g<head>***@", value)
    return value


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay whole (they are one setting, e.g. MLP widths)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def git_commit() -> str:
    """The commit of the bluewhale checkout that runs, with '-dirty' if it has uncommitted changes."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return git("rev-parse", "HEAD") + (
            "-dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def use_tracking(cfg: DictConfig) -> None:
    """Point MLflow at `tracking.uri` and `tracking.experiment`, marked as a model-training experiment."""
    mlflow.set_tracking_uri(cfg.tracking.uri)
    experiment = mlflow.set_experiment(cfg.tracking.experiment)
    if EXPERIMENT_KIND not in experiment.tags:  # a kind the user chose in the UI is left alone
        MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)


def _choices() -> dict[str, str]:
    """The config group options the job runs with (model, dataset, engine...), from Hydra."""
    if not HydraConfig.initialized():
        return {}
    return {k: v for k, v in HydraConfig.get().runtime.choices.items() if v is not None}


def _system_metrics(cfg: DictConfig) -> bool:
    """CPU, memory (and disk, network) sampled by MLflow every `tracking.system_metrics_interval_s`."""
    if not cfg.tracking.get("system_metrics", False):
        return False
    interval = cfg.tracking.get("system_metrics_interval_s", 10)
    if not isinstance(interval, int | float) or interval <= 0:
        raise ValueError(f"tracking.system_metrics_interval_s: expected seconds > 0, got {interval!r}")
    mlflow.set_system_metrics_sampling_interval(interval)
    mlflow.set_system_metrics_samples_before_logging(1)
    return True


def _sweep_parent() -> dict | None:
    """The sweep this job belongs to, if it runs as part of a multirun (written by `SweepRun`)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    path = Path(HydraConfig.get().sweep.dir) / SWEEP_FILE
    return json.loads(path.read_text()) if path.exists() else None


@contextmanager
def job_run(cfg: DictConfig, run_id: str | None = None) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run for one job, with its config, overrides and code version logged up front; `run_id`
    continues a stopped job's run (a resumed checkpoint). A job stopped by a signal or Ctrl-C ends KILLED."""
    use_tracking(cfg)
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    tags = {"bluewhale.overrides": " ".join(overrides), "mlflow.source.git.commit": git_commit()}
    parent = _sweep_parent()
    if parent:
        tags |= {"mlflow.parentRunId": parent["run_id"], SWEEP_ID: parent["sweep_id"]}
    name = run_name(_choices(), overrides)
    with mlflow.start_run(
        run_id=run_id, run_name=None if run_id else name, tags=tags, log_system_metrics=_system_metrics(cfg)
    ) as run:
        if run_id is None:  # a resumed run keeps the params it was started with
            resolved = OmegaConf.to_container(cfg, resolve=True)
            params = {k: redact(k, v) for k, v in flatten(resolved).items()}
            mlflow.log_params({k: str(v) for k, v in params.items()})
            log_yaml(redact_tree(resolved), "config.yaml")
            mlflow.log_text("\n".join(overrides) + "\n", "overrides.txt")
        try:
            yield run
        except (Stopped, KeyboardInterrupt, SystemExit):
            mlflow.end_run("KILLED")  # stopped, not failed: a checkpoint may let it resume
            raise


def log_dataset(cfg: DictConfig, processed: Any) -> None:
    """Each split of the processed data (`recdp.Processed`) as a dataset input of the active run, named
    for the `dataset=` option (or its class), with the processing cache key as digest."""
    name = _choices().get("dataset") or cfg.dataset.get("_target_", "dataset").rsplit(".", 1)[-1]
    schemas = {split: processed.schema(split) for split in processed.meta["rows"]}
    log_processed(name, processed.path, processed.meta, schemas)


def redact_tree(tree: Any, key: str = "") -> Any:
    return redact(key, tree)  # keys below are checked by their dotted path, as the params are


def log_yaml(tree: Any, name: str) -> None:
    mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(tree)), name)


def log_json(data: Any, name: str) -> None:
    mlflow.log_text(json.dumps(data, indent=1, default=str), name)


EpochCurves = LearningCurves  # the name the pipeline first used


def report_sweep(parent_run_id: str, uri: str, out: Path) -> None:
    """`bluewhale-report` on a finished sweep, logged to its parent run; a report that cannot be made
    (no trial scored, no browser for the PNG) is a warning, never a failed sweep."""
    from bluewhale.report import ReportError, write_report

    try:
        write_report(parent_run_id, uri, out)
    except (ReportError, OSError, RuntimeError, subprocess.SubprocessError) as error:
        log.warning("no sweep report: %s", error)


class SweepRun(Callback):
    """Hydra callback: opens a parent MLflow run when a multirun starts and closes it when it ends.

    The parent's id is written to the sweep folder, so jobs find it whatever launcher runs them
    (in this process, in subprocesses, or on other nodes sharing the folder).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.sweeper.get("dry_run"):  # the sweeper only prints its recipe: nothing to track
            return
        HydraConfig.instance().set_config(config)  # not yet set here; tracking.uri interpolates hydra:
        use_tracking(config)
        folder = Path(config.hydra.sweep.dir)
        if (folder / SWEEP_FILE).exists():  # a restarted sweep (same folder) goes on under its parent run
            parent = json.loads((folder / SWEEP_FILE).read_text())
            MlflowClient().update_run(parent["run_id"], status="RUNNING")
            log.info("sweep %s restarted: MLflow parent run %s", parent["sweep_id"], parent["run_id"])
            return
        sweep_id = uuid.uuid4().hex[:12]
        overrides = list(config.hydra.overrides.task)
        run = MlflowClient().create_run(
            mlflow.get_experiment_by_name(config.tracking.experiment).experiment_id,
            run_name=f"sweep-{sweep_id}",
            tags={
                ROLE: "sweep",
                SWEEP_ID: sweep_id,
                "bluewhale.overrides": " ".join(overrides),
                "mlflow.source.git.commit": git_commit(),
            },
        )
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False) as tmp:
            json.dump({"run_id": run.info.run_id, "sweep_id": sweep_id}, tmp)
        Path(tmp.name).rename(folder / SWEEP_FILE)
        log.info("sweep %s: MLflow parent run %s", sweep_id, run.info.run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.sweeper.get("dry_run"):
            return
        HydraConfig.instance().set_config(config)
        use_tracking(config)
        parent = json.loads((Path(config.hydra.sweep.dir) / SWEEP_FILE).read_text())
        client = MlflowClient()
        experiment = mlflow.get_experiment_by_name(config.tracking.experiment).experiment_id
        children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent['run_id']}'")
        failed = sum(child.info.status != "FINISHED" for child in children)
        client.log_metric(parent["run_id"], "trials", len(children))
        client.log_metric(parent["run_id"], "failed_trials", failed)
        aucs = [c.data.metrics["test_auc"] for c in children if "test_auc" in c.data.metrics]
        if aucs:
            client.log_metric(parent["run_id"], "best_test_auc", max(aucs))
        from bluewhale.advisor.report import log_sweep  # what a SigOpt sweep left in its folder, if anything

        log_sweep(client, parent["run_id"], Path(config.hydra.sweep.dir))
        if config.tracking.get("report", False):
            report_sweep(parent["run_id"], config.tracking.uri, Path(config.hydra.sweep.dir) / "report.html")
        client.set_terminated(parent["run_id"], "FINISHED")
