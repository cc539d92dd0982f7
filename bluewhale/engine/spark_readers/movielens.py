"""MovieLens ratings (`u.data`, `ratings.dat`, `ratings.csv`) and item lists read natively by Spark.

`u.item` (`|`-separated genre flags) and `movies.dat` (`::`, titles may hold `:`) are latin-1, which
Spark's text reader cannot decode: `Lines` decodes them whole on an executor (they are small).
`movies.csv` quotes its titles the way Python's `csv` module reads them, which Spark SQL cannot
reproduce exactly: it is read on the driver by the data set's own reader (one small row per movie).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bluewhale.dataset.badrows import BadRows
from bluewhale.dataset.delimited import UNSIGNED, Check
from bluewhale.dataset.movielens import GENRES_100K, NO_GENRES, VARIANTS, MovieLens, read_items, read_ratings
from bluewhale.engine import ROW
from bluewhale.engine.spark_readers.lines import LineFormat, Lines, delimited, java_regex, reason_from

log = logging.getLogger(__name__)
_TYPES = {"user_id": "bigint", "item_id": "bigint", "rating": "float", "timestamp": "bigint"}
_ITEMS = "items"  # its name in the scratch folder
_DRIVER = ("ml-25m",)  # item lists read on the driver (see the module docstring)


def read_movielens(spark: SparkSession, data: MovieLens, scratch: Path) -> tuple[DataFrame, BadRows, int]:
    """(ratings with `label` and `ROW`, bad rows of ratings and items, rows kept), as `data.read()` gives."""
    data.prepare()
    _, delimiter, columns, header, checks = VARIANTS[data.variant]
    header_line = None if header is None else delimiter.join(header)
    reason = reason_from(partial(read_ratings, variant=data.variant), header_line)
    fmt = delimited(columns, checks, delimiter, _TYPES, reason)
    lines = Lines(spark, [data.path], fmt, scratch, "ratings", header=header_line)
    report = lines.settle(data.bad_rows)
    report += _items(spark, data, scratch)[1]  # the item list's bad rows count with the rest, as in `read()`
    label = (F.col("rating") >= F.lit(data.positive_rating)).cast("tinyint").alias(data.label)
    return lines.rows().select(*_TYPES, label, ROW), report, lines.kept


def movielens_sides(spark: SparkSession, data: MovieLens, scratch: Path) -> dict[str, DataFrame]:
    """`items` (item_id, title, genres, genre), where the variant's item list is beside the ratings."""
    table = _items(spark, data, scratch, settle=False)[0]
    return {} if table is None else {_ITEMS: table}


def _items(
    spark: SparkSession, data: MovieLens, scratch: Path, settle: bool = True
) -> tuple[DataFrame | None, BadRows]:
    if not data.items_path.is_file():
        return None, BadRows()
    if data.variant in _DRIVER:
        table, report = data._read_items()  # cached by the data set: read once for rows and report
        log.info("%s: quoted CSV, read on the driver (%d items)", data.items_path, len(table))
        return spark.createDataFrame(table), report
    encoding = "latin-1"  # as MovieLens wrote these two
    reason = reason_from(partial(read_items, variant=data.variant), encoding=encoding)
    fmt = _u_item(reason) if data.variant == "ml-100k" else _movies_dat(reason)
    lines = Lines(spark, [data.items_path], fmt, scratch, _ITEMS, encoding="ISO-8859-1")
    table = lines.table().select(
        "item_id", "title", "genres", F.try_element_at("genres", F.lit(1)).alias("genre")
    )
    return table, lines.settle(data.bad_rows) if settle else BadRows()


def _u_item(reason) -> LineFormat:
    """`u.item`: id|title|release|video release|url|19 genre flags (the same checks as `read_items`)."""
    flags = [f"g{k}" for k in range(len(GENRES_100K))]
    columns = ["item_id", "title", "release_date", "video_release_date", "url", *flags]
    checks = {
        "item_id": VARIANTS["ml-100k"][4]["item_id"],
        **{f: Check(r"^[01]$", "a genre flag 0 or 1") for f in flags},
    }
    fields = delimited(columns, checks, "|", {"item_id": "bigint"}, reason)
    marked = [F.when(fields.columns[f] == "1", F.lit(g)) for f, g in zip(flags, GENRES_100K, strict=True)]
    genres = F.filter(F.array(*marked), lambda g: g.isNotNull())
    return LineFormat(
        {"item_id": fields.columns["item_id"], "title": fields.columns["title"], "genres": genres},
        fields.bad,
        reason,
    )


def _movies_dat(reason) -> LineFormat:
    """`movies.dat`: id::title::genre|genre|… (split on `::` as `read_items` does)."""
    parts = F.split("value", "::", -1)
    text = F.get(parts, 2)
    genres = F.when(text.isin("", NO_GENRES), F.array().cast("array<string>")).otherwise(
        F.split(text, r"\|", -1)
    )
    bad = (F.size(parts) != 3) | ~F.coalesce(F.get(parts, 0).rlike(java_regex(UNSIGNED)), F.lit(False))
    columns = {"item_id": F.get(parts, 0).try_cast("bigint"), "title": F.get(parts, 1), "genres": genres}
    return LineFormat(columns, bad, reason)
