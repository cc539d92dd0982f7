"""How the Spark engine reads a data set: natively by Spark for every published format (Criteo TSV,
MovieLens, Twitter RecSys 2021, Amazon Books reviews, Outbrain CSVs), else through the data set's own
`read()` (an Arrow table handed to Spark from the driver; fine only for small in-memory inputs).

Every reader returns a DataFrame with the hidden columns (row position, sub-row, split index, and a raw
copy `__key_<c>` of each of the data set's `planted_keys`), where the row position counts the rows kept,
in file order: the same numbering the pandas engine gives them.
The shared line machinery is in `lines.py`; each format's parse is in a module of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from bluewhale.dataset.amazon_books import AmazonBooks
from bluewhale.dataset.criteo import CriteoFile
from bluewhale.dataset.criteo_1tb import DAY_FILE, CriteoDays
from bluewhale.dataset.movielens import MovieLens
from bluewhale.dataset.outbrain import Outbrain
from bluewhale.dataset.twitter import TwitterRecSys2021
from bluewhale.engine import (
    PART,
    ROW,
    SUB,
    add_hidden,
    check_input_columns,
    key_column,
    planted_keys,
    position_bounds,
)
from bluewhale.engine.spark_readers.amazon_books import amazon_sides, read_amazon_books
from bluewhale.engine.spark_readers.criteo import read_criteo
from bluewhale.engine.spark_readers.movielens import movielens_sides, read_movielens
from bluewhale.engine.spark_readers.outbrain import outbrain_sides, read_outbrain
from bluewhale.engine.spark_readers.twitter import read_twitter
from bluewhale.recdp.ops import Split

log = logging.getLogger(__name__)


def read_input(spark: SparkSession, dataset, split: Split, scratch: Path) -> tuple[DataFrame, int, dict]:
    """(rows with hidden columns, number of rows kept, bad rows {count, examples}) for `dataset`."""
    if isinstance(dataset, CriteoFile):
        dataset.prepare()
        df, bad, kept = read_criteo(spark, [Path(dataset.path)], dataset.bad_rows, scratch)
    elif isinstance(dataset, CriteoDays):  # day files in order, each row with its day number
        files = dataset.files()
        days = [int(m.group(1)) if (m := DAY_FILE.match(f.name)) else i for i, f in enumerate(files)]
        df, bad, kept = read_criteo(spark, files, dataset.bad_rows, scratch, days=days)
    elif isinstance(dataset, MovieLens):
        df, bad, kept = read_movielens(spark, dataset, scratch)
    elif isinstance(dataset, TwitterRecSys2021):
        df, bad, kept = read_twitter(spark, dataset, scratch)
    elif isinstance(dataset, AmazonBooks):
        df, bad, kept = read_amazon_books(spark, dataset, scratch)
    elif isinstance(dataset, Outbrain):
        df, bad, kept = read_outbrain(spark, dataset, scratch)
    else:
        log.warning(
            "the Spark engine has no native reader for %s: reading it on the driver", type(dataset).__name__
        )
        table, report = dataset.read()
        df = spark.createDataFrame(add_hidden(table, split, keys=planted_keys(dataset)))
        return df, table.num_rows, {"count": report.count, "examples": report.examples}
    df = with_split(df, kept, split, planted_keys(dataset))
    return df, kept, {"count": bad.count, "examples": bad.examples}


def read_side_tables(spark: SparkSession, dataset, scratch: Path) -> dict[str, DataFrame]:
    """The data set's side tables (for `join`) as Spark DataFrames, read natively where the format allows.

    Each is parsed by Spark once (`read_input` leaves the parse in `scratch`, counted with the bad
    rows), except two the data set's own reader reads on the driver, saying so in the log: Amazon
    meta written as Python literals, and MovieLens `movies.csv` (see their modules for why).
    """
    if isinstance(dataset, Outbrain):
        return outbrain_sides(spark, dataset, scratch)
    if isinstance(dataset, MovieLens):
        return movielens_sides(spark, dataset, scratch)
    if isinstance(dataset, AmazonBooks):
        return amazon_sides(spark, dataset, scratch)
    if not hasattr(dataset, "side_tables"):
        return {}
    return {name: spark.createDataFrame(table) for name, table in dataset.side_tables().items()}


def with_split(df: DataFrame, rows: int, split: Split, keys: tuple[str, ...] = ()) -> DataFrame:
    """Add the sub-row rank, the split index (see `bluewhale.engine.PART`) and the planted keys' raw
    copies to rows that have their position."""
    check_input_columns([c for c in df.columns if c != ROW], keys)
    if split.by == "position":
        valid_start, test_start = position_bounds(split, rows)
        part = (F.col(ROW) >= valid_start).cast("tinyint") + (F.col(ROW) >= test_start).cast("tinyint")
    else:  # rows without a time are train rows

        def after(bound) -> Column:
            return F.coalesce(F.col(split.column) > F.lit(bound), F.lit(False)).cast("tinyint")

        valid_after = split.test_after if split.valid_after is None else split.valid_after
        part = after(valid_after) + after(split.test_after)
    df = df.withColumn(SUB, F.lit(0).cast("int")).withColumn(PART, part.cast("tinyint"))
    return df.withColumns({key_column(c): F.col(c) for c in keys})
