"""The recipe generator: what to tune, over which ranges, against which metrics and with what budget, worked
out from the chosen model, the data set's size and the cluster. Users override any part under `advisor.`."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.hydra_sigopt_sweeper._experiment import RecipeError, config_has

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


def training_parameters(rows: int | None) -> dict[str, dict[str, Any]]:
    """Optimiser knobs every model has; bigger batches only pay off with more rows."""
    rows = rows or 10**7
    return {
        "lr": {"path": "train.lr", "type": "double", "min": 3e-4, "max": 3e-2, "log": True},
        # at least ~100 steps an epoch: bigger batches than that starve a small data set of updates
        "batch_size": {
            "path": "train.batch_size",
            "type": "int",
            "grid": _pow2_grid(256, min(16384, max(512, rows // 100))),
        },
    }


def model_parameters(model: str, rows: int | None) -> dict[str, dict[str, Any]]:
    """Model and optimiser knobs; wider embeddings and bigger batches only pay off with more rows."""
    return training_parameters(rows) | architecture_parameters(model, rows)


def architecture_parameters(model: str, rows: int | None) -> dict[str, dict[str, Any]]:
    """The knobs of the model itself (by the class name its `_target_` ends with); none for a model the
    advisor has no rules for (logistic regression has nothing to size)."""
    rows = rows or 10**7
    params: dict[str, dict[str, Any]] = {}
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


def model_class(model: DictConfig) -> str:
    """The class name a model config's `_target_` ends with (DLRM, Logistic, ...)."""
    return str(model.get("_target_", "")).rpartition(".")[2]


@contextmanager
def _composer(config: DictConfig) -> Iterator[tuple[list[str], Callable[[list[str]], DictConfig]]]:
    """The `model` group's members, and a function composing this config with overrides added (e.g.
    ["model=logistic"]), as a trial of the sweep would get it: through the running Hydra app's config loader,
    or (outside one, as in tests) through a Hydra set up on this config's own search path."""
    from hydra import initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    task = [o for o in config.hydra.overrides.task if o.split("=", 1)[0].lstrip("+~") != "model"]

    def use(loader: Any) -> tuple[list[str], Callable[[list[str]], DictConfig]]:
        return loader.get_group_options("model"), lambda extra: loader.load_sweep_config(
            config, [*task, *extra]
        )

    if GlobalHydra.instance().is_initialized():
        yield use(GlobalHydra.instance().config_loader())
        return
    (main,) = [s for s in config.hydra.runtime.config_sources if s.provider == "main"]
    if main.schema == "file":
        setup = initialize_config_dir(config_dir=main.path, version_base="1.3")
    else:
        setup = initialize_config_module(config_module=main.path, version_base="1.3")
    with setup:
        yield use(GlobalHydra.instance().config_loader())


def model_choices(config: DictConfig, requested: Any) -> tuple[dict[str, DictConfig], dict[str, str]]:
    """The models to choose among (`advisor.models`: a list of `model` group members, or `auto` for all of
    them, one member per model class, the first by name): name -> the sweep's config composed with it, for
    those that fit the data set (their inputs are
    groups the RecDP pipeline will output, and their own config checks pass: the checks a run makes before
    any work); and name -> why, for the members `auto` left out. A listed model that does not fit is an error.
    """
    from hydra.core.hydra_config import HydraConfig

    from bluewhale.dataset import build as build_dataset
    from bluewhale.pipeline import check_experiment

    auto = requested == "auto"
    if not auto and (isinstance(requested, str) or not requested):
        raise RecipeError(f"advisor.models: expected a list of models or auto, got {requested!r}")
    if not HydraConfig.initialized():  # a sweeper's own process: paths resolve through `hydra:` as in a job
        HydraConfig.instance().set_config(config)
    dataset = build_dataset(config.dataset)  # describes the data; reads or writes nothing yet
    fitting, left_out = {}, {}
    with _composer(config) as (options, compose):
        names = options if auto else [str(m) for m in requested]
        unknown = sorted(set(names) - set(options))
        if unknown:
            raise RecipeError(f"advisor.models: no model {unknown}; the models: {sorted(options)}")
        classes: dict[str, str] = {}  # model class -> the member auto took for it
        for name in dict.fromkeys(names):
            candidate = compose([f"model={name}"])
            target = candidate.model.get("_target_")
            if auto and target in classes:  # a variant of a model (e.g. dlrm_fused: its optimiser) is a
                left_out[name] = f"the same model as {classes[target]}"  # setting, not another model
                continue
            classes.setdefault(target, name)
            try:
                with open_dict(candidate):
                    job = copy.deepcopy(candidate)
                    del job["hydra"]
                check_experiment(job, dataset)
            except (ValueError, KeyError, TypeError) as err:
                if not auto:
                    raise RecipeError(
                        f"advisor.models: model {name!r} does not fit this data set: {err}"
                    ) from err
                left_out[name] = str(err) if len(str(err)) <= 160 else f"{str(err)[:157]}..."
                continue
            fitting[name] = candidate
    if len(fitting) < 2:
        raise RecipeError(
            f"advisor.models={requested}: model selection needs two or more models that fit the data set; "
            f"fitting: {sorted(fitting)}; left out: {left_out}"
        )
    return fitting, left_out


def selection_parameters(
    choices: dict[str, DictConfig], rows: int | None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The `model` choice as a SigOpt conditional, and each model's own knobs as parameters named
    `<model>_<knob>` that apply only when that model is chosen (SigOpt suggests them only then)."""
    params = {}
    for name, candidate in choices.items():
        for knob, spec in architecture_parameters(model_class(candidate.model), rows).items():
            if not config_has(candidate, spec["path"]):
                raise RecipeError(f"advisor.models: model {name!r} has no key {spec['path']} to tune {knob}")
            params[f"{name}_{knob}"] = {**spec, "conditions": {"model": [name]}}
    return {"model": {"path": "model", "values": list(choices)}}, params


def generate(config: DictConfig, experiment: dict[str, Any]) -> dict[str, Any]:
    """The sweeper's recipe hook: the generated recipe, then `hydra.sweeper.*` and `advisor.*` over it.

    With `advisor.models` set, the model itself is tuned too: a choice among the models that fit the data
    set, each with its own knobs (conditional on the choice), the training and framework knobs shared."""
    advisor = OmegaConf.to_container(config.advisor, resolve=True)
    model = model_class(config.model)
    rows = dataset_rows(config)
    conditionals, left_out = {}, {}
    if advisor.get("models") is not None:
        choices, left_out = model_choices(config, advisor["models"])
        conditionals, own = selection_parameters(choices, rows)
        classes = [model_class(c.model) for c in choices.values()]
        model = next((c for c in classes if c in QUALITY), classes[0])
        parameters = training_parameters(rows) | own
    else:
        if model not in QUALITY:
            log.warning("the advisor has no rules for model %r: it tunes the training knobs only", model)
        parameters = model_parameters(model, rows)
    metric, objective, threshold = QUALITY.get(model, ("test_auc", "maximize", None))
    parameters = parameters | framework_parameters(config) | cluster_parameters(config)
    metrics = {
        metric: {"objective": objective, "threshold": threshold, "strategy": "optimize"},
        "train_time_s": {"objective": "minimize", "threshold": None, "strategy": "optimize"},
    }
    parameters = _merge(_merge(parameters, experiment["parameters"]), advisor.get("parameters") or {})
    metrics = _merge(_merge(metrics, experiment["metrics"]), advisor.get("metrics") or {})
    budget = (
        advisor.get("budget")
        or experiment.get("budget")
        or OBSERVATIONS_PER_PARAMETER * max(1, len(parameters) + len(conditionals))
    )
    bandwidth = advisor.get("parallel_bandwidth") or int(config.cluster.get("nodes") or 1)
    groups = config.hydra.runtime.choices if "hydra" in config else {}
    recipe = {
        "name": f"bluewhale {groups.get('model', model)} on {groups.get('dataset', '?')}",
        "about": {"model": model, "dataset_rows": rows, "cluster": groups.get("cluster", "?")},
        "parameters": parameters,
        "metrics": metrics,
        "budget": int(budget),
        "parallel_bandwidth": int(bandwidth),
    }
    if conditionals:
        models = conditionals["model"]["values"]
        recipe["name"] = f"bluewhale model selection ({', '.join(models)}) on {groups.get('dataset', '?')}"
        recipe["about"] |= {
            "model": "chosen by the advisor",
            "models": list(models),
            "models_left_out": left_out,
        }
        recipe["conditionals"] = conditionals
    return recipe
