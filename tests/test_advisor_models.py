"""Model selection by the advisor (`advisor.models`): the model is a SigOpt conditional among the models that
fit the data set, each model's own knobs apply only when it is chosen, and a sweep reports the best found."""

from __future__ import annotations

import json
import re

import mlflow
import pytest
import yaml
from omegaconf import OmegaConf

from bluewhale.advisor.recipe import generate
from hydra_plugins.hydra_sigopt_sweeper._experiment import (
    RecipeError,
    inactive,
    normalise,
    overrides,
    sigopt_body,
    validate,
)
from hydra_plugins.hydra_sigopt_sweeper._optimizer import LiteOptimizer
from tests.conftest import compose_config, run_bluewhale, runs

TARGETS = {"dlrm": "bluewhale.model.dlrm.DLRM", "logistic": "bluewhale.model.logistic.Logistic"}


def recipe(*overrides: str) -> tuple[dict, object]:
    cfg = compose_config("advisor=sigopt", "dataset.rows=20000", *overrides)
    return normalise(generate(cfg, normalise({}))), cfg


def test_auto_chooses_among_the_models_whose_inputs_the_pipeline_makes():
    """On Criteo (label, dense, sparse groups): DLRM, logistic regression and W&D read those; DIEN
    (histories), RecSys (Twitter's groups) and two towers (user and item ids) do not, and say why."""
    generated, cfg = recipe("advisor.models=auto")
    validate(generated, cfg, fixed={})
    assert generated["conditionals"] == {"model": {"path": "model", "values": ["dlrm", "logistic", "wnd"]}}
    left_out = generated["about"]["models_left_out"]
    assert {"dien", "recsys", "two_tower"} <= set(left_out)
    assert "hist_asin" in left_out["dien"]
    params = generated["parameters"]
    assert params["dlrm_top_mlp"]["conditions"] == {"model": ["dlrm"]}
    assert params["dlrm_top_mlp"]["path"] == "model.top_mlp"
    assert "conditions" not in params["lr"]  # training knobs are shared by every model
    assert not [n for n in params if n.startswith("logistic_")]  # nothing to size in a logistic regression
    LiteOptimizer(sigopt_body(generated, 1), [], 0)  # sigoptlite takes the conditional experiment


@pytest.mark.parametrize(
    "models, message",
    [
        ("[dlrm,dien]", "advisor.models: model 'dien' does not fit this data set: model.inputs.history"),
        ("[dlrm,xgboost]", "advisor.models: no model ['xgboost']"),
        ("[dlrm]", "model selection needs two or more models that fit the data set"),
    ],
)
def test_a_listed_model_that_cannot_run_stops_the_recipe(models, message):
    with pytest.raises(RecipeError, match=re.escape(message)):
        recipe(f"advisor.models={models}")


def test_each_suggestion_composes_to_its_models_config_with_only_its_models_knobs():
    generated, _ = recipe("advisor.models=[dlrm,logistic]")
    optimizer = LiteOptimizer(sigopt_body(generated, 1), [], 0)
    seen = set()
    for _ in range(4):  # the random start: seed 0 picks both models within four suggestions
        (suggestion,) = optimizer.ask(1)
        optimizer.tell(suggestion, {"test_auc": 0.7, "train_time_s": 1.0})
        chosen = suggestion.assignments["model"]
        seen.add(chosen)
        lines = overrides(generated, suggestion.assignments)
        trial = compose_config("advisor=sigopt", "dataset.rows=20000", *lines)
        assert trial.model._target_ == TARGETS[chosen]
        assert trial.train.lr == pytest.approx(suggestion.assignments["lr"])
        dlrm_knobs = [n for n in generated["parameters"] if n.startswith("dlrm_")]
        if chosen == "dlrm":
            for name in dlrm_knobs:
                expected = yaml.safe_load(str(suggestion.assignments[name]))
                assert OmegaConf.select(trial, generated["parameters"][name]["path"]) == expected
        else:  # SigOpt suggests no DLRM knob for a logistic trial; the sweep records them as inactive
            assert not set(dlrm_knobs) & set(suggestion.assignments)
            assert not [line for line in lines if line.startswith("model.")]
            assert sorted(inactive(generated, suggestion.assignments)) == sorted(dlrm_knobs)
    assert seen == {"dlrm", "logistic"}


@pytest.mark.slow
def test_a_model_selection_sweep_runs_each_trial_with_its_model_and_reports_the_best(tmp_path):
    run_bluewhale(
        tmp_path,
        "-m",
        "advisor=sigopt",
        "advisor.models=[dlrm,logistic]",
        "advisor.budget=3",
        "advisor.seed=0",  # suggests dlrm, then logistic twice
        "dataset.rows=2000",
        "tracking.log_model=false",
        "tracking.report=false",
        "tracking.system_metrics=false",
        "train.progress=false",
        "hydra.sweep.dir=sweep",
    )
    observed = [json.loads(line) for line in (tmp_path / "sweep" / "sigopt_observations.jsonl").open()]
    all_runs = runs(tmp_path)
    (parent,) = [r for r in all_runs if r.data.tags.get("bluewhale.role") == "sweep"]
    children = [r for r in all_runs if r is not parent]
    assert len(observed) == len(children) == 3
    assert {o["assignments"]["model"] for o in observed} == {"dlrm", "logistic"}
    for o in observed:
        (child,) = [c for c in children if float(c.data.params["train.lr"]) == o["assignments"]["lr"]]
        params = child.data.params
        model = o["assignments"]["model"]
        assert params["model._target_"] == TARGETS[model]
        if model == "dlrm":
            assert int(params["model.embedding_dim"]) == o["assignments"]["dlrm_embedding_dim"]
        else:
            assert "model.embedding_dim" not in params
            assert o["inactive"] == ["dlrm_embedding_dim", "dlrm_bottom_mlp", "dlrm_top_mlp"]
    best = max(observed, key=lambda o: o["values"]["test_auc"])
    summary = json.loads((tmp_path / "sweep" / "sigopt_summary.json").read_text())
    assert summary["best_test_auc"]["job"] == best["job"]
    assert parent.data.tags["bluewhale.advisor.best_model"] == best["assignments"]["model"]
    logged = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/advisor/recipe.yaml")
    assert yaml.safe_load(logged)["conditionals"]["model"]["values"] == ["dlrm", "logistic"]


@pytest.mark.slow
def test_dry_run_prints_the_model_selection_recipe_and_runs_nothing(tmp_path):
    """From the sweeper's own process (no job's HydraConfig there), stdout only the recipe's YAML."""
    result = run_bluewhale(
        tmp_path, "-m", "advisor=sigopt", "advisor.models=auto", "advisor.dry_run=true", "dataset.rows=20000"
    )
    printed = yaml.safe_load(result.stdout)
    expected, _ = recipe("advisor.models=auto")
    assert printed == expected
    assert not (tmp_path / "data").exists() and not (tmp_path / "multirun").exists()
