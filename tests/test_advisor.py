"""The Smart Democratization Advisor (`advisor=sigopt`): the recipe it generates from model, data size and
cluster, user overrides over it, the dry run, and a real DLRM sweep recorded in MLflow."""

from __future__ import annotations

import json
import re
import time

import mlflow
import pytest
import yaml
from omegaconf import OmegaConf

from bluewhale.advisor.recipe import generate
from bluewhale.tracking import SWEEP_FILE, SweepRun
from hydra_plugins.hydra_sigopt_sweeper._experiment import RecipeError, normalise, overrides, validate
from tests.conftest import compose_config, run_bluewhale, runs

EMPTY = normalise({})


def recipe(*overrides: str) -> tuple[dict, object]:
    cfg = compose_config("advisor=sigopt", *overrides)
    return normalise(generate(cfg, EMPTY)), cfg


def test_the_recipe_tunes_model_framework_and_training_knobs_against_quality_and_time():
    generated, cfg = recipe("dataset.rows=20000")
    validate(generated, cfg, fixed={})
    assert cfg.hydra.runtime.choices["hydra/sweeper"] == "sigopt"
    params = generated["parameters"]
    assert {p["path"] for p in params.values()} >= {
        "train.lr",
        "train.batch_size",
        "model.embedding_dim",
        "model.bottom_mlp",
        "model.top_mlp",
        "cluster.threads",
        "connector.num_workers",  # the loader's workers (the recipe once named train.workers, which is no key)
    }
    assert params["lr"]["log"] and params["lr"]["min"] < cfg.train.lr < params["lr"]["max"]
    assert generated["metrics"]["test_auc"] == {
        "objective": "maximize",
        "threshold": 0.7,
        "strategy": "optimize",
    }
    assert generated["metrics"]["train_time_s"]["objective"] == "minimize"
    assert generated["budget"] == 10 * len(params)
    assert generated["parallel_bandwidth"] == 1  # one local node
    assert generated["about"] == {"model": "DLRM", "dataset_rows": 20000, "cluster": "local"}


def test_more_data_opens_wider_embeddings_and_bigger_batches():
    small, _ = recipe("dataset.rows=20000")
    large, _ = recipe("dataset.rows=5000000")
    assert max(small["parameters"]["embedding_dim"]["grid"]) < max(
        large["parameters"]["embedding_dim"]["grid"]
    )
    assert max(small["parameters"]["batch_size"]["grid"]) < max(large["parameters"]["batch_size"]["grid"])
    # at least ~100 steps an epoch on the small set
    assert max(small["parameters"]["batch_size"]["grid"]) * 100 <= 20000 * 2.6


def test_an_elastic_cluster_tunes_its_nodes_and_runs_a_trial_per_node():
    generated, cfg = recipe("dataset.rows=20000", "cluster.nodes=2", "+cluster.max_nodes=4")
    validate(generated, cfg, fixed={})
    assert generated["parameters"]["nodes"] == {"path": "cluster.nodes", "type": "int", "min": 2, "max": 4}
    assert generated["parallel_bandwidth"] == 2


def highest(spec: dict) -> object:
    """A value the parameter can take, away from the defaults: its upper bound, last grid value or category."""
    if spec["type"] == "categorical":
        return spec["values"][-1]
    return spec["grid"][-1] if spec.get("grid") else spec["max"]


ELASTIC = (
    "+cluster.cores_per_node=8",
    "++cluster.ranks_per_node=2",  # ++: local.yaml may name it (ranks on this machine)
    "cluster.nodes=2",
    "+cluster.max_nodes=3",
)


@pytest.mark.parametrize(
    "setting, loader_key, also_tuned",
    [
        ((), "connector.num_workers", set()),
        # petastorm sizes its own reader pool (from 1 thread: so with more than the 2 cores here)
        (("connector=petastorm", "+cluster.cores_per_node=8"), "connector.workers_count", set()),
        (ELASTIC, "connector.num_workers", {"ranks_per_node", "nodes"}),
    ],
)
def test_every_generated_parameter_lands_on_a_key_a_trial_config_has(setting, loader_key, also_tuned):
    """What a trial gets: the recipe's overrides compose (Hydra refuses a key its config lacks, so
    train.workers would stop here) and each value arrives at its key, loader workers included."""
    generated, cfg = recipe("dataset.rows=20000", *setting)
    validate(generated, cfg, fixed={})
    params = generated["parameters"]
    assert params["loader_workers"]["path"] == loader_key
    assert also_tuned <= set(params)
    assignments = {name: highest(spec) for name, spec in params.items()}
    assert OmegaConf.select(cfg, loader_key) != assignments["loader_workers"]
    trial = compose_config(
        "advisor=sigopt", "dataset.rows=20000", *setting, *overrides(generated, assignments)
    )
    for name, spec in params.items():
        expected = yaml.safe_load(str(assignments[name]))  # categorical values are override strings
        assert OmegaConf.select(trial, spec["path"]) == expected, name


def test_users_override_any_part_of_the_recipe():
    generated, _ = recipe(
        "dataset.rows=20000",
        "advisor.budget=7",
        "advisor.parallel_bandwidth=3",
        "+advisor.parameters.top_mlp=null",
        "+advisor.parameters.lr={max:0.01}",
        "+advisor.parameters.epochs={path:train.epochs,type:int,min:1,max:3}",
        "+advisor.metrics.test_auc={threshold:0.78}",
    )
    params = generated["parameters"]
    assert "top_mlp" not in params
    assert params["lr"] == {"path": "train.lr", "type": "double", "min": 3e-4, "max": 0.01, "log": True}
    assert params["epochs"] == {"path": "train.epochs", "type": "int", "min": 1, "max": 3}
    assert generated["metrics"]["test_auc"]["threshold"] == 0.78
    assert (generated["budget"], generated["parallel_bandwidth"]) == (7, 3)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "+advisor.parameters.lr={path:train.lrr}",
            "hydra.sweeper.parameters.lr.path: unknown parameter path 'train.lrr'",
        ),
        (
            "+advisor.parameters.lr={min:0.1}",
            "hydra.sweeper.parameters.lr: empty range: min=0.1 must be below max=0.03",
        ),
        (
            "+advisor.parameters.workers={path:train.workers,type:int,min:0,max:2}",
            "hydra.sweeper.parameters.workers.path: unknown parameter path 'train.workers'",
        ),
        (
            "+advisor.parameters.loader_workers={path:connector.workers}",
            "hydra.sweeper.parameters.loader_workers.path: unknown parameter path 'connector.workers'",
        ),
        (
            "+advisor.parameters.depth={path:model.top_mlp.depth,type:int,min:1,max:3}",
            "hydra.sweeper.parameters.depth.path: unknown parameter path 'model.top_mlp.depth'",
        ),
        (
            "+advisor.metrics.train_time_s=null",
            "a threshold on the only optimised metric is refused by SigOpt",
        ),
    ],
)
def test_bad_overrides_are_refused_with_the_key_at_fault(override, message):
    generated, cfg = recipe("dataset.rows=20000", override)
    with pytest.raises(RecipeError, match=re.escape(message)):
        validate(generated, cfg, fixed={})


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, message",
    [
        (
            "+advisor.parameters.lr={min:0.1}",
            "hydra.sweeper.parameters.lr: empty range: min=0.1 must be below max=0.03",
        ),
        (
            "+advisor.parameters.workers={path:train.workers,type:int,min:0,max:2}",
            "hydra.sweeper.parameters.workers.path: unknown parameter path 'train.workers'",
        ),
    ],
)
def test_a_bad_override_stops_the_bluewhale_command_before_any_trial(tmp_path, override, message):
    result = run_bluewhale(tmp_path, "-m", "advisor=sigopt", "dataset.rows=20000", override, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "data").exists(), "no trial ran"


@pytest.mark.slow
def test_dry_run_prints_the_recipe_as_yaml_and_runs_nothing(tmp_path):
    result = run_bluewhale(
        tmp_path, "-m", "advisor=sigopt", "advisor.dry_run=true", "dataset.rows=20000", "advisor.budget=9"
    )
    printed = yaml.safe_load(result.stdout)
    expected, _ = recipe("dataset.rows=20000", "advisor.budget=9")
    assert printed == expected
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "multirun").exists()


@pytest.mark.slow
def test_a_dlrm_sweep_records_trials_recipe_best_and_pareto_front_in_mlflow(tmp_path):
    started = time.monotonic()
    run_bluewhale(
        tmp_path,
        "-m",
        "advisor=sigopt",
        "advisor.budget=3",
        "advisor.seed=0",
        "dataset.rows=20000",
        "tracking.log_model=false",
        "train.progress=false",
        "hydra.sweep.dir=sweep",
    )
    wall_s = time.monotonic() - started
    all_runs = runs(tmp_path)
    (parent,) = [r for r in all_runs if r.data.tags.get("bluewhale.role") == "sweep"]
    children = [r for r in all_runs if r is not parent]
    assert len(children) == 3
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.data.tags["bluewhale.sweep_id"] == parent.data.tags["bluewhale.sweep_id"] for c in children)
    metrics = parent.data.metrics
    assert (metrics["trials"], metrics["observations"], metrics["failed_observations"]) == (3, 3, 0)
    # the sweep's time covers its trials, run one after another, and no more than the command took
    trials_s = sum((c.info.end_time - c.info.start_time) / 1000 for c in children)
    assert trials_s <= metrics["elapsed_s"] <= wall_s
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id, "advisor")}
    assert artifacts == {
        "advisor/recipe.yaml",
        "advisor/best_assignments.json",
        "advisor/pareto_front.json",
        "advisor/pareto_front.png",
    }
    logged = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/advisor/recipe.yaml"))
    assert logged["budget"] == 3 and "lr" in logged["parameters"]
    # the front holds the trials no other trial beats on both AUC and training time
    front = mlflow.artifacts.load_dict(f"runs:/{parent.info.run_id}/advisor/pareto_front.json")
    points = [(c.data.metrics["test_auc"], c.data.metrics["train_time_s"]) for c in children]
    expected = {p for p in points if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)}
    assert {(f["values"]["test_auc"], f["values"]["train_time_s"]) for f in front} == expected
    # each child ran the values SigOpt suggested for it
    observed = [
        json.loads(line)
        for line in (tmp_path / "sweep" / "sigopt_observations.jsonl").read_text().splitlines()
    ]
    assert len(observed) == 3
    for o in observed:
        (child,) = [
            c for c in children if float(c.data.params["train.lr"]) == pytest.approx(o["assignments"]["lr"])
        ]
        assert int(child.data.params["connector.num_workers"]) == o["assignments"]["loader_workers"]
        assert int(child.data.params["model.embedding_dim"]) == o["assignments"]["embedding_dim"]


@pytest.mark.slow  # MLflow makes its sqlite tables: ~15 s here
def test_a_restarted_sweep_goes_on_under_its_mlflow_parent_run(tmp_path):
    folder = tmp_path / "sweep"
    cfg = compose_config(
        "advisor=sigopt", f"hydra.sweep.dir={folder}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"
    )
    SweepRun().on_multirun_start(cfg)
    first = json.loads((folder / SWEEP_FILE).read_text())
    mlflow.MlflowClient().set_terminated(first["run_id"], "KILLED")  # as a killed sweep leaves it
    SweepRun().on_multirun_start(cfg)  # the same command again, on the same folder
    assert json.loads((folder / SWEEP_FILE).read_text()) == first
    (parent,) = runs(tmp_path)
    assert parent.info.run_id == first["run_id"] and parent.info.status == "RUNNING"


def test_a_recipe_on_its_planted_twin_sizes_by_the_twin_rows():
    generated, _ = recipe("experiment=dlrm_criteo", "dataset.twin.rows=300000")
    assert generated["about"]["dataset_rows"] == 300000
