"""The connector's converter and cache: keyed by content, reused, built once by racing processes, never
left half-written, capped with least-recently-used eviction, listed and cleared from the command line."""

import fcntl
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bluewhale.connector import Cache, Connector, Features, convert
from tests.test_connector import FEATURES, ids_of, planted

ROOT = Path(__file__).resolve().parent.parent


def test_pandas_and_arrow_tables_convert_to_parts_that_read_back(tmp_path):
    cache = Cache(tmp_path / "cache")
    frame = planted(np.arange(500)).to_pandas()
    data = convert(frame, cache, rows_per_group=64, rows_per_file=200)
    assert not data.cache_hit and data.rows == 500
    files = sorted(Path(data.url[len("file://") :]).glob("*.parquet"))
    assert [pq.read_metadata(f).num_rows for f in files] == [200, 200, 100]
    assert pq.read_metadata(files[0]).num_row_groups == 4
    assert pq.read_table(files).to_pandas().equals(frame)
    # the same content as an Arrow table has the same key: a hit
    again = convert(pa.Table.from_pandas(frame), cache, rows_per_group=64, rows_per_file=200)
    assert again.cache_hit and again.url == data.url
    # different content, config or layout: a different entry
    changed = frame.assign(C3=frame.C3 + 1)
    assert convert(changed, cache, rows_per_group=64, rows_per_file=200).url != data.url
    assert (
        convert(frame, cache, config={"split": "test"}, rows_per_group=64, rows_per_file=200).url != data.url
    )
    assert convert(frame, cache, rows_per_group=32, rows_per_file=200).url != data.url


def test_a_source_function_runs_only_on_a_miss(tmp_path):
    cache, calls = Cache(tmp_path), []

    def source():
        calls.append(1)
        return planted(np.arange(100))

    first = convert(source, cache, fingerprint="input-v1")
    second = convert(source, cache, fingerprint="input-v1")
    assert (first.cache_hit, second.cache_hit, len(calls)) == (False, True, 1)
    assert convert(source, cache, fingerprint="input-v2").cache_hit is False and len(calls) == 2
    with pytest.raises(ValueError, match="needs a fingerprint"):
        convert(source, cache)
    with pytest.raises(TypeError, match="expected a pyarrow Table, a pandas, Modin or Spark DataFrame"):
        convert([1, 2], cache)


def test_a_failed_build_leaves_nothing_and_the_next_call_builds(tmp_path):
    cache = Cache(tmp_path)

    def broken():
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        convert(broken, cache, fingerprint="x")
    assert cache.entries() == [] and not [p for p in tmp_path.iterdir() if p.name != ".locks"]
    assert convert(lambda: planted(np.arange(10)), cache, fingerprint="x").rows == 10


RACER = """
import sys, time
from pathlib import Path
import pyarrow as pa
import pyarrow.compute
from bluewhale.connector.cache import Cache
from bluewhale.connector.converter import convert

root, me = Path(sys.argv[1]), sys.argv[2]
(root / f"ready-{me}").touch()
while len(list(root.glob("ready-*"))) < 2:  # start together
    time.sleep(0.01)

def build():
    with open(root / "builds.txt", "a") as log:
        log.write(me + "\\n")
    time.sleep(1.0)  # a slow conversion: the other process arrives while it runs
    ids = pa.array(range(5000))
    return pa.table({"label": pa.compute.bit_wise_and(ids, 1), "I1": ids.cast("float32"),
                     "I2": pa.compute.divide(ids.cast("float32"), 2), "C1": ids, "C2": pa.compute.multiply(ids, 3),
                     "C3": pa.compute.subtract(ids, pa.compute.multiply(pa.compute.divide(ids, 7), 7))})

data = convert(build, Cache(root / "cache"), fingerprint="same-input", rows_per_group=1000)
(root / f"done-{me}").touch()
deadline = time.monotonic() + 30  # hold the entry, as a rank's loader does, until the other has its own
while len(list(root.glob("done-*"))) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
print(data.url, data.cache_hit, data.rows, len(list(root.glob("done-*"))))
"""


def test_two_processes_racing_build_one_complete_entry(tmp_path):
    """As two ranks of a job do: both miss, one builds, and each holds the entry while the other gets it
    (a builder that goes on reading must not lock out the process that waited for its build)."""
    probe = convert(lambda: planted(np.arange(10)), Cache(tmp_path / "probe"), fingerprint="same-input",
                    rows_per_group=1000)  # fmt: skip
    lock = tmp_path / "cache" / ".locks" / f"{Path(probe.url).name}.lock"  # the racers' key (root-free)
    lock.parent.mkdir(parents=True)
    reader = open(lock, "w")  # noqa: SIM115
    fcntl.flock(reader, fcntl.LOCK_SH)  # a reader peeking at the missing entry: both racers find it missing
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), str(i)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    while len(list(tmp_path.glob("ready-*"))) < 2 and all(r.poll() is None for r in racers):
        time.sleep(0.01)
    time.sleep(1.0)  # both check and miss while the reader peeks
    reader.close()
    outputs = [r.communicate(timeout=120)[0].split() for r in racers]
    assert [r.returncode for r in racers] == [0, 0]
    assert len((tmp_path / "builds.txt").read_text().split()) == 1  # converted once
    (url_a, hit_a, rows_a, done_a), (url_b, hit_b, rows_b, done_b) = outputs
    assert url_a == url_b and sorted([hit_a, hit_b]) == ["False", "True"] and rows_a == rows_b == "5000"
    assert done_a == done_b == "2"  # each got the entry while the other held it
    cache = Cache(tmp_path / "cache")
    [entry] = cache.entries()
    assert ids_of(Connector(str(cache.root)).loader(url_a, FEATURES, 1000, train=False)) == list(range(5000))
    assert [p.name for p in cache.root.iterdir() if p.name.startswith(".") and p.name != ".locks"] == []


def entry_bytes(tmp_path) -> int:
    """The size of one 2000-row entry, to set a cap in entries."""
    convert(planted(np.arange(2000)), Cache(tmp_path / "probe")).release()
    return Cache(tmp_path / "probe").entries()[0].bytes


def test_the_size_cap_evicts_the_least_recently_used_entry_not_one_in_use(tmp_path):
    size = entry_bytes(tmp_path)
    cache = Cache(tmp_path / "cache", max_bytes=int(2.5 * size))
    tables = {name: planted(np.arange(2000) + i) for i, name in enumerate("abcd")}
    a = convert(tables["a"], cache)
    b = convert(tables["b"], cache)
    a.release(), b.release()
    assert convert(tables["a"], cache).cache_hit  # a is now used more recently than b
    convert(tables["c"], cache).release()  # over the cap: b goes
    keys = {Path(convert(t, cache).url).name: n for n, t in tables.items() if n in "ac"}
    assert sorted(keys.values()) == ["a", "c"] and len(cache.entries()) == 2
    # every entry is held by a live loader or converted object now: d is built, nothing is evicted
    held = [convert(tables[n], cache) for n in "ac"]
    d = convert(tables["d"], cache)
    assert len(cache.entries()) == 3
    for h in [*held, d]:
        h.release()
    convert(tables["d"], cache).release()
    assert len(cache.entries()) == 3  # a hit does not evict; the next build does
    cache.evict()
    assert len(cache.entries()) == 2


def test_cli_lists_and_clears(tmp_path):
    cache = Cache(tmp_path)
    convert(planted(np.arange(300)), cache).release()
    held = convert(planted(np.arange(400)), cache)

    def cli(*args):
        result = subprocess.run(
            [sys.executable, "-m", "bluewhale.connector.cache", "--root", str(tmp_path), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    listing = cli("list")
    assert "300 rows" in listing and "400 rows" in listing and "2 entries" in listing
    assert listing.count("in use") == 1
    assert "removed 1 entries" in cli("clear") and "1 in use kept" in cli("clear")
    held.release()
    assert "removed 1 entries" in cli("clear")
    assert "0 entries" in cli("list")


def test_connector_config_reads_a_processed_table_through_its_cache(tmp_path):
    connector = Connector(str(tmp_path), rows_per_group=100, num_workers=2)
    data = connector.convert(
        lambda: planted(np.arange(1000)), fingerprint="recdp-key", config={"split": "train"}
    )
    loader = connector.loader(data, FEATURES, 64, train=True, seed=3)
    assert sorted(ids_of(loader)) == list(range(1000))
    meta = json.loads((Path(data.url[len("file://") :]) / "_bluewhale.json").read_text())
    assert meta["config"] == {"split": "train"} and meta["fingerprint"] == "recdp-key"


def test_the_cache_refuses_an_object_store_root(tmp_path):
    with pytest.raises(ValueError, match="connector.cache_dir='s3://bucket/c'.*local or POSIX"):
        Cache("s3://bucket/c")
    assert Cache(tmp_path.as_uri()).root == tmp_path


def test_features_from_pandas_keep_their_dtypes(tmp_path):
    frame = pd.DataFrame({"label": [0, 1], "I1": [0.5, 1.5], "C1": np.array([3, 4], np.int32)})
    data = convert(frame, Cache(tmp_path))
    [batch] = list(
        Connector(str(tmp_path)).loader(
            data, Features({"label": ["label"], "dense": ["I1"], "sparse": ["C1"]}), 8, False
        )
    )
    assert batch["dense"].tolist() == [[0.5], [1.5]] and batch["sparse"].tolist() == [[3], [4]]
    assert batch["label"].tolist() == [0.0, 1.0]
