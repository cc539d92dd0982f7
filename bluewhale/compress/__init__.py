"""Model compression: the `compression` group's techniques applied in the order the config lists them,
to the model this run trained or to one already in MLflow (`compression.source`); the result is measured
against the original (sizes, parameters, quality on the same test rows, latency and throughput), logged
and registered.

Techniques (one module each): `magnitude_prune` (gradual during training, or one-shot with fine-tuning)
and `prune` (structured, whole neurons) in prune.py; `distill` (a smaller student) in distill.py;
`qr_embeddings`, `int8_embeddings`, `fp16_embeddings` in embeddings.py; `int8` (dynamic or static) in
quantize.py. Refused: training techniques after a quantising one (int8 layers and tables do not train);
int8 and fp16 rows together; embedding techniques on a model without `nn.Embedding` tables at least 4 wide
(Wide & Deep's wide part, an `nn.EmbeddingBag` of one weight a row, is always left as it is); static int8 on
a model without Linear/ReLU MLPs (DIEN: Dice/PReLU heads; its GRUs take dynamic int8).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mlflow
from torch import nn

from bluewhale.compress import embeddings, measure, prune, quantize, registry
from bluewhale.compress.distill import Distilled
from bluewhale.train.callbacks import Callback

log = logging.getLogger(__name__)

COMMON = ("source", "registered_model")
TRAINING = ("magnitude_prune", "prune", "distill", "qr_embeddings")  # they train the model after the change
QUANTISING = ("int8_embeddings", "fp16_embeddings", "int8")
TECHNIQUES = TRAINING + QUANTISING
load = registry.load


@dataclass
class Job:
    """What compressing needs from the pipeline."""

    fine_tune: Callable[[nn.Module, int, float, Sequence[Callback]], Any]  # passes over the train split
    build: Callable[[dict], nn.Module]  # a model of the configured class with these settings changed
    calibration: Iterable  # train batches (static int8 calibration)
    lr: float  # train.lr
    test_metrics: Callable[[nn.Module], dict[str, float]]  # evaluate.metrics on the test split
    sample: dict  # one test batch: latency (its first row) and throughput (all of it)


def techniques(cfg: Mapping) -> list[str]:
    """The techniques the `compression` config lists, in order; an error for an unknown key or a refused
    combination."""
    names = [k for k in cfg if k not in COMMON]
    unknown = [k for k in names if k not in TECHNIQUES]
    if unknown:
        raise ValueError(f"compression.{unknown[0]}: unknown technique; expected some of {list(TECHNIQUES)}")
    for i, name in enumerate(names):
        late = [q for q in names[:i] if q in QUANTISING]
        if name in TRAINING and late:
            raise ValueError(
                f"compression: {name} after {late[0]}: quantised layers and tables do not train; "
                f"list {name} first (e.g. compression=[{name},{late[0]}])"
            )
    if "int8_embeddings" in names and "fp16_embeddings" in names:
        raise ValueError("compression: int8_embeddings and fp16_embeddings both store the rows; pick one")
    return names


def train_callbacks(cfg: Mapping) -> list[Callback]:
    """Callbacks the `train` stage runs when compressing from scratch: gradual magnitude pruning."""
    settings = cfg.get("magnitude_prune")
    if settings is None or cfg.get("source"):
        return []
    return [
        prune.MagnitudePruning(
            **{
                k: settings[k]
                for k in ("initial_sparsity", "final_sparsity", "start_step", "end_step", "every")
            }
        )
    ]


def unfuse(model: nn.Module) -> nn.Module:
    """Detach the optimiser a table may still hold from training (a fused row update in its lookup): a
    compressed table is no plain nn.Embedding, and a later fine-tuning makes its own optimisers."""
    for module in model.modules():
        if hasattr(module, "fuse_update"):
            module.fuse_update(None)
    return model


def apply(model: nn.Module, cfg: Mapping, job: Job) -> tuple[nn.Module, dict[str, Any]]:
    """A compressed copy of `model` (the original is left as it is) and what each technique did."""
    model = unfuse(copy.deepcopy(model))
    done: dict[str, Any] = {}
    for name in techniques(cfg):
        settings, key = dict(cfg[name] or {}), f"compression.{name}"
        lr = settings.get("lr") or job.lr
        if name == "magnitude_prune":
            final = settings["final_sparsity"]
            if prune.sparsity(model) < final - 0.01:  # not pruned while training: prune at once, fine-tune
                pruning = prune.MagnitudePruning(final, final, 0, 0, every=1)
                pruning.update(model, final)
                if settings.get("finetune_epochs"):
                    job.fine_tune(model, settings["finetune_epochs"], lr, [pruning])
            done[name] = {"sparsity": prune.sparsity(model)}
        elif name == "prune":
            done[name] = {"widths": prune.prune_neurons(model, settings["amount"], key)}
            if settings.get("finetune_epochs"):
                job.fine_tune(model, settings["finetune_epochs"], lr, [])
        elif name == "distill":
            student = job.build(dict(settings.get("student") or {}))
            job.fine_tune(Distilled(student, model, settings.get("alpha", 0.5)), settings["epochs"], lr, [])
            model, done[name] = student, {"student": dict(settings.get("student") or {})}
        elif name == "qr_embeddings":
            teacher = copy.deepcopy(model)
            embeddings.qr_tables(model, settings["collisions"], settings["min_rows"], key)
            model.fused_embedding_update = (
                False  # QR tables train by gradients; fused updates need plain ones
            )
            if settings.get("finetune_epochs"):
                job.fine_tune(
                    Distilled(model, teacher, settings.get("alpha", 0.5)), settings["finetune_epochs"], lr, []
                )
            done[name] = {"collisions": settings["collisions"]}
        elif name in ("int8_embeddings", "fp16_embeddings"):
            embeddings.quantize_tables(model, 8 if name == "int8_embeddings" else 16, key)
            done[name] = {}
        elif name == "int8":
            mode = settings.get("mode", "dynamic")
            if mode not in quantize.MODES:
                raise ValueError(f"{key}.mode: expected one of {quantize.MODES}, got {mode!r}")
            if mode == "dynamic":
                model = quantize.dynamic_int8(model, key)
            else:
                model = quantize.static_int8(model, job.calibration, settings["calibration_batches"], key)
            done[name] = {"mode": mode}
        unfuse(model)
        log.info("compression: %s done %s", name, done[name])
    return model.eval(), done


def compress_and_log(model: nn.Module, cfg: Mapping, job: Job) -> tuple[nn.Module, dict[str, float]]:
    """Compress `model`, measure both against each other, log the figures and the compressed model to the
    active MLflow run and register it (`compression.registered_model`). Returns it and the metrics."""
    names = techniques(cfg)
    if not names:
        raise ValueError(
            "compression: no technique chosen; e.g. compression=[prune,int8] (members of conf/compression)"
        )
    compressed, done = apply(model, cfg, job)
    before, after = job.test_metrics(model), job.test_metrics(compressed)
    original, small = measure.profile(model, job.sample), measure.profile(compressed, job.sample)
    metrics = {f"original_{k}": v for k, v in original.items()} | {
        f"compressed_{k}": v for k, v in small.items()
    }
    metrics |= {f"original_test_{k}": v for k, v in before.items()}
    metrics |= {f"compressed_delta_test_{k}": after[k] - before[k] for k in before}
    metrics |= {
        "compression_disk_ratio": original["disk_mb"] / small["disk_mb"],
        "compression_memory_ratio": original["memory_mb"] / small["memory_mb"],
        "compression_latency_speedup": original["latency_b1_ms"] / small["latency_b1_ms"],
        "compression_throughput_speedup": small["throughput_rows_per_s"] / original["throughput_rows_per_s"],
    }
    name = cfg.get("registered_model") or f"bluewhale-{type(model).__name__.lower()}-compressed"
    mlflow.set_tag("bluewhale.compression", ",".join(names))
    mlflow.log_metrics(metrics)
    mlflow.log_text(
        json.dumps({"techniques": names, "done": done, "metrics": metrics}, indent=1, default=str),
        "compression.json",
    )
    version = registry.log_and_register(compressed, name, {"bluewhale.compression": ",".join(names)})
    mlflow.set_tags({"bluewhale.registered_model": name, "bluewhale.registered_version": str(version)})
    log.info("compressed %s: %s", names, {k: round(v, 4) for k, v in metrics.items()})
    return compressed, metrics
