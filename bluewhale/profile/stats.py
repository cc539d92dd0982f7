"""Per-column statistics of a table, computed where the table lives: an Arrow table in memory (the pandas
and Modin engines) or a Spark DataFrame (aggregations on the executors; only small results come back).

Both give the same figures, as plain JSON-able dicts:
- `missing_rate` (nulls / rows, always over every row),
- `distinct` and `top` (the most frequent values, ties by value) and `curve` (the frequency of the value
  at rank r, at log-spaced ranks: the log-log frequency curve),
- `hist` for numeric columns (`bins` equal bins of the values, or of log1p(value) where a non-negative
  column's max exceeds 100 times its median + 1: heavy tails), list columns profile their lengths (`lengths`),
- `zero_rate` for id columns (the share at id 0: rare, unseen or missing values folded together),
- `label_rate` for label columns (mean over non-null rows).
In memory, a table over `sample_rows` rows has everything but its missing rates computed on a seeded
sample of that many rows (`sampled`); Spark's aggregations are exact at any size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CURVE_POINTS = 60
LOG_SPAN = 100.0  # a non-negative column whose max exceeds this many times (its median + 1) gets log1p bins


@dataclass
class Roles:
    """What a column is for the profile: a label, a numeric measurement, or an id from a vocabulary."""

    labels: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


def curve(counts: np.ndarray) -> list[list[int]]:
    """(rank, frequency) of the counts sorted from the most frequent value, at log-spaced ranks."""
    counts = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    if len(counts) == 0:
        return []
    ranks = np.unique(np.geomspace(1, len(counts), num=min(CURVE_POINTS, len(counts))).round().astype(int))
    return [[int(r), int(counts[r - 1])] for r in ranks]


def bin_edges(lo: float, hi: float, median: float, bins: int) -> tuple[str, float, float]:
    """(scale, start, width) of `bins` equal bins in the scale's units (linear, or log1p)."""
    if lo >= 0 and hi > LOG_SPAN * (median + 1):
        start, stop = math.log1p(lo), math.log1p(hi)
        return "log1p", start, (stop - start) / bins or 1.0
    return "linear", lo, (hi - lo) / bins or 1.0


def histogram(scale: str, start: float, width: float, bins: int, counts: dict[int, int]) -> dict:
    edges = [start + k * width for k in range(bins + 1)]
    if scale == "log1p":
        edges = [math.expm1(e) for e in edges]
    return {"scale": scale, "edges": edges, "counts": [int(counts.get(k, 0)) for k in range(bins)]}


def _bucket_numpy(values: np.ndarray, scale: str, start: float, width: float, bins: int) -> dict[int, int]:
    x = np.log1p(values) if scale == "log1p" else values
    index = np.clip(np.floor((x - start) / width), 0, bins - 1).astype(np.int64)
    keys, counts = np.unique(index, return_counts=True)
    return dict(zip(keys.tolist(), counts.tolist(), strict=True))


def _numeric_hist(values: np.ndarray, bins: int) -> dict | None:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return None
    scale, start, width = bin_edges(float(values.min()), float(values.max()), float(np.median(values)), bins)
    return histogram(scale, start, width, bins, _bucket_numpy(values, scale, start, width, bins))


def _value(v) -> str | int | float | bool:
    return v if isinstance(v, int | float | bool | str) else str(v)


def arrow_profile(
    table: pa.Table, roles: Roles, top: int = 10, bins: int = 30, sample_rows: int = 1_000_000, seed: int = 0
) -> dict:
    """The profile of an in-memory table (see the module docstring)."""
    rows = table.num_rows
    sample = table
    if rows > sample_rows:
        picked = np.sort(np.random.default_rng(seed).choice(rows, sample_rows, replace=False))
        sample = table.take(pa.array(picked))
    columns = {}
    for name in table.column_names:
        column, part = table.column(name), sample.column(name)
        stats: dict = {"type": str(column.type), "missing_rate": column.null_count / rows if rows else 0.0}
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            lengths = pc.list_value_length(part).drop_null().to_numpy(zero_copy_only=False).astype(float)
            stats["lengths"] = _numeric_hist(lengths, bins)
            columns[name] = stats
            continue
        values = part.drop_null().to_pandas()
        counts = values.value_counts(sort=False)
        order = counts.reset_index().sort_values(
            ["count", counts.index.name or "index"], ascending=[False, True], kind="stable"
        )
        stats["distinct"] = int(len(counts))
        stats["top"] = [[_value(v), int(c)] for v, c in order.head(top).itertuples(index=False)]
        stats["curve"] = curve(counts.to_numpy())
        is_number = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        if name in roles.numeric and is_number:
            stats["hist"] = _numeric_hist(values.to_numpy(dtype=float), bins)
        if name in roles.ids and is_number:
            stats["zero_rate"] = float((values == 0).sum() / len(part)) if len(part) else 0.0
        if name in roles.labels and is_number:
            stats["label_rate"] = float(values.mean()) if len(values) else float("nan")
        columns[name] = stats
    return {"rows": rows, "sampled": sample.num_rows if sample is not table else None, "columns": columns}


def spark_profile(df, roles: Roles, top: int = 10, bins: int = 30) -> dict:
    """The same profile of a Spark DataFrame, in four passes over it whatever its width (counts and
    ranges; value counts of every column at once; the top values and the count of counts; histograms).
    Exact, but for the median that only picks a histogram's scale (approximate on Spark)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    fields = {f.name: f.dataType for f in df.schema.fields}
    lists = [n for n, t in fields.items() if isinstance(t, T.ArrayType)]
    numbers = [n for n, t in fields.items() if isinstance(t, T.NumericType)]
    integral = {n for n, t in fields.items() if isinstance(t, T.IntegralType | T.BooleanType)}
    # lists are profiled by their length: a numeric column of its own
    df = df.select(
        *[F.when(F.col(n).isNotNull(), F.size(n)).alias(n) if n in lists else F.col(n) for n in fields]
    )
    df = df.cache()
    try:
        hist_columns = [n for n in fields if n in lists or (n in roles.numeric and n in numbers)]
        aggs = [F.count(F.lit(1)).alias("__rows"), *[F.count(n).alias(f"n_{n}") for n in fields]]
        for n in hist_columns:
            x = F.col(n).cast("double")
            aggs += [
                F.min(x).alias(f"lo_{n}"),
                F.max(x).alias(f"hi_{n}"),
                F.percentile_approx(x, 0.5, 10000).alias(f"md_{n}"),
            ]
        aggs += [F.sum((F.col(n) == 0).cast("long")).alias(f"z_{n}") for n in roles.ids if n in numbers]
        aggs += [F.avg(F.col(n)).alias(f"l_{n}") for n in roles.labels if n in numbers]
        totals = df.agg(*aggs).first().asDict()
        rows = totals["__rows"]
        counted = [n for n in fields if n not in lists]
        pairs = F.explode(
            F.array(
                *[
                    F.struct(
                        F.lit(n).alias("c"),
                        F.col(n).cast("string").alias("v"),
                        (F.col(n).cast("double") if n in numbers else F.lit(None).cast("double")).alias("x"),
                    )
                    for n in counted
                ]
            )
        ).alias("p")
        counts = (
            df.select(pairs)
            .select("p.*")
            .where(F.col("v").isNotNull())
            .groupBy("c", "v", "x")
            .count()
            .cache()
        )
        try:
            rank = Window.partitionBy("c").orderBy(F.desc("count"), F.asc("x"), F.asc("v"))
            tops = counts.withColumn("r", F.row_number().over(rank)).where(F.col("r") <= top).collect()
            of_counts = counts.groupBy("c", "count").agg(F.count(F.lit(1)).alias("n")).collect()
        finally:
            counts.unpersist()
        buckets = {}
        for n in hist_columns:
            if totals[f"lo_{n}"] is not None:
                edges = bin_edges(totals[f"lo_{n}"], totals[f"hi_{n}"], totals[f"md_{n}"], bins)
                buckets[n] = edges
        hist_rows = []
        if buckets:
            parts = []
            for n, (scale, start, width) in buckets.items():
                x = F.col(n).cast("double")
                x = F.log1p(x) if scale == "log1p" else x
                k = F.least(F.greatest(F.floor((x - F.lit(start)) / F.lit(width)), F.lit(0)), F.lit(bins - 1))
                parts.append(
                    F.struct(F.lit(n).alias("c"), F.when(F.col(n).isNotNull(), k.cast("int")).alias("k"))
                )
            exploded = (
                df.select(F.explode(F.array(*parts)).alias("p")).select("p.*").where(F.col("k").isNotNull())
            )
            hist_rows = exploded.groupBy("c", "k").count().collect()
    finally:
        df.unpersist()
    columns = {}
    for n, dtype in fields.items():
        stats: dict = {
            "type": dtype.simpleString(),
            "missing_rate": (rows - totals[f"n_{n}"]) / rows if rows else 0.0,
        }
        if n not in lists:
            mine = [r for r in of_counts if r["c"] == n]
            expanded = np.repeat([r["count"] for r in mine], [r["n"] for r in mine])
            typed = int if n in integral else float if n in numbers else str
            ranked = sorted((r for r in tops if r["c"] == n), key=lambda r: r["r"])
            stats["distinct"] = int(sum(r["n"] for r in mine))
            stats["top"] = [[_value(_typed(r["v"], r["x"], typed)), int(r["count"])] for r in ranked]
            stats["curve"] = curve(expanded)
        if n in buckets:
            scale, start, width = buckets[n]
            counts_k = {r["k"]: r["count"] for r in hist_rows if r["c"] == n}
            stats["lengths" if n in lists else "hist"] = histogram(scale, start, width, bins, counts_k)
        elif n in lists:
            stats["lengths"] = None
        if f"z_{n}" in totals:
            stats["zero_rate"] = (totals[f"z_{n}"] or 0) / rows if rows else 0.0
        if f"l_{n}" in totals:
            stats["label_rate"] = totals[f"l_{n}"]
        columns[n] = stats
    return {"rows": rows, "sampled": None, "columns": columns}


def _typed(value: str, number: float | None, kind):
    """A value Spark counted as a string, back in its column's type: integers from their digits (exact
    beyond 2**53), floats from their double (a float32's string has fewer digits), booleans by name."""
    if kind is int and value in ("true", "false"):
        return value == "true"
    return number if kind is float else kind(value)
