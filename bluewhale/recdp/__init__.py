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
import pyarrow.parquet as pq

from bluewhale.atomic import publish_atomically
from bluewhale.recdp.ops import parse_ops

log = logging.getLogger(__name__)
SPLITS = ("train", "test")


@dataclass
class Processed:
    """A processed data set on disk: `<path>/{train,test}.parquet` and `<path>/meta.json`."""

    path: Path
    meta: dict
    cache_hit: bool

    def table(self, split: str) -> pa.Table:
        return pq.read_table(self.path / f"{split}.parquet")


def process(dataset, recdp: dict, engine, cache_dir: str | Path) -> Processed:
    """Run the pipeline `recdp` over `dataset` on `engine`, or reuse the cached result of the same work."""
    groups = {"label": [dataset.label], "dense": list(dataset.dense), "sparse": list(dataset.sparse)}
    ops = parse_ops(recdp["ops"], groups)
    split = recdp["split"]
    if split.get("by") != "position" or not 0 < split.get("test_fraction", 0) < 1:
        raise ValueError(f"recdp.split: expected by=position and 0 < test_fraction < 1, got {split}")

    fingerprint = dataset.fingerprint()
    key = hashlib.sha256(json.dumps([fingerprint, recdp], sort_keys=True).encode()).hexdigest()[:16]
    target = Path(cache_dir) / f"{recdp['name']}-{key}"
    if (target / "meta.json").exists():
        log.info("processed data found in cache: %s", target)
        return Processed(target, json.loads((target / "meta.json").read_text()), cache_hit=True)

    start = time.perf_counter()
    table, bad_rows = dataset.read()
    test_rows = round(table.num_rows * split["test_fraction"])
    if test_rows == 0 or test_rows == table.num_rows:
        raise ValueError(
            f"recdp.split.test_fraction={split['test_fraction']} leaves an empty split "
            f"of {table.num_rows} rows"
        )
    splits, fitted = engine.run(table, ops, test_rows)
    meta = {
        "key": key,
        "input": fingerprint,
        "recdp": recdp,
        "engine": engine.name,
        "label": dataset.label,
        "dense": list(dataset.dense),
        "sparse": list(dataset.sparse),
        "cardinalities": {c: fitted[c]["cardinality"] for c in dataset.sparse},
        "rows": {name: t.num_rows for name, t in splits.items()},
        "bad_rows": {"count": bad_rows.count, "examples": bad_rows.examples},
        "process_time_s": time.perf_counter() - start,
    }
    with publish_atomically(target) as tmp:
        for name, t in splits.items():
            pq.write_table(t, tmp / f"{name}.parquet")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    log.info("processed %d rows in %.1f s into %s", table.num_rows, meta["process_time_s"], target)
    return Processed(target, meta, cache_hit=False)
