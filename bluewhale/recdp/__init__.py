"""RecDP: declarative feature engineering. A pipeline (conf/recdp/*.yaml) is an op list and a split;
an engine runs it; the result is parquet in a folder keyed by (input fingerprint, pipeline config)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from bluewhale.atomic import publish_atomically
from bluewhale.recdp.ops import Pipeline, output_groups, parse_ops, parse_split

log = logging.getLogger(__name__)
# Part of the cache key: bump it when a change to the engines or ops changes their output, so that
# processed data written by older code is not reused.
OUTPUT_VERSION = 3  # 3: hidden columns (__row, __sub, planted keys) written; hash_mod 0 = missing


@dataclass
class Processed:
    """A processed data set on disk: `<path>/<split>.parquet` (file or folder) for train, valid (when the
    pipeline has one) and test, and `<path>/meta.json`.

    A split's table is its data columns (the groups in `meta["groups"]`), then the hidden columns, whose
    names alone start with `__`: `__row`, `__sub` and `__key_<c>` for each of the data set's
    `planted_keys` (see `bluewhale.engine`). Select the columns you need, or drop the hidden ones."""

    path: Path
    meta: dict
    cache_hit: bool

    def table(self, split: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path / f"{split}.parquet", columns=columns)

    def schema(self, split: str = "train") -> pa.Schema:
        return pads.dataset(self.path / f"{split}.parquet", format="parquet").schema


def column_groups(dataset) -> dict[str, list[str]]:
    """The data set's column groups: `groups()` where it has one, else its label, dense and sparse."""
    if hasattr(dataset, "groups"):
        return {k: list(v) for k, v in dataset.groups().items()}
    return {"label": [dataset.label], "dense": list(dataset.dense), "sparse": list(dataset.sparse)}


def side_table_columns(dataset) -> dict[str, list[str]] | None:
    """Names of the side tables a data set offers for `join`, with their columns (schemas only)."""
    if not hasattr(dataset, "side_tables"):
        return {}
    return {name: list(t.column_names) for name, t in dataset.side_tables().items()}


def parse_pipeline(recdp: dict, dataset) -> Pipeline:
    """Check the whole pipeline against the data set before any work: ops, split, side tables."""
    groups = column_groups(dataset)
    ops = parse_ops(recdp["ops"], groups, side_tables=side_table_columns(dataset))
    split = parse_split(recdp["split"], groups)
    out = output_groups(ops, groups)
    reserved = sorted({c for cols in out.values() for c in cols if c.startswith("__")})
    if reserved:
        raise ValueError(f"recdp: columns {reserved} start with '__', which is reserved for hidden columns")
    return Pipeline(recdp["name"], ops, split, groups, out)


def planned_groups(recdp: dict, dataset) -> dict[str, list[str]]:
    """The column groups the pipeline will output, from its config alone (reads no data)."""
    groups = column_groups(dataset)
    return output_groups(parse_ops(recdp["ops"], groups, side_tables=None), groups)


def process(dataset, recdp: dict, engine, cache_dir: str | Path) -> Processed:
    """Run the pipeline `recdp` over `dataset` on `engine`, or reuse the cached result of the same work.

    Engines give the same table, so the cache key leaves the engine out: any engine's output is reused.
    """
    pipeline = parse_pipeline(recdp, dataset)
    fingerprint = dataset.fingerprint()
    key = json.dumps([OUTPUT_VERSION, fingerprint, recdp], sort_keys=True)
    key = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = Path(cache_dir) / f"{recdp['name']}-{key}"
    if (target / "meta.json").exists():
        log.info("processed data found in cache: %s", target)
        return Processed(target, json.loads((target / "meta.json").read_text()), cache_hit=True)

    start = time.perf_counter()
    with publish_atomically(target) as tmp:
        result = engine.run(dataset, pipeline, tmp)
        groups = pipeline.output_groups
        meta = {
            "key": key,
            "input": fingerprint,
            "recdp": recdp,
            "engine": engine.name,
            "label": groups["label"][0] if len(groups.get("label", [])) == 1 else groups.get("label"),
            "dense": groups.get("dense", []),
            "sparse": groups.get("sparse", []),
            "groups": groups,
            "cardinalities": result.cardinalities,
            "rows": {
                s: pads.dataset(tmp / f"{s}.parquet", format="parquet").count_rows()
                for s in pipeline.split.names
            },
            "input_rows": result.input_rows,
            "bad_rows": result.bad_rows,
            "process_time_s": time.perf_counter() - start,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    log.info(
        "processed %d rows on %s in %.1f s into %s",
        result.input_rows,
        engine.name,
        meta["process_time_s"],
        target,
    )
    return Processed(target, meta, cache_hit=False)
