"""Processing engines: each runs a RecDP pipeline (fit on train, apply to every split) on its own backend.

An engine has a `name` and `run(dataset, pipeline, out) -> EngineResult`, which reads the data set,
runs the ops and writes `out/train.parquet` and `out/test.parquet` (a file or a folder of parts). All
engines give the same table: the same rows in the same order, the same ids, floats equal up to rounding,
the same column types. Helpers here define the engine-independent parts (row order, the
negative-sampling hash, the hidden columns).

Each split's table is the data columns followed by the hidden columns (names starting with `__`, which
no data column may have): `__row` (int64, the input row's position), `__sub` (int32, 0 for the row
itself, k for its k-th negative sample) and, for each raw column `c` in the data set's `planted_keys`,
`__key_<c>`: the value of `c` as read, before any op touched it (for a negative sample, the sampled
item's raw value where `c` is the sampled item or one of its `item_columns`). Readers of processed data
that want the features alone select their columns (the connector does) or drop `hidden_columns(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bluewhale.recdp.ops import TIME_FEATURES, Op, Pipeline, Split

# Hidden columns every engine carries: the input row's position, the rank of rows made from it
# (0 = the row itself, k = its k-th negative sample) and the split it belongs to (an index of PARTS).
ROW, SUB, PART = "__row", "__sub", "__part"
HIDDEN = (ROW, SUB, PART)
WRITTEN = (ROW, SUB)  # the hidden columns every split's parquet keeps (then the planted keys); PART goes
KEY = "__key_"  # __key_<c>: raw column c as read, for each c in the data set's planted_keys
PARTS = ("train", "valid", "test")  # ops are fitted on PART == 0 (train) and applied to every part
MASK32 = 0xFFFFFFFF
_MIX = 0x45D9F3B


@dataclass
class EngineResult:
    """What an engine reports after writing its output (the parquet files hold the data)."""

    input_rows: int
    cardinalities: dict[str, int] = field(default_factory=dict)
    bad_rows: dict = field(default_factory=lambda: {"count": 0, "examples": []})


class Engine(Protocol):
    name: str

    def run(self, dataset, pipeline: Pipeline, out) -> EngineResult: ...


def fill_value(value, column: str, text: bool):
    """The value `fill_na` puts in a column: as text in a text column (-1 becomes "-1"); a number column
    refuses text."""
    if text:
        return str(value)
    if isinstance(value, str):
        raise ValueError(f"fill_na: column {column!r} holds numbers, so it cannot be filled with {value!r}")
    return value


def position_bounds(split: Split, rows: int) -> tuple[int, int]:
    """Where a position split's valid and test rows start (rows before the first are train).

    Refuses a split that leaves train or test (or a requested valid part) empty."""
    test = round(rows * split.test_fraction)
    valid = round(rows * split.valid_fraction)
    if test == 0 or test + valid >= rows or (split.valid_fraction > 0 and valid == 0):
        raise ValueError(
            f"recdp.split (test_fraction={split.test_fraction}, valid_fraction={split.valid_fraction}) "
            f"leaves an empty split of {rows} rows"
        )
    return rows - test - valid, rows - test


def mix32(x: np.ndarray) -> np.ndarray:
    """A 32-bit integer hash (xor-shift-multiply) every engine computes the same way in 64-bit integers."""
    x = x.astype(np.uint64) & MASK32
    x = (((x >> 16) ^ x) * _MIX) & MASK32
    x = (((x >> 16) ^ x) * _MIX) & MASK32
    return (x >> 16) ^ x


def negative_draw(rows: np.ndarray, k: int, ratio: int, seed: int) -> np.ndarray:
    """The random number behind negative `k` of input row `rows`: a pure function of (row, k, seed)."""
    index = rows.astype(np.uint64) * np.uint64(ratio) + np.uint64(k)
    x = mix32((index & MASK32) ^ mix32(np.array([seed]))[0])
    return mix32(x ^ (index >> 32))


def cardinalities(ops: list[Op], sizes: dict[str, int]) -> dict[str, int]:
    """Embedding table sizes of the columns ops turned into ids (`sizes`: fitted vocabulary sizes)."""
    out: dict[str, int] = {}
    for op in ops:
        if op.op == "bucketize":
            out |= {c: len(op.args["boundaries"]) + 2 for c in op.columns}  # 0: missing
        elif op.op == "hash_mod":
            out |= {c: op.args["buckets"] + 1 for c in op.columns}  # 0: missing
        elif op.op == "categorify":
            out |= {c: sizes[c] for c in op.columns}
        elif op.op == "time_features":
            for c in op.columns:
                out |= {f"{c}_{f}": n for f in op.args["features"] if (n := TIME_FEATURES[f])}
    return out


def is_hidden(name: str) -> bool:
    """Whether a column is one of the hidden columns (they alone start with `__`)."""
    return name.startswith("__")


def key_column(column: str) -> str:
    """The hidden column holding raw column `column` as read (for a planted key)."""
    return KEY + column


def planted_keys(dataset) -> tuple[str, ...]:
    """The raw columns a data set wants carried as hidden keys (none for data sets without the attribute)."""
    return tuple(getattr(dataset, "planted_keys", ()) or ())


def output_columns(columns: list[str]) -> list[str]:
    """The columns a split is written with, in order: data columns, then `__row`, `__sub`, the keys."""
    keys = [c for c in columns if c.startswith(KEY)]
    return [c for c in columns if not is_hidden(c)] + list(WRITTEN) + keys


def check_input_columns(columns: list[str], keys: tuple[str, ...]) -> None:
    """Refuse input columns named like hidden columns, and planted keys the input does not have."""
    hidden = [c for c in columns if is_hidden(c)]
    if hidden:
        raise ValueError(f"columns {hidden}: names starting with '__' are reserved for hidden columns")
    absent = [c for c in keys if c not in columns]
    if absent:
        raise ValueError(f"planted_keys {absent}: not columns of the data set; it has {list(columns)}")


def add_hidden(
    table: pa.Table,
    split: Split,
    first_row: int = 0,
    total_rows: int | None = None,
    keys: tuple[str, ...] = (),
) -> pa.Table:
    """Append the row position, sub-row rank and split index that every engine carries, and the raw
    value of each planted key column (`__key_<c>`).

    `table` may be a piece of the input: its rows are then `first_row`.. of `total_rows`."""
    check_input_columns(table.column_names, keys)
    n = table.num_rows
    rows = np.arange(first_row, first_row + n, dtype=np.int64)
    if split.by == "position":
        valid_start, test_start = position_bounds(split, n if total_rows is None else total_rows)
        part = (rows >= valid_start).astype(np.int8) + (rows >= test_start)
    else:  # rows without a time are train rows

        def after(bound) -> np.ndarray:
            later = pc.greater(table.column(split.column), bound)
            return pc.fill_null(later, False).to_numpy(zero_copy_only=False)

        test = after(split.test_after)
        part = (test if split.valid_after is None else after(split.valid_after)).astype(np.int8) + test
    table = table.append_column(ROW, pa.array(rows))
    table = table.append_column(SUB, pa.array(np.zeros(n, dtype=np.int32)))
    table = table.append_column(PART, pa.array(part.astype(np.int8)))
    for c in keys:
        table = table.append_column(key_column(c), table.column(c))
    return table
