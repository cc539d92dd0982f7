"""The recall stage end to end: two towers trained on the planted MovieLens twin, an index over their item
vectors logged to MLflow and served back by `Index.load(run_id)` and the command; the model beats the
popularity baseline on held-out ratings (the twin plants user-item affinity)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bluewhale.dataset import build
from bluewhale.pipeline import check_experiment
from bluewhale.recall import Index
from tests.conftest import compose_config, run_bluewhale, runs

RECIPE = [
    "experiment=two_tower_movielens",
    "dataset.twin.rows=30000",
    "train.epochs=2",
    "train.progress=false",
    "cluster.threads=1",
    "tracking.log_model=false",
]


@pytest.fixture(scope="module")
def recall_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("recall")
    run_bluewhale(cwd, *RECIPE, "recall=ivf_flat")
    bad = run_bluewhale(cwd, *RECIPE, "recall=ivf_pq", "recall.m=5", check=False)
    return cwd, runs(cwd)[1], bad


@pytest.mark.slow
def test_two_towers_beat_popularity_and_the_index_matches_exact_search(recall_run):
    _, run, _ = recall_run
    m = run.data.metrics
    assert m["recall_at_10"] >= 0.9 and m["recall_build_time_s"] > 0 and m["recall_qps"] > 0
    assert m["hit_rate_at_10"] > m["popularity_hit_rate_at_10"]
    assert m["recall_items"] > 100 and m["recall_queries"] > 100


@pytest.mark.slow
def test_the_logged_index_serves_users_from_python_and_the_command(recall_run):
    cwd, run, bad = recall_run
    index = Index.load(run.info.run_id)
    user = next(iter(index.users))
    items, scores = index.search([user], 5)
    assert items.shape == (1, 5) and (items > 0).all() and scores[0, 0] >= scores[0, -1]
    out = subprocess.run(
        [sys.executable, "-m", "bluewhale.recall.cli", run.info.run_id, "--users", str(user), "-k", "5"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)["items"] == items[0].tolist()
    assert (
        bad.returncode != 0
        and "recall.m: 5 PQ subquantisers do not divide the vectors' dimension 32" in bad.stderr
    )


def test_a_recall_stage_needs_a_model_and_an_index():
    for overrides, message in (
        (["pipeline.stages=[process,recall]", "recall=flat"], "stage 'recall' needs 'train'"),
        (["pipeline.stages=[process,train,recall]"], "the recall stage needs an index"),
    ):
        cfg = compose_config(*overrides)
        with pytest.raises(ValueError, match=message):
            check_experiment(cfg, build(cfg.dataset))
