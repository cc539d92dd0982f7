"""Amazon Books reviews (JSON lines) read natively by Spark, with each item's category joined on.

Lines are parsed as Spark variants, so a field's JSON type is checked as strictly as the pandas reader
checks it (a quoted "5.0" is not a rating; 1.5 is not integer seconds). The meta file is parsed by Spark
too when every line is JSON; older dumps write it as Python literals, which Spark SQL cannot parse, and
then it is read on the driver by the data set's own reader (it holds one small record per item).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from bluewhale.dataset.amazon_books import AmazonBooks, read_meta, read_reviews
from bluewhale.dataset.badrows import BadRows
from bluewhale.engine import ROW
from bluewhale.engine.spark_readers.lines import LineFormat, Lines, reason_from

log = logging.getLogger(__name__)
_NUMBER = "^(BIGINT|DOUBLE|FLOAT|DECIMAL.*)$"  # a JSON number, as the variant reader types it
_PATHS = r"^ARRAY<(ARRAY<(STRING|VOID)>|VOID)>$"  # lists of string lists (VOID: empty, or holding nulls)
_META = "meta"  # its name in the scratch folder


def _type(v: Column, name: str) -> Column:
    """The JSON type of field `name` of the variant `v`: null when missing, VOID when JSON null."""
    return F.schema_of_variant(F.try_variant_get(v, f"$.{name}", "variant"))


def _absent(kind: Column) -> Column:
    return kind.isNull() | (kind == "VOID")


def _object(v: Column) -> Column:
    """A line that is not a JSON object (empty, not JSON, or another JSON value)."""
    return (F.trim("value") == "") | ~F.coalesce(F.schema_of_variant(v).startswith("OBJECT<"), F.lit(False))


def _reviews() -> LineFormat:
    v = F.try_parse_json("value")
    bad = _object(v) | F.coalesce(
        (_type(v, "reviewerID") != "STRING")
        | (_type(v, "asin") != "STRING")
        | ~_type(v, "overall").rlike(_NUMBER)
        | (_type(v, "unixReviewTime") != "BIGINT"),
        F.lit(True),  # a missing field has a null type
    )
    columns = {
        "reviewerID": F.try_variant_get(v, "$.reviewerID", "string"),
        "asin": F.try_variant_get(v, "$.asin", "string"),
        "overall": F.try_variant_get(v, "$.overall", "float"),
        "unixReviewTime": F.try_variant_get(v, "$.unixReviewTime", "bigint"),
    }
    return LineFormat(columns, bad, reason_from(read_reviews))


def _meta() -> LineFormat:
    v = F.try_parse_json("value")
    paths = F.try_variant_get(v, "$.categories", "array<array<string>>")
    title, price, categories = _type(v, "title"), _type(v, "price"), _type(v, "categories")
    null_inside = F.exists(paths, lambda p: p.isNull() | F.exists(p, lambda c: c.isNull()))
    bad = _object(v) | ~F.coalesce(
        (_type(v, "asin") == "STRING")
        & (_absent(title) | (title == "STRING"))
        & (_absent(price) | price.rlike(_NUMBER))
        & (_absent(categories) | (categories.rlike(_PATHS) & ~null_inside)),
        F.lit(False),
    )
    columns = {
        "asin": F.try_variant_get(v, "$.asin", "string"),
        "title": F.try_variant_get(v, "$.title", "string"),
        "price": F.try_variant_get(v, "$.price", "double"),
        "category": F.try_element_at(F.try_element_at(paths, F.lit(-1)), F.lit(-1)),  # of the last path
    }
    repeated = "asin {!r} already listed above".format
    return LineFormat(columns, bad, reason_from(read_meta), key=(columns["asin"], repeated))


def read_amazon_books(
    spark: SparkSession, data: AmazonBooks, scratch: Path
) -> tuple[DataFrame, BadRows, int]:
    """(reviews with `category`, `label` and `ROW`, bad rows of reviews and meta, rows kept)."""
    data.prepare()
    lines = Lines(spark, [data.reviews_path], _reviews(), scratch, "reviews")
    report = lines.settle(data.bad_rows)
    meta, meta_report = _read_meta(spark, data, scratch)
    report += meta_report  # meta's bad rows count with the rest, as in `read()`
    rows = lines.rows().join(meta.select("asin", "category"), on="asin", how="left")
    label = F.lit(1).cast("tinyint").alias(data.label)
    return (
        rows.select("reviewerID", "asin", "overall", "unixReviewTime", "category", label, ROW),
        report,
        lines.kept,
    )


def amazon_sides(spark: SparkSession, data: AmazonBooks, scratch: Path) -> dict[str, DataFrame]:
    """`meta` (asin, title, price, category): by Spark when it is JSON lines, else on the driver."""
    lines = _meta_lines(spark, data, scratch)
    return {"meta": lines.table().drop("_file") if lines else spark.createDataFrame(data._read_meta()[0])}


def _read_meta(spark: SparkSession, data: AmazonBooks, scratch: Path) -> tuple[DataFrame, BadRows]:
    lines = _meta_lines(spark, data, scratch)
    if lines:
        return lines.table().drop("_file"), lines.settle(data.bad_rows)
    table, report = data._read_meta()  # cached by the data set: read once for the rows and the report
    log.warning("%s: Python-literal lines, read on the driver (%d items)", data.meta_path, len(table))
    return spark.createDataFrame(table), report


def _meta_lines(spark: SparkSession, data: AmazonBooks, scratch: Path) -> Lines | None:
    """Meta parsed by Spark (once: `read_input` leaves it in `scratch`), or None if it has literals."""
    if (scratch / f"{_META}.parquet" / "_SUCCESS").exists() or not _has_literals(spark, data.meta_path):
        return Lines(spark, [data.meta_path], _meta(), scratch, _META)
    return None


def _has_literals(spark: SparkSession, path: Path) -> bool:
    """Whether a line of `path` is not JSON (so may be a Python literal, which only the driver reads)."""
    text = spark.read.text(str(path))
    return bool(text.filter((F.trim("value") != "") & F.try_parse_json("value").isNull()).limit(1).count())
