"""The default experiment through the real `bluewhale` command: quality against the planted optimum,
what MLflow holds afterwards, and a sweep's parent and child runs."""

import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.metrics import roc_auc_score

from tests.conftest import run_bluewhale, runs

pytestmark = pytest.mark.slow
SMALL = ["dataset.rows=150000", "train.epochs=2"]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """One end-to-end run on a small planted data set, then a second one that reuses the processing."""
    cwd = tmp_path_factory.mktemp("e2e")
    run_bluewhale(cwd, *SMALL)
    run_bluewhale(cwd, *SMALL, "model.embedding_dim=8", "tracking.log_model=false")
    second, first = runs(cwd)
    return cwd, first, second


def test_dlrm_gets_close_to_the_planted_optimum(default_run):
    _, first, _ = default_run
    metrics = first.data.metrics
    assert metrics["optimal_test_auc"] > 0.8
    # 150k rows is a tenth of the default; with the default 1M rows the gap is under 0.01
    assert metrics["test_auc"] > metrics["optimal_test_auc"] - 0.03
    assert 0.3 < metrics["test_logloss"] < 0.5  # the base rate alone gives about 0.56


def test_mlflow_holds_the_contract(default_run):
    cwd, first, second = default_run
    for run in (first, second):
        assert run.info.status == "FINISHED"
        assert {"test_auc", "test_logloss", "optimal_test_auc", "train_time_s", "train_samples_per_s"} <= set(
            run.data.metrics
        )
        assert run.data.tags["mlflow.source.git.commit"]
        assert run.data.params["dataset.rows"] == "150000"
        assert run.data.params["model.bottom_mlp"] == "[64, 32]"
    assert first.data.tags["bluewhale.overrides"] == "dataset.rows=150000 train.epochs=2"
    assert second.data.params["model.embedding_dim"] == "8"
    assert (first.data.tags["bluewhale.cache"], second.data.tags["bluewhale.cache"]) == ("miss", "hit")
    processed = first.data.tags["bluewhale.processed_path"]
    assert processed == second.data.tags["bluewhale.processed_path"]
    assert pq.read_metadata(f"{processed}/test.parquet").num_rows == 21429
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(first.info.run_id)}
    assert {"config.yaml", "overrides.txt", "processed_meta.json"} <= artifacts
    config = mlflow.artifacts.load_text(f"runs:/{first.info.run_id}/config.yaml")
    assert "embedding_dim: 16" in config


def test_model_loaded_back_from_mlflow_scores_the_same(default_run):
    _, first, _ = default_run
    model = mlflow.pytorch.load_model(f"runs:/{first.info.run_id}/model")
    test = pq.read_table(f"{first.data.tags['bluewhale.processed_path']}/test.parquet")
    batch = {
        "dense": torch.tensor(np.stack([test.column(f"I{i}").to_numpy() for i in range(1, 14)], 1)),
        "sparse": torch.tensor(np.stack([test.column(f"C{i}").to_numpy() for i in range(1, 27)], 1)).long(),
    }
    with torch.no_grad():
        scores = torch.sigmoid(model.eval()(batch)).numpy()
    auc = roc_auc_score(test.column("label").to_numpy(), scores)
    assert auc == pytest.approx(first.data.metrics["test_auc"], abs=1e-6)


def test_a_sweep_makes_a_parent_run_and_a_child_per_job(tmp_path):
    run_bluewhale(tmp_path, "-m", "model.embedding_dim=4,8", "dataset.rows=20000", "tracking.log_model=false")
    all_runs = runs(tmp_path)
    parents = [r for r in all_runs if r.data.tags.get("bluewhale.role") == "sweep"]
    children = [r for r in all_runs if r not in parents]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials"] == 2
    assert parent.data.metrics["best_test_auc"] == max(c.data.metrics["test_auc"] for c in children)
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["bluewhale.sweep_id"] == parent.data.tags["bluewhale.sweep_id"]
    assert sorted(c.data.params["model.embedding_dim"] for c in children) == ["4", "8"]


def test_broken_input_file_stops_with_its_line_or_is_skipped_and_counted(tmp_path):
    good = "\t".join(["0", *["1"] * 13, *["0000000a"] * 26])
    lines = [good.replace("0\t", f"{i % 2}\t", 1) for i in range(3000)]
    lines[1234] = lines[1234][:30]  # truncated
    lines[2000] = lines[2000].replace("\t1\t", "\tabc\t", 1)
    path = tmp_path / "train.txt"
    path.write_text("\n".join(lines) + "\n")
    args = ["dataset=criteo_kaggle", f"dataset.path={path}", "tracking.log_model=false"]

    failed = run_bluewhale(tmp_path, *args, check=False)
    assert failed.returncode != 0
    assert f"{path}:1235: expected 40 tab-separated fields, got" in failed.stderr
    assert not any((tmp_path / "data" / "processed").glob("*")), "nothing half-written is left"

    run_bluewhale(tmp_path, *args, "dataset.bad_rows=skip")
    run = runs(tmp_path)[0]
    assert run.data.metrics["bad_rows"] == 2
    assert sum(run.data.metrics[f"rows_{split}"] for split in ("train", "valid", "test")) == 2998
    examples = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/bad_rows.json")["examples"]
    assert [line for line, _ in examples] == [1235, 2001]
    assert "optimal_test_auc" not in run.data.metrics  # real data has no planted optimum


def test_a_valid_split_is_written_scored_and_stops_training_early(tmp_path):
    run_bluewhale(
        tmp_path,
        "dataset.rows=30000",
        "recdp.split.valid_fraction=0.1",
        "train.epochs=20",
        "train.patience=1",
        "tracking.log_model=false",
    )
    (run,) = runs(tmp_path)
    metrics = run.data.metrics
    assert (metrics["rows_train"], metrics["rows_valid"], metrics["rows_test"]) == (22714, 3000, 4286)
    # learnt from train: within reach of the planted optimum of the same rows (small data: a wide margin)
    assert metrics["optimal_test_auc"] - 0.06 < metrics["test_auc"] <= metrics["optimal_test_auc"]
    # early stopping: fewer epochs than allowed, and the kept epoch is the best valid one
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "epoch_valid_auc")
    assert metrics["epochs"] < 20 and len(history) == metrics["epochs"]
    best = max(history, key=lambda m: m.value)
    assert metrics["best_epoch"] == best.step and metrics["epochs"] == best.step + 1
    assert metrics["valid_auc"] == pytest.approx(best.value, abs=1e-9)  # the best epoch's weights were kept
