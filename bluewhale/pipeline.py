"""The experiment as stages run in order (`pipeline.stages`): process -> train -> evaluate.

Each stage reads what earlier stages left in the `Context` and adds its own output; nothing reaches
back. Every stage logs what it made to the active MLflow run.
"""

from __future__ import annotations

import functools
import logging
import tempfile
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

from bluewhale import compress as compression
from bluewhale import profile as profiling
from bluewhale import recdp, tracking
from bluewhale.connector import Connector, Loader
from bluewhale.dataset import build as build_dataset
from bluewhale.dataset import check_pipeline
from bluewhale.metrics import METRICS, check_metrics, score
from bluewhale.metrics import Context as MetricContext
from bluewhale.model.inputs import Input, check_inputs, resolve_inputs
from bluewhale.model.inputs import features as model_features
from bluewhale.train import checkpoint, cpu, distributed, signals
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
    checkpoints: checkpoint.Plan | None = None  # where training checkpoints, and what it resumes from

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
    with distributed.rank_zero_first():  # with several ranks, the others then find rank 0's cache
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
    tracking.log_dataset(ctx.cfg, ctx.processed)  # the Dataset column and lineage in the MLflow UI
    if meta["bad_rows"]["count"]:
        tracking.log_json(meta["bad_rows"], "bad_rows.json")
    tracking.log_json(meta, "processed_meta.json")


def profile(ctx: Context) -> None:
    """A data profile (bluewhale/profile): the raw input, and the processed splits when `process` ran
    before; one HTML page logged as `profile/profile.html` (`profile.json` beside it)."""
    report = profiling.profile(
        ctx.dataset,
        OmegaConf.to_container(ctx.cfg.recdp, resolve=True),
        instantiate(ctx.cfg.engine),
        ctx.processed,
        OmegaConf.to_container(ctx.cfg.get("profile") or {}, resolve=True),
    )
    with tempfile.TemporaryDirectory() as folder:
        page = profiling.write(report, Path(folder))
        mlflow.log_artifacts(folder, "profile")
        log.info("data profile: %s", mlflow.get_artifact_uri(f"profile/{page.name}"))


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
    cpu.apply(cpu.choose(cfg.train.get("precision", "fp32"), cfg.train.get("threads")), ctx.model)
    has_valid = "valid" in processed.meta["rows"]
    monitor = cfg.evaluate.monitor

    def validate() -> float:
        value = np.mean(list(split_metrics(ctx, "valid", [monitor]).values()))
        return value if METRICS[monitor].higher_is_better else -value

    world = distributed.world_size()
    rank_batch = distributed.check_batch(cfg.train.batch_size, world, processed.meta["rows"].get("train"))
    loader = ctx.batches("train", rank_batch, train=True)
    plan = ctx.checkpoints or checkpoint.Plan(None, None, None)
    saver = checkpoint.Checkpoint(
        plan.folder,
        cfg.train.get("checkpoint_every", 0),
        checkpoint.training_config(cfg),
        plan.resume,
        loader,
        writer=distributed.rank() == 0,
    )
    result = fit(
        ctx.model,
        distributed.EqualSteps(loader) if world > 1 else loader,
        cfg.train.epochs,
        cfg.train.lr,
        validate=validate if has_valid else None,
        patience=cfg.train.patience,
        warmup_steps=cfg.train.warmup_steps,
        schedule=cfg.train.schedule,
        progress=cfg.train.progress,
        callbacks=[
            signals.StopOnSignal(),  # before the exchange: a stop on any rank travels with the gradients
            distributed.GradientExchange(),
            saver,
            tracking.LearningCurves(
                monitor, METRICS[monitor].higher_is_better, cfg.tracking.get("log_every_n_steps", 50)
            ),
            *compression.train_callbacks(cfg.compression),  # gradual magnitude pruning, when chosen
        ],
    )
    if result.stopped:
        signals.stop(f" at epoch {len(result.history) + 1}, step {saver.saved_at}; checkpoint: {saver.path}")
    ctx.metrics |= {
        "world_size": world,
        "train_time_s": result.train_time_s,
        "train_samples_per_s": distributed.total(result.samples) / result.train_time_s,  # all ranks
        "train_loss": result.final_loss,
        "epochs": result.epochs,
    } | ({"best_epoch": result.best_epoch} if result.best_epoch else {})
    mlflow.log_metrics(ctx.metrics)
    if cfg.tracking.log_model and distributed.rank() == 0:
        # with a signature and an input example read off a training batch (see tracking/model.py)
        tracking.log_model(ctx.model, next(iter(loader)))


def split_metrics(ctx: Context, split: str, names: list[str], scores: np.ndarray | None = None) -> dict:
    """The metrics `names` of the model (or of `scores`, e.g. the planted ones) on a processed split."""
    labels = None
    if scores is None:
        scores, labels = predict(ctx.model, ctx.batches(split, ctx.cfg.train.eval_batch_size))
        scores, labels = distributed.gather_rows(scores), distributed.gather_rows(labels)  # every rank's
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


def compress(ctx: Context) -> None:
    """The `compression` techniques, in order, on the model just trained or on `compression.source`; the
    compressed model is measured against the original, logged and registered, and is what `evaluate` scores."""
    cfg = ctx.cfg
    if cfg.compression.source:  # a model already in MLflow, reading this config's inputs
        ctx.inputs = resolve_inputs(cfg.model.inputs, ctx.processed.meta, ctx.processed.schema())
        ctx.model = compression.load(cfg.compression.source)
    train_batches = ctx.batches("train", cfg.train.batch_size, train=True)
    test_batches = ctx.batches("test", cfg.train.eval_batch_size)
    names = list(cfg.evaluate.metrics)
    job = compression.Job(
        fine_tune=lambda model, epochs, lr, callbacks: fit(
            model, train_batches, epochs, lr, progress=cfg.train.progress, callbacks=callbacks
        ),
        build=lambda settings: build_model(OmegaConf.merge(cfg, {"model": settings}), ctx.inputs),
        calibration=train_batches,
        lr=cfg.train.lr,
        test_metrics=lambda model: split_metrics(ctx, "test", names, scores=predict(model, test_batches)[0]),
        sample=next(iter(test_batches)),
    )
    settings = OmegaConf.to_container(cfg.compression, resolve=True)
    ctx.model, metrics = compression.compress_and_log(ctx.model, settings, job)
    ctx.metrics |= metrics


def recall(ctx: Context) -> None:
    """A faiss index over the model's item vectors (`recall` group), measured against exact search and on
    the held-out interactions, logged as the `recall_index` artifact."""
    from bluewhale import recall as vector_recall  # faiss: loaded only by the stage that uses it

    cfg = ctx.cfg
    if cfg.recall.source:
        ctx.inputs = resolve_inputs(cfg.model.inputs, ctx.processed.meta, ctx.processed.schema())
        ctx.model = compression.load(cfg.recall.source, key="recall.source")
    ctx.metrics |= vector_recall.run(
        ctx.model,
        ctx.inputs,
        OmegaConf.to_container(cfg.recall, resolve=True),
        ctx.batches("test", cfg.train.eval_batch_size),
        lambda columns: ctx.processed.table("train", columns=columns),
    )


# name -> (stage, the stage whose output it needs)
STAGES: dict[str, tuple[Callable[[Context], None], str | None]] = {
    "process": (process, None),
    "profile": (profile, None),  # the raw input; after process also the processed splits and what changed
    "train": (train, "process"),
    "evaluate": (evaluate, "train"),  # or "compress" (a compressed model stands in for a trained one)
    "compress": (compress, "process"),  # and "train", unless compression.source names a model (check_models)
    "recall": (recall, "process"),  # and "train" or "compress", unless recall.source names a model
}


def check_stages(stages: list[str]) -> None:
    """Fail before any work if `pipeline.stages` names an unknown stage or misses a prerequisite."""
    for i, name in enumerate(stages):
        if name not in STAGES:
            raise ValueError(f"pipeline.stages: unknown stage {name!r}; expected some of {list(STAGES)}")
        needs = STAGES[name][1]
        done = stages[:i] + (["train"] if "compress" in stages[:i] else [])
        if needs and needs not in done:
            raise ValueError(f"pipeline.stages={stages}: stage {name!r} needs {needs!r} before it")


def check_models(cfg: DictConfig, stages: list[str]) -> None:
    """`compress` and `recall` work on the model a stage before them made, or on `<group>.source`; the
    compression techniques are known and may be combined; `recall` has an index."""
    for name, group in (("compress", "compression"), ("recall", "recall")):
        if name in stages and not cfg[group].get("source"):
            made = {"train", "compress"} & set(stages[: stages.index(name)])
            if not made:
                raise ValueError(
                    f"pipeline.stages={stages}: stage {name!r} needs 'train' before it, "
                    f"or {group}.source=runs:/<run id>/model (or models:/<name>/<version>)"
                )
    chosen = compression.techniques(cfg.compression)
    if chosen and "compress" not in stages:
        raise ValueError(
            f"compression={chosen}: add the compress stage, e.g. pipeline.stages=[process,train,compress,evaluate]"
        )
    if "compress" in stages and not chosen:
        raise ValueError("compression: the compress stage needs techniques, e.g. compression=[prune,int8]")
    if "recall" in stages and cfg.recall.index == "none":
        raise ValueError("recall: the recall stage needs an index: recall=flat, ivf_flat, ivf_pq or hnsw")


def check_ranks(cfg: DictConfig, stages: list[str]) -> None:
    """The batch splits evenly over the ranks, and no one-process stage is asked to run on several."""
    world = distributed.discover(cfg.cluster.get("ranks_per_node", 1)).world_size
    distributed.check_batch(cfg.train.batch_size, world)
    one_process = sorted({"compress", "recall"} & set(stages))
    if world > 1 and one_process:  # neither gathers nor exchanges anything between ranks
        raise ValueError(
            f"pipeline.stages: {one_process} run in one process, not on {world} ranks: train on the ranks, "
            "then run them with cluster.ranks_per_node=1 and compression.source / recall.source=runs:/<run id>/model"
        )


def check_experiment(cfg: DictConfig, dataset: Any) -> None:
    """Fail before any work on what the config gets wrong: stages, metrics, and what the model reads
    against the column groups the pipeline will output."""
    stages = list(cfg.pipeline.stages)
    check_stages(stages)
    check_pipeline(dataset, cfg.recdp.get("name"))  # a pipeline made for another data set
    check_models(cfg, stages)
    check_ranks(cfg, stages)
    if not {"train", "compress", "recall"} & set(stages):
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
    ranks_per_node = cfg.cluster.get("ranks_per_node", 1)
    spawn = OmegaConf.to_container(cfg, resolve=True) if ranks_per_node > 1 else None  # local ranks' config
    timeout = cfg.train.get("collective_timeout_s", 300)
    with distributed.ranks(ranks_per_node, timeout, spawn, cfg.cluster.threads), signals.stop_signals():
        ctx.checkpoints = distributed.broadcast(checkpoint.plan(cfg))  # rank 0's folder on every rank
        if distributed.rank() != 0:  # only rank 0 logs to MLflow
            with distributed.scratch_tracking():
                for name in cfg.pipeline.stages:
                    STAGES[name][0](ctx)
            return {}
        with tracking.job_run(cfg, run_id=ctx.checkpoints.run_id) as active:
            if ctx.checkpoints.folder is not None:
                checkpoint.record_run(ctx.checkpoints.folder, active.info.run_id)
            for name in cfg.pipeline.stages:
                STAGES[name][0](ctx)
    return {k: float(v) for k, v in ctx.metrics.items() if np.isfinite(v)}
