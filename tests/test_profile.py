"""The data profile: its figures against pandas computing them directly on the same rows, Spark's
aggregations against the in-memory profile, sampling said on the page, and the stage logging its page."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from bluewhale import recdp
from bluewhale.app import compose_experiment
from bluewhale.dataset import build
from bluewhale.pipeline import run
from bluewhale.profile import profile, write

ROWS = 4000


def setup(tmp_path, engine: str = "pandas", *overrides: str):
    cfg = compose_experiment(
        [f"dataset.rows={ROWS}", f"paths.data_dir={tmp_path}/data", f"engine={engine}", *overrides]
    )
    dataset, pipeline = build(cfg.dataset), OmegaConf.to_container(cfg.recdp, resolve=True)
    engine = instantiate(cfg.engine)
    return dataset, pipeline, engine, recdp.process(dataset, pipeline, engine, cfg.paths.processed_dir)


@pytest.fixture(scope="module")
def criteo(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("criteo")
    dataset, pipeline, engine, processed = setup(tmp_path)
    return dataset, pipeline, processed, profile(dataset, pipeline, engine, processed)


def test_raw_figures_are_what_pandas_computes_on_the_rows(criteo):
    dataset, _, _, report = criteo
    raw = dataset.read()[0].to_pandas()
    columns = report["tables"]["raw input"]["columns"]
    assert report["tables"]["raw input"]["rows"] == len(raw) == ROWS
    assert set(columns) == set(raw.columns)
    for name, stats in columns.items():
        values = raw[name].dropna()
        assert stats["missing_rate"] == pytest.approx(raw[name].isna().mean(), abs=1e-12)
        assert stats["distinct"] == values.nunique()
        counts = values.value_counts()
        assert [c for _, c in stats["top"]] == counts.head(10).tolist()
        assert all(counts[v] == c for v, c in stats["top"])
        assert stats["curve"][0] == [1, counts.iloc[0]] and stats["curve"][-1] == [
            len(counts),
            counts.iloc[-1],
        ]
    assert 0.05 < columns["I1"]["missing_rate"] < 0.5 and columns["C1"]["missing_rate"] > 0  # planted gaps
    for name in dataset.groups()["dense"]:  # histograms: every non-missing value in exactly one bin
        hist, values = columns[name]["hist"], raw[name].dropna().to_numpy(float)
        assert sum(hist["counts"]) == len(values)
        inner = np.histogram(values, bins=hist["edges"])[0]  # numpy's bins, away from the shared edges
        assert np.abs(inner - hist["counts"]).sum() <= 0.01 * len(values)
    assert any(columns[n]["hist"]["scale"] == "log1p" for n in dataset.groups()["dense"])  # heavy tails
    assert report["label_rates"]["raw input"]["label"] == pytest.approx(raw["label"].mean())


def test_processed_figures_label_rates_and_what_changed(criteo):
    _, _, processed, report = criteo
    meta = processed.meta
    changes = report["changes"]
    assert changes["rows"] == meta["rows"] and changes["input_rows"] == ROWS and changes["bad_rows"] == 0
    for split in meta["rows"]:
        table = processed.table(split).to_pandas()
        assert report["label_rates"][split]["label"] == pytest.approx(table["label"].mean())
        for name in meta["groups"]["sparse"]:
            assert changes["folded"][name]["zero_rate"][split] == pytest.approx((table[name] == 0).mean())
    assert (
        changes["folded"]["C1"]["raw_missing_rate"]
        == report["tables"]["raw input"]["columns"]["C1"]["missing_rate"]
    )
    # the frequency threshold folds rare values to id 0 on train; unseen ones add to it on test
    assert any(f["zero_rate"]["train"] > 0 for f in changes["folded"].values())


def test_page_is_one_self_contained_file_with_figures(criteo, tmp_path):
    page = write(criteo[3], tmp_path)
    text = page.read_text()
    assert text.count("<img") >= 3 and "data:image/png;base64," in text  # raw and train: curves, histograms
    for heading in (
        "Label rate per split",
        "What the pipeline changed",
        "raw input",
        "processed train split",
    ):
        assert heading in text
    assert "src='http" not in text and 'src="http' not in text
    assert (tmp_path / "profile.json").is_file() and not list(tmp_path.glob("*.tmp"))


def test_above_sample_rows_the_figures_come_from_a_sample_and_say_so(criteo, tmp_path):
    dataset, pipeline, _, full = criteo
    sampled = profile(
        dataset,
        pipeline,
        instantiate({"_target_": "bluewhale.engine.pandas.PandasEngine"}),
        None,
        {"sample_rows": 1000},
    )
    raw = sampled["tables"]["raw input"]
    assert raw["sampled"] == 1000 and raw["rows"] == ROWS
    for name, stats in raw["columns"].items():  # missing rates stay exact; counts come from the sample
        assert stats["missing_rate"] == full["tables"]["raw input"]["columns"][name]["missing_rate"]
        assert sum(c for _, c in stats["top"]) <= 1000
    assert "random sample of 1,000 rows" in write(sampled, tmp_path).read_text()


def test_list_columns_are_profiled_by_length(tmp_path):
    dataset, pipeline, engine, processed = setup(
        tmp_path, "pandas", "dataset=synthetic_movielens", "recdp=movielens_seq", "dataset.rows=3000"
    )
    report = profile(dataset, pipeline, engine, processed)
    table = processed.table("train").to_pandas()
    lists = [n for n, s in report["splits"]["train"]["columns"].items() if "lengths" in s]
    assert lists
    for name in lists:
        lengths = table[name].dropna().map(len)
        assert sum(report["splits"]["train"]["columns"][name]["lengths"]["counts"]) == len(lengths)


def test_profile_stage_logs_its_page_to_mlflow(tmp_path):
    cfg = compose_experiment(
        [
            "dataset.rows=3000",
            f"paths.data_dir={tmp_path}/data",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            "pipeline.stages=[profile,process,profile]",
        ]
    )
    run(cfg)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    (found,) = mlflow.search_runs(experiment_names=["bluewhale"], output_format="list")
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(found.info.run_id, "profile")}
    assert names == {"profile/profile.html", "profile/profile.json"}
    page = mlflow.artifacts.download_artifacts(run_id=found.info.run_id, artifact_path="profile/profile.html")
    assert (
        "What the pipeline changed" in open(page).read()
    )  # the second profile, after process, is the one kept


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.slow
def test_spark_aggregations_give_the_in_memory_figures(criteo, tmp_path):
    dataset, pipeline, processed, memory = criteo
    spark = instantiate(compose_experiment(["engine=spark"]).engine)
    report = profile(dataset, pipeline, spark, processed)
    assert report["computed_on"].startswith("Spark")
    assert report["rows"] == memory["rows"] and report["changes"] == memory["changes"]
    for split in report["label_rates"]:
        assert report["label_rates"][split] == pytest.approx(memory["label_rates"][split])
    for table in ("raw input", "processed train split"):
        for name, stats in report["tables"][table]["columns"].items():
            expected = memory["tables"][table]["columns"][name]
            for key in ("missing_rate", "distinct", "top", "curve", "zero_rate", "label_rate"):
                assert same(stats.get(key), expected.get(key)), (
                    table,
                    name,
                    key,
                    stats.get(key),
                    expected.get(key),
                )
            if "hist" in expected:
                assert stats["hist"]["counts"] == expected["hist"]["counts"], (table, name)
