"""The experiment as stages run in order (`pipeline.stages`): process -> train -> evaluate.

Each stage reads what earlier stages left in the `Context` and adds its own output; nothing reaches
back. Every stage logs what it made to the active MLflow run.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pyarrow.parquet as pq
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from bluewhale import recdp, tracking
from bluewhale.connector import Connector, Loader
from bluewhale.dataset import build as build_dataset
from bluewhale.metrics import METRICS, check_metrics, score
from bluewhale.metrics import Context as MetricContext
from bluewhale.model.inputs import Input, check_inputs, resolve_inputs
from bluewhale.model.inputs import features as model_features
from bluewhale.train.trainer import fit, predict

log = logging.getLogger(__name__)


@dataclass
class Context:
    cfg: DictConfig
    dataset: Any
    processed: recdp.Processed | None = None
    inputs: dict[str, Input] | None = None  # what the model reads, resolved against the processed data
    model: torch.nn.Module | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    connector: Connector | None = None
    loaders: dict[tuple, Loader] = field(default_factory=dict)

    def batches(self, split: str, batch_size: int, train: bool = False) -> Loader:
        """Batches of a processed split through the connector: shuffled for training, in order to score.

        The split is converted into the connector's cache once per (RecDP key, split, layout); later runs,
        sweep jobs and ranks reuse it. Within a run a loader is made once and iterated again (the valid
        split is scored every epoch), so its files are listed and its schema read once.
        """
        key = (split, batch_size, train)
        if key not in self.loaders:
            self.loaders[key] = self._loader(split, batch_size, train)
        return self.loaders[key]

    def _loader(self, split: str, batch_size: int, train: bool) -> Loader:
        if self.connector is None:
            self.connector = instantiate(self.cfg.connector)
        processed, meta = self.processed, self.processed.meta
        data = self.connector.convert(
            lambda: processed.table(split), fingerprint=meta["key"], config={"split": split}
        )
        mlflow.set_tag(f"bluewhale.connector.{split}", "hit" if data.cache_hit else "miss")
        return self.connector.loader(
            data, model_features(self.inputs), batch_size, train=train, seed=self.cfg.train.seed
        )


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


def build_model(cfg: DictConfig, inputs: dict[str, Input]) -> torch.nn.Module:
    """The configured model for these inputs (`model.inputs` is resolved by the caller)."""
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg.pop("inputs")
    return instantiate(model_cfg, _partial_=True)(inputs=inputs)


def train(ctx: Context) -> None:
    processed, cfg = ctx.processed, ctx.cfg
    ctx.inputs = resolve_inputs(cfg.model.inputs, processed.meta, processed.schema())
    torch.manual_seed(cfg.train.seed)
    ctx.model = build_model(cfg, ctx.inputs)
    has_valid = "valid" in processed.meta["rows"]
    monitor = cfg.evaluate.monitor

    def validate() -> float:
        value = np.mean(list(split_metrics(ctx, "valid", [monitor]).values()))
        return value if METRICS[monitor].higher_is_better else -value

    result = fit(
        ctx.model,
        ctx.batches("train", cfg.train.batch_size, train=True),
        cfg.train.epochs,
        cfg.train.lr,
        validate=validate if has_valid else None,
        patience=cfg.train.patience,
        warmup_steps=cfg.train.warmup_steps,
        schedule=cfg.train.schedule,
        progress=cfg.train.progress,
        callbacks=[tracking.EpochCurves(monitor, METRICS[monitor].higher_is_better)],
    )
    ctx.metrics |= {
        "train_time_s": result.train_time_s,
        "train_samples_per_s": result.samples_per_s,
        "train_loss": result.final_loss,
        "epochs": result.epochs,
    } | ({"best_epoch": result.best_epoch} if result.best_epoch else {})
    mlflow.log_metrics(ctx.metrics)
    if cfg.tracking.log_model:
        # pickle: the model class is ours and importable wherever bluewhale is installed
        mlflow.pytorch.log_model(
            ctx.model,
            name="model",
            serialization_format="pickle",
            pip_requirements=[f"torch=={torch.__version__}"],
        )


def split_metrics(ctx: Context, split: str, names: list[str], scores: np.ndarray | None = None) -> dict:
    """The metrics `names` of the model (or of `scores`, e.g. the planted ones) on a processed split."""
    labels = None
    if scores is None:
        scores, labels = predict(ctx.model, ctx.batches(split, ctx.cfg.train.eval_batch_size))
    tasks = list(ctx.inputs["label"].columns)
    group = ctx.cfg.evaluate.group
    table = ctx.processed.table(split, columns=tasks + ([group] if group else []))
    if labels is None:
        labels = np.stack([table.column(t).to_numpy() for t in tasks], 1).squeeze(
            1 if len(tasks) == 1 else ()
        )
    context = MetricContext(
        groups=table.column(group).to_numpy() if group else None,
        positive_rate=positive_rates(ctx.processed.path, tuple(tasks)),  # read once, not every epoch
    )
    return score(names, labels, scores, context, tasks)


@functools.cache
def positive_rates(processed_path: Path, tasks: tuple[str, ...]) -> list[float]:
    """Each task's positive rate on the train split (RCE's constant predictor); processed data is immutable."""
    table = pq.read_table(processed_path / "train.parquet", columns=list(tasks))
    return [float(np.mean(table.column(t).to_numpy())) for t in tasks]


def planted_scores(ctx: Context, split: str) -> np.ndarray | None:
    """The planted generator's probabilities for the rows of `split`, in the model's tasks, or None.

    The engines carry each row's keys (`__row`, `__sub`, `__key_*`) into the processed split; the data set
    maps them to its true probabilities. A row it cannot map is an error, never a silent number.
    """
    if not hasattr(ctx.dataset, "planted"):
        return None
    skipped = ctx.processed.meta["bad_rows"]["count"]
    if skipped:  # kept rows are numbered without the skipped lines: they no longer match the planted rows
        why = f"unknown: {skipped} input rows were skipped (dataset.bad_rows=skip)"
        log.warning("no planted optimum: %s", why)
        mlflow.set_tag("bluewhale.planted_optimum", why)
        return None
    hidden = [c for c in ctx.processed.schema(split).names if c.startswith("__")]
    planted = ctx.dataset.planted(ctx.processed.table(split, columns=hidden))
    if planted is None:
        return None
    tasks = list(ctx.inputs["label"].columns)
    if planted.ndim == 2:
        labels = list(ctx.dataset.groups()["label"])
        planted = planted[:, [labels.index(t) for t in tasks]]
        planted = planted[:, 0] if len(tasks) == 1 else planted
    rows = ctx.processed.meta["rows"][split]
    if len(planted) != rows:
        raise ValueError(f"the planted probabilities have {len(planted)} rows, the {split} split {rows}")
    return planted


def evaluate(ctx: Context) -> None:
    """The recipe's metrics (`evaluate.metrics`) on the valid and test splits, and on the test split the
    planted generator's own value of each (`optimal_test_<metric>`: the best achievable), where known."""
    names = list(ctx.cfg.evaluate.metrics)
    metrics = {}
    for split in [s for s in ("valid", "test") if s in ctx.processed.meta["rows"]]:
        metrics |= {f"{split}_{k}": v for k, v in split_metrics(ctx, split, names).items()}
    planted = planted_scores(ctx, "test")
    if planted is not None:
        optimal = split_metrics(ctx, "test", names, scores=planted)
        metrics |= {f"optimal_test_{k}": v for k, v in optimal.items()}
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


def check_experiment(cfg: DictConfig, dataset: Any) -> None:
    """Fail before any work on what the config gets wrong: stages, metrics, and what the model reads
    against the column groups the pipeline will output."""
    stages = list(cfg.pipeline.stages)
    check_stages(stages)
    if "train" not in stages:
        return
    names = list(cfg.evaluate.metrics)
    check_metrics([*names, cfg.evaluate.monitor])
    groups = recdp.planned_groups(OmegaConf.to_container(cfg.recdp, resolve=True), dataset)
    check_inputs(cfg.model.inputs, groups)
    model_class = get_class(cfg.model._target_)
    if hasattr(model_class, "check_config"):  # a model's own checks of its settings (e.g. W&D's crosses)
        model_class.check_config(OmegaConf.to_container(cfg.model, resolve=True), groups)
    if cfg.evaluate.group:
        check_inputs({"label": "label", "group": cfg.evaluate.group}, groups, where="evaluate")
    needs_group = [n for n in [*names, cfg.evaluate.monitor] if METRICS[n].needs == "groups"]
    if needs_group and not cfg.evaluate.group:
        raise ValueError(
            f"evaluate.group: the metrics {needs_group} rank rows within groups; name the column"
        )


def run(cfg: DictConfig) -> dict[str, float]:
    """Run the configured stages inside one MLflow run; return the metrics (sweepers read them)."""
    if cfg.advisor.get("dry_run"):  # the recipe exists only for a sweep, which the sweeper prints
        raise ValueError(
            "advisor.dry_run=true needs a sweep: bluewhale -m advisor=sigopt advisor.dry_run=true"
        )
    ctx = Context(cfg=cfg, dataset=build_dataset(cfg.dataset))
    check_experiment(cfg, ctx.dataset)
    if cfg.cluster.threads:
        torch.set_num_threads(cfg.cluster.threads)
    with tracking.job_run(cfg):
        for name in cfg.pipeline.stages:
            STAGES[name][0](ctx)
    return {k: float(v) for k, v in ctx.metrics.items() if np.isfinite(v)}
