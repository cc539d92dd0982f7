"""The pandas engine: runs a RecDP pipeline in memory, vectorised column by column.

Integer columns keep pandas' nullable dtypes (Int64, ...), so a filled integer column stays an integer
column, as it does on Spark. Ops that reorder or add rows work on numpy arrays and restore the order.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bluewhale.engine import (
    HIDDEN,
    ROW,
    SUB,
    TRAIN,
    EngineResult,
    Pipeline,
    add_hidden,
    cardinalities,
    negative_draw,
)
from bluewhale.recdp.ops import TIME_UNITS, Op

_NULLABLE = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
}


_ARROW_STRINGS = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}


class PandasEngine:
    """Single-process engine for data that fits in memory (the embedded default)."""

    name = "pandas"

    def run(self, dataset, pipeline: Pipeline, out: Path) -> EngineResult:
        """Read `dataset`, run `pipeline`, write `out/{train,test}.parquet`."""
        table, bad = dataset.read()
        sides = dataset.side_tables() if hasattr(dataset, "side_tables") else {}
        frame = self.to_frame(add_hidden(table, pipeline.split))
        sizes: dict[str, int] = {}
        for op in pipeline.ops:
            frame = getattr(self, f"_{op.op}")(frame, op, sizes, sides)
        for split, rows in (("train", frame[TRAIN]), ("test", ~frame[TRAIN])):
            part = frame[rows].drop(columns=list(HIDDEN))
            pq.write_table(self.to_arrow(part), Path(out) / f"{split}.parquet")
        return EngineResult(
            input_rows=table.num_rows,
            cardinalities=cardinalities(pipeline.ops, sizes),
            bad_rows={"count": bad.count, "examples": bad.examples},
        )

    # Where pandas and Modin differ: building the frame and handing it back to Arrow.
    def to_frame(self, table: pa.Table):
        # strings stay in Arrow memory: missing-value checks, counts and lookups run in Arrow's kernels
        return table.to_pandas(types_mapper=(_NULLABLE | _ARROW_STRINGS).get)

    def to_arrow(self, frame) -> pa.Table:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        # Arrow-backed pandas strings come out as large_string; write plain strings, as Spark does
        schema = pa.schema(
            [f.with_type(pa.string()) if f.type == pa.large_string() else f for f in table.schema]
        )
        return table.cast(schema)

    def to_pandas(self, frame) -> pd.DataFrame:
        return frame

    def from_pandas(self, frame: pd.DataFrame):
        return frame

    # Column ops: fitted on the rows where TRAIN is true, applied to all rows.
    def _fill_na(self, frame, op: Op, sizes: dict, sides: dict):
        for c in op.columns:
            frame[c] = frame[c].fillna(op.args["value"])
        return frame

    def _clip(self, frame, op: Op, sizes: dict, sides: dict):
        for c in op.columns:
            frame[c] = frame[c].clip(lower=op.args["lower"], upper=op.args["upper"])
        return frame

    def _log1p(self, frame, op: Op, sizes: dict, sides: dict):
        for c in op.columns:
            frame[c] = np.log1p(frame[c].astype(np.float64)).astype(np.float32)
        return frame

    def _normalize(self, frame, op: Op, sizes: dict, sides: dict):
        train = frame[TRAIN]
        for c in op.columns:
            col = frame[c].astype(np.float64)
            mean, std = col[train].mean(), col[train].std(ddof=0)
            frame[c] = ((col - mean) / (std if std > 0 else 1.0)).astype(np.float32)
        return frame

    def _bucketize(self, frame, op: Op, sizes: dict, sides: dict):
        bounds = op.args["boundaries"]
        for c in op.columns:
            col = frame[c].astype(np.float64)
            ids = sum((col >= b).astype(np.int32) for b in bounds) + 1  # 1 + how many boundaries <= x
            frame[c] = ids.where(col.notna(), 0).astype(np.int32)
        return frame

    def _hash_mod(self, frame, op: Op, sizes: dict, sides: dict):
        buckets = op.args["buckets"]
        for c in op.columns:
            col = frame[c]
            if pd.api.types.is_integer_dtype(col.dtype):
                frame[c] = (col % buckets).fillna(0).astype(np.int64)
            else:  # CRC-32 of the UTF-8 bytes: Spark's crc32() computes the same
                codes, uniques = pd.factorize(self.to_pandas(col))
                hashed = np.array([zlib.crc32(str(v).encode()) % buckets for v in uniques] + [0], np.int64)
                frame[c] = self._series(hashed[codes], frame)
        return frame

    def _categorify(self, frame, op: Op, sizes: dict, sides: dict):
        train = frame[TRAIN]
        for columns in op.args["vocabularies"]:
            if len(columns) == 1 and not self._is_list(frame[columns[0]]):
                counts = self.to_pandas(frame[columns[0]][train].value_counts())  # distributed on Modin
            else:
                counts = pd.concat([self._flat(frame[c][train]) for c in columns]).value_counts()
            counts = counts[counts >= op.args["freq_threshold"]]
            # Ids by descending frequency, ties by value: every engine assigns the same ids.
            ordered = counts.rename("n").rename_axis("v").reset_index()
            ordered = ordered.sort_values(["n", "v"], ascending=[False, True])
            vocabulary = pd.Series(np.arange(1, len(ordered) + 1, dtype=np.int32), index=ordered["v"])
            for c in columns:
                sizes[c] = len(vocabulary) + 1  # id 0: rare, unseen or missing values
                frame[c] = self._map_ids(frame[c], vocabulary, frame)
        return frame

    def _count_encode(self, frame, op: Op, sizes: dict, sides: dict):
        train = frame[TRAIN]
        for c in op.columns:
            counts = self.to_pandas(frame[c][train].value_counts())
            frame[c] = frame[c].map(counts).fillna(0).astype(np.int64)
        return frame

    def _target_encode(self, frame, op: Op, sizes: dict, sides: dict):
        """Mean target per value, smoothed toward the train mean; train rows see other folds only."""
        target, folds, s = op.args["target"], op.args["folds"], float(op.args["smoothing"])
        train = frame[TRAIN]
        y = frame[target].astype(np.float64)
        prior = y[train].mean()
        fold = frame[ROW] % folds
        for c in op.columns:
            part = pd.DataFrame({"v": frame[c][train], "f": fold[train], "y": y[train]})
            part = self.to_pandas(part)
            per_fold = part.groupby(["v", "f"], dropna=True)["y"].agg(["sum", "count"])
            total = per_fold.groupby(level="v").sum()
            full = self.to_pandas(frame[[c, TRAIN]].assign(__f=fold))
            sums = full[c].map(total["sum"]).fillna(0.0).to_numpy(np.float64)
            counts = full[c].map(total["count"]).fillna(0.0).to_numpy(np.float64)
            index = pd.MultiIndex.from_arrays([full[c], full["__f"]])
            in_fold = per_fold.reindex(index)
            is_train = full[TRAIN].to_numpy(bool)
            sums -= np.where(is_train, np.nan_to_num(in_fold["sum"].to_numpy(np.float64)), 0.0)
            counts -= np.where(is_train, np.nan_to_num(in_fold["count"].to_numpy(np.float64)), 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):  # s = 0: unseen values take the prior
                encoded = (
                    (sums + s * prior) / (counts + s) if s > 0 else np.where(counts > 0, sums / counts, prior)
                )
            frame[c] = self._series(encoded.astype(np.float32), frame)
        return frame

    def _time_features(self, frame, op: Op, sizes: dict, sides: dict):
        per = TIME_UNITS[op.args["unit"]]
        for c in op.columns:
            seconds = frame[c].astype("Int64") // per
            for f in op.args["features"]:
                if f == "hour":
                    frame[f"{c}_{f}"] = ((seconds // 3600) % 24).astype("Int32")
                elif f == "weekday":  # 1970-01-01 was a Thursday; Monday is 0
                    frame[f"{c}_{f}"] = ((seconds // 86400 + 3) % 7).astype("Int32")
                else:
                    frame[f"{c}_{f}"] = (seconds // 86400).astype("Int64")
        return frame

    # Table ops: they join, reorder or add rows, so they run on pandas (Modin hands its frame over).
    def _join(self, frame, op: Op, sizes: dict, sides: dict):
        side = _side_table(sides, op).to_pandas(types_mapper=_NULLABLE.get)
        on, columns = op.args["on"], op.args["columns"]
        if side.duplicated(on).any():
            raise ValueError(f"join with side table {op.args['table']!r}: its key {on} is not unique")
        local = self.to_pandas(frame)
        joined = local.merge(side[[*on, *columns]], how="left", on=on, sort=False)
        return self.from_pandas(joined)

    def _sequence_history(self, frame, op: Op, sizes: dict, sides: dict):
        """Each row gets lists of the same user's earlier values (by time, then row), the last max_len."""
        local = self.to_pandas(frame)
        user, max_len = op.args["user"], op.args["max_len"]
        order = np.lexsort(
            (
                local[SUB].to_numpy(),
                local[ROW].to_numpy(),
                local[op.args["time"]].to_numpy(),
                local[user].to_numpy(),
            )
        )
        users = local[user].to_numpy()[order]
        position = np.arange(len(order))
        first = np.r_[True, users[1:] != users[:-1]] if len(order) else np.zeros(0, bool)
        start = np.maximum.accumulate(np.where(first, position, 0))
        lengths = np.minimum(position - start, max_len)
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        take = np.repeat(position - lengths, lengths) + (
            np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
        )
        back = np.empty_like(order)
        back[order] = position
        for c in op.args["columns"]:
            values = pa.array(local[c].to_numpy(dtype=object)[order][take], from_pandas=True)
            lists = pa.ListArray.from_arrays(pa.array(offsets), values).take(pa.array(back))
            local[f"hist_{c}"] = pd.Series(lists.to_pandas(), index=local.index)
        return self.from_pandas(local)

    def _negative_sample(self, frame, op: Op, sizes: dict, sides: dict):
        """After each positive, `ratio` copies with a different random item (from the train items), label 0."""
        local = self.to_pandas(frame)
        item, label, ratio = op.args["item"], op.args["label"], op.args["ratio"]
        vocabulary = np.sort(pd.unique(local.loc[local[TRAIN], item].dropna()))
        if len(vocabulary) < 2:
            raise ValueError(
                f"negative_sample: the train rows have {len(vocabulary)} distinct {item}; need 2"
            )
        positives = local[local[label] == 1]
        items = positives[item].to_numpy()
        place = np.searchsorted(vocabulary, items)
        known = (place < len(vocabulary)) & (vocabulary[np.minimum(place, len(vocabulary) - 1)] == items)
        samples = [local]
        for k in range(ratio):
            x = negative_draw(positives[ROW].to_numpy(np.int64), k, ratio, op.args["seed"]).astype(np.int64)
            pick = np.where(known, x % (len(vocabulary) - 1), x % len(vocabulary))
            pick = pick + (known & (pick >= place))  # skip the positive's own item
            negative = positives.copy()
            negative[item] = pd.Series(vocabulary[pick], index=negative.index).astype(local[item].dtype)
            negative[label] = pd.Series(0, index=negative.index).astype(local[label].dtype)
            negative[SUB] = positives[SUB] + k + 1
            samples.append(negative)
        out = pd.concat(samples, ignore_index=True).sort_values([ROW, SUB], kind="stable", ignore_index=True)
        return self.from_pandas(out)

    # helpers
    def _is_list(self, col) -> bool:
        if col.dtype != object:
            return False
        head = col.iloc[:1000]  # the first value that is not missing tells: columns hold one kind
        valid = head.dropna() if head.notna().any() else col.dropna()
        return len(valid) > 0 and isinstance(valid.iloc[0], list | np.ndarray)

    def _flat(self, col) -> pd.Series:
        col = self.to_pandas(col)
        return col.explode() if self._is_list(col) else col

    def _map_ids(self, col, vocabulary: pd.Series, frame):
        if self._is_list(col):
            arrow = pa.array(self.to_pandas(col), from_pandas=True)
            flat = pd.Series(pc.list_flatten(arrow).to_pandas())
            ids = flat.map(vocabulary).fillna(0).astype(np.int32).to_numpy()
            offsets = pc.list_value_length(arrow).fill_null(0).to_numpy().cumsum()
            lists = pa.ListArray.from_arrays(
                pa.array(np.r_[0, offsets].astype(np.int32)), pa.array(ids), mask=pc.is_null(arrow)
            )
            return self._series(lists.to_pandas(), frame)
        if (
            isinstance(col.dtype, pd.StringDtype)
            and col.dtype.storage == "pyarrow"
            and isinstance(col, pd.Series)
        ):
            # ids are 1.. in vocabulary order: the position found by Arrow's hash lookup, plus one
            keys = pa.array(vocabulary.index.to_numpy(dtype=object), pa.string())
            found = pc.index_in(pa.array(col.array).cast(pa.string()), value_set=keys)
            ids = pc.fill_null(pc.add(found, 1), 0).cast(pa.int32()).to_numpy()
            return pd.Series(ids, index=col.index)
        return col.map(vocabulary).fillna(0).astype(np.int32)

    def _series(self, values, frame):
        return pd.Series(values, index=frame.index)


def _side_table(sides: dict, op: Op) -> pa.Table:
    if op.args["table"] not in sides:
        raise ValueError(f"join: the data set has no side table {op.args['table']!r}; it has {sorted(sides)}")
    return sides[op.args["table"]]
