"""Criteo TSV (Kaggle `train.txt`, 1TB day files) read natively by Spark."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bluewhale.dataset.badrows import BadRows, check_mode
from bluewhale.dataset.criteo import _CHECKS, COLUMNS, DENSE, LABEL, read_criteo_tsv
from bluewhale.engine import ROW
from bluewhale.engine.spark_readers.lines import LineFormat, Lines, delimited, reason_from


def _format() -> LineFormat:
    return delimited(
        COLUMNS,
        _CHECKS,
        "\t",
        {LABEL: "tinyint", **dict.fromkeys(DENSE, "bigint")},
        reason_from(read_criteo_tsv),
    )


def read_criteo(
    spark: SparkSession, files: list[Path], policy: str, scratch: Path, days: list[int] | None = None
) -> tuple[DataFrame, BadRows, int]:
    """(rows with `ROW`, bad rows, rows kept) of Criteo TSV files, parsed by Spark.

    With `days` (one per file), rows carry an int16 `day` and examples name their day file, as the
    1TB reader does.
    """
    lines = Lines(spark, files, _format(), scratch, "criteo", persist=True)
    report = lines.settle(check_mode(policy), named=days is not None)
    extra = []
    if days is not None:
        day = F.element_at(F.array(*[F.lit(d) for d in days]), F.col("_file") + 1).cast("smallint")
        extra = [day.alias("day")]
    return lines.rows().select(*COLUMNS, *extra, ROW), report, lines.kept
