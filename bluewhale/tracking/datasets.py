"""The processed data set as MLflow dataset inputs (one per split), so the runs table's Dataset column and
the run's lineage say what a run trained and was scored on: name, source, digest, rows and schema."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import mlflow
import pyarrow as pa
from mlflow.data.dataset import Dataset
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.types import ColSpec, DataType, Schema

CONTEXTS = {"train": "training", "valid": "validation", "test": "testing"}
ARROW_TYPES = [
    (pa.types.is_boolean, DataType.boolean),
    (pa.types.is_int32, DataType.integer),
    (pa.types.is_integer, DataType.long),
    (pa.types.is_float32, DataType.float),
    (pa.types.is_floating, DataType.double),
    (pa.types.is_string, DataType.string),
    (pa.types.is_large_string, DataType.string),
    (pa.types.is_binary, DataType.binary),
]


class ProcessedSplit(Dataset):
    """One split of a RecDP output: its digest is the processing cache key (the input's fingerprint and
    the pipeline), so two runs on the same processed data show the same data set."""

    def __init__(self, source: Any, name: str, digest: str, schema: Schema, profile: dict) -> None:
        self._schema, self._profile = schema, profile
        super().__init__(source=source, name=name, digest=digest)

    def _compute_digest(self) -> str:
        return self._digest  # always given: the cache key

    @property
    def profile(self) -> dict:
        return self._profile

    @property
    def schema(self) -> Schema:
        return self._schema

    def to_dict(self) -> dict[str, str]:
        return super().to_dict() | {
            "schema": json.dumps({"mlflow_colspec": self._schema.to_dict()}),
            "profile": json.dumps(self._profile),
        }


def arrow_schema(schema: pa.Schema) -> Schema:
    """The data columns of a processed split as an MLflow schema; the hidden `__` columns are left out.
    A list column (a behaviour history) has no MLflow column type: it is shown as a string column."""
    columns = []
    for field in schema:
        if field.name.startswith("__"):
            continue
        kind = next((t for test, t in ARROW_TYPES if test(field.type)), DataType.string)
        columns.append(ColSpec(kind, field.name))
    return Schema(columns)


def source_of(meta: dict, processed_path: Path) -> str:
    """Where the data came from: the input file (or the folder holding the input files), else the
    processed folder."""
    given = meta.get("input", {})
    entries = given.get("files", [given]) if isinstance(given, dict) else []
    files = [Path(f["path"]) for f in entries if isinstance(f, dict) and "path" in f]
    if len(files) == 1:
        return str(files[0])
    if files:
        return os.path.commonpath([str(f) for f in files])
    return str(processed_path)


def log_processed(name: str, processed_path: Path, meta: dict, schemas: dict[str, pa.Schema]) -> None:
    """Log each split of the processed data set as an input of the active run."""
    with warnings.catch_warnings():  # a local path matches two registered local sources, both the same
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
        source = resolve_dataset_source(source_of(meta, processed_path))
    for split, rows in meta["rows"].items():
        profile = {
            "num_rows": rows,
            "input_rows": meta.get("input_rows"),
            "bad_rows": meta.get("bad_rows", {}).get("count"),
            "engine": meta.get("engine"),
            "processed_path": str(processed_path / f"{split}.parquet"),
        }
        dataset = ProcessedSplit(
            source, f"{name}.{split}", meta["key"][:10], arrow_schema(schemas[split]), profile
        )
        mlflow.log_input(dataset, context=CONTEXTS.get(split, split))
