"""The recipe generator: what to tune, over which ranges, against which metrics and with what budget, worked
out from the chosen model, the data set's size and the cluster. Users override any part under `advisor.`."""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_sigopt_sweeper._experiment import config_has

log = logging.getLogger(__name__)

CRITEO_BYTES_PER_ROW = 200  # a Criteo train.txt line is about this long; sizes a real file without reading it
OBSERVATIONS_PER_PARAMETER = 10  # SigOpt's rule of thumb for a model-based search
# model (the class name its `_target_` ends with) -> its quality metric and a threshold below which a
# configuration is not worth its training time, however fast (a region of interest for the Pareto front)
QUALITY = {"DLRM": ("test_auc", "maximize", 0.7)}


def dataset_rows(config: DictConfig) -> int | None:
    """Rows of the data set: `dataset.rows` for generated ones (`dataset.twin.rows` where a real member runs
    its twin), else estimated from the file's size."""
    dataset = config.dataset
    if dataset.get("path") is None and dataset.get("twin") is not None:  # the recipe runs on the planted twin
        dataset = dataset.twin
    if dataset.get("rows"):
        return int(dataset.rows)
    path = dataset.get("path")
    if path and Path(path).is_file():
        return Path(path).stat().st_size // CRITEO_BYTES_PER_ROW
    return None


def _pow2_grid(low: int, high: int) -> list[int]:
    grid, value = [], low
    while value <= high:
        grid.append(value)
        value *= 2
    return grid


def model_parameters(model: str, rows: int | None) -> dict[str, dict[str, Any]]:
    """Model and optimiser knobs; wider embeddings and bigger batches only pay off with more rows."""
    rows = rows or 10**7
    params: dict[str, dict[str, Any]] = {
        "lr": {"path": "train.lr", "type": "double", "min": 3e-4, "max": 3e-2, "log": True},
        # at least ~100 steps an epoch: bigger batches than that starve a small data set of updates
        "batch_size": {
            "path": "train.batch_size",
            "type": "int",
            "grid": _pow2_grid(256, min(16384, max(512, rows // 100))),
        },
    }
    if model == "DLRM":
        params["embedding_dim"] = {
            "path": "model.embedding_dim",
            "type": "int",
            "grid": _pow2_grid(4, 16 if rows < 10**5 else 64 if rows < 10**7 else 128),
        }
        params["bottom_mlp"] = {
            "path": "model.bottom_mlp",
            "type": "categorical",
            "values": ["[64,32]", "[128,64]", "[256,128,64]"],
        }
        params["top_mlp"] = {
            "path": "model.top_mlp",
            "type": "categorical",
            "values": ["[64]", "[128,64]", "[256,128]"],
        }
    return params


# Training-framework knobs: name -> ((config key, lowest value) to try in order, highest as a share of the
# cores). A knob is tuned at the first key the composed config has: the cluster member decides whether threads
# or ranks per node exist, the connector which key sizes its loader (petastorm's reader pool has its own key,
# and at least one thread; the default connector's DataLoader workers start at 0, reading in the process).
FRAMEWORK_KNOBS = {
    "threads": ((("cluster.threads", 1),), 1.0),
    "loader_workers": ((("connector.workers_count", 1), ("connector.num_workers", 0)), 0.5),
    "ranks_per_node": ((("cluster.ranks_per_node", 1),), 0.5),
}


def framework_parameters(config: DictConfig) -> dict[str, dict[str, Any]]:
    """Training-framework knobs that exist in this config: threads, loader workers, ranks per node."""
    cores = int(config.cluster.get("cores_per_node") or os.cpu_count() or 1)
    params = {}
    for name, (keys, share) in FRAMEWORK_KNOBS.items():
        found = [(path, low) for path, low in keys if config_has(config, path)]
        if not found:
            # debug, not info: Hydra logs info to stdout, where advisor.dry_run prints the recipe as YAML
            log.debug("not tuning %s: the config has none of %s", name, ", ".join(p for p, _ in keys))
            continue
        (path, low), high = found[0], max(1, int(cores * share))
        if low < high:
            params[name] = {"path": path, "type": "int", "min": low, "max": high}
    return params


def cluster_parameters(config: DictConfig) -> dict[str, dict[str, Any]]:
    """Nodes, when the cluster is elastic (it names `max_nodes` above its `nodes`)."""
    cluster = config.cluster
    low, high = int(cluster.get("min_nodes") or cluster.get("nodes") or 1), cluster.get("max_nodes")
    if high and int(high) > low:
        return {"nodes": {"path": "cluster.nodes", "type": "int", "min": low, "max": int(high)}}
    return {}


def _merge(generated: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Per name: null drops a generated entry, a mapping updates it (or adds a new one)."""
    out = copy.deepcopy(generated)
    for name, spec in overrides.items():
        if spec is None:
            out.pop(name, None)
        else:
            out[name] = {**out.get(name, {}), **spec}
    return out


def generate(config: DictConfig, experiment: dict[str, Any]) -> dict[str, Any]:
    """The sweeper's recipe hook: the generated recipe, then `hydra.sweeper.*` and `advisor.*` over it."""
    advisor = OmegaConf.to_container(config.advisor, resolve=True)
    model = str(config.model.get("_target_", "")).rpartition(".")[2]
    rows = dataset_rows(config)
    if model not in QUALITY:
        log.warning("the advisor has no rules for model %r: it tunes the training knobs only", model)
    metric, objective, threshold = QUALITY.get(model, ("test_auc", "maximize", None))
    parameters = model_parameters(model, rows) | framework_parameters(config) | cluster_parameters(config)
    metrics = {
        metric: {"objective": objective, "threshold": threshold, "strategy": "optimize"},
        "train_time_s": {"objective": "minimize", "threshold": None, "strategy": "optimize"},
    }
    parameters = _merge(_merge(parameters, experiment["parameters"]), advisor.get("parameters") or {})
    metrics = _merge(_merge(metrics, experiment["metrics"]), advisor.get("metrics") or {})
    budget = (
        advisor.get("budget")
        or experiment.get("budget")
        or OBSERVATIONS_PER_PARAMETER * max(1, len(parameters))
    )
    bandwidth = advisor.get("parallel_bandwidth") or int(config.cluster.get("nodes") or 1)
    choices = config.hydra.runtime.choices if "hydra" in config else {}
    return {
        "name": f"bluewhale {choices.get('model', model)} on {choices.get('dataset', '?')}",
        "about": {"model": model, "dataset_rows": rows, "cluster": choices.get("cluster", "?")},
        "parameters": parameters,
        "metrics": metrics,
        "budget": int(budget),
        "parallel_bandwidth": int(bandwidth),
    }
