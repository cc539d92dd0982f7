"""How the Spark engine reads a data set: natively by Spark where it knows the format (Criteo TSV),
else through the data set's own `read()` (an Arrow table handed to Spark; fine for small inputs).

Every reader returns a DataFrame with the hidden columns (row position, sub-row, train flag), where the
row position counts the rows kept, in file order: the same numbering the pandas engine gives them.
"""

from __future__ import annotations

import logging
from functools import reduce
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from bluewhale.dataset.criteo import COLUMNS, DENSE, LABEL, SPARSE, BadRowError, CriteoFile
from bluewhale.dataset.criteo_1tb import DAY_FILE, CriteoDays
from bluewhale.engine import ROW, SUB, TRAIN, add_hidden, test_rows_for
from bluewhale.recdp.ops import Split

log = logging.getLogger(__name__)
_EXAMPLES = 5


def read_input(spark: SparkSession, dataset, split: Split, scratch: Path) -> tuple[DataFrame, int, dict]:
    """(rows with hidden columns, number of rows kept, bad rows {count, examples}) for `dataset`."""
    if isinstance(dataset, CriteoFile):
        dataset.prepare()
        df, bad = read_criteo(spark, [Path(dataset.path)], dataset.bad_rows, scratch)
    elif isinstance(dataset, CriteoDays):  # day files in order, each row with its day number
        files = dataset.files()
        days = [int(m.group(1)) if (m := DAY_FILE.match(f.name)) else i for i, f in enumerate(files)]
        df, bad = read_criteo(spark, files, dataset.bad_rows, scratch, days=days)
    else:
        log.warning(
            "the Spark engine has no native reader for %s: reading it on the driver", type(dataset).__name__
        )
        table, report = dataset.read()
        df = spark.createDataFrame(add_hidden(table, split))
        return df, table.num_rows, {"count": report.count, "examples": report.examples}
    kept = bad.pop("kept")
    return with_split(df, kept, split), kept, bad


def read_criteo(
    spark: SparkSession, files: list[Path], policy: str, scratch: Path, days: list[int] | None = None
) -> tuple[DataFrame, dict]:
    """Parse Criteo TSV files with Spark into typed columns, with the pandas reader's bad-row policy.

    One pass parses the text into scratch parquet (with each line's partition and place in it); line
    numbers and row positions then come from per-partition counts, so no data goes to the driver.
    """
    if policy not in ("error", "skip"):
        raise ValueError(f"dataset.bad_rows must be 'error' or 'skip', got {policy!r}")
    texts = [spark.read.text(str(f)).withColumn("_file", F.lit(i)) for i, f in enumerate(files)]
    text = reduce(DataFrame.union, texts)  # partitions of a union follow file order
    pid = F.spark_partition_id()
    text = text.withColumn("_pid", pid).withColumn(
        "_local", F.monotonically_increasing_id() - F.shiftleft(pid.cast("long"), 33)
    )
    fields = F.split("value", "\t", -1)
    field = {name: F.get(fields, i) for i, name in enumerate(COLUMNS)}
    bad = F.size(fields) != len(COLUMNS)
    bad = bad | ~F.coalesce(field[LABEL].rlike("^[01]$"), F.lit(False))
    for c in DENSE:
        bad = bad | ~F.coalesce((field[c] == "") | field[c].rlike("^-?[0-9]+$"), F.lit(True))
    empty = F.col("value") == ""  # pyarrow's reader skips empty lines: they are not rows
    parsed = text.select(
        "_file",
        "_pid",
        "_local",
        (bad & ~empty).alias("_bad"),
        empty.alias("_empty"),
        F.when(bad & ~empty, F.col("value")).alias("_raw"),
        field[LABEL].try_cast("tinyint").alias(LABEL),
        *[F.when(field[c] != "", field[c]).try_cast("long").alias(c) for c in DENSE],
        *[F.when(field[c] != "", field[c]).alias(c) for c in SPARSE],
    )
    path = str(scratch / "ingest.parquet")
    parsed.write.parquet(path)
    ingest = spark.read.parquet(path)

    stats = (
        ingest.groupBy("_pid", "_file")
        .agg(
            F.count("*").alias("n"),
            F.sum(F.col("_bad").cast("long")).alias("bad"),
            F.sum(F.col("_empty").cast("long")).alias("empty"),
        )
        .orderBy("_pid")
        .collect()
    )
    line_start, kept_start, lines_in_file, kept = {}, [], {}, 0
    for s in stats:  # partitions are numbered in file order, each within one file
        line_start[s["_pid"]] = lines_in_file.get(s["_file"], 0)
        lines_in_file[s["_file"]] = line_start[s["_pid"]] + s["n"]
        kept_start.append(kept)
        kept += s["n"] - s["bad"] - s["empty"]
    if [s["_pid"] for s in stats] != list(range(len(stats))):
        raise RuntimeError(f"unexpected Spark partition ids {[s['_pid'] for s in stats]}")
    count = sum(s["bad"] for s in stats)

    def where(row) -> tuple[int, str]:
        reason = _reason(row["_raw"])
        if len(files) > 1:
            reason = f"{files[row['_file']].name}: {reason}"
        return line_start[row["_pid"]] + row["_local"] + 1, reason

    examples = []
    if count:
        first = ingest.filter("_bad").orderBy("_pid", "_local").limit(_EXAMPLES).collect()
        examples = [where(r) for r in first]
        if policy == "error":
            line, reason = examples[0]
            raise BadRowError(f"{files[first[0]['_file']]}:{line}: {_reason(first[0]['_raw'])}")
        log.warning("%s: skipped %d bad rows, e.g. %s", [str(f) for f in files], count, examples[:3])

    rows = ingest.filter(~F.col("_bad") & ~F.col("_empty"))
    if count or sum(s["empty"] for s in stats):  # positions within a partition have gaps: rank them
        rank = F.row_number().over(Window.partitionBy("_pid").orderBy("_local")) - 1
    else:
        rank = F.col("_local")
    start = F.element_at(F.array(*[F.lit(k) for k in kept_start]), F.col("_pid") + 1)
    rows = rows.withColumn(ROW, (start + rank).cast("long"))
    extra = []
    if days is not None:
        extra = [
            F.element_at(F.array(*[F.lit(d) for d in days]), F.col("_file") + 1).cast("smallint").alias("day")
        ]
    return rows.select(*COLUMNS, *extra, ROW), {"count": count, "examples": examples, "kept": kept}


def with_split(df: DataFrame, rows: int, split: Split) -> DataFrame:
    """Add the sub-row rank and the train flag to rows that have their position."""
    if split.by == "position":
        train = F.col(ROW) < rows - test_rows_for(split, rows)
    else:
        train = ~F.coalesce(F.col(split.column) > F.lit(split.test_after), F.lit(False))
    return df.withColumn(SUB, F.lit(0).cast("int")).withColumn(TRAIN, train)


def _reason(line: str) -> str:
    """Why a Criteo line is malformed, in the words of the pandas reader."""
    fields = line.split("\t")
    if len(fields) != len(COLUMNS):
        return f"expected {len(COLUMNS)} tab-separated fields, got {len(fields)}"
    if fields[0] not in ("0", "1"):
        return f"field {LABEL} expected 0 or 1, got {fields[0] or None!r}"
    for name, value in zip(DENSE, fields[1:], strict=False):
        if value and not (
            value.lstrip("-").isdigit() and value.count("-") <= 1 and value[0] in "-0123456789"
        ):
            return f"field {name} expected an integer, got {value!r}"
    return "malformed field"
