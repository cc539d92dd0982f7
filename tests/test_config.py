"""Every config group member composes; bad keys, members and stages fail before any work starts."""

from pathlib import Path

import pytest
from hydra.utils import get_class, instantiate

from bluewhale.app import CONF_DIR
from bluewhale.dataset import build
from bluewhale.pipeline import check_experiment, check_stages
from tests.conftest import compose_config, run_bluewhale

GROUPS = [
    "dataset",
    "recdp",
    "engine",
    "connector",
    "model",
    "advisor",
    "compression",
    "recall",
    "cluster",
    "experiment",
]
DEFAULTS = {
    "dataset": "synthetic_criteo",
    "recdp": "criteo_dlrm",
    "engine": "pandas",
    "connector": "pyarrow",
    "model": "dlrm",
    "advisor": "none",
    "compression": "none",
    "recall": "none",
    "cluster": "local",
}


def members(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def test_defaults_are_the_embedded_ones():
    cfg = compose_config()
    choices = cfg.hydra.runtime.choices
    assert {g: choices[g] for g in DEFAULTS} == DEFAULTS
    assert list(cfg.pipeline.stages) == ["process", "train", "evaluate"]


@pytest.mark.parametrize("group,member", [(g, m) for g in GROUPS for m in members(g)])
def test_every_member_composes(group, member):
    cfg = compose_config(f"{group}={member}")  # real data sets compose without a path: their twin runs
    assert cfg.hydra.runtime.choices[group] == member
    if group == "engine":
        assert instantiate(cfg.engine).name == member
    if group == "connector":
        assert instantiate(cfg.connector).name == member
    if group == "model":  # a model names its class and what it reads, labels included
        assert isinstance(get_class(cfg.model._target_), type) and "label" in cfg.model.inputs
    if (
        group == "experiment"
    ):  # a recipe's model, metrics and inputs agree with its pipeline, from config alone
        check_experiment(cfg, build(cfg.dataset))


def test_tracking_defaults_to_a_sqlite_file_in_the_launch_folder(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert compose_config().tracking.uri == f"sqlite:///{Path.cwd()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert compose_config().tracking.uri == "http://127.0.0.1:5000"


def test_stage_lists_are_checked():
    check_stages(["process"])
    check_stages(["process", "train", "evaluate"])
    check_stages(["profile"])  # the raw input alone; after process also the processed splits
    check_stages(["profile", "process", "profile", "train", "evaluate"])
    with pytest.raises(ValueError, match="unknown stage 'deploy'"):
        check_stages(["process", "deploy"])
    with pytest.raises(ValueError, match="stage 'evaluate' needs 'train' before it"):
        check_stages(["process", "evaluate"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.embeding_dim=8", "Could not override 'model.embeding_dim'"),
        ("model=transformer", "Could not find 'model/transformer'"),
        ("dataset=criteo_kaggle ~dataset.twin", "dataset.path is not set"),
        ("model=dien", "model.inputs.history: the pipeline makes no group or column"),
        ("evaluate.metrics=[auc,ndcg]", "evaluate.metrics: unknown metrics ['ndcg']"),
        ("evaluate.metrics=[map12]", "evaluate.group: the metrics ['map12'] rank rows within groups"),
        ("pipeline.stages=[train]", "stage 'train' needs 'process' before it"),
        (
            "dataset=movielens",
            "recdp=criteo_dlrm is a pipeline made for CriteoDays and CriteoFile data, not for "
            "MovieLens; the pipelines made for MovieLens: recdp=movielens_seq",
        ),
        ("advisor=sigopt advisor.dry_run=true", "advisor.dry_run=true needs a sweep"),
    ],
)
def test_bad_input_fails_before_any_work(tmp_path, override, message):
    result = run_bluewhale(tmp_path, *override.split(), check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "mlflow.db").exists()
