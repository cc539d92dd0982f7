"""Small shared pieces of the planted generators: Zipf-like draws, a logistic link, and the checks that
map a processed split's hidden key columns back to the generator's rows (`planted(keys)`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def zipf_choice(rng: np.random.Generator, n: int, size: int, exponent: float = 1.1) -> np.ndarray:
    """Draw `size` indices in [0, n) with Zipf-like popularity (index 0 the most popular)."""
    weight = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.choice(n, size=size, p=weight / weight.sum())


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def intercept_for_rate(logit: np.ndarray, rate: float) -> float:
    """The constant that makes the mean of sigmoid(logit + c) equal `rate` (bisection: it is monotone)."""
    low, high = -30.0, 30.0
    for _ in range(60):
        mid = (low + high) / 2
        if np.mean(sigmoid(logit + mid)) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


# The hidden columns a RecDP engine writes beside each processed row, from which `planted(keys)` finds the
# generator's truth: the input row (its position among the rows `read()` returned), the sub-row (0 the row
# itself, k its k-th sampled negative), and `__key_<c>` the raw value of column c (see `planted_keys`).
ROW, SUB, KEY = "__row", "__sub", "__key_"


def key_rows(keys: pa.Table, rows: int, twin: str) -> tuple[np.ndarray, np.ndarray]:
    """`(__row, __sub)` of every row of `keys` as int64 arrays, checked against a twin of `rows` rows."""
    for column in (ROW, SUB):
        if column not in keys.column_names:
            raise ValueError(
                f"{twin}.planted: the keys table has no {column} column; it has {keys.column_names}"
            )
        if keys.column(column).null_count:
            at = _first(np.asarray(keys.column(column).is_null()))
            raise ValueError(f"{twin}.planted: keys row {at} has a null {column}")
    row = keys.column(ROW).to_numpy().astype(np.int64)
    sub = keys.column(SUB).to_numpy().astype(np.int64)
    if (bad := (row < 0) | (row >= rows)).any():
        at = _first(bad)
        raise ValueError(
            f"{twin}.planted: keys row {at} has {ROW}={row[at]}, but the twin wrote {rows} rows (0..{rows - 1})"
        )
    if (bad := sub < 0).any():
        raise ValueError(f"{twin}.planted: keys row {_first(bad)} has {SUB}={sub[_first(bad)]} < 0")
    return row, sub


def positive_rows(keys: pa.Table, rows: int, twin: str) -> np.ndarray:
    """`__row` of every row of `keys`, for a twin that defines no probability for sampled negatives."""
    row, sub = key_rows(keys, rows, twin)
    if (bad := sub != 0).any():
        at = _first(bad)
        raise ValueError(
            f"{twin}.planted: keys row {at} is negative sample {sub[at]} ({SUB}={sub[at]}) of input row "
            f"{row[at]}; this twin defines a probability for its own rows only ({SUB}=0), not for negatives"
        )
    return row


def key_values(keys: pa.Table, column: str, twin: str) -> np.ndarray:
    """The raw values of `__key_<column>` (as numpy), refusing a missing column or nulls."""
    name = KEY + column
    if name not in keys.column_names:
        raise ValueError(f"{twin}.planted: the keys table has no {name} column; it has {keys.column_names}")
    values = keys.column(name)
    if values.null_count:
        at = _first(np.asarray(values.is_null()))
        raise ValueError(f"{twin}.planted: keys row {at} has a null {name}")
    return values.to_numpy(zero_copy_only=False)


def check_key(keys: pa.Table, column: str, expected: np.ndarray, twin: str) -> None:
    """Where `keys` carries `__key_<column>`, it must equal `expected` (the value the twin wrote on that row):
    a mismatch means the keys were joined to the wrong rows, which must never give a number."""
    if KEY + column not in keys.column_names:
        return
    values = key_values(keys, column, twin)
    if (bad := values != expected).any():
        at = _first(bad)
        raise ValueError(
            f"{twin}.planted: keys row {at} says {KEY}{column}={plain(values[at])!r}, but input row "
            f"{keys.column(ROW)[at].as_py()} has {column}={plain(expected[at])!r}: the keys do not match the rows"
        )


def plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (so messages say 'x', not np.str_('x'))."""
    return value.item() if isinstance(value, np.generic) else value


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def keys_table(
    table: pa.Table, columns: tuple[str, ...] | list[str], rows=None, subs=None, values=None
) -> pa.Table:
    """A keys table as an engine writes it beside processed rows, from the table `read()` returned: `__row`
    (`rows`, default every row), `__sub` (`subs`, default 0) and `__key_<c>` for each of `columns` (that
    row's value, or `values[c]` where given, e.g. a negative's sampled item). For tests and tools."""
    rows = np.arange(table.num_rows) if rows is None else np.asarray(rows, dtype=np.int64)
    subs = np.zeros(len(rows), np.int32) if subs is None else np.asarray(subs, dtype=np.int32)
    keys = {ROW: pa.array(rows, pa.int64()), SUB: pa.array(subs, pa.int32())}
    for c in columns:
        given = (values or {}).get(c)
        keys[KEY + c] = (
            pa.array(given, table.schema.field(c).type) if given is not None else table.column(c).take(rows)
        )
    return pa.table(keys)
