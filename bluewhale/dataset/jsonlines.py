"""JSON-lines files (and the older Python-literal lines) read fast when clean, line by line when not.

The fast path is Arrow's JSON reader with an explicit schema; it is taken only when every line parses,
every required field is present and no line is empty, so the row numbers are the file lines. Otherwise
each line is parsed in Python to name the bad ones (`ast.literal_eval` for literals: never `eval`).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

# Check one parsed record; return its values in schema order, or raise ValueError saying what is wrong.
Record = Callable[[object], list]


def read_json_lines(
    path: Path,
    schema: pa.Schema,
    required: list[str],
    record: Record,
    literals: bool = False,
    lists: list[str] = (),
) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Read `path` into `schema`; return kept rows and problems as (1-based line, reason).

    With `literals`, a line that is not JSON may be a Python literal (single quotes, True/None).
    The (nested) list columns in `lists` may be null but hold no null item, as `record` checks.
    """
    table = _fast(path, schema, required, lists)
    if table is not None:
        return table, []
    return _line_by_line(path, schema, record, literals)


def _fast(path: Path, schema: pa.Schema, required: list[str], lists: list[str]) -> pa.Table | None:
    try:
        table = pajson.read_json(
            path,
            read_options=pajson.ReadOptions(block_size=1 << 24),
            parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if any(table.column(c).null_count for c in required) or table.num_rows != _count_lines(path):
        return None  # a missing field, or an empty line Arrow passed over: find them line by line
    for c in lists:  # a null inside a list: the record check refuses it, so find it line by line
        items = table.column(c)
        while pa.types.is_list(items.type):
            items = pc.list_flatten(items)
            if items.null_count:
                return None
    return table


def _count_lines(path: Path) -> int:
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _line_by_line(
    path: Path, schema: pa.Schema, record: Record, literals: bool
) -> tuple[pa.Table, list[tuple[int, str]]]:
    rows: list[list] = []
    problems: list[tuple[int, str]] = []
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            text = text.strip()
            if not text:
                problems.append((number, "empty line"))
                continue
            try:
                rows.append(record(_parse(text, literals)))
            except ValueError as err:
                problems.append((number, str(err)))
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    return pa.table(
        [pa.array(c, f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    ), problems


def _parse(text: str, literals: bool) -> object:
    try:
        if literals and text.startswith("{'"):
            raise json.JSONDecodeError("a Python literal", text, 1)  # no need to try JSON first
        return json.loads(text)
    except json.JSONDecodeError as err:
        if not literals:
            raise ValueError(
                f"expected a JSON object, got invalid JSON at column {err.colno}: {err.msg}"
            ) from None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
        raise ValueError(
            f"expected a JSON object or a Python literal, got neither ({type(err).__name__})"
        ) from None


def field(obj: object, name: str, kinds: tuple[type, ...], what: str, required: bool = True) -> object:
    """The value of `name` in a parsed record, checked to be one of `kinds` (bool is never a number)."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, got {type(obj).__name__}")
    value = obj.get(name)
    if value is None:
        if required:
            raise ValueError(f"field {name} missing, expected {what}")
        return None
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ValueError(f"field {name} expected {what}, got {value!r:.60}")
    return value


def last_item(lists: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The last element of every list (null for a null or empty list), without leaving Arrow."""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy()
    ends = lists.offsets.to_numpy()[1:] - 1  # where each row's last element is among the values
    # offsets of a sliced array are absolute into `values`; flatten() would drop that alignment
    index = pa.array(np.where(lengths > 0, ends, 0), mask=lengths == 0)
    return lists.values.take(index)
