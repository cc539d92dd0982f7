"""The converter from Spark and Modin tables: the same rows land in the cache as from pandas, Spark
writes its parts itself (no collect to the driver), and the same frame hits the cache the second time."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from bluewhale.connector import Cache, Connector, convert
from tests.test_connector import FEATURES, ids_of, planted

pytestmark = pytest.mark.slow
ROWS = 3000


def test_a_spark_frame_converts_to_parts_the_loader_shards(tmp_path):
    pytest.importorskip("pyspark")
    from bluewhale.engine.spark import SparkEngine

    spark = SparkEngine(master="local[2]").session()
    pq.write_table(planted(np.arange(ROWS)), tmp_path / "input.parquet")
    frame = spark.read.parquet(str(tmp_path / "input.parquet")).repartition(3)
    cache = Cache(tmp_path / "cache")
    data = convert(frame, cache, rows_per_group=500)
    assert not data.cache_hit and data.rows == ROWS
    files = list((tmp_path / "cache").glob("*/part-*.parquet"))
    assert len(files) >= 6 and all(
        pq.read_metadata(f).num_rows <= 500 for f in files
    )  # 3 partitions x 500-row files
    assert convert(
        spark.read.parquet(str(tmp_path / "input.parquet")).repartition(3), cache, rows_per_group=500
    ).cache_hit
    connector = Connector(str(tmp_path / "cache"), num_workers=2)
    seen = []
    for rank in range(3):
        seen += ids_of(connector.loader(data, FEATURES, 64, train=True, rank=rank, world_size=3))
    assert sorted(seen) == list(range(ROWS))


def test_a_modin_frame_converts_like_pandas(tmp_path):
    pytest.importorskip("modin")
    from bluewhale.engine.modin import ModinEngine

    table = planted(np.arange(ROWS))
    frame = ModinEngine(workers=1).modin_frame(table)
    cache = Cache(tmp_path)
    data = convert(frame, cache, rows_per_group=500)
    assert data.url == convert(table.to_pandas(), cache, rows_per_group=500).url  # same content, same key
    assert ids_of(Connector(str(tmp_path)).loader(data, FEATURES, 100, train=False)) == list(range(ROWS))


def test_a_changed_spark_input_misses_the_cache(tmp_path):
    """The key of a Spark frame covers the files it reads: rewriting them is new data, not a hit."""
    pytest.importorskip("pyspark")
    from bluewhale.engine.spark import SparkEngine

    spark = SparkEngine(master="local[2]").session()
    source = tmp_path / "input.parquet"
    pq.write_table(planted(np.arange(ROWS)), source)
    cache = Cache(tmp_path / "cache")
    first = convert(spark.read.parquet(str(source)), cache, rows_per_group=1000)
    pq.write_table(planted(np.arange(ROWS, 2 * ROWS)), source)  # same plan, other rows
    second = convert(spark.read.parquet(str(source)), cache, rows_per_group=1000)
    assert not first.cache_hit and not second.cache_hit and first.url != second.url
    assert sorted(
        ids_of(Connector(str(tmp_path / "cache")).loader(second, FEATURES, 500, train=False))
    ) == list(range(ROWS, 2 * ROWS))


def test_a_changed_modin_frame_misses_the_cache(tmp_path):
    pytest.importorskip("modin")
    from bluewhale.engine.modin import ModinEngine

    engine, cache = ModinEngine(workers=1), Cache(tmp_path)
    first = convert(engine.modin_frame(planted(np.arange(ROWS))), cache, rows_per_group=500)
    second = convert(engine.modin_frame(planted(np.arange(1, ROWS + 1))), cache, rows_per_group=500)
    assert not second.cache_hit and first.url != second.url
    assert ids_of(Connector(str(tmp_path)).loader(second, FEATURES, 100, train=False)) == list(
        range(1, ROWS + 1)
    )
