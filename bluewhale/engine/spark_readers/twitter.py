"""Twitter RecSys 2021 (`\\x01` fields, tab-separated lists; a file or a folder of parts) read by Spark."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from bluewhale.dataset.badrows import BadRows
from bluewhale.dataset.twitter import (
    CHECKS,
    COUNTS,
    FIELDS,
    FLAGS,
    LISTS,
    SEPARATOR,
    TARGETS,
    TASKS,
    TIMES,
    TwitterRecSys2021,
    input_files,
    read_twitter_file,
)
from bluewhale.engine.spark_readers.lines import LineFormat, Lines, delimited, reason_from


def _format() -> LineFormat:
    strings = delimited(FIELDS, CHECKS, SEPARATOR, {}, reason_from(read_twitter_file))
    columns: dict[str, Column] = {}
    for name, text in strings.columns.items():
        if name in LISTS:  # an empty field is an empty list
            items = F.when(text.isNull(), F.array().cast("array<string>")).otherwise(F.split(text, "\t", -1))
            columns[name] = items.try_cast("array<int>") if name == "text_tokens" else items
        elif name in COUNTS or name in TIMES or name in TARGETS:
            columns[name] = text.try_cast("bigint")
        elif name in FLAGS:
            columns[name] = text == "true"
        else:
            columns[name] = text
    for task, target in zip(TASKS, TARGETS, strict=True):
        columns[task] = columns[target].isNotNull().cast("tinyint")
    return LineFormat(columns, strings.bad, strings.reason)


def read_twitter(
    spark: SparkSession, data: TwitterRecSys2021, scratch: Path
) -> tuple[DataFrame, BadRows, int]:
    """(engagements with the four task labels and `ROW`, bad rows, rows kept), part files in order."""
    data.prepare()
    lines = Lines(spark, input_files(data.path), _format(), scratch, "twitter")
    return lines.rows().drop("_file"), lines.settle(data.bad_rows), lines.kept
