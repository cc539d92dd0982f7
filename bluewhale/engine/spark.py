"""The Spark engine: runs a RecDP pipeline as Spark SQL, from input files to parquet.

Nothing is collected to the driver but fitted scalars (means, vocabulary sizes) and a few bad-row
examples: the input is read by Spark (a native reader for every data set's format, see `spark_readers`),
ops are column expressions and joins, and each split is written by the executors. No Python UDFs, so a
cluster's executors need no Python. `master` is `local[*]` by default or e.g. `spark://HOST:PORT`.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from functools import reduce
from pathlib import Path

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bluewhale.engine import (
    MASK32,
    PART,
    PARTS,
    ROW,
    SUB,
    EngineResult,
    cardinalities,
    fill_value,
    key_column,
    mix32,
    output_columns,
)
from bluewhale.engine.spark_readers import read_input, read_side_tables
from bluewhale.recdp.ops import TIME_UNITS, Op, Pipeline

log = logging.getLogger(__name__)
_MIX = 0x45D9F3B
_BROADCAST_ROWS = 2_000_000  # vocabularies up to this size are shipped to every executor
_VOCABULARY_ROWS_PER_PARTITION = 1_000_000  # each join's broadcast reads the vocabularies in this many tasks
_JOINS_PER_STAGE = 10  # well below the 20-26 joins a stage ran compiled with; see `_stage_boundary`


class SparkEngine:
    """Distributed engine: Spark in local mode by default, or against a standalone/YARN/k8s master."""

    name = "spark"

    def __init__(
        self,
        master: str = "local[*]",
        app_name: str = "bluewhale-recdp",
        driver_memory: str = "4g",
        conf: dict | None = None,
        log_level: str = "WARN",
    ) -> None:
        self.master, self.app_name, self.driver_memory = master, app_name, driver_memory
        self.conf, self.log_level = _flatten(conf or {}), log_level
        self.driver_bytes = memory_bytes(self.conf.get("spark.driver.memory", driver_memory))

    def session(self) -> SparkSession:
        """The Spark session for `master` (an active session on another master is stopped first)."""
        active = SparkSession.getActiveSession()
        if active is not None and active.sparkContext.master != self.master:
            active.stop()
        builder = (
            SparkSession.builder.master(self.master)
            .appName(self.app_name)
            .config("spark.driver.memory", self.driver_memory)
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "16")
            # a partitioned write opens a file per split at once and takes rows as they come, rather than
            # sorting them by split first: rows in order stay in order, with no sort buffer to hold them
            .config("spark.sql.maxConcurrentOutputFileWriters", str(len(PARTS)))
            .config("spark.ui.showConsoleProgress", "false")
        )
        for key, value in self.conf.items():
            builder = builder.config(key, str(value))
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel(self.log_level)
        heap = spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory()
        if heap < 0.8 * self.driver_bytes:  # the JVM reports a little less than -Xmx
            log.warning(
                "engine.driver_memory=%s does not apply: this process's Spark driver JVM was started with "
                "a %.1f GiB heap, which a running JVM keeps; start a fresh Python process to change it",
                self.driver_memory,
                heap / 2**30,
            )
        return spark

    def run(self, dataset, pipeline: Pipeline, out: Path) -> EngineResult:
        """Read `dataset` with Spark, run `pipeline`, write `out/{train,test}.parquet` as part files."""
        spark = self.session()
        out = Path(out)
        scratch = out / "_scratch"  # intermediate parquet, removed before the output is published
        df, input_rows, bad_rows = read_input(spark, dataset, pipeline.split, scratch)
        sides = read_side_tables(spark, dataset, scratch)
        sizes: dict[str, int] = {}
        try:
            for op in pipeline.ops:
                columns = df.columns
                df = getattr(self, f"_{op.op}")(spark, df, op, sizes, sides)
                # joins move their keys to the front: keep the order the pandas engine has
                df = df.select(*columns, *[c for c in df.columns if c not in columns])
            self._write(df, pipeline, out, scratch, ordered=_keeps_order(dataset, pipeline, bad_rows, sizes))
        finally:
            spark.catalog.clearCache()
            # the parse's local checkpoint is an RDD persisted outside the cache manager: free it too, or a
            # long-lived session (tests, notebooks) fills the driver's heap run after run. Through the context:
            # the RDD's own unpersist warns, for each, that a local checkpoint cannot be recomputed
            context = spark.sparkContext._jsc.sc()
            for rdd in list(spark.sparkContext._jsc.getPersistentRDDs()):
                context.unpersistRDD(rdd, False)
            shutil.rmtree(scratch, ignore_errors=True)
        return EngineResult(input_rows, cardinalities(pipeline.ops, sizes), bad_rows)

    def _write(self, df: DataFrame, pipeline: Pipeline, out: Path, scratch: Path, ordered: bool) -> None:
        """Every split in one write (partitioned by split), in row order, moved to `out/<split>.parquet`.

        `ordered`: the rows are in (row, sub-row) order within each input partition already, and the
        partitions in order, so each task writes its rows as they come (a file per split open at once,
        `spark.sql.maxConcurrentOutputFileWriters`); otherwise a global sort first."""
        columns = output_columns(df.columns)  # data columns, then __row, __sub and the planted keys
        df = df.withColumns({ROW: F.col(ROW).cast("long"), SUB: F.col(SUB).cast("int")})
        df = df.select(*columns, PART)
        if not ordered:
            df = df.orderBy(PART, ROW, SUB)
        df.write.partitionBy(PART).parquet(str(scratch / "splits"))
        for split in pipeline.split.names:
            written = scratch / "splits" / f"{PART}={PARTS.index(split)}"
            if written.is_dir():
                written.rename(out / f"{split}.parquet")
            else:  # no row in this split: an empty table with the columns
                df.select(*columns).limit(0).write.parquet(str(out / f"{split}.parquet"))

    # Column ops: fitted on the train rows (PART == 0), applied to all rows.
    def _fill_na(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        def filled(c: str) -> Column:
            kind = df.schema[c].dataType
            value = F.lit(fill_value(op.args["value"], c, isinstance(kind, T.StringType)))
            col = F.nanvl(F.coalesce(c, value), value) if _is_float(df, c) else F.coalesce(c, value)
            return col.cast(kind)  # the column keeps its type (a float column filled with 0.0 stays float)

        return df.withColumns({c: filled(c) for c in op.columns})

    def _clip(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        lower, upper = op.args["lower"], op.args["upper"]

        def clipped(c: str) -> Column:
            col = F.col(c)
            if lower is not None:
                col = F.greatest(col, F.lit(lower))
            if upper is not None:
                col = F.least(col, F.lit(upper))
            # greatest() would skip nulls; the column keeps its type (pandas' clip keeps it too)
            return F.when(F.col(c).isNull(), F.lit(None)).otherwise(col).cast(df.schema[c].dataType)

        return df.withColumns({c: clipped(c) for c in op.columns})

    def _log1p(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        return df.withColumns({c: F.log1p(F.col(c).cast("double")).cast("float") for c in op.columns})

    def _normalize(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        aggs = [F.avg(F.col(c).cast("double")) for c in op.columns]
        aggs += [F.stddev_pop(F.col(c).cast("double")) for c in op.columns]
        stats = df.filter(_train()).agg(*aggs).first()
        n = len(op.columns)
        return df.withColumns(
            {
                c: ((F.col(c).cast("double") - stats[i]) / (stats[n + i] if stats[n + i] else 1.0)).cast(
                    "float"
                )
                for i, c in enumerate(op.columns)
            }
        )

    def _bucketize(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        def bucket(c: str) -> Column:
            x = F.col(c).cast("double")
            ids = sum((x >= b).cast("int") for b in op.args["boundaries"]) + 1
            return F.coalesce(ids, F.lit(0)).cast("int")

        return df.withColumns({c: bucket(c) for c in op.columns})

    def _hash_mod(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        """1 + the value's hash modulo `buckets`; 0 for a missing value (null, or NaN in a float column)."""
        buckets = F.lit(op.args["buckets"])

        def hashed(c: str) -> Column:
            if isinstance(df.schema[c].dataType, T.IntegralType):
                ids = F.pmod(F.col(c), buckets) + 1
            else:
                ids = F.pmod(F.crc32(F.col(c).cast("string").cast("binary")), buckets) + 1
                if _is_float(df, c):
                    ids = F.when(~F.isnan(c), ids)
            return F.coalesce(ids, F.lit(0)).cast("long")

        return df.withColumns({c: hashed(c) for c in op.columns})

    def _categorify(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        """Count every vocabulary of the op in one job per value type, then map each column by a join."""
        train = df.filter(_train())
        joins = 0
        by_type: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        for g, columns in enumerate(op.args["vocabularies"]):
            kind = df.schema[columns[0]].dataType
            kind = kind.elementType if isinstance(kind, T.ArrayType) else kind
            by_type.setdefault(kind.simpleString(), []).append((g, columns))
        for groups in by_type.values():
            # one scan: every scalar column becomes (g, v) rows; list columns are exploded on their own
            scalars = [
                F.struct(F.lit(g).alias("g"), F.col(c).alias("v"))
                for g, cs in groups
                for c in cs
                if not _is_list(df, c)
            ]
            parts = (
                [train.select(F.explode(F.array(*scalars)).alias("p")).select("p.g", "p.v")]
                if scalars
                else []
            )
            parts += [
                train.select(F.lit(g).alias("g"), F.explode(c).alias("v"))
                for g, cs in groups
                for c in cs
                if _is_list(df, c)
            ]
            values = reduce(DataFrame.unionByName, parts)
            counts = values.filter(F.col("v").isNotNull()).groupBy("g", "v").count()
            counts = counts.filter(F.col("count") >= op.args["freq_threshold"])
            # Ids by descending frequency, ties by value: every engine assigns the same ids.
            order = Window.partitionBy("g").orderBy(F.col("count").desc(), F.col("v").asc())
            vocabularies = counts.select("g", "v", F.row_number().over(order).cast("int").alias("id"))
            # checkpointed, not cached: the joins below then start from a leaf, which Spark analyses at once,
            # not from the plan above, which it analysed again for every join (3 s at 1M rows)
            vocabularies = vocabularies.localCheckpoint()
            size = dict(vocabularies.groupBy("g").count().collect())
            small = [(g, columns) for g, columns in groups if size.get(g, 0) <= _BROADCAST_ROWS]
            # one task per partition of the checkpoint for each group's broadcast: a few large partitions, not
            # the shuffle's many small ones (26 broadcasts x 16 tasks took 6 s of 1M rows' 60)
            shipped = sum(size.get(g, 0) for g, _ in small)
            packed = vocabularies.coalesce(1 + shipped // _VOCABULARY_ROWS_PER_PARTITION)
            for g, columns in small:
                vocabulary = packed.filter(F.col("g") == g).drop("g")
                lists = [c for c in columns if _is_list(df, c)]
                if lists:  # list elements through a map (value -> id) shipped to every executor
                    row = vocabulary.agg(F.map_from_entries(F.collect_list(F.struct("v", "id"))).alias("_m"))
                    df = df.crossJoin(F.broadcast(row))
                    df = df.withColumns({c: _lookup(df, c, F.col("_m")) for c in lists}).drop("_m")
                for c in columns:
                    sizes[c] = size.get(g, 0) + 1  # id 0: rare, unseen or missing values
                    if c not in lists:  # a broadcast hash join: a hash lookup per row, rows keep their order
                        df = _map_ids(df, c, vocabulary, list_column=False, broadcast=True)
                        joins += 1
                        if joins % _JOINS_PER_STAGE == 0:
                            df = _stage_boundary(df)
            for g, columns in groups:
                if size.get(g, 0) <= _BROADCAST_ROWS:
                    continue
                vocabulary = vocabularies.filter(F.col("g") == g).drop("g")
                for c in columns:
                    sizes[c] = size[g] + 1
                    df = _map_ids(df, c, vocabulary, list_column=_is_list(df, c))
        return df

    def _count_encode(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        for c in op.columns:
            counts = df.filter(_train()).filter(F.col(c).isNotNull()).groupBy(c).agg(F.count("*").alias("_n"))
            df = (
                df.join(counts, on=c, how="left")
                .withColumn(c, F.coalesce("_n", F.lit(0)).cast("long"))
                .drop("_n")
            )
        return df

    def _target_encode(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        """Mean target per value, smoothed toward the train mean; train rows see other folds only."""
        target, folds, s = op.args["target"], op.args["folds"], float(op.args["smoothing"])
        y = F.col(target).cast("double")
        prior = df.filter(_train()).agg(F.avg(y)).first()[0]
        df = df.withColumn("_fold", F.pmod(F.col(ROW), F.lit(folds)))
        for c in op.columns:
            train = df.filter(_train()).filter(F.col(c).isNotNull())
            per_fold = train.groupBy(F.col(c).alias("_v"), F.col("_fold").alias("_f")).agg(
                F.sum(y).alias("_fs"),
                F.count(y).alias("_fc"),  # null targets count for nothing
            )
            total = per_fold.groupBy("_v").agg(F.sum("_fs").alias("_ts"), F.sum("_fc").alias("_tc"))
            df = df.join(total, df[c] == total["_v"], "left").drop("_v")
            df = df.join(per_fold, (df[c] == per_fold["_v"]) & (df["_fold"] == per_fold["_f"]), "left")
            own = F.when(_train(), F.coalesce("_fs", F.lit(0.0))).otherwise(F.lit(0.0))
            own_n = F.when(_train(), F.coalesce("_fc", F.lit(0))).otherwise(F.lit(0))
            sums = F.coalesce("_ts", F.lit(0.0)) - own
            counts = (F.coalesce("_tc", F.lit(0)) - own_n).cast("double")
            if s > 0:
                encoded = (sums + s * prior) / (counts + s)
            else:
                encoded = F.when(counts > 0, sums / counts).otherwise(F.lit(prior))
            df = df.withColumn(c, encoded.cast("float")).drop("_v", "_f", "_fs", "_fc", "_ts", "_tc")
        return df.drop("_fold")

    def _time_features(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        per = TIME_UNITS[op.args["unit"]]
        new = {}
        for c in op.columns:
            seconds = F.floor(F.col(c).cast("long") / per) if per > 1 else F.col(c).cast("long")
            for f in op.args["features"]:
                if f == "hour":
                    new[f"{c}_{f}"] = F.pmod(F.floor(seconds / 3600), F.lit(24)).cast("int")
                elif f == "weekday":  # 1970-01-01 was a Thursday; Monday is 0
                    new[f"{c}_{f}"] = F.pmod(F.floor(seconds / 86400) + 3, F.lit(7)).cast("int")
                else:
                    new[f"{c}_{f}"] = F.floor(seconds / 86400).cast("long")
        return df.withColumns(new)

    # Table ops
    def _join(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        if op.args["table"] not in sides:
            raise ValueError(
                f"join: the data set has no side table {op.args['table']!r}; it has {sorted(sides)}"
            )
        on, columns = op.args["keys"], op.args["columns"]
        side = sides[op.args["table"]].select(*on, *columns)
        if side.groupBy(*on).count().filter(F.col("count") > 1).limit(1).count():
            raise ValueError(f"join with side table {op.args['table']!r}: its key {on} is not unique")
        return df.join(side, on=on, how="left")

    def _sequence_history(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        """Each row gets lists of its user's events strictly before its time, the last `max_len` of them.

        Events are the real rows (`__sub` 0) with a user and a time, ordered by (time, row); see the
        pandas engine's `_apply_sequence_history` for the meaning. Null values stay in the lists (a
        struct of the history columns is collected, which `collect_list` never drops).
        """
        user, time, max_len, columns = (
            op.args["user"],
            op.args["time"],
            op.args["max_len"],
            op.args["columns"],
        )
        known = F.col(user).isNotNull() & F.col(time).isNotNull()
        if _is_float(df, time):
            known = known & ~F.isnan(time)
        if _is_float(df, user):
            known = known & ~F.isnan(user)
        events = df.filter(known & (F.col(SUB) == 0))
        in_order = Window.partitionBy(user).orderBy(time, ROW)
        # each event: its number among the user's events (1..) and the last max_len events up to it
        ends = events.select(
            user,
            F.row_number().over(in_order).cast("long").alias("_n"),
            F.collect_list(F.struct(*[F.col(c).alias(f"_c{i}") for i, c in enumerate(columns)]))
            .over(in_order.rowsBetween(1 - max_len, 0))
            .alias("_h"),
        )
        # each (user, time) asked for: how many of the user's events are strictly earlier
        asked = df.filter(known).select(user, time).distinct().withColumn("_e", F.lit(0))
        marks = asked.unionByName(events.select(user, time, F.lit(1).alias("_e")))
        earlier = F.sum("_e").over(
            Window.partitionBy(user).orderBy(time, "_e").rowsBetween(Window.unboundedPreceding, 0)
        )
        asked = (
            marks.select(user, time, "_e", earlier.cast("long").alias("_n"))
            .filter(F.col("_e") == 0)
            .drop("_e")
        )
        histories = asked.join(ends, on=[user, "_n"], how="left").drop("_n")
        out = df.join(histories, on=[user, time], how="left")
        new = {}
        for i, c in enumerate(columns):
            kind = T.ArrayType(df.schema[c].dataType)
            new[f"hist_{c}"] = F.coalesce(F.transform("_h", _field(f"_c{i}")), F.array().cast(kind))
        return out.withColumns(new).drop("_h")

    def _negative_sample(self, spark, df: DataFrame, op: Op, sizes, sides) -> DataFrame:
        """After each positive, `ratio` copies with a different random item (from the train items), label 0.

        A negative takes the sampled item's `item_columns` too (e.g. its category), as seen in train rows.
        """
        item, label, ratio = op.args["item"], op.args["label"], op.args["ratio"]
        described = op.args["item_columns"]
        # the planted keys of the item and its columns follow the sampled item (treated as item columns,
        # taken from the first train row with the item, not checked to describe it alone)
        keys = [k for c in (item, *described) if (k := key_column(c)) in df.columns]
        rename = {c: f"_d_{c}" for c in [*described, *keys]}
        train = (
            df.filter(_train())
            .filter(F.col(item).isNotNull())
            .select(F.col(item).alias("_item"), *[F.col(c).alias(rename[c]) for c in rename], ROW, SUB)
        )
        first = Window.partitionBy("_item", *[rename[c] for c in described]).orderBy(ROW, SUB)
        items = train.withColumn("_first", F.row_number().over(first)).filter(F.col("_first") == 1)
        items = items.drop("_first", ROW, SUB)
        vocabulary = items.select(
            "*",
            (F.row_number().over(Window.orderBy("_item", *[rename[c] for c in described])) - 1).alias("_pos"),
        ).cache()
        n = vocabulary.count()
        if n < 2:
            raise ValueError(f"negative_sample: the train rows have {n} distinct {item}; need 2")
        if described:
            twice = vocabulary.groupBy("_item").count().filter(F.col("count") > 1).limit(1).collect()
            if twice:
                raise ValueError(
                    f"negative_sample.item_columns: {item} {twice[0]['_item']!r} has more than one value of "
                    f"{described} in the train rows; item columns must describe the item alone"
                )
        positions = vocabulary.select("_item", "_pos")
        positives = df.filter(F.col(label) == 1).crossJoin(spark.range(ratio).withColumnRenamed("id", "_k"))
        positives = positives.join(positions, positives[item] == positions["_item"], "left").drop("_item")
        # the random draw of `negative_draw`, one column a step (see `_with_mix`)
        positives = positives.withColumn("_index", F.col(ROW) * ratio + F.col("_k"))
        seed = int(mix32(np.array([op.args["seed"]]))[0])
        positives = _with_mix(
            positives, "_x", F.col("_index").bitwiseAND(F.lit(MASK32)).bitwiseXOR(F.lit(seed))
        )
        positives = _with_mix(positives, "_x", F.col("_x").bitwiseXOR(F.shiftright("_index", 32)))
        known = F.col("_pos").isNotNull()
        positives = positives.withColumn(
            "_pick", F.when(known, F.pmod("_x", F.lit(n - 1))).otherwise(F.pmod("_x", F.lit(n)))
        )
        pick = F.col("_pick") + F.when(known & (F.col("_pick") >= F.col("_pos")), 1).otherwise(0)
        negatives = positives.withColumn("_pick", pick).drop("_pos", "_index", "_x")
        negatives = negatives.join(vocabulary, negatives["_pick"] == vocabulary["_pos"], "left")
        label_type = df.schema[label].dataType
        negatives = negatives.withColumns(
            {
                item: F.col("_item").cast(df.schema[item].dataType),
                **{c: F.col(rename[c]).cast(df.schema[c].dataType) for c in rename},
                label: F.lit(0).cast(label_type),
                SUB: (F.col(SUB) + F.col("_k") + 1).cast(df.schema[SUB].dataType),
            }
        ).select(*df.columns)
        return df.unionByName(negatives)


# Ops that keep each input partition's rows in order (no shuffle of the rows; categorify's broadcast joins).
_ORDER_KEEPING = {"fill_na", "clip", "log1p", "normalize", "bucketize", "hash_mod", "time_features"}


def _keeps_order(dataset, pipeline: Pipeline, bad_rows: dict, sizes: dict) -> bool:
    """Whether the rows reach the write in input order: a Criteo input without bad rows (their row
    positions need no ranking) through ops that move no rows (categorify with broadcast vocabularies)."""
    from bluewhale.dataset.criteo import CriteoFile
    from bluewhale.dataset.criteo_1tb import CriteoDays

    if not isinstance(dataset, CriteoFile | CriteoDays) or bad_rows["count"]:
        return False
    shipped = all(
        sizes[c] <= _BROADCAST_ROWS + 1 for op in pipeline.ops if op.op == "categorify" for c in op.columns
    )
    return shipped and all(op.op in _ORDER_KEEPING | {"categorify"} for op in pipeline.ops)


def memory_bytes(size: str) -> int:
    """A JVM memory size (`512m`, `4g`, `1t`; a bare number is bytes) in bytes."""
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    text = str(size).strip().lower().removesuffix("b")
    try:
        return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)
    except ValueError:
        raise ValueError(
            f"engine.driver_memory={size!r}: expected a JVM memory size such as 4g or 512m"
        ) from None


def _stage_boundary(df: DataFrame) -> DataFrame:
    """`df` as it is, after a boundary of Spark's whole-stage code generation.

    Broadcast joins in a row share one generated method, and the JVM never compiles a method of over 8000
    bytecodes: it interprets it. 26 joins in one stage made one: the stage took 70 s at 4M rows, against
    38 s as two stages of 13 (at 1M rows, 20 joins in a stage still ran compiled, 26 did not). A row count
    (`observe`; nothing reads it) is an operator without code generation: the cheapest boundary, as it
    neither moves nor copies the rows.
    """
    return df.observe(f"bluewhale_stage_{next(_boundaries)}", F.count(F.lit(1)).alias("rows"))


_boundaries = itertools.count()  # observed metrics need names unique within a plan


def _field(name: str):
    """A one-argument function for `F.transform`: the struct field `name` of each element."""
    return lambda x: x[name]


def _train() -> Column:
    """The rows ops are fitted on."""
    return F.col(PART) == 0


def _flatten(conf, prefix: str = "") -> dict[str, str]:
    """Spark settings from a config that Hydra may have nested at the dots (spark: {executor: ...})."""
    flat = {}
    for key, value in dict(conf).items():
        if hasattr(value, "items"):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def _with_mix(df: DataFrame, name: str, x: Column) -> DataFrame:
    """`df` with column `name` = `bluewhale.engine.mix32(x)` (64-bit integers, no overflow: x < 2**32, _MIX <
    2**27). One column a step: as one expression, each step's two uses of x double the tree, and Spark's
    planner ran out of heap canonicalising the nested hash of `negative_sample`."""
    df = df.withColumn(name, x.bitwiseAND(F.lit(MASK32)))
    for _ in range(2):
        x = F.col(name)
        df = df.withColumn(name, (F.shiftright(x, 16).bitwiseXOR(x) * F.lit(_MIX)).bitwiseAND(F.lit(MASK32)))
    return df.withColumn(name, F.shiftright(F.col(name), 16).bitwiseXOR(F.col(name)))


def _lookup(df: DataFrame, c: str, mapping: Column) -> Column:
    """Column `c` as ids through a map column (value -> id); values not in it get 0."""
    if _is_list(df, c):
        return F.transform(c, lambda x: F.coalesce(F.try_element_at(mapping, x), F.lit(0))).cast("array<int>")
    return F.coalesce(F.try_element_at(mapping, F.col(c)), F.lit(0)).cast("int")


def _map_ids(
    df: DataFrame, c: str, vocabulary: DataFrame, list_column: bool, broadcast: bool = False
) -> DataFrame:
    """Replace column `c` by its ids in `vocabulary` (v, id) with a join: a broadcast hash join (the rows
    keep their order) or, for vocabularies too big to ship, a shuffle join."""
    vocab = vocabulary
    if not list_column:
        vocab = vocabulary.select(F.col("v").alias("_v"), F.col("id").alias("_id"))
        vocab = F.broadcast(vocab) if broadcast else vocab
        joined = df.join(vocab, df[c] == vocab["_v"], "left")
        return joined.withColumn(c, F.coalesce("_id", F.lit(0)).cast("int")).drop("_v", "_id")
    exploded = df.select(ROW, SUB, F.posexplode(c).alias("_p", "v"))
    ids = exploded.join(vocab, "v", "left").select(ROW, SUB, "_p", F.coalesce("id", F.lit(0)).alias("id"))
    lists = ids.groupBy(ROW, SUB).agg(F.sort_array(F.collect_list(F.struct("_p", "id"))).alias("_ids"))
    lists = lists.select(ROW, SUB, F.col("_ids.id").alias("_ids"))
    joined = df.join(lists, [ROW, SUB], "left")
    empty = F.array().cast(T.ArrayType(T.IntegerType()))
    mapped = F.when(F.col(c).isNull(), F.lit(None)).otherwise(F.coalesce("_ids", empty))
    return joined.withColumn(c, mapped.cast(T.ArrayType(T.IntegerType()))).drop("_ids")


def _is_list(df: DataFrame, c: str) -> bool:
    return isinstance(df.schema[c].dataType, T.ArrayType)


def _is_float(df: DataFrame, c: str) -> bool:
    return isinstance(df.schema[c].dataType, T.FloatType | T.DoubleType)
