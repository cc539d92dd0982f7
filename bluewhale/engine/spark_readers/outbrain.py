"""Outbrain CSVs read natively by Spark and joined into the Wide & Deep table `Outbrain.read()` gives.

clicks_train ⋈ events ⋈ promoted_content ⋈ documents_meta (twice: the page's and the ad's document) as
left joins on keys made unique (a later line repeating a key is a bad row), so no click is lost or
doubled; the topic, category and entity files are side tables, parsed once and reused.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from bluewhale.dataset.badrows import BadRows
from bluewhale.dataset.outbrain import FILES, SIDE_FILES, TIME_OFFSET_MS, CsvFile, Outbrain, read_csv
from bluewhale.engine import ROW
from bluewhale.engine.spark_readers.lines import LineFormat, Lines, delimited, reason_from

_SPARK_TYPES = {pa.int64(): "bigint", pa.int8(): "tinyint", pa.float32(): "float"}


def _lines(spark: SparkSession, folder: Path, spec: CsvFile, scratch: Path, name: str) -> Lines:
    header = ",".join(spec.columns)
    types = {c: _SPARK_TYPES[t] for c, t in spec.types.items()}
    reason = reason_from(partial(read_csv, spec=spec, bad_rows="error"), header)
    fmt = delimited(spec.columns, spec.checks, ",", types, reason)
    if spec.key:
        key_text = F.nullif(F.get(F.split("value", ",", -1), spec.columns.index(spec.key)), F.lit(""))
        fmt = LineFormat(
            fmt.columns, fmt.bad, fmt.reason, (key_text, f"{spec.key} {{}} already listed above".format)
        )
    return Lines(spark, [folder / spec.name], fmt, scratch, name, header=header)


def read_outbrain(spark: SparkSession, data: Outbrain, scratch: Path) -> tuple[DataFrame, BadRows, int]:
    """(the Wide & Deep table with `ROW`, bad rows of every file, clicks kept), in clicks_train order."""
    data.prepare()
    lines, report = {}, BadRows()
    for name, spec in FILES.items():  # in the pandas reader's order, so `error` stops at the same line
        lines[name] = _lines(spark, data.folder, spec, scratch, name)
        report += lines[name].settle(data.bad_rows)
    for side in _side_lines(spark, data, scratch).values():  # their bad rows count with the rest
        report += side.settle(data.bad_rows)
    df = lines["clicks"].rows().drop("_file")
    events = (
        lines["events"]
        .table()
        .select(
            "display_id",
            "uuid",
            "document_id",
            (F.col("timestamp") + F.lit(TIME_OFFSET_MS)).alias("timestamp"),
            F.nullif("platform", F.lit("\\N")).try_cast("tinyint").alias("platform"),
            "geo_location",
        )
    )
    df = df.join(events, on="display_id", how="left")
    parts = F.split(F.concat("geo_location", F.lit(">>")), ">", -1)
    geo = {
        n: F.nullif(F.get(parts, k), F.lit("")) for k, n in enumerate(["geo_country", "geo_state", "geo_dma"])
    }
    df = df.withColumns(geo)
    promoted = (
        lines["promoted"]
        .table()
        .select("ad_id", F.col("document_id").alias("ad_document_id"), "campaign_id", "advertiser_id")
    )
    df = df.join(promoted, on="ad_id", how="left")
    meta = lines["documents_meta"].table()
    for prefix, document in [("", "document_id"), ("ad_", "ad_document_id")]:
        doc = meta.select(
            F.col("document_id").alias(document),
            *[F.col(c).alias(prefix + c) for c in ["source_id", "publisher_id"]],
            _seconds(F.col("publish_time")).alias(prefix + "publish_time"),
        )
        df = df.join(doc, on=document, how="left")
    columns = [
        *FILES["clicks"].columns,
        "uuid",
        "document_id",
        "timestamp",
        "platform",
        "geo_location",
        *geo,
        "ad_document_id",
        "campaign_id",
        "advertiser_id",
        *[p + c for p in ("", "ad_") for c in ("source_id", "publisher_id", "publish_time")],
    ]
    return df.select(*columns, ROW), report, lines["clicks"].kept


def outbrain_sides(spark: SparkSession, data: Outbrain, scratch: Path) -> dict[str, DataFrame]:
    """`topics`, `categories`, `entities` (those present), parsed by Spark (once, with `read_outbrain`)."""
    return {name: lines.table().drop("_file") for name, lines in _side_lines(spark, data, scratch).items()}


def _side_lines(spark: SparkSession, data: Outbrain, scratch: Path) -> dict[str, Lines]:
    return {
        name: _lines(spark, data.folder, spec, scratch, f"side_{name}")
        for name, spec in SIDE_FILES.items()
        if (data.folder / spec.name).is_file()
    }


def _seconds(text: Column) -> Column:
    """`YYYY-MM-DD HH:MM:SS` (UTC) as seconds since 1970, whatever the session's time zone."""
    return F.unix_seconds(F.try_to_timestamp(F.concat(text, F.lit("Z")), F.lit("yyyy-MM-dd HH:mm:ssX")))
