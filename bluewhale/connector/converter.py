"""From a table (pyarrow, pandas, Modin or Spark) to a cached parquet data set the loaders read: the
counterpart of Petastorm's `make_spark_converter`, keyed by content so every run, sweep job and rank that
asks for the same data reuses one copy.

The key hashes (input fingerprint, config, layout). Callers that know what the table was made from pass
`fingerprint` (the pipeline passes RecDP's key: raw input fingerprint + pipeline config), so a cache hit
costs a lock and a small file read; without one, the table's content is hashed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bluewhale.connector.cache import Cache, Entry

LAYOUT_VERSION = 1  # bump when the files written here change shape


@dataclass
class Converted:
    """A converted data set: a folder of parquet parts (`url`) with `rows` rows, held in the cache."""

    url: str
    rows: int
    cache_hit: bool
    entry: Entry | None = None

    def release(self) -> None:
        """Let the cache evict this entry again (it is held while this object is alive)."""
        if self.entry is not None:
            self.entry.release()


def _module(obj: Any) -> str:
    return type(obj).__module__ or ""


def is_spark(obj: Any) -> bool:
    return _module(obj).startswith("pyspark.sql")


def to_arrow(table: Any) -> pa.Table:
    """A pyarrow Table from a pyarrow Table, a pandas DataFrame or a Modin DataFrame."""
    if isinstance(table, pa.Table):
        return table
    if _module(table).startswith("modin."):
        from modin.pandas.io import to_pandas  # only when a Modin frame is passed

        table = to_pandas(table)
    if _module(table).startswith("pandas."):
        return pa.Table.from_pandas(table, preserve_index=False)
    raise TypeError(
        f"connector: cannot convert a {type(table).__module__}.{type(table).__name__}; "
        "expected a pyarrow Table, a pandas, Modin or Spark DataFrame, or a function returning one"
    )


def content_fingerprint(table: pa.Table) -> str:
    """A hash of the table's schema and data: equal hashes mean equal tables."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(table.schema.remove_metadata().to_string().encode())
    for column in table.columns:
        for chunk in column.chunks:
            digest.update(f"{chunk.offset}:{len(chunk)}".encode())
            for buffer in chunk.buffers():
                digest.update(b"-" if buffer is None else memoryview(buffer))
    return digest.hexdigest()


def spark_fingerprint(frame: Any) -> str:
    """A Spark DataFrame's canonical plan hash, plus the size and age of the files it reads."""
    files = []
    for url in sorted(frame.inputFiles()):
        try:
            import fsspec

            fs, path = fsspec.core.url_to_fs(url)
            info = fs.info(path)
            files.append([url, info.get("size"), info.get("mtime") or info.get("LastModified")])
        except (ImportError, OSError, ValueError):
            files.append([url, None, None])
    return hashlib.sha256(json.dumps([frame.semanticHash(), files], default=str).encode()).hexdigest()


def write_parts(table: pa.Table, folder: Path, rows_per_group: int, rows_per_file: int) -> list[str]:
    """Write `table` as `part-NNNNN.parquet` files of `rows_per_file` rows in row groups of `rows_per_group`."""
    names = []
    for i, start in enumerate(range(0, max(table.num_rows, 1), rows_per_file)):
        names.append(f"part-{i:05d}.parquet")
        pq.write_table(table.slice(start, rows_per_file), folder / names[-1], row_group_size=rows_per_group)
    return names


def write_spark(frame: Any, folder: Path, rows_per_group: int) -> list[str]:
    """Let Spark write the parts itself (no collect to the driver): one row group a file of at most
    `rows_per_group` rows, so the loaders shard as finely as from a pandas conversion."""
    # Spark writes into a folder it owns; publish_atomically's folder must exist, so write beside it
    target = Path(tempfile.mkdtemp(dir=folder)) / "spark"
    frame.write.option("maxRecordsPerFile", rows_per_group).parquet(target.as_uri())
    names = []
    for i, part in enumerate(sorted(target.glob("part-*.parquet"))):
        names.append(f"part-{i:05d}.parquet")
        part.rename(folder / names[-1])
    shutil.rmtree(target.parent)  # Spark's _SUCCESS and checksum files
    return names


def convert(
    source: Any,
    cache: Cache,
    fingerprint: str | None = None,
    config: dict | None = None,
    rows_per_group: int = 65536,
    rows_per_file: int = 1 << 20,
) -> Converted:
    """Convert `source` into `cache` unless the same content is there already; return the entry.

    `source` is a pyarrow Table, a pandas/Modin/Spark DataFrame, or a function returning one (called only
    on a cache miss, so a hit reads nothing). A function needs `fingerprint`. `config` is anything else
    the content depends on (a split name, a pipeline config); it joins the key.
    """
    if rows_per_group < 1 or rows_per_file < rows_per_group:
        raise ValueError(
            f"connector: need 1 <= rows_per_group <= rows_per_file, got {rows_per_group} and {rows_per_file}"
        )
    if fingerprint is None:
        if callable(source):
            raise ValueError("connector.convert: a function as source needs a fingerprint of what it returns")
        if is_spark(source):
            fingerprint = spark_fingerprint(source)
        else:
            source = to_arrow(source)
            fingerprint = content_fingerprint(source)
    layout = {"version": LAYOUT_VERSION, "rows_per_group": rows_per_group, "rows_per_file": rows_per_file}
    key = hashlib.sha256(json.dumps([fingerprint, config, layout], sort_keys=True, default=str).encode())

    def build(folder: Path) -> dict:
        table = source() if callable(source) and not is_spark(source) else source
        if is_spark(table):
            files = write_spark(table, folder, rows_per_group)
            rows = sum(pq.read_metadata(folder / f).num_rows for f in files)
        else:
            table = to_arrow(table)
            files, rows = write_parts(table, folder, rows_per_group, rows_per_file), table.num_rows
        return {"fingerprint": fingerprint, "config": config, "layout": layout, "files": files, "rows": rows}

    entry = cache.get_or_build(key.hexdigest()[:24], build)
    return Converted(url=entry.path.as_uri(), rows=entry.manifest["rows"], cache_hit=entry.hit, entry=entry)
