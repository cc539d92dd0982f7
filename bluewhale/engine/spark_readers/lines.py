"""Text files read by Spark a line at a time: each format supplies a parse expression, this module the rest.

One pass parses every line into typed columns plus a bad flag and writes scratch parquet, keeping each
line's partition and place in it; per-partition counts then give true file line numbers and the
position of every kept row (`ROW`), so nothing but counts and a few bad-line examples reaches the driver.
The reason a line is bad is worded on the driver, for those few examples only, by the data set's own
pandas reader (`reason_from`), so both engines say the same thing.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from bluewhale.dataset.badrows import EXAMPLES, BadRowError, BadRows
from bluewhale.dataset.delimited import Check
from bluewhale.engine import ROW

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LineFormat:
    """How one text format becomes a table: typed column expressions on the line (`value`), a bad flag,
    and the wording of why a bad line is bad (called on the driver for at most a few example lines)."""

    columns: dict[str, Column]
    bad: Column
    reason: Callable[[str], str]
    # (a key's text, the reason for a later line repeating it): such a line is a bad row, since a join
    # on the key would multiply rows
    key: tuple[Column, Callable[[str], str]] | None = None


def reason_from(
    read: Callable[[Path], object], header: str | None = None, encoding: str = "utf-8"
) -> Callable[[str], str]:
    """Word a bad line as the pandas reader `read(path)` does, by running it on a file of that one line.

    An empty line follows it, so a reader with a fast path for clean files takes its careful path.
    """

    def reason(line: str) -> str:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "line"
            path.write_text(("" if header is None else header + "\n") + line + "\n\n", encoding=encoding)
            try:
                read(path)
            except BadRowError as err:
                prefix = f"{path}:{1 + (header is not None)}: "
                if str(err).startswith(prefix):
                    return str(err)[len(prefix) :]
        return "malformed line"  # Spark refused a line the pandas reader accepts: say so plainly

    return reason


def java_regex(pattern: str) -> str:
    """A check's pattern for Spark's `rlike` (Java): a final `$` would also match before a line break.

    A list of tab-separated items, `(\\t...)*$`, repeats possessively: Java recurses once per repetition
    of a group and a long list would overflow the stack; as items hold no tab, nothing is given back.
    """
    pattern = re.sub(r"(\(\\t.*\))\*\$$", r"\1*+$", pattern)
    return pattern[:-1] + r"\z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern


def delimited(
    columns: list[str],
    checks: dict[str, Check],
    delimiter: str,
    types: dict[str, str],
    reason: Callable[[str], str],
) -> LineFormat:
    """The parse of a delimited line (no quoting), with the same field checks as `read_delimited`.

    Empty fields are null; `types` casts the named columns (the rest stay strings); an all-empty line is
    bad, as Arrow reads it as a row of nulls.
    """
    # a one-character delimiter that is no regex metacharacter takes Java's split fast path (no regex)
    plain = len(delimiter) == 1 and delimiter not in r".$|()[{^?*+\\"
    quoted = "".join(f"\\x{{{ord(c):x}}}" for c in delimiter)  # each character by its code: no escaping
    fields = F.split("value", delimiter if plain else quoted, -1)
    value = {name: F.nullif(F.get(fields, i), F.lit("")) for i, name in enumerate(columns)}
    # the line's shape from the split the fields come from: the field count, and all fields empty, i.e. the
    # line is its delimiters alone (half the cost of two regular expressions on the line, and a fraction of
    # a coalesce of every field; README, "RecDP at scale")
    delimiters_only = (len(columns) - 1) * len(delimiter.encode())
    bad = (F.size(fields) != len(columns)) | (F.octet_length("value") == delimiters_only)
    for name, check in checks.items():
        bad = bad | ~F.coalesce(value[name].rlike(java_regex(check.pattern)), F.lit(not check.required))
    typed = {name: value[name].try_cast(types[name]) if name in types else value[name] for name in columns}
    return LineFormat(typed, bad, reason)


class Lines:
    """Text files parsed by Spark into scratch parquet, with their bad-line count and examples.

    `files` are read in order as one stream of lines; with `header`, each file's first line must be it
    (a file whose header differs gives one bad row at line 1 and no rows, as the pandas reader does).
    A `name` already parsed in this `scratch` folder is read back rather than parsed again; with
    `persist` the parse is checkpointed by Spark instead (memory, spilling to disk), which keeps every input
    partition's rows in order in the partition of the same id, so the rows can flow to the output
    without a sort. Files in
    another `encoding` than UTF-8 (which alone Spark's text reader knows) are decoded whole by an
    executor, one file a partition: fine for the small files that use one (MovieLens item lists).
    """

    def __init__(
        self,
        spark: SparkSession,
        files: list[Path],
        fmt: LineFormat,
        scratch: Path,
        name: str,
        header: str | None = None,
        encoding: str = "utf-8",
        persist: bool = False,
    ) -> None:
        self.files, self.fmt = [Path(f) for f in files], fmt
        self.problems: list[tuple[int, int, str]] = []  # (file index, line, reason)
        texts, parts = [], {}
        for i, path in enumerate(self.files):
            if header is not None:
                with open(path, encoding="utf-8", errors="replace") as f:
                    first = f.readline().rstrip("\r\n")
                if first != header:
                    self.problems.append((i, 1, f"expected the header {header!r}, got {first[:200]!r}"))
                    continue
            text = _text(spark, path, encoding)
            parts[i] = text.rdd.getNumPartitions()  # planning only: how the file is split, no job
            texts.append(text.withColumn("_file", F.lit(i)))
        # partitions of a union follow file order: file i owns the ids [first[i], first[i] + parts[i])
        self.first, self.parts, total = {}, parts, 0
        for i, n in parts.items():
            self.first[i], total = total, total + n

        if persist:  # parsed once and checkpointed by Spark (memory, spilling to disk): the partitions keep
            # their ids and order, nothing is written, and later plans start from the parsed columns (not
            # the parse expressions, which Catalyst would otherwise inline into every op: minutes of planning)
            self.ingest = self._parse(spark, texts, header is not None).localCheckpoint(eager=True)
        else:
            path = scratch / f"{name}.parquet"
            if not (path / "_SUCCESS").exists():
                self._parse(spark, texts, header is not None).write.mode("overwrite").parquet(str(path))
            self.ingest = spark.read.parquet(str(path))
        self._count(total)

    def _parse(self, spark: SparkSession, texts: list[DataFrame], header: bool) -> DataFrame:
        fmt = self.fmt
        if not texts:
            schema = "value string, _file int"
            texts = [spark.createDataFrame([], schema)]
        text = reduce(DataFrame.union, texts)
        # The parse first, the line positions after it: with the positions projected first, the parse with
        # its bad flag took 2x as long (1M lines; cause not pinned down; README, "RecDP at scale").
        flagged = text.select(
            "_file",
            "value",
            fmt.bad.alias("_flag"),
            *[c.alias(n) for n, c in fmt.columns.items()],
            *([fmt.key[0].alias("_key")] if fmt.key else []),
        )
        pid = F.spark_partition_id()
        flagged = flagged.withColumn("_pid", pid).withColumn(
            "_local", F.monotonically_increasing_id() - F.shiftleft(pid.cast("long"), 33)
        )
        head = F.lit(False)
        if header:  # the first line of each file's first partition
            first = F.array(*[F.lit(self.first.get(i, -1)) for i in range(len(self.files))])
            head = (F.col("_local") == 0) & (F.col("_pid") == F.element_at(first, F.col("_file") + 1))
        bad = F.col("_flag") & ~head
        parsed = flagged.select(
            "_file",
            "_pid",
            "_local",
            bad.alias("_bad"),
            head.alias("_head"),
            F.when(bad, F.col("value")).alias("_raw"),
            F.lit(None).cast("string").alias("_why"),
            *fmt.columns,
            *(["_key"] if fmt.key else []),
        )
        if fmt.key:  # the first line with a key is kept, later ones are bad (`_why` holds their key)
            ok = ~F.col("_bad") & ~F.col("_head")
            earlier = F.row_number().over(Window.partitionBy(ok, "_key").orderBy("_pid", "_local")) > 1
            repeated = ok & earlier
            parsed = parsed.withColumns(
                {"_bad": F.col("_bad") | repeated, "_why": F.when(repeated, F.col("_key"))}
            ).drop("_key")
        return parsed

    def _count(self, total: int) -> None:
        stats = {
            s["_pid"]: s
            for s in self.ingest.groupBy("_pid")
            .agg(
                F.count("*").alias("n"),
                F.sum(F.col("_bad").cast("long")).alias("bad"),
                F.sum(F.col("_head").cast("long")).alias("head"),
            )
            .collect()
        }
        if any(p >= total for p in stats):
            raise RuntimeError(f"unexpected Spark partition ids {sorted(stats)} for {total} input partitions")
        self.line_start, self.kept_start, self.gaps = [], [], False
        owner = {p: i for i, first in self.first.items() for p in range(first, first + self.parts[i])}
        lines_in_file: dict[int, int] = {}
        kept = 0
        for p in range(total):  # a partition with no line (a split inside one long line) counts 0
            s = stats.get(p)
            n, bad, head = (s["n"], s["bad"], s["head"]) if s else (0, 0, 0)
            self.line_start.append(lines_in_file.get(owner[p], 0))
            lines_in_file[owner[p]] = self.line_start[p] + n
            self.kept_start.append(kept)
            kept += n - bad - head
            self.gaps = self.gaps or bool(bad or head)
        self.kept, self.count = kept, sum(s["bad"] for s in stats.values()) + len(self.problems)
        if self.count > len(self.problems):
            first = (
                self.ingest.filter("_bad")
                .orderBy("_pid", "_local")
                .limit(EXAMPLES)
                .select("_file", "_pid", "_local", "_raw", "_why")
                .collect()
            )
            self.problems += [
                (
                    r["_file"],
                    self.line_start[r["_pid"]] + r["_local"] + 1,
                    self._reason(r["_raw"], r["_why"]),
                )
                for r in first
            ]
        self.problems.sort()

    def _reason(self, raw: str | None, key: str | None) -> str:
        return self.fmt.key[1](key) if key is not None and self.fmt.key else self.fmt.reason(raw)

    def settle(self, policy: str, named: bool = True) -> BadRows:
        """Raise `file:line: reason` for the first bad line (`error`), or count them (`skip`).

        `named` puts the file's name before each example's reason, as `badrows.settle` does.
        """
        if not self.count:
            return BadRows()
        if policy == "error":
            file, line, reason = self.problems[0]
            raise BadRowError(f"{self.files[file]}:{line}: {reason}")
        examples = [
            (line, f"{self.files[f].name}: {why}" if named else why) for f, line, why in self.problems
        ]
        report = BadRows(self.count, examples[:EXAMPLES])
        log.warning(
            "%s: skipped %d bad rows, e.g. %s",
            [str(f) for f in self.files],
            report.count,
            report.examples[:3],
        )
        return report

    def table(self) -> DataFrame:
        """The kept rows' typed columns and `_file` (the index of the file each came from)."""
        return self.ingest.filter(~F.col("_bad") & ~F.col("_head")).select(*self.fmt.columns, "_file")

    def rows(self) -> DataFrame:
        """The kept rows with `ROW`, their position among kept rows in file order, and `_file`."""
        rows = self.ingest.filter(~F.col("_bad") & ~F.col("_head"))
        if self.gaps:  # positions within a partition have gaps: rank them
            rank = F.row_number().over(Window.partitionBy("_pid").orderBy("_local")) - 1
        else:
            rank = F.col("_local")
        start = F.element_at(F.array(*[F.lit(k) for k in self.kept_start] or [F.lit(0)]), F.col("_pid") + 1)
        return rows.select(*self.fmt.columns, "_file", (start + rank).cast("long").alias(ROW))


def _text(spark: SparkSession, path: Path, encoding: str) -> DataFrame:
    """The lines of `path` as a `value` column, in order."""
    if encoding.lower().replace("-", "") in ("utf8", "utf_8"):
        return spark.read.text(str(path))
    whole = spark.read.format("binaryFile").load(str(path)).select(F.decode("content", encoding).alias("t"))
    body = F.regexp_replace("t", r"\r?\n\z", "")  # a final line break ends the last line, no new one
    lines = F.when(F.col("t") == "", F.array().cast("array<string>")).otherwise(F.split(body, r"\r?\n", -1))
    return whole.select(F.explode(lines).alias("value"))
