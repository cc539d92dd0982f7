"""The compress stage end to end through the `bluewhale` command: from the model just trained, and from a
model already in MLflow; the compressed model is registered, is what `evaluate` scores, and a source
without a model fails naming the key with nothing registered."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from bluewhale.dataset import build
from bluewhale.pipeline import check_experiment
from tests.conftest import compose_config, run_bluewhale, runs

COMMON = ["dataset.rows=12000", "train.progress=false", "cluster.threads=1", "train.eval_batch_size=2048"]
FRESH = [*COMMON, "pipeline.stages=[process,train,compress,evaluate]"]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("compress")
    run_bluewhale(cwd, *FRESH, "compression=[prune,int8]", "compression.prune.finetune_epochs=0")
    first = runs(cwd)[0]
    source = f"runs:/{first.info.run_id}/model"
    stages = "pipeline.stages=[process,compress,evaluate]"
    run_bluewhale(
        cwd,
        *COMMON,
        stages,
        "compression=int8_embeddings",
        f"compression.source={source}",
        "compression.registered_model=dlrm-small",
    )
    second = runs(cwd)[0]
    bad = run_bluewhale(
        cwd,
        *COMMON,
        stages,
        "compression=int8",
        f"compression.source=runs:/{second.info.run_id}/model",
        check=False,
    )
    return cwd, first, second, bad


@pytest.mark.slow
def test_compressing_the_model_just_trained_registers_it_and_evaluate_scores_it(compressed):
    cwd, first, _, _ = compressed
    m = first.data.metrics
    assert first.data.tags["bluewhale.compression"] == "prune,int8"
    assert (
        m["compressed_disk_mb"] < m["original_disk_mb"]
        and m["compressed_parameters"] < m["original_parameters"]
    )
    assert m["test_auc"] == pytest.approx(m["original_test_auc"] + m["compressed_delta_test_auc"], abs=1e-9)
    assert abs(m["compressed_delta_test_auc"]) < 0.03 and m["compressed_throughput_rows_per_s"] > 0
    version = MlflowClient().get_model_version("bluewhale-dlrm-compressed", "1")
    assert version.run_id == first.info.run_id and version.tags["bluewhale.compression"] == "prune,int8"
    model = mlflow.pytorch.load_model("models:/bluewhale-dlrm-compressed/1")
    assert model.top[0].weight().shape[0] == 64  # top_mlp [128, 64] halved, int8
    config = mlflow.artifacts.load_text(f"runs:/{first.info.run_id}/config.yaml")
    assert "prune:" in config and "int8:" in config  # the resolved config says what ran


@pytest.mark.slow
def test_compressing_a_logged_model_makes_a_version_and_a_source_without_a_model_fails(compressed):
    cwd, first, second, bad = compressed
    m = second.data.metrics
    assert m["original_test_auc"] == pytest.approx(first.data.metrics["original_test_auc"], abs=1e-6)
    assert m["compression_memory_ratio"] > 1.2 and abs(m["compressed_delta_test_auc"]) < 0.005
    client = MlflowClient()
    assert [str(v.version) for v in client.search_model_versions("name='dlrm-small'")] == ["1"]
    assert (
        bad.returncode != 0
        and f"compression.source: no model at runs:/{second.info.run_id}/model" in bad.stderr
    )
    assert len(client.search_registered_models()) == 2  # the failure registered nothing


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["pipeline.stages=[process,compress,evaluate]", "compression=int8"],
            "stage 'compress' needs 'train'",
        ),
        (["pipeline.stages=[process,train,compress]", "compression=[int8,prune]"], "prune after int8"),
        (["compression=int8"], r"compression=\['int8'\]: add the compress stage"),
        (["pipeline.stages=[process,train,compress]"], "the compress stage needs techniques"),
    ],
)
def test_bad_compression_configs_fail_before_any_work(overrides, message):
    cfg = compose_config(*overrides)
    with pytest.raises(ValueError, match=message):
        check_experiment(cfg, build(cfg.dataset))
