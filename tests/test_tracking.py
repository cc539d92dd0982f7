"""What MLflow holds for a run: through a real tiny sweep, the experiment's kind, run names, dataset inputs,
learning curves, system metrics and the logged model; and `redact`, what keeps secrets out of MLflow.

Every job logs its resolved config as params (flattened, dotted keys) and as config.yaml (the tree); a
secret-looking key's value and a password inside a URL must not reach either, and every other value must
arrive exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from bluewhale.tracking import flatten, job_run, redact, redact_tree

SECRET = "hunter2-Zq9"


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "auth_token",
        "password",
        "db.password",
        "DB_PASSWORD",
        "passwd",
        "secret",
        "client_secret",
        "aws.secret_access_key",
        "api_key",
        "apikey",
        "apiKey",
        "api-key",
        "openai.API_KEY",
        "private_key",
        "credentials",
    ],
)
def test_a_secret_looking_key_hides_its_value(key):
    assert redact(key, SECRET) == "***"
    assert redact(key, 12345) == "***"  # whatever its type


@pytest.mark.parametrize(
    "url, shown",
    [
        (
            "postgresql://mlflow:s3cr3t@db.example.com:5432/mlflow",
            "postgresql://mlflow:***@db.example.com:5432/mlflow",
        ),
        ("https://bob:pa%40ss@Tracking.Example.com/", "https://bob:***@Tracking.Example.com/"),  # host kept
        ("mysql://u:p@ss:w@rd@host:3306/db", "mysql://u:***@host:3306/db"),  # unescaped @ and : inside
        ("redis://:s3cr3t@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),  # a password and no user
        ("postgresql://u:s3cr3t@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),  # IPv6 stays bracketed
        ("jdbc:postgresql://u:s3cr3t@host/db", "jdbc:postgresql://u:***@host/db"),
        ("--conf x=http://u:s3cr3t@h:1/p --other", "--conf x=http://u:***@h:1/p --other"),  # inside text
        ("http://a:s1@h1/x,http://b:s2@h2/y", "http://a:***@h1/x,http://b:***@h2/y"),  # every one of them
    ],
)
def test_a_password_inside_a_url_is_hidden_and_the_rest_of_the_url_kept(url, shown):
    assert redact("tracking.uri", url) == shown


@pytest.mark.parametrize(
    "key, value",
    [
        ("tracking.uri", "sqlite:////home/me/mlflow.db"),
        ("tracking.uri", "http://127.0.0.1:5000"),
        ("engine.master", "spark://node-1:7077"),
        ("dataset.path", "s3://bucket/criteo/day_0@v2"),  # an @ in the path is no password
        ("dataset.path", "http://user@mirror.example.com/criteo"),  # a user without password
        ("report.contact", "alice@example.com"),
        ("advisor.token_env", "SIGOPT_API_TOKEN"),  # the name of the variable that holds it, not the token
        ("hydra.sweeper.token_env", "MY_TOKEN"),
        ("advisor.api_url", "https://api.sigopt.com"),
        ("model.embedding_dim", 16),
        ("train.lr", 0.003),
        ("train.progress", True),
        ("cluster.threads", None),
        ("model.bottom_mlp", [64, 32]),
        ("pipeline.stages", ["process", "train", "evaluate"]),
        ("dataset.name", "twitter_recsys2021"),
    ],
)
def test_ordinary_values_pass_through_unchanged(key, value):
    out = redact(key, value)
    assert out == value and type(out) is type(value)


CONFIG = {
    "tracking": {"uri": "postgresql://mlflow:s3cr3t@db:5432/runs", "experiment": "bluewhale"},
    "advisor": {"token_env": "SIGOPT_API_TOKEN", "api_url": "https://api.sigopt.com", "budget": 10},
    "dataset": {
        "path": ["https://reader:s3cr3t@mirror/day_0", "/data/day_1"],
        "rows": 1000,
        "storage": {"credentials": {"user": "svc", "key": SECRET}, "region": "eu"},
    },
    "connector": {"s3": {"secret_access_key": SECRET, "access_key_id": "AKIAEXAMPLE"}},
    "services": [{"name": "feature-store", "token": SECRET}],
    "model": {"embedding_dim": 16, "top_mlp": [64]},
}


def test_the_logged_config_tree_keeps_no_secret_and_everything_else():
    """config.yaml: nested keys, URLs inside lists, secrets inside lists of mappings, a secret section."""
    tree = redact_tree(CONFIG)
    assert SECRET not in yaml.safe_dump(tree) and "s3cr3t" not in yaml.safe_dump(tree)
    assert tree["tracking"] == {"uri": "postgresql://mlflow:***@db:5432/runs", "experiment": "bluewhale"}
    assert tree["advisor"] == CONFIG["advisor"]
    assert tree["dataset"]["path"] == ["https://reader:***@mirror/day_0", "/data/day_1"]
    assert tree["dataset"]["storage"] == {"credentials": "***", "region": "eu"}
    assert tree["connector"]["s3"] == {"secret_access_key": "***", "access_key_id": "AKIAEXAMPLE"}
    assert tree["services"] == [{"name": "feature-store", "token": "***"}]
    assert tree["model"] == CONFIG["model"]
    assert CONFIG["connector"]["s3"]["secret_access_key"] == SECRET, "the config itself is left alone"


def test_the_logged_params_keep_no_secret_and_agree_with_the_tree():
    """Params: the dotted keys job_run logs (lists stay whole there, as one value)."""
    params = {k: redact(k, v) for k, v in flatten(CONFIG).items()}
    assert not [k for k, v in params.items() if SECRET in str(v) or "s3cr3t" in str(v)]
    assert params["tracking.uri"] == "postgresql://mlflow:***@db:5432/runs"
    assert params["dataset.path"] == ["https://reader:***@mirror/day_0", "/data/day_1"]
    assert params["dataset.storage.credentials.key"] == "***"
    assert params["services"] == [{"name": "feature-store", "token": "***"}]
    assert params["advisor.token_env"] == "SIGOPT_API_TOKEN"
    assert params["connector.s3.access_key_id"] == "AKIAEXAMPLE"
    assert params["dataset.rows"] == 1000 and params["model.top_mlp"] == [64]


def test_a_job_run_logs_no_secret_to_mlflow(tmp_path, monkeypatch):
    """The real path: `job_run` logs a config with secrets as params and config.yaml to an MLflow store."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    cfg = OmegaConf.create(
        {
            **CONFIG,
            "tracking": {"uri": uri, "experiment": "redact"},
            "engine": {"master": "spark://u:s3cr3t@m:7077"},
        }
    )
    with job_run(cfg) as run:
        run_id = run.info.run_id
    client = mlflow.MlflowClient(tracking_uri=uri)
    params = client.get_run(run_id).data.params
    logged = mlflow.artifacts.load_text(f"{client.get_run(run_id).info.artifact_uri}/config.yaml")
    for text in (*params.values(), logged):
        assert SECRET not in text and "s3cr3t" not in text
    assert params["engine.master"] == "spark://u:***@m:7077"
    assert params["connector.s3.secret_access_key"] == "***"
    assert params["advisor.token_env"] == "SIGOPT_API_TOKEN"
    assert params["model.embedding_dim"] == "16"
    assert yaml.safe_load(logged)["dataset"]["storage"] == {"credentials": "***", "region": "eu"}


# --- what a user sees in MLflow: a real (tiny) sweep through the `bluewhale` command (`tiny_sweep`) ------


@pytest.mark.slow
def test_the_experiment_opens_on_its_training_runs_named_for_what_they_ran(tiny_sweep):
    cwd, _, parent, children = tiny_sweep
    mlflow.set_tracking_uri(f"sqlite:///{cwd}/mlflow.db")  # other tests may have moved it
    experiment = mlflow.MlflowClient().get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # MLflow 3's UI reads it
    names = [c.info.run_name for c in children]
    assert names == [
        f"dlrm·synthetic_criteo·pandas embedding_dim={d} rows=4000 epochs=2 valid_fraction=0.2 batch_size=128"
        for d in (4, 8)
    ]


@pytest.mark.slow
def test_the_processed_data_is_each_runs_dataset_input(tiny_sweep):
    cwd, _, _, children = tiny_sweep
    mlflow.set_tracking_uri(f"sqlite:///{cwd}/mlflow.db")  # other tests may have moved it
    for child in children:
        inputs = {d.dataset.name: d for d in child.inputs.dataset_inputs}
        assert set(inputs) == {f"synthetic_criteo.{s}" for s in ("train", "valid", "test")}
        processed = child.data.tags["bluewhale.processed_path"]
        key = json.loads(Path(processed, "meta.json").read_text())["key"]
        for split, context in (("train", "training"), ("valid", "validation"), ("test", "testing")):
            dataset = inputs[f"synthetic_criteo.{split}"].dataset
            assert dataset.digest == key[:10]  # the processing cache key: same data, same digest
            assert [t.value for t in inputs[f"synthetic_criteo.{split}"].tags] == [context]
            profile = json.loads(dataset.profile)
            assert profile["num_rows"] == child.data.metrics[f"rows_{split}"]
            assert profile["input_rows"] == 4000
            columns = [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]]
            assert columns == [
                f.name for f in pq.read_schema(f"{processed}/{split}.parquet") if f.name[:2] != "__"
            ]
            assert json.loads(dataset.source)["uri"].endswith("train.txt")  # the raw input it came from


@pytest.mark.slow
def test_training_logs_curves_with_steps_and_system_metrics(tiny_sweep):
    cwd, _, _, children = tiny_sweep
    mlflow.set_tracking_uri(f"sqlite:///{cwd}/mlflow.db")  # other tests may have moved it
    client = mlflow.MlflowClient()
    sampled = []  # children with system metrics
    for child in children:
        steps_per_epoch = -(-int(child.data.metrics["rows_train"]) // 128)
        loss = client.get_metric_history(child.info.run_id, "step_train_loss")
        assert [m.step for m in loss] == list(range(5, 2 * steps_per_epoch + 1, 5))
        speed = client.get_metric_history(child.info.run_id, "throughput_samples_per_s")
        assert len(speed) == len(loss) and all(m.value > 0 for m in speed)
        valid = client.get_metric_history(child.info.run_id, "epoch_valid_auc")
        assert [m.step for m in valid] == [1, 2]
        cpu = client.get_metric_history(child.info.run_id, "system/cpu_utilization_percentage")
        memory = client.get_metric_history(child.info.run_id, "system/system_memory_usage_megabytes")
        if cpu:
            assert memory and all(m.value > 0 for m in memory)
            sampled.append(len(cpu))
    # MLflow's sampler thread gave one short child no sample once in the whole suite: at least one child has
    # its CPU over time (several samples), and every sampled child its memory
    assert sampled and max(sampled) >= 2


@pytest.mark.slow
def test_the_model_has_a_signature_an_example_and_scores_the_same_through_pyfunc(tiny_sweep):
    cwd, result, _, children = tiny_sweep
    mlflow.set_tracking_uri(f"sqlite:///{cwd}/mlflow.db")  # other tests may have moved it
    assert (
        "Pickle or CloudPickle" not in result.stderr
        and "Failed to validate serving input" not in result.stderr
    )
    child = children[0]
    info = mlflow.models.get_model_info(f"runs:/{child.info.run_id}/model")
    inputs = {spec.name: spec for spec in info.signature.inputs.inputs}
    assert set(inputs) == {"dense", "sparse"}
    assert (inputs["dense"].shape, inputs["sparse"].shape) == ((-1, 13), (-1, 26))
    assert str(inputs["sparse"].type) == "int64"
    assert info.saved_input_example_info["type"] == "ndarray"

    test = pq.read_table(f"{child.data.tags['bluewhale.processed_path']}/test.parquet").slice(0, 500)
    batch = {
        "dense": np.stack([test.column(f"I{i}").to_numpy() for i in range(1, 14)], 1).astype(np.float32),
        "sparse": np.stack([test.column(f"C{i}").to_numpy() for i in range(1, 27)], 1).astype(np.int64),
    }
    served = mlflow.pyfunc.load_model(f"runs:/{child.info.run_id}/model").predict(batch)
    module = mlflow.pytorch.load_model(f"runs:/{child.info.run_id}/model")
    with torch.no_grad():
        direct = torch.sigmoid(module.eval()({k: torch.from_numpy(v) for k, v in batch.items()})).numpy()
    np.testing.assert_array_equal(served, direct)
