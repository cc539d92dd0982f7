"""The pandas engine: runs a RecDP pipeline in memory, vectorised column by column.

Ops are written against row partitions (pandas frames, each a contiguous run of input rows), in up to
three steps: `_partial_<op>` summarises a partition's train rows (value counts, sums), `_fit_<op>`
combines the summaries into the fitted state (a vocabulary, a mean) and `_apply_<op>` transforms a
partition with it. This engine has one partition; the Modin engine runs the same steps on many, on its
dask or ray workers. `sequence_history` needs a user's rows together, so it runs on the whole table.

Integer columns keep pandas' nullable dtypes (Int64, ...), so a filled integer column stays an integer
column, as it does on Spark; strings stay in Arrow memory, so counts and lookups run in Arrow's kernels.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bluewhale.dataset.badrows import BadRows
from bluewhale.engine import (
    PART,
    PARTS,
    ROW,
    SUB,
    EngineResult,
    Pipeline,
    add_hidden,
    cardinalities,
    fill_value,
    key_column,
    negative_draw,
    output_columns,
    planted_keys,
    streaming,
)
from bluewhale.recdp.ops import TIME_UNITS, Op, Split

_NULLABLE = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
}
_ARROW_STRINGS = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}
WHOLE_TABLE_OPS = {"sequence_history"}  # a user's rows may lie in any partition


class PandasEngine:
    """Single-process engine (the embedded default): an input that can be read in pieces (Criteo files)
    streams through in pieces sized for `memory_gb` GiB (or `chunk_mb` MiB of text each, when given), see
    `bluewhale.engine.streaming`; other inputs, or `memory_gb=None`, are processed in memory."""

    name = "pandas"
    parallel = False  # pieces run one at a time, in this process

    def __init__(self, memory_gb: float = 2.0, chunk_mb: float | None = None) -> None:
        self.memory_gb, self.chunk_mb = memory_gb, chunk_mb
        if memory_gb is not None or chunk_mb is not None:  # None, None: always in memory
            streaming.piece_bytes(memory_gb, chunk_mb)  # refuse a bad setting before any work

    def run(self, dataset, pipeline: Pipeline, out: Path) -> EngineResult:
        """Read `dataset`, run `pipeline`, write `out/<split>.parquet` for each split (train, [valid,] test)."""
        if streaming.streams(self, dataset, pipeline, WHOLE_TABLE_OPS):
            return streaming.run(self, dataset, pipeline, out)
        parts, rows, bad = self.read(dataset, pipeline.split)
        sides = dataset.side_tables() if hasattr(dataset, "side_tables") else {}
        sizes: dict[str, int] = {}
        for op in pipeline.ops:
            parts = self.run_op(parts, op, sizes, sides)
        self.write(parts, pipeline.split.names, Path(out))
        return EngineResult(
            input_rows=rows,
            cardinalities=cardinalities(pipeline.ops, sizes),
            bad_rows={"count": bad.count, "examples": bad.examples},
        )

    def run_op(self, parts: list, op: Op, sizes: dict, sides: dict) -> list:
        """Fit `op` on the train rows of all partitions (where it fits anything), then apply it to each."""
        state = None
        if hasattr(self, f"_partial_{op.op}"):
            summaries = self._gather(self._map(f"_partial_{op.op}", parts, op))
            state = self._share(getattr(self, f"_fit_{op.op}")(summaries, op, sizes))
        elif op.op == "join":
            state = self._share(_side_frame(sides, op))
        if op.op in WHOLE_TABLE_OPS:
            whole = pd.concat(self._gather(parts), ignore_index=True)
            return self.partition_frame(getattr(self, f"_apply_{op.op}")(whole, op, state))
        return self._map(f"_apply_{op.op}", parts, op, state)

    def write(self, parts: list, splits: tuple[str, ...], out: Path) -> None:
        """Each split as one file (one partition) or as a folder of part files, one per partition."""
        tables = self._map("_arrow", parts)
        schema = pa.unify_schemas(self._gather(self._map("_schema", tables)), promote_options="permissive")
        if len(parts) > 1:
            for s in splits:
                (out / f"{s}.parquet").mkdir()
        paths = [
            {
                s: str(out / (f"{s}.parquet" if len(parts) == 1 else f"{s}.parquet/part-{i:05d}.parquet"))
                for s in splits
            }
            for i in range(len(parts))
        ]
        self._gather([self._submit("_write", t, schema, p) for t, p in zip(tables, paths, strict=True)])

    # Streaming (see `bluewhale.engine.streaming`): where pieces run and how they are written.
    def piece_bytes(self) -> int:
        return streaming.piece_bytes(self.memory_gb, self.chunk_mb)

    def min_pieces(self) -> int:
        return 1

    def stream_map(self, step, arguments: list[tuple], merge=None) -> list:
        """`step(*a)` for each `a`, in order; with `merge`, results are merged as they come (one comes back)."""
        results = []
        for args in arguments:
            results.append(step(*args))
            if merge is not None and len(results) >= streaming.MERGE_EVERY:
                results = [merge(results)]
        return [merge(results)] if merge is not None and len(results) > 1 else results

    def write_stream(self, sources: list, where: list, ops: list, states: list, splits, out: Path) -> None:
        """Append each piece, after every op, to one parquet file per split."""
        writers = streaming.SplitWriters(out, splits)
        for source, at in zip(sources, where, strict=True):
            writers.append(streaming.transform_piece(source, at, ops, None, *states), self)
        writers.close()

    # Where engines differ: how partitions are made, where a step runs, how results come back.
    def read(self, dataset, split: Split) -> tuple[list, int, BadRows]:
        """The input as partitions with the hidden columns, its number of rows and its bad rows."""
        table, bad = dataset.read()
        return self.partition(add_hidden(table, split, keys=planted_keys(dataset))), table.num_rows, bad

    def partition(self, table: pa.Table) -> list:
        return [self.to_frame(table)]

    def partition_frame(self, frame: pd.DataFrame) -> list:
        return [frame]

    def _submit(self, method, *args):
        return method(*args) if callable(method) else getattr(self, method)(*args)

    def _map(self, method: str, parts: list, *args) -> list:
        return [self._submit(method, p, *args) for p in parts]

    def _gather(self, results: list) -> list:
        return results

    def _share(self, value):
        """A value every partition's step reads (a vocabulary): shipped to each worker once."""
        return value

    def to_frame(self, table: pa.Table) -> pd.DataFrame:
        return table.to_pandas(types_mapper=(_NULLABLE | _ARROW_STRINGS).get)

    # Steps on one partition (also called on the Modin engine's workers).
    def _arrow(self, part: pd.DataFrame) -> pa.Table:
        table = pa.Table.from_pandas(part, preserve_index=False)
        # Arrow-backed pandas strings come out as large_string; write plain strings, as Spark does
        schema = pa.schema([f.with_type(_plain_type(f.type)) for f in table.schema])
        return table.cast(schema)

    def _schema(self, table: pa.Table) -> pa.Schema:
        return table.schema

    def _write(self, table: pa.Table, schema: pa.Schema, paths: dict[str, str]) -> None:
        """Write the rows of each split (name -> path): data columns, then `__row`, `__sub` and the keys."""
        table = table.cast(schema)  # a partition may hold only nulls, or only empty lists, in a column
        for split, part in self.split_tables(table, tuple(paths)).items():
            pq.write_table(part, paths[split])

    def split_tables(self, table: pa.Table, splits: tuple[str, ...] = PARTS) -> dict[str, pa.Table]:
        """The rows of each split, as written: data columns, then `__row`, `__sub` and the keys."""
        part = table.column(PART).to_numpy()
        table = table.select(output_columns(table.column_names))
        table = table.set_column(table.schema.get_field_index(ROW), ROW, table.column(ROW).cast(pa.int64()))
        table = table.set_column(table.schema.get_field_index(SUB), SUB, table.column(SUB).cast(pa.int32()))
        return {s: table.filter(pa.array(part == PARTS.index(s))) for s in splits}

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema a split is written with, for a table of `schema` (hidden columns included)."""
        empty = schema.empty_table()
        return self.split_tables(empty, ("train",))["train"].schema

    # Column ops: fitted on the train rows (PART == 0), applied to all rows.
    def _apply_fill_na(self, part, op: Op, state):
        for c in op.columns:
            text = pd.api.types.is_string_dtype(part[c].dtype) and not _is_list(part[c])
            part[c] = part[c].fillna(fill_value(op.args["value"], c, text))
        return part

    def _apply_clip(self, part, op: Op, state):
        for c in op.columns:
            part[c] = part[c].clip(lower=op.args["lower"], upper=op.args["upper"])
        return part

    def _apply_log1p(self, part, op: Op, state):
        for c in op.columns:
            part[c] = np.log1p(part[c].astype(np.float64)).astype(np.float32)
        return part

    def _partial_normalize(self, part, op: Op):
        """Per column: count, mean and sum of squared deviations of the train values (NaN skipped)."""
        train = part[PART] == 0
        out = []
        for c in op.columns:
            x = part[c][train].astype(np.float64).dropna().to_numpy()
            mean = x.mean() if len(x) else 0.0
            out.append((len(x), mean, float(((x - mean) ** 2).sum())))
        return out

    def _merge_normalize(self, summaries: list, op: Op) -> list:
        """Summaries of several partitions as one (Chan et al.'s pairwise combination)."""
        merged = []
        for i in range(len(op.columns)):
            n, mean, m2 = 0, 0.0, 0.0
            for n_b, mean_b, m2_b in (s[i] for s in summaries):
                if n_b:
                    delta, total = mean_b - mean, n + n_b
                    mean, m2, n = mean + delta * n_b / total, m2 + m2_b + delta**2 * n * n_b / total, total
            merged.append((n, mean, m2))
        return merged

    def _fit_normalize(self, summaries: list, op: Op, sizes: dict):
        stats = []
        for n, mean, m2 in self._merge_normalize(summaries, op):
            std = np.sqrt(m2 / n) if n else np.nan
            stats.append((mean if n else np.nan, std if std > 0 else 1.0))
        return stats

    def _apply_normalize(self, part, op: Op, state):
        for c, (mean, std) in zip(op.columns, state, strict=True):
            part[c] = ((part[c].astype(np.float64) - mean) / std).astype(np.float32)
        return part

    def _apply_bucketize(self, part, op: Op, state):
        bounds = op.args["boundaries"]
        for c in op.columns:
            col = part[c].astype(np.float64)
            ids = sum((col >= b).astype(np.int32) for b in bounds) + 1  # 1 + how many boundaries <= x
            part[c] = ids.where(col.notna(), 0).astype(np.int32)
        return part

    def _apply_hash_mod(self, part, op: Op, state):
        """1 + the value's hash modulo `buckets`; 0 for a missing value (null, or NaN in a float column)."""
        buckets = op.args["buckets"]
        for c in op.columns:
            col = part[c]
            if pd.api.types.is_integer_dtype(col.dtype):
                part[c] = (col % buckets + 1).fillna(0).astype(np.int64)
            else:  # CRC-32 of the UTF-8 bytes: Spark's crc32() computes the same
                codes, uniques = pd.factorize(col)
                hashed = [zlib.crc32(str(v).encode()) % buckets + 1 for v in uniques]
                part[c] = pd.Series(np.array([*hashed, 0], np.int64)[codes], index=part.index)
        return part

    def _partial_categorify(self, part, op: Op):
        """Value counts of the train rows, one per vocabulary (list columns count each element)."""
        train = part[PART] == 0
        return [
            pd.concat([_flat(part[c][train]) for c in columns]).value_counts()
            if len(columns) > 1 or _is_list(part[columns[0]])
            else part[columns[0]][train].value_counts()
            for columns in op.args["vocabularies"]
        ]

    def _merge_categorify(self, summaries: list, op: Op) -> list:
        return [_add_counts([s[g] for s in summaries]) for g in range(len(op.args["vocabularies"]))]

    def _fit_categorify(self, summaries: list, op: Op, sizes: dict):
        vocabularies = []
        for g, columns in enumerate(op.args["vocabularies"]):
            counts = _add_counts([s[g] for s in summaries])
            counts = counts[counts >= op.args["freq_threshold"]]
            # Ids by descending frequency, ties by value: every engine assigns the same ids.
            ordered = counts.rename("n").rename_axis("v").reset_index()
            ordered = ordered.sort_values(["n", "v"], ascending=[False, True])
            vocabulary = pd.Series(np.arange(1, len(ordered) + 1, dtype=np.int32), index=ordered["v"])
            vocabularies.append((vocabulary, _arrow_keys(vocabulary)))
            for c in columns:
                sizes[c] = len(ordered) + 1  # id 0: rare, unseen or missing values
        return vocabularies

    def _apply_categorify(self, part, op: Op, state):
        for columns, (vocabulary, keys) in zip(op.args["vocabularies"], state, strict=True):
            for c in columns:
                part[c] = _map_ids(part[c], vocabulary, keys)
        return part

    def _partial_count_encode(self, part, op: Op):
        train = part[PART] == 0
        return [part[c][train].value_counts() for c in op.columns]

    def _merge_count_encode(self, summaries: list, op: Op) -> list:
        return [_add_counts([s[i] for s in summaries]) for i in range(len(op.columns))]

    def _fit_count_encode(self, summaries: list, op: Op, sizes: dict):
        return [_add_counts([s[i] for s in summaries]) for i in range(len(op.columns))]

    def _apply_count_encode(self, part, op: Op, state):
        for c, counts in zip(op.columns, state, strict=True):
            part[c] = part[c].map(counts).fillna(0).astype(np.int64)
        return part

    def _partial_target_encode(self, part, op: Op):
        """The train target's sum and count, and per column its sum and count by (value, fold)."""
        target, folds = op.args["target"], op.args["folds"]
        train = part[PART] == 0
        y = part[target].astype(np.float64)[train]
        per_fold = [
            pd.DataFrame({"v": part[c][train], "f": part[ROW][train] % folds, "y": y})
            .groupby(["v", "f"], dropna=True)["y"]
            .agg(["sum", "count"])
            for c in op.columns
        ]
        return y.sum(), y.count(), per_fold

    def _merge_target_encode(self, summaries: list, op: Op) -> tuple:
        per_fold = [
            pd.concat([s[2][i] for s in summaries]).groupby(level=["v", "f"]).sum()
            for i in range(len(op.columns))
        ]
        return sum(s[0] for s in summaries), sum(s[1] for s in summaries), per_fold

    def _fit_target_encode(self, summaries: list, op: Op, sizes: dict):
        prior = sum(s[0] for s in summaries) / sum(s[1] for s in summaries)
        per_fold = [
            pd.concat([s[2][i] for s in summaries]).groupby(level=["v", "f"]).sum()
            for i in range(len(op.columns))
        ]
        return prior, [(p, p.groupby(level="v").sum()) for p in per_fold]

    def _apply_target_encode(self, part, op: Op, state):
        """Mean target per value, smoothed toward the train mean; train rows see other folds only."""
        folds, s = op.args["folds"], float(op.args["smoothing"])
        prior, tables = state
        fold = part[ROW] % folds
        is_train = part[PART].to_numpy() == 0
        for c, (per_fold, total) in zip(op.columns, tables, strict=True):
            sums = part[c].map(total["sum"]).fillna(0.0).to_numpy(np.float64)
            counts = part[c].map(total["count"]).fillna(0.0).to_numpy(np.float64)
            in_fold = per_fold.reindex(pd.MultiIndex.from_arrays([part[c], fold]))
            sums -= np.where(is_train, np.nan_to_num(in_fold["sum"].to_numpy(np.float64)), 0.0)
            counts -= np.where(is_train, np.nan_to_num(in_fold["count"].to_numpy(np.float64)), 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):  # s = 0: unseen values take the prior
                encoded = (
                    (sums + s * prior) / (counts + s) if s > 0 else np.where(counts > 0, sums / counts, prior)
                )
            part[c] = pd.Series(encoded.astype(np.float32), index=part.index)
        return part

    def _apply_time_features(self, part, op: Op, state):
        per = TIME_UNITS[op.args["unit"]]
        for c in op.columns:
            seconds = part[c].astype("Int64") // per
            for f in op.args["features"]:
                if f == "hour":
                    part[f"{c}_{f}"] = ((seconds // 3600) % 24).astype("Int32")
                elif f == "weekday":  # 1970-01-01 was a Thursday; Monday is 0
                    part[f"{c}_{f}"] = ((seconds // 86400 + 3) % 7).astype("Int32")
                else:
                    part[f"{c}_{f}"] = (seconds // 86400).astype("Int64")
        return part

    # Table ops: they join, reorder or add rows.
    def _apply_join(self, part, op: Op, side: pd.DataFrame):
        return part.merge(side, how="left", on=op.args["keys"], sort=False)

    def _apply_sequence_history(self, frame, op: Op, state):
        """Each row gets lists of its user's events strictly before its time, the last `max_len` of them.

        Events are the real rows (`__sub` 0) with a user and a time, ordered by (time, row): a row never
        sees itself, a row of its user at the same time, or a negative sample; a negative gets its
        positive's history. A row without a user or a time (null, or NaN) has an empty history and is in
        no one's. A null value in a history column stays in the list as a null element, so the history
        columns of one op stay aligned element by element.
        """
        max_len = op.args["max_len"]
        users, _ = pd.factorize(frame[op.args["user"]])  # -1: missing
        times, _ = pd.factorize(frame[op.args["time"]], sort=True)  # ranks in time order; -1: missing
        rows = frame[ROW].to_numpy(np.int64)
        valid = (users >= 0) & (times >= 0)
        event = valid & (frame[SUB].to_numpy() == 0)
        # events and the rows asking for a history in one order: (user, time, asker before event, row)
        asks, events = np.flatnonzero(valid), np.flatnonzero(event)
        at = np.r_[asks, events]
        is_event = np.r_[np.zeros(len(asks), np.int64), np.ones(len(events), np.int64)]
        order = np.lexsort((rows[at], is_event, times[at], users[at]))
        before = np.cumsum(is_event[order]) - is_event[order]  # events earlier in this order
        ordered_events = at[order][is_event[order] == 1]  # frame positions of the events, in order
        first_event = np.searchsorted(users[ordered_events], users[at[order]], side="left")
        asking = is_event[order] == 0
        end, start = before[asking], first_event[asking]  # an asker's earlier events: [start, end)
        lengths = np.zeros(len(frame), np.int64)
        last = np.zeros(len(frame), np.int64)
        lengths[at[order][asking]] = np.minimum(end - start, max_len)
        last[at[order][asking]] = end
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        take = np.repeat(last - lengths, lengths) + (
            np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
        )
        for c in op.args["columns"]:
            values = pa.Array.from_pandas(frame[c]).take(pa.array(ordered_events[take], pa.int64()))
            if isinstance(values, pa.ChunkedArray):  # Arrow-backed strings of several partitions
                values = values.combine_chunks()
            lists = pa.ListArray.from_arrays(pa.array(offsets), values)
            frame[f"hist_{c}"] = pd.Series(lists.to_pandas(), index=frame.index)
        return frame

    def _partial_negative_sample(self, part, op: Op):
        """The distinct train items, with the columns that describe them (and their planted keys, as in
        the first train row that has them)."""
        columns = [op.args["item"], *op.args["item_columns"]]
        train = part.loc[part[PART] == 0, [*columns, *_item_keys(part, op), ROW]]
        train = train.dropna(subset=[op.args["item"]]).sort_values(ROW, kind="stable")
        return train.drop_duplicates(columns)

    def _merge_negative_sample(self, summaries: list, op: Op) -> pd.DataFrame:
        items = pd.concat(summaries, ignore_index=True).sort_values(ROW, kind="stable")
        return items.drop_duplicates([op.args["item"], *op.args["item_columns"]])

    def _fit_negative_sample(self, summaries: list, op: Op, sizes: dict) -> pd.DataFrame:
        item, described = op.args["item"], op.args["item_columns"]
        items = pd.concat(summaries, ignore_index=True).sort_values(ROW, kind="stable")
        items = items.drop_duplicates([item, *described]).drop(columns=ROW)
        items = items.sort_values(item, kind="stable", ignore_index=True)
        if (distinct := items[item].nunique()) < 2:
            raise ValueError(f"negative_sample: the train rows have {distinct} distinct {item}; need 2")
        if described and (twice := items[item][items[item].duplicated()]).size:
            raise ValueError(
                f"negative_sample.item_columns: {item} {twice.iloc[0]!r} has more than one value of "
                f"{described} in the train rows; item columns must describe the item alone"
            )
        return items

    def _apply_negative_sample(self, part, op: Op, items: pd.DataFrame):
        """After each positive, `ratio` copies with a different random item (from the train items), label 0.

        A negative takes the sampled item's `item_columns` too (e.g. its category), as seen in train rows,
        and the planted keys of those columns (`__key_<item>`...), as in the first train row with the item.
        """
        item, label, ratio = op.args["item"], op.args["label"], op.args["ratio"]
        vocabulary = items[item].to_numpy()
        positives = part[(part[label] == 1).fillna(False).to_numpy(bool)]  # a null label: not a positive
        missing = positives[item].isna().to_numpy()  # a positive without an item: any item is another
        chosen = np.where(missing, vocabulary[0], positives[item].to_numpy(dtype=object))
        place = np.searchsorted(vocabulary, chosen)
        known = (place < len(vocabulary)) & (vocabulary[np.minimum(place, len(vocabulary) - 1)] == chosen)
        known &= ~missing
        samples = [part]
        for k in range(ratio):
            x = negative_draw(positives[ROW].to_numpy(np.int64), k, ratio, op.args["seed"]).astype(np.int64)
            pick = np.where(known, x % (len(vocabulary) - 1), x % len(vocabulary))
            pick = pick + (known & (pick >= place))  # skip the positive's own item
            negative = positives.copy()
            for c in (item, *op.args["item_columns"], *_item_keys(part, op)):
                negative[c] = pd.Series(items[c].to_numpy()[pick], index=negative.index).astype(part[c].dtype)
            negative[label] = pd.Series(0, index=negative.index).astype(part[label].dtype)
            negative[SUB] = (positives[SUB] + k + 1).astype(np.int32)
            samples.append(negative)
        return pd.concat(samples, ignore_index=True).sort_values([ROW, SUB], kind="stable", ignore_index=True)


def _item_keys(part: pd.DataFrame, op: Op) -> list[str]:
    """The planted-key columns of a negative sample's item and item columns (they follow the item)."""
    return [k for c in (op.args["item"], *op.args["item_columns"]) if (k := key_column(c)) in part.columns]


def _plain_type(t: pa.DataType) -> pa.DataType:
    """Large strings (Arrow-backed pandas strings) as plain strings, in lists too, as Spark writes them."""
    if t == pa.large_string():
        return pa.string()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_plain_type(t.value_type))
    return t


def _side_frame(sides: dict, op: Op) -> pd.DataFrame:
    """The columns of a side table a join adds, keyed by unique keys."""
    if op.args["table"] not in sides:
        raise ValueError(f"join: the data set has no side table {op.args['table']!r}; it has {sorted(sides)}")
    keys = op.args["keys"]
    side = sides[op.args["table"]].select([*keys, *op.args["columns"]]).to_pandas(types_mapper=_NULLABLE.get)
    if side.duplicated(keys).any():
        raise ValueError(f"join with side table {op.args['table']!r}: its key {keys} is not unique")
    return side


def _add_counts(counts: list[pd.Series]) -> pd.Series:
    """Value counts of several partitions, summed per value."""
    return counts[0] if len(counts) == 1 else pd.concat(counts).groupby(level=0, sort=False).sum()


def _is_list(col: pd.Series) -> bool:
    if col.dtype != object:
        return False
    head = col.iloc[:1000]  # the first value that is not missing tells: columns hold one kind
    valid = head.dropna() if head.notna().any() else col.dropna()
    return len(valid) > 0 and isinstance(valid.iloc[0], list | np.ndarray)


def _flat(col: pd.Series) -> pd.Series:
    return col.explode() if _is_list(col) else col


def _arrow_keys(vocabulary: pd.Series) -> pa.Array | None:
    """A string vocabulary's values as an Arrow array, for Arrow's hash lookup (None: not strings)."""
    try:
        return pa.array(vocabulary.index.to_numpy(dtype=object), pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _map_ids(col: pd.Series, vocabulary: pd.Series, keys: pa.Array | None) -> pd.Series:
    """Ids of a column's values (or of each element of a list column); 0 for values not in `vocabulary`."""
    if _is_list(col):
        arrow = pa.array(col, from_pandas=True)
        flat = pd.Series(pc.list_flatten(arrow).to_pandas())
        ids = flat.map(vocabulary).fillna(0).astype(np.int32).to_numpy()
        offsets = pc.list_value_length(arrow).fill_null(0).to_numpy().cumsum()
        lists = pa.ListArray.from_arrays(
            pa.array(np.r_[0, offsets].astype(np.int32)), pa.array(ids), mask=pc.is_null(arrow)
        )
        return pd.Series(lists.to_pandas(), index=col.index)
    if isinstance(col.dtype, pd.StringDtype) and col.dtype.storage == "pyarrow" and keys is not None:
        # ids are 1.. in vocabulary order: the position found by Arrow's hash lookup, plus one
        found = pc.index_in(pa.array(col.array).cast(pa.string()), value_set=keys)
        ids = pc.fill_null(pc.add(found, 1), 0).cast(pa.int32()).to_numpy()
        return pd.Series(ids, index=col.index)
    return col.map(vocabulary).fillna(0).astype(np.int32)
