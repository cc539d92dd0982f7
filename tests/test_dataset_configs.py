"""Every `conf/dataset` member composes and builds; every synthetic twin reads back with its planted signal."""

from pathlib import Path

import numpy as np
import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from bluewhale.app import CONF_DIR
from bluewhale.dataset import build
from bluewhale.dataset.planted import keys_table
from tests.conftest import compose_config, run_bluewhale, runs

REAL = {  # member -> a dataset.path in the shape it expects (nothing is read at build time)
    "criteo_kaggle": "/data/criteo/train.txt",
    "criteo_1tb": "/data/criteo1tb",
    "amazon_books": "/data/amazon_books",
    "outbrain": "/data/outbrain",
    "twitter_recsys2021": "/data/recsys2021/part-00000",
    "movielens": "/data/ml-1m/ratings.dat",
}
MODULES = {"criteo_kaggle": "criteo", "twitter_recsys2021": "twitter"}  # member -> reader module
MEMBERS = sorted(p.stem for p in (Path(CONF_DIR) / "dataset").glob("*.yaml"))


def test_every_real_format_has_a_synthetic_twin():
    assert sorted(m for m in MEMBERS if not m.startswith("synthetic_")) == sorted(REAL)
    twins = {m: "synthetic_criteo" if m == "criteo_kaggle" else f"synthetic_{m}" for m in REAL}
    assert all(twin in MEMBERS for twin in twins.values())


@pytest.mark.parametrize("member", sorted(REAL))
def test_real_members_read_their_path_or_else_run_their_planted_twin(member, tmp_path):
    data = build(compose_config(f"dataset={member}", f"dataset.path={REAL[member]}").dataset)
    assert type(data).__module__ == f"bluewhale.dataset.{MODULES.get(member, member)}"
    twin = build(compose_config(f"dataset={member}", f"dataset.twin.dir={tmp_path}").dataset)
    twin_member = "synthetic_criteo" if member == "criteo_kaggle" else f"synthetic_{member}"
    assert type(twin) is type(build(compose_config(f"dataset={twin_member}").dataset))
    with pytest.raises(InstantiationException, match="dataset.path is not set"):
        build(compose_config(f"dataset={member}", "~dataset.twin").dataset)


@pytest.mark.parametrize("member", [m for m in MEMBERS if m.startswith("synthetic_")])
def test_synthetic_members_write_read_and_plant(tmp_path, member):
    cfg = compose_config(
        f"dataset={member}", "dataset.rows=2000", "dataset.seed=3", f"dataset.dir={tmp_path}"
    )
    data = instantiate(cfg.dataset)
    table, bad = data.read()
    assert bad.count == 0 and table.num_rows >= 2000
    groups = data.groups() if hasattr(data, "groups") else {"label": [data.label], "sparse": data.sparse}
    assert {"label", "sparse"} <= set(groups)
    for name, columns in groups.items():
        assert set(columns) <= set(table.column_names), f"{member}: group {name} names missing columns"
    planted = data.planted_probability()
    if planted is not None:  # implicit feedback (amazon_books) plants a pair score instead
        assert planted.shape == (table.num_rows,) and ((planted > 0) & (planted < 1)).all()
    # planted(keys): the truth of every row, found by the hidden key columns the engines write
    assert set(data.planted_keys) <= set(table.column_names)
    truth = data.planted(keys_table(table, data.planted_keys))
    tasks = list(getattr(data, "labels", [data.label]))
    assert truth.shape == ((table.num_rows,) if len(tasks) == 1 else (table.num_rows, len(tasks)))
    assert truth.dtype == np.float64 and ((truth > 0) & (truth < 1)).all()
    if planted is not None and len(tasks) == 1:
        assert np.allclose(truth, planted)
    assert data.fingerprint() == instantiate(cfg.dataset).fingerprint()  # same input, same cache key


@pytest.mark.slow
def test_criteo_1tb_twin_processes_with_the_dlrm_pipeline(tmp_path):
    overrides = ["dataset=synthetic_criteo_1tb", "dataset.rows=20000", "recdp=criteo_1tb_dlrm"]
    run_bluewhale(tmp_path, *overrides, "pipeline.stages=[process]")
    run = runs(tmp_path)[0]
    # day_23 (the last of the twin's three days) is the test set, as in the real split
    assert (run.data.metrics["rows_train"], run.data.metrics["rows_test"]) == (13333, 6667)
    assert run.data.tags["bluewhale.cache"] == "miss"


@pytest.mark.slow
@pytest.mark.parametrize(
    "member, recdp, rows",
    [
        ("synthetic_movielens", "movielens_seq", 3000),
        ("synthetic_outbrain", "outbrain_wnd", 3000),
        ("synthetic_twitter_recsys2021", "twitter_recsys", 2000),
    ],
)
def test_each_twin_processes_with_its_pipeline(tmp_path, member, recdp, rows):
    run_bluewhale(
        tmp_path, f"dataset={member}", f"dataset.rows={rows}", f"recdp={recdp}", "pipeline.stages=[process]"
    )
    run = runs(tmp_path)[0]
    metrics = run.data.metrics
    split_rows = sum(metrics.get(f"rows_{split}", 0) for split in ("train", "valid", "test"))
    assert split_rows >= rows and metrics["bad_rows"] == 0
    processed = Path(run.data.tags["bluewhale.processed_path"])
    assert (processed / "train.parquet").exists() and (processed / "test.parquet").exists()
