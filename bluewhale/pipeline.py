"""The experiment as stages run in order (`pipeline.stages`): process -> train -> evaluate.

Each stage reads what earlier stages left in the `Context` and adds its own output; nothing reaches
back. Every stage logs what it made to the active MLflow run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import log_loss, roc_auc_score

from bluewhale import recdp, tracking
from bluewhale.connector import Connector, Features, Loader
from bluewhale.train.trainer import fit, predict

log = logging.getLogger(__name__)


@dataclass
class Context:
    cfg: DictConfig
    dataset: Any
    processed: recdp.Processed | None = None
    model: torch.nn.Module | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    connector: Connector | None = None

    def batches(self, split: str, batch_size: int, train: bool = False) -> Loader:
        """Batches of a processed split through the connector: shuffled for training, in order to score.

        The split is converted into the connector's cache once per (RecDP key, split, layout); later runs,
        sweep jobs and ranks reuse it.
        """
        if self.connector is None:
            self.connector = instantiate(self.cfg.connector)
        processed, meta = self.processed, self.processed.meta
        data = self.connector.convert(
            lambda: processed.table(split), fingerprint=meta["key"], config={"split": split}
        )
        mlflow.set_tag(f"bluewhale.connector.{split}", "hit" if data.cache_hit else "miss")
        features = Features(meta["label"], tuple(meta["dense"]), tuple(meta["sparse"]))
        return self.connector.loader(data, features, batch_size, train=train, seed=self.cfg.train.seed)


def process(ctx: Context) -> None:
    ctx.processed = recdp.process(
        ctx.dataset,
        OmegaConf.to_container(ctx.cfg.recdp, resolve=True),
        instantiate(ctx.cfg.engine),
        ctx.cfg.paths.processed_dir,
    )
    meta = ctx.processed.meta
    mlflow.set_tags(
        {
            "bluewhale.processed_path": str(ctx.processed.path),
            "bluewhale.cache": "hit" if ctx.processed.cache_hit else "miss",
        }
    )
    mlflow.log_metrics(
        {f"rows_{split}": n for split, n in meta["rows"].items()}
        | {"bad_rows": meta["bad_rows"]["count"], "process_time_s": meta["process_time_s"]}
    )
    if meta["bad_rows"]["count"]:
        tracking.log_json(meta["bad_rows"], "bad_rows.json")
    tracking.log_json(meta, "processed_meta.json")


def train(ctx: Context) -> None:
    meta, cfg = ctx.processed.meta, ctx.cfg
    torch.manual_seed(cfg.train.seed)
    ctx.model = instantiate(
        cfg.model,
        num_dense=len(meta["dense"]),
        cardinalities=[meta["cardinalities"][c] for c in meta["sparse"]],
    )
    result = fit(
        ctx.model,
        ctx.batches("train", cfg.train.batch_size, train=True),
        cfg.train.epochs,
        cfg.train.lr,
        progress=cfg.train.progress,
    )
    ctx.metrics |= {
        "train_time_s": result.train_time_s,
        "train_samples_per_s": result.samples_per_s,
        "train_loss": result.final_loss,
    }
    mlflow.log_metrics(ctx.metrics)
    if cfg.tracking.log_model:
        # pickle: the model class is ours and importable wherever bluewhale is installed
        mlflow.pytorch.log_model(
            ctx.model,
            name="model",
            serialization_format="pickle",
            pip_requirements=[f"torch=={torch.__version__}"],
        )


def evaluate(ctx: Context) -> None:
    """Test AUC and logloss (and the same on the valid split where the pipeline has one)."""
    metrics = {}
    for split in [s for s in ("valid", "test") if s in ctx.processed.meta["rows"]]:
        scores, labels = predict(ctx.model, ctx.batches(split, ctx.cfg.train.eval_batch_size))
        metrics[f"{split}_auc"] = roc_auc_score(labels, scores)
        metrics[f"{split}_logloss"] = log_loss(labels, scores, labels=[0, 1])
    planted = ctx.dataset.planted_probability()
    if planted is not None:  # test rows are the data set's last rows
        metrics["optimal_test_auc"] = roc_auc_score(labels, planted[-len(labels) :])
    log.info("evaluation: %s", {k: round(v, 4) for k, v in metrics.items()})
    ctx.metrics |= metrics
    mlflow.log_metrics(metrics)


# name -> (stage, the stage whose output it needs)
STAGES: dict[str, tuple[Callable[[Context], None], str | None]] = {
    "process": (process, None),
    "train": (train, "process"),
    "evaluate": (evaluate, "train"),
}


def check_stages(stages: list[str]) -> None:
    """Fail before any work if `pipeline.stages` names an unknown stage or misses a prerequisite."""
    for i, name in enumerate(stages):
        if name not in STAGES:
            raise ValueError(f"pipeline.stages: unknown stage {name!r}; expected some of {list(STAGES)}")
        needs = STAGES[name][1]
        if needs and needs not in stages[:i]:
            raise ValueError(f"pipeline.stages={stages}: stage {name!r} needs {needs!r} before it")


def run(cfg: DictConfig) -> dict[str, float]:
    """Run the configured stages inside one MLflow run; return the metrics (sweepers read them)."""
    if cfg.advisor.get("dry_run"):  # the recipe exists only for a sweep, which the sweeper prints
        raise ValueError(
            "advisor.dry_run=true needs a sweep: bluewhale -m advisor=sigopt advisor.dry_run=true"
        )
    stages = list(cfg.pipeline.stages)
    check_stages(stages)
    if cfg.cluster.threads:
        torch.set_num_threads(cfg.cluster.threads)
    ctx = Context(cfg=cfg, dataset=instantiate(cfg.dataset))
    with tracking.job_run(cfg):
        for name in stages:
            STAGES[name][0](ctx)
    return {k: float(v) for k, v in ctx.metrics.items() if np.isfinite(v)}
