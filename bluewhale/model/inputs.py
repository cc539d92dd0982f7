"""What a model reads: its `inputs` (config: batch key -> a processed column group or columns), resolved
against the processed data before any training, so a missing group or a column of the wrong kind fails
naming the config key.

A model is built as `Model(inputs=..., **its config)`; `inputs[key]` tells it the columns behind each
batch key, their kind and, for ids, each column's table size. Its `forward(batch)` gets a dict with the
tensors the connector makes of them (shapes in `bluewhale.connector.reader.Features`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from bluewhale.connector.reader import Features, column_kind

LABEL = "label"


@dataclass(frozen=True)
class Input:
    """One batch key: its columns, their kind (label, float, int, list) and, for ids, table sizes."""

    columns: tuple[str, ...]
    kind: str
    cardinalities: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.columns)

    def index(self, column: str, key: str) -> int:
        """Where `column` sits in this input (a model's config names columns; `key` names that setting)."""
        if column not in self.columns:
            raise ValueError(f"{key}: {column!r} is not one of the input's columns {list(self.columns)}")
        return self.columns.index(column)


Inputs = Mapping[str, Input]


def resolve_inputs(
    spec: Mapping, meta: dict, schema: pa.Schema, where: str = "model.inputs"
) -> dict[str, Input]:
    """`spec` (batch key -> group name, column name, or a list of them) as `Input`s of the processed data.

    `meta` is RecDP's processed meta (groups, cardinalities); `schema` the processed table's schema.
    """
    groups = meta["groups"]
    if LABEL not in spec:
        raise ValueError(f"{where}.{LABEL}: missing; a model needs its label columns (e.g. `label: label`)")
    inputs = {}
    for key, names in spec.items():
        columns = _columns(names, groups, schema, f"{where}.{key}")
        if key == LABEL:
            if not columns:
                raise ValueError(f"{where}.{key}: no label columns")
            inputs[key] = Input(columns, "label")
            continue
        kinds = {column_kind(schema.field(c), f"{where}.{key}") for c in columns}
        if len(kinds) > 1:
            raise ValueError(
                f"{where}.{key}: columns {list(columns)} mix {sorted(kinds)}; give each kind a key"
            )
        kind = kinds.pop() if kinds else "float"
        sizes: tuple[int, ...] = ()
        if kind in ("int", "list"):
            unsized = [c for c in columns if c not in meta["cardinalities"]]
            if unsized:
                raise ValueError(
                    f"{where}.{key}: columns {unsized} hold integers that no op turned into ids "
                    "(categorify, hash_mod, bucketize or time_features in the RecDP pipeline)"
                )
            sizes = tuple(int(meta["cardinalities"][c]) for c in columns)
        inputs[key] = Input(columns, kind, sizes)
    return inputs


def _columns(names, groups: dict, schema: pa.Schema, key: str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for name in names:
        if name in groups:
            out += groups[name]
        elif name in schema.names and not name.startswith("__"):
            out.append(name)
        else:
            raise ValueError(
                f"{key}: {name!r} is neither a column group {sorted(groups)} nor a column of the processed "
                f"data {[c for c in schema.names if not c.startswith('__')]}"
            )
    return tuple(dict.fromkeys(out))


def features(inputs: Inputs) -> Features:
    """What the connector must serve for these inputs."""
    return Features({key: i.columns for key, i in inputs.items()}, label=LABEL)


def tasks(inputs: Inputs) -> int:
    """How many label columns (tasks) the model predicts: it returns logits [B] for one, [B, T] for T."""
    return len(inputs[LABEL].columns)


def check_inputs(spec: Mapping, groups: Mapping[str, list[str]], where: str = "model.inputs") -> None:
    """Before any work: every name in `spec` is a group, or a column of a group, the pipeline will output."""
    known = {c for cols in groups.values() for c in cols}
    if LABEL not in spec:
        raise ValueError(f"{where}.{LABEL}: missing; a model needs its label columns (e.g. `label: label`)")
    for key, names in spec.items():
        for name in [names] if isinstance(names, str) else names:
            if name not in groups and name not in known:
                raise ValueError(
                    f"{where}.{key}: the pipeline makes no group or column {name!r}; its groups: "
                    + ", ".join(f"{g} {cols}" for g, cols in groups.items())
                )
