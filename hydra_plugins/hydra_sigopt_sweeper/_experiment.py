"""The experiment (recipe) as plain data: normalise it, check it against the composed config before any trial
runs, turn it into SigOpt's experiment body, and turn suggestions back into Hydra overrides."""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

PARAM_KEYS = {"path", "type", "min", "max", "log", "grid", "values", "conditions"}
CONDITIONAL_KEYS = {"path", "values"}
METRIC_KEYS = {"objective", "threshold", "strategy"}
TYPES = ("double", "int", "categorical")
OBJECTIVES = ("maximize", "minimize")
STRATEGIES = ("optimize", "constraint", "store")


class RecipeError(ValueError):
    """A recipe SigOpt would refuse or that cannot run: raised before any trial starts."""


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def normalise(experiment: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and drop parameters or metrics set to null (how a user removes a generated one)."""
    experiment = dict(_plain(experiment))
    params = {
        n: dict(_plain(s)) for n, s in (_plain(experiment.get("parameters")) or {}).items() if s is not None
    }
    for spec in params.values():
        spec.setdefault("type", "categorical" if "values" in spec else "double")
    metrics = {
        n: dict(_plain(s)) for n, s in (_plain(experiment.get("metrics")) or {}).items() if s is not None
    }
    for spec in metrics.values():
        spec.setdefault("objective", "maximize")
        spec.setdefault("strategy", "optimize")
        spec.setdefault("threshold", None)
    conditionals = {
        n: dict(_plain(s)) for n, s in (_plain(experiment.get("conditionals")) or {}).items() if s is not None
    }
    experiment["parameters"], experiment["metrics"] = params, metrics
    experiment["conditionals"] = conditionals
    experiment.setdefault("parallel_bandwidth", 1)
    experiment.setdefault("budget", None)
    return experiment


def inactive(experiment: dict[str, Any], assignments: dict[str, Any]) -> list[str]:
    """The parameters a suggestion leaves unused: those conditional on a choice it did not make."""
    return [n for n, s in experiment["parameters"].items() if not applies(s, assignments)]


def check_choice_paths(experiment: dict[str, Any], compose: Any, where: str = "hydra.sweeper") -> None:
    """Each conditional parameter's path against the config composed with each choice it applies under;
    `compose(overrides)` composes the sweep's config with those overrides added (e.g. ["model=logistic"])."""
    for cond, spec in experiment["conditionals"].items():
        for value in spec["values"]:
            names = [
                n
                for n, s in experiment["parameters"].items()
                if cond in (s.get("conditions") or {}) and applies(s, {cond: value})
            ]
            if not names:
                continue
            config = compose([f"{spec['path']}={value}"])
            for name in names:
                path = experiment["parameters"][name]["path"]
                if not config_has(config, path):
                    raise RecipeError(
                        f"{where}.parameters.{name}.path: unknown parameter path {path!r}: no such key in the "
                        f"config composed with {spec['path']}={value}"
                    )


def config_has(config: DictConfig, path: str) -> bool:
    """`path` names a key of the composed config (a list index too), whatever its value: null, ??? or an
    interpolation that does not resolve here all count, since the override replaces the value."""
    parent, _, leaf = path.rpartition(".")
    node = (
        OmegaConf.select(config, parent, default=None, throw_on_resolution_failure=False)
        if parent
        else config
    )
    if OmegaConf.is_dict(node):
        return leaf in node.keys()
    if OmegaConf.is_list(node):
        return leaf.isdigit() and int(leaf) < len(node)
    return False


def _check_parameter(name: str, spec: dict[str, Any], where: str, config: DictConfig | None) -> None:
    unknown = set(spec) - PARAM_KEYS
    if unknown:
        raise RecipeError(
            f"{where}.{name}: unknown keys {sorted(unknown)}; expected some of {sorted(PARAM_KEYS)}"
        )
    path = spec.get("path")
    if not path:
        raise RecipeError(
            f"{where}.{name}.path: missing; set the config key the value is written to (e.g. train.lr)"
        )
    if config is not None and not config_has(config, path):
        raise RecipeError(
            f"{where}.{name}.path: unknown parameter path {path!r}: no such key in the composed config"
        )
    kind = spec["type"]
    if kind not in TYPES:
        raise RecipeError(f"{where}.{name}.type: {kind!r} is not one of {list(TYPES)}")
    if kind == "categorical":
        values = spec.get("values") or []
        if len(set(map(str, values))) < 2:
            raise RecipeError(
                f"{where}.{name}.values: a categorical parameter needs two or more distinct values, got {values}"
            )
        return
    if spec.get("grid") is not None:
        grid = list(spec["grid"])
        if len(set(grid)) < 2:
            raise RecipeError(f"{where}.{name}.grid: needs two or more distinct values, got {grid}")
        if kind == "int" and any(int(v) != v for v in grid):
            raise RecipeError(f"{where}.{name}.grid: an int parameter needs whole numbers, got {grid}")
        low = min(grid)
    else:
        low, high = spec.get("min"), spec.get("max")
        if low is None or high is None:
            raise RecipeError(f"{where}.{name}: set min and max (or grid) for a {kind} parameter")
        if not low < high:
            raise RecipeError(f"{where}.{name}: empty range: min={low} must be below max={high}")
        if kind == "int" and (int(low) != low or int(high) != high):
            raise RecipeError(
                f"{where}.{name}: an int parameter needs whole-number bounds, got [{low}, {high}]"
            )
    if spec.get("log"):
        if kind != "double":
            raise RecipeError(f"{where}.{name}.log: a log scale needs type double, not {kind}")
        if low <= 0:
            raise RecipeError(f"{where}.{name}.log: a log scale needs positive values, got min={low}")


def _check_conditionals(experiment: dict[str, Any], config: DictConfig, where: str) -> None:
    """A conditional is a choice (e.g. `model`: dlrm or logistic) some parameters apply under only."""
    conditionals = experiment["conditionals"]
    for name, spec in conditionals.items():
        unknown = set(spec) - CONDITIONAL_KEYS
        if unknown:
            raise RecipeError(
                f"{where}.conditionals.{name}: unknown keys {sorted(unknown)}; expected {sorted(CONDITIONAL_KEYS)}"
            )
        if not spec.get("path") or not config_has(config, spec["path"]):
            raise RecipeError(
                f"{where}.conditionals.{name}.path: {spec.get('path')!r} is no key of the composed config"
            )
        values = [str(v) for v in spec.get("values") or []]
        if len(set(values)) < 2:
            raise RecipeError(
                f"{where}.conditionals.{name}.values: a choice needs two or more distinct values, got {values}"
            )
        if name in experiment["parameters"]:
            raise RecipeError(f"{where}: {name!r} is both a parameter and a conditional")
    for name, spec in experiment["parameters"].items():
        for cond, values in (spec.get("conditions") or {}).items():
            if cond not in conditionals:
                raise RecipeError(
                    f"{where}.parameters.{name}.conditions: {cond!r} is no conditional; "
                    f"expected one of {sorted(conditionals)}"
                )
            allowed = {str(v) for v in conditionals[cond]["values"]}
            wrong = sorted({str(v) for v in values} - allowed)
            if wrong or not values:
                raise RecipeError(
                    f"{where}.parameters.{name}.conditions.{cond}: {wrong or values} not among {sorted(allowed)}"
                )


def applies(spec: dict[str, Any], assignments: dict[str, Any]) -> bool:
    """A parameter applies to a suggestion when every condition it has names the suggested choice."""
    return all(
        str(assignments.get(cond)) in {str(v) for v in values}
        for cond, values in (spec.get("conditions") or {}).items()
    )


def _exclusive(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two parameters never apply together: some conditional has disjoint values in their conditions."""
    ca, cb = a.get("conditions") or {}, b.get("conditions") or {}
    return any(not {str(v) for v in ca[c]} & {str(v) for v in cb[c]} for c in set(ca) & set(cb))


def _check_metrics(metrics: dict[str, dict[str, Any]], budget: Any, where: str) -> None:
    if not metrics:
        raise RecipeError(
            f"{where}: no metrics; name at least one key of the task's returned dict to optimise"
        )
    for name, spec in metrics.items():
        unknown = set(spec) - METRIC_KEYS
        if unknown:
            raise RecipeError(
                f"{where}.{name}: unknown keys {sorted(unknown)}; expected some of {sorted(METRIC_KEYS)}"
            )
        if spec["objective"] not in OBJECTIVES:
            raise RecipeError(
                f"{where}.{name}.objective: {spec['objective']!r} is not one of {list(OBJECTIVES)}"
            )
        if spec["strategy"] not in STRATEGIES:
            raise RecipeError(
                f"{where}.{name}.strategy: {spec['strategy']!r} is not one of {list(STRATEGIES)}"
            )
        if spec["strategy"] == "constraint" and spec["threshold"] is None:
            raise RecipeError(f"{where}.{name}.threshold: a constraint metric needs a threshold")
    optimized = [n for n, s in metrics.items() if s["strategy"] == "optimize"]
    constraints = [n for n, s in metrics.items() if s["strategy"] == "constraint"]
    if not 1 <= len(optimized) <= 2:
        raise RecipeError(
            f"{where}: SigOpt optimises one or two metrics; strategy=optimize is set on {optimized}"
        )
    if len(optimized) == 1 and metrics[optimized[0]]["threshold"] is not None:
        raise RecipeError(
            f"{where}.{optimized[0]}.threshold: a threshold on the only optimised metric is refused by SigOpt; "
            "add a second optimised metric, or make it strategy: constraint"
        )
    if budget is None:
        why = (
            "SigOpt requires observation_budget with two optimised metrics"
            if len(optimized) == 2
            else "SigOpt requires observation_budget with constraint metrics"
            if constraints
            else "the sweeper needs it to know when to stop"
        )
        raise RecipeError(f"budget: missing; {why}")


def validate(
    experiment: dict[str, Any], config: DictConfig, fixed: dict[str, str], where: str = "hydra.sweeper"
) -> None:
    """Raise `RecipeError` naming the key at fault; `fixed` are the command-line overrides (path -> value)."""
    params = experiment["parameters"]
    if not params and not experiment["conditionals"]:
        raise RecipeError(f"{where}.parameters: empty; give at least one parameter to tune")
    _check_conditionals(experiment, config, where)
    paths: dict[str, list[str]] = {}
    for name, spec in params.items():
        # a conditional parameter's path is checked against its choice's config (`check_choice_paths`)
        _check_parameter(name, spec, f"{where}.parameters", None if spec.get("conditions") else config)
        clash = [other for other in paths.get(spec["path"], []) if not _exclusive(params[other], spec)]
        if clash:
            raise RecipeError(f"{where}.parameters: {clash[0]!r} and {name!r} both set {spec['path']}")
        paths.setdefault(spec["path"], []).append(name)
    for name, spec in [*params.items(), *experiment["conditionals"].items()]:
        if spec["path"] in fixed:
            raise RecipeError(
                f"{spec['path']} is set on the command line and tuned as parameter {name!r}; "
                f"drop one (to stop tuning it: ~{where}.parameters.{name} or set it to null)"
            )
    _check_metrics(experiment["metrics"], experiment["budget"], f"{where}.metrics")
    budget, bandwidth = experiment["budget"], experiment["parallel_bandwidth"]
    if not (isinstance(budget, int) and budget > 0):
        raise RecipeError(f"budget: expected a positive whole number of observations, got {budget!r}")
    if not (isinstance(bandwidth, int) and bandwidth > 0):
        raise RecipeError(
            f"parallel_bandwidth: expected a positive whole number of trials, got {bandwidth!r}"
        )


def sigopt_body(experiment: dict[str, Any], parallel_bandwidth: int) -> dict[str, Any]:
    """The body of SigOpt's experiment-create call."""
    parameters = []
    for name, spec in experiment["parameters"].items():
        param: dict[str, Any] = {"name": name, "type": spec["type"]}
        if spec["type"] == "categorical":
            param["categorical_values"] = [str(v) for v in spec["values"]]
        elif spec.get("grid") is not None:
            param["grid"] = [int(v) if spec["type"] == "int" else float(v) for v in spec["grid"]]
        else:
            cast = int if spec["type"] == "int" else float
            param["bounds"] = {"min": cast(spec["min"]), "max": cast(spec["max"])}
        if spec.get("log"):
            param["transformation"] = "log"
        if spec.get("conditions"):
            param["conditions"] = {c: [str(v) for v in vs] for c, vs in spec["conditions"].items()}
        parameters.append(param)
    metrics = []
    for name, spec in experiment["metrics"].items():
        metric = {"name": name, "objective": spec["objective"], "strategy": spec["strategy"]}
        if spec["threshold"] is not None:
            metric["threshold"] = float(spec["threshold"])
        metrics.append(metric)
    body = {
        "name": experiment.get("name") or "hydra sweep",
        "type": "offline",
        "parameters": parameters,
        "metrics": metrics,
        "observation_budget": experiment["budget"],
        "parallel_bandwidth": parallel_bandwidth,
    }
    if experiment.get("conditionals"):
        body["conditionals"] = [
            {"name": name, "values": [str(v) for v in spec["values"]]}
            for name, spec in experiment["conditionals"].items()
        ]
    return body


def overrides(experiment: dict[str, Any], assignments: dict[str, Any]) -> list[str]:
    """Hydra overrides that put one suggestion's values at their config paths: the choices first (e.g.
    `model=logistic`), then the parameters that apply to them (those of unchosen models are left out)."""
    out = [f"{s['path']}={assignments[n]}" for n, s in (experiment.get("conditionals") or {}).items()]
    for name, spec in experiment["parameters"].items():
        if not applies(spec, assignments):
            continue
        value = assignments[name]
        if spec["type"] == "int":
            value = int(value)
        elif spec["type"] == "double":
            value = repr(float(value))
        out.append(f"{spec['path']}={value}")
    return out


def outcome(experiment: dict[str, Any], returned: Any) -> tuple[dict[str, float] | None, str]:
    """The metric values a job returned, or None and why the observation counts as failed."""
    if not isinstance(returned, dict):
        return None, f"the task returned {type(returned).__name__}, not a dict of metrics"
    values = {}
    for name in experiment["metrics"]:
        value = returned.get(name)
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None, f"metric {name!r} is missing from the task's result"
        if not math.isfinite(value):
            return None, f"metric {name!r} is {value}"
        values[name] = value
    return values, ""
