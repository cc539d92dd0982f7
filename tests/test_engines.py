"""The same RecDP pipelines on pandas, Spark (local and a real standalone cluster) and Modin give the same
table, row for row; Spark's native Criteo reader keeps the bad-row policy and true line numbers."""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyspark
import pytest
import yaml

from bluewhale.dataset.criteo import BadRowError, CriteoFile
from bluewhale.dataset.synthetic_criteo import SyntheticCriteo
from bluewhale.engine.modin import ModinEngine
from bluewhale.engine.pandas import PandasEngine
from bluewhale.engine.spark import SparkEngine
from bluewhale.recdp import process
from tests.conftest import run_bluewhale, runs
from tests.test_recdp import TableData, history_reference, null_events

pytestmark = pytest.mark.slow
CONF = Path(__file__).resolve().parent.parent / "conf"
# small input splits, so even test files span several Spark partitions (line numbers cross them)
SPARK_CONF = {"spark.sql.files.maxPartitionBytes": 64 * 1024, "spark.sql.shuffle.partitions": 4}


@pytest.fixture(scope="module")
def spark():
    return SparkEngine(master="local[2]", conf=SPARK_CONF)


@pytest.fixture(scope="module")
def modin():
    return ModinEngine(workers=2, partitions=3)  # more partitions than workers: uneven boundaries


def outputs(data, recdp, engine, cache):
    """(processed, {split: its table as pandas}); each frame's `attrs["schema"]` is its parquet schema."""
    processed = process(data, recdp, engine, cache)
    frames = {}
    for s in processed.meta["rows"]:
        table = processed.table(s)
        frames[s] = table.to_pandas()
        frames[s].attrs["schema"] = {f.name: _type(f.type) for f in table.schema}
    return processed, frames


def _type(t: pa.DataType) -> str:
    """An Arrow type as text, without the name a writer gives list elements (`item` or `element`)."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_type(t.value_type)}>"
    return str(t)


def assert_same_tables(expected: dict, actual: dict) -> None:
    """Row for row: same columns in the same order (hidden ones included), the same types (pandas dtypes,
    and Arrow types where both tables were read from parquet), exact values but floats (relative 1e-5)."""
    for split in expected:
        want, got = expected[split], actual[split]
        assert list(got.columns) == list(want.columns), split
        assert dict(got.dtypes) == dict(want.dtypes), split
        if "schema" in want.attrs and "schema" in got.attrs:
            assert got.attrs["schema"] == want.attrs["schema"], split
        assert len(got) == len(want), split
        for c in want.columns:
            a, b = want[c], got[c]
            if pd.api.types.is_float_dtype(a.dtype):
                np.testing.assert_allclose(
                    b.to_numpy(float), a.to_numpy(float), rtol=1e-5, atol=1e-6, err_msg=c
                )
            else:
                assert [_plain(v) for v in b] == [_plain(v) for v in a], f"{split}.{c}"


def _plain(v):
    if isinstance(v, np.ndarray | list):
        return [_plain(x) for x in v]
    return None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else v


@pytest.fixture(scope="module")
def criteo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("criteo")
    return SyntheticCriteo(rows=3000, seed=3, dir=str(folder))


def criteo_dlrm() -> dict:
    """The DLRM pipeline, with a valid split carved out before the test rows."""
    recdp = yaml.safe_load((CONF / "recdp/criteo_dlrm.yaml").read_text())
    return recdp | {"split": recdp["split"] | {"valid_fraction": 0.1}}


@pytest.fixture(scope="module")
def criteo_pandas(criteo, tmp_path_factory):
    return outputs(criteo, criteo_dlrm(), PandasEngine(), tmp_path_factory.mktemp("pandas"))


def test_criteo_pipeline_is_the_same_on_spark(criteo, criteo_pandas, spark, tmp_path):
    processed, out = outputs(criteo, criteo_dlrm(), spark, tmp_path)
    assert_same_tables(criteo_pandas[1], out)
    assert processed.meta["cardinalities"] == criteo_pandas[0].meta["cardinalities"]
    # the parse's checkpoint is freed, or a long-lived session (a notebook) fills its heap run after run
    assert spark.session().sparkContext._jsc.getPersistentRDDs().isEmpty()
    assert processed.meta["rows"] == {"train": 2271, "valid": 300, "test": 429}
    assert not any(p.name.startswith("_scratch") for p in processed.path.iterdir())


def test_criteo_pipeline_is_the_same_on_modin(criteo, criteo_pandas, modin, tmp_path):
    processed, out = outputs(criteo, criteo_dlrm(), modin, tmp_path)
    assert_same_tables(criteo_pandas[1], out)
    assert processed.meta["cardinalities"] == criteo_pandas[0].meta["cardinalities"]


def events(n: int = 600, seed: int = 0) -> TableData:
    """A small click log with users, items, times, a list column and an item side table."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 30, n)
    item = rng.zipf(1.5, n) % 50
    table = pa.table(
        {
            "label": pa.array(rng.random(n) < 0.4, pa.int8()),
            "user": pa.array([f"u{u}" for u in user]),
            "item": pa.array([f"i{i:02d}" for i in item]),
            "ts": pa.array(np.sort(rng.integers(1_600_000_000_000, 1_600_900_000_000, n)), pa.int64()),
            "price": pa.array(
                np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(2, 1, n)), from_pandas=True
            ),
            "clicks": pa.array(rng.integers(-5, 1000, n), pa.int64(), mask=rng.random(n) < 0.1),
            "shop": pa.array([f"s{s}" for s in rng.integers(0, 12, n)]),
            "brand": pa.array([f"b{s}" for s in rng.integers(0, 8, n)]),
            "city": pa.array([None if r < 0.1 else f"c{r:.2f}" for r in rng.random(n)]),
            "tags": pa.array([[f"t{t}" for t in rng.integers(0, 9, rng.integers(0, 4))] for _ in range(n)]),
        }
    )
    items = pa.table({"item": [f"i{i:02d}" for i in range(50)], "cat": [f"k{i % 6}" for i in range(50)]})
    groups = {
        "label": ["label"],
        "dense": ["price", "clicks"],
        "sparse": ["user", "item", "shop", "brand", "city", "tags"],
        "timestamp": ["ts"],
    }
    return TableData(f"events{n}-{seed}", table, groups, {"items": items}, keys=("user", "item", "price"))


EVENTS = {
    "name": "events",
    "split": {
        "by": "time",
        "column": "ts",
        "test_after": 1_600_700_000_000,
        "valid_after": 1_600_600_000_000,
    },
    "ops": [
        {"op": "join", "table": "items", "keys": ["item"], "columns": ["cat"]},
        {
            "op": "sequence_history",
            "user": "user",
            "item": "item",
            "time": "ts",
            "max_len": 4,
            "columns": ["item", "cat"],
        },
        {"op": "negative_sample", "item": "item", "item_columns": ["cat"], "ratio": 2, "seed": 11},
        {"op": "time_features", "columns": ["ts"], "unit": "ms"},
        {"op": "fill_na", "columns": ["price"], "value": 0.0},
        {"op": "normalize", "columns": ["price"]},
        {"op": "bucketize", "columns": ["clicks"], "boundaries": [0, 10, 100]},
        {"op": "hash_mod", "columns": ["city", "user"], "buckets": 13},
        {"op": "count_encode", "columns": ["shop"]},
        {"op": "target_encode", "columns": ["brand"], "target": "label", "folds": 3, "smoothing": 5},
        {
            "op": "categorify",
            "columns": ["tags"],
            "shared": [["item", "hist_item"], ["cat", "hist_cat"]],
            "freq_threshold": 2,
        },
    ],
}


@pytest.fixture(scope="module")
def events_pandas(tmp_path_factory):
    return outputs(events(), EVENTS, PandasEngine(), tmp_path_factory.mktemp("events"))


def test_every_op_gives_the_same_table_on_spark(events_pandas, spark, tmp_path):
    processed, out = outputs(events(), EVENTS, spark, tmp_path)
    assert_same_tables(events_pandas[1], out)
    assert processed.meta["cardinalities"] == events_pandas[0].meta["cardinalities"]
    train = events_pandas[1]["train"]
    assert (train["label"] == 0).sum() > 2 * (train["label"] == 1).sum()  # negatives were added
    assert train["hist_item"].map(len).max() == 4
    hidden = [c for c in train.columns if c.startswith("__")]
    assert hidden == ["__row", "__sub", "__key_user", "__key_item", "__key_price"]
    assert set(train["__sub"]) == {0, 1, 2}


def test_every_op_gives_the_same_table_on_modin(events_pandas, modin, tmp_path):
    _, out = outputs(events(), EVENTS, modin, tmp_path)
    assert_same_tables(events_pandas[1], out)


def nulls(n: int = 400) -> TableData:
    """Events with nulls everywhere an op must give them a meaning: users, times (with ties), items and
    their categories (history columns), labels (a target), and the columns hashed."""
    rng = np.random.default_rng(8)
    table = null_events(n, seed=8)
    table = table.append_column("shop", pa.array([f"s{s}" for s in rng.integers(0, 5, n)]))
    table = table.append_column(
        "city", pa.array([f"c{s}" for s in rng.integers(0, 30, n)], mask=rng.random(n) < 0.2)
    )
    table = table.append_column("n", pa.array(rng.integers(-50, 50, n), pa.int64(), mask=rng.random(n) < 0.2))
    price = np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 20, n) / 4)
    table = table.append_column("price", pa.array(price, mask=rng.random(n) < 0.1))  # NaN and null
    groups = {
        "label": ["label"],
        "dense": ["price"],
        "sparse": ["user", "item", "cat", "shop", "city", "n"],
        "time": ["ts"],
    }
    return TableData(f"nulls{n}", table, groups, keys=("item", "cat", "ts", "price"))


NULLS = {
    "name": "nulls",
    "split": {"by": "time", "column": "ts", "test_after": 8, "valid_after": 6},  # no time: train
    "ops": [
        {"op": "negative_sample", "item": "item", "item_columns": ["cat"], "ratio": 2, "seed": 1},
        {
            "op": "sequence_history",
            "user": "user",
            "item": "item",
            "time": "ts",
            "max_len": 3,
            "columns": ["item", "cat"],
        },
        {"op": "target_encode", "columns": ["shop"], "target": "label", "folds": 3, "smoothing": 2},
        {"op": "hash_mod", "columns": ["city", "n", "price"], "buckets": 7},
        {"op": "categorify", "shared": [["item", "hist_item"]]},  # null elements of a list get id 0
    ],
}


@pytest.fixture(scope="module")
def nulls_pandas(tmp_path_factory):
    return outputs(nulls(), NULLS, PandasEngine(), tmp_path_factory.mktemp("nulls"))


def test_nulls_have_one_meaning_on_pandas(nulls_pandas):
    """What the engines are compared against: histories by their definition, nulls kept, ids for missing."""
    frames = nulls_pandas[1]
    whole = pd.concat([frames[s] for s in ("train", "valid", "test")], ignore_index=True)
    raw = pa.Table.from_pandas(
        whole.rename(columns={"__key_ts": "when", "__key_cat": "raw_cat"}), preserve_index=False
    )
    subs = whole["__sub"].tolist()
    want = history_reference(raw, "user", "when", "raw_cat", 3, subs)
    assert [list(h) for h in whole["hist_cat"]] == want  # strictly earlier real rows, null elements kept
    assert any(None in h for h in want) and any(len(h) == 3 for h in want)
    assert whole["city"].between(0, 7).all() and (whole["city"] == 0).any() and (whole["n"] == 0).any()
    assert ((whole["price"] == 0) == whole["__key_price"].isna()).all()  # NaN and null: missing, id 0
    assert nulls_pandas[0].meta["cardinalities"]["city"] == 8


@pytest.mark.parametrize("engine", ["spark", "modin"])
def test_nulls_have_the_same_meaning_on_every_engine(nulls_pandas, engine, request, tmp_path):
    processed, out = outputs(nulls(), NULLS, request.getfixturevalue(engine), tmp_path)
    assert_same_tables(nulls_pandas[1], out)
    assert processed.meta["cardinalities"] == nulls_pandas[0].meta["cardinalities"]


def broken_criteo(path: Path, rows: int, bad: dict[int, str]) -> Path:
    """A Criteo file of `rows` good lines, with line numbers in `bad` replaced by the given text."""
    rng = np.random.default_rng(1)
    lines = []
    for n in range(1, rows + 1):
        dense = [str(v) if v >= 0 else "" for v in rng.integers(-2, 50, 13)]
        sparse = [f"{v:08x}" for v in rng.integers(0, 40, 26)]
        lines.append(bad.get(n, "\t".join([str(n % 2), *dense, *sparse])))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("engine", ["spark", "modin"])  # Spark's reader; Modin's workers reading pieces
def test_parallel_reader_stops_at_the_first_bad_line_with_its_number(engine, request, tmp_path):
    engine = request.getfixturevalue(engine)
    recdp = yaml.safe_load((CONF / "recdp/criteo_dlrm.yaml").read_text())
    good = "\t".join(["1", *["3"] * 13, *["abcdef01"] * 26])
    path = broken_criteo(tmp_path / "day.txt", 3000, {1717: good.replace("\t3\t", "\tx3\t", 1), 2900: "1\t2"})
    with pytest.raises(
        BadRowError, match=r"day.txt:1717: field I1 expected an integer of at most 18 digits, got 'x3'"
    ):
        process(CriteoFile(str(path)), recdp, engine, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("engine", ["spark", "modin"])
def test_parallel_reader_skips_and_counts_bad_lines_like_pandas(engine, request, tmp_path):
    engine = request.getfixturevalue(engine)
    recdp = yaml.safe_load((CONF / "recdp/criteo_dlrm.yaml").read_text())
    bad = {5: "2\t" + "\t".join(["1"] * 39), 1500: "1\t2", 2999: "\t".join(["0", "-", *["1"] * 38])}
    data = CriteoFile(str(broken_criteo(tmp_path / "day.txt", 3000, bad)), bad_rows="skip")
    expected, want = outputs(data, recdp, PandasEngine(), tmp_path / "pandas")
    processed, got = outputs(data, recdp, engine, tmp_path / engine.name)
    assert_same_tables(want, got)
    assert processed.meta["bad_rows"] == expected.meta["bad_rows"]
    assert processed.meta["bad_rows"]["count"] == 3
    assert [line for line, _ in processed.meta["bad_rows"]["examples"]] == [5, 1500, 2999]


def test_bluewhale_runs_end_to_end_on_spark_and_modin(tmp_path):
    """Each engine processes and converts its own data: separate processing and connector caches (their
    keys leave the engine out, so a shared cache would let Modin train on Spark's output)."""
    for engine in ("spark", "modin"):
        run_bluewhale(
            tmp_path,
            f"engine={engine}",
            "dataset.rows=20000",
            "tracking.log_model=false",
            "engine.workers=2" if engine == "modin" else "engine.master='local[2]'",
            f"paths.processed_dir={tmp_path}/processed-{engine}",
            f"connector.cache_dir={tmp_path}/connector-{engine}",
        )
    spark_run, modin_run = runs(tmp_path)[::-1]
    for run, engine in ((spark_run, "spark"), (modin_run, "modin")):
        assert run.info.status == "FINISHED" and run.data.tags["bluewhale.cache"] == "miss"
        assert run.data.tags["bluewhale.connector.train"] == "miss"  # converted its own engine's output
        assert run.data.tags["bluewhale.processed_path"].startswith(f"{tmp_path}/processed-{engine}/")
        assert run.data.metrics["test_auc"] <= run.data.metrics["optimal_test_auc"]
    # the same table, converted the same way, trained with the same seed: the same model
    assert spark_run.data.metrics["test_auc"] == pytest.approx(modin_run.data.metrics["test_auc"], abs=1e-4)
    assert spark_run.data.params["engine._target_"] == "bluewhale.engine.spark.SparkEngine"
    assert modin_run.data.params["engine.backend"] == "dask"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def standalone(tmp_path):
    """A real Spark standalone master and one worker on 127.0.0.1, started with pyspark's own scripts."""
    home = Path(pyspark.__file__).parent
    daemon = str(home / "sbin" / "spark-daemon.sh")  # what start-master.sh runs (pyspark ships only this)
    port, ui = _free_port(), _free_port()
    env = os.environ | {
        "SPARK_HOME": str(home),
        "SPARK_LOG_DIR": str(tmp_path / "logs"),
        "SPARK_PID_DIR": str(tmp_path / "pids"),
        "SPARK_WORKER_DIR": str(tmp_path / "work"),
        "SPARK_IDENT_STRING": f"bluewhale-test-{port}",
    }
    master = f"spark://127.0.0.1:{port}"
    master_class, worker_class = (
        "org.apache.spark.deploy.master.Master",
        "org.apache.spark.deploy.worker.Worker",
    )
    subprocess.run(
        [
            daemon,
            "start",
            master_class,
            "1",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(ui),
        ],
        env=env,
        check=True,
    )
    worker_args = ["--host", "127.0.0.1", "--cores", "2", "--memory", "2g", "--webui-port", str(_free_port())]
    subprocess.run([daemon, "start", worker_class, "1", *worker_args, master], env=env, check=True)
    try:
        deadline = time.time() + 180
        while True:  # the master's JSON page lists the worker once it has registered
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as page:
                    if json.loads(page.read()).get("aliveworkers", 0) >= 1:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in (tmp_path / "logs").glob("*.out"))
                raise RuntimeError(f"Spark standalone cluster did not come up:\n{logs}")
            time.sleep(1)
        yield master
    finally:
        for cls in (worker_class, master_class):
            subprocess.run([daemon, "stop", cls, "1"], env=env, check=False)
        shutil.rmtree(tmp_path / "work", ignore_errors=True)


def test_spark_standalone_cluster_gives_the_same_table(standalone, criteo, criteo_pandas, tmp_path):
    engine = SparkEngine(master=standalone, conf=SPARK_CONF | {"spark.executor.memory": "1g"})
    try:
        processed, out = outputs(criteo, criteo_dlrm(), engine, tmp_path)
        assert engine.session().sparkContext.master == standalone
        assert_same_tables(criteo_pandas[1], out)
    finally:
        engine.session().stop()


def test_modin_on_ray_gives_the_same_table_as_pandas(tmp_path):
    tables = {}
    for engine in ("pandas", "modin"):
        run_bluewhale(
            tmp_path,
            f"engine={engine}",
            *(["engine.backend=ray", "engine.workers=2"] if engine == "modin" else []),
            "dataset.rows=5000",
            "pipeline.stages=[process]",
            f"paths.processed_dir={tmp_path}/processed-{engine}",
        )
        (folder,) = (tmp_path / f"processed-{engine}").iterdir()
        tables[engine] = {s: pd.read_parquet(folder / f"{s}.parquet") for s in ("train", "test")}
    assert_same_tables(tables["pandas"], tables["modin"])


def test_a_driver_memory_the_running_jvm_cannot_take_is_named_in_a_warning(spark, caplog):
    spark.session()  # this process's JVM, started with the engine's 4g
    with caplog.at_level("WARNING", logger="bluewhale.engine.spark"):
        spark.session()
        assert "does not apply" not in caplog.text
        SparkEngine(master="local[2]", conf=SPARK_CONF, driver_memory="64g").session()
    assert "engine.driver_memory=64g does not apply" in caplog.text
    with pytest.raises(ValueError, match="engine.driver_memory='lots': expected a JVM memory size"):
        SparkEngine(master="local[2]", driver_memory="lots")
