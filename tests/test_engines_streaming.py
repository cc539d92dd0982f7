"""Streaming (bounded-memory) processing on the pandas and Modin engines: the same table as in memory,
row for row, whatever the piece size; bad rows keep their file and line; peak memory stays within the
budget on a file much larger than it."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as pads
import pytest
import yaml

from bluewhale.dataset.badrows import BadRowError
from bluewhale.dataset.criteo import CriteoFile
from bluewhale.dataset.criteo_1tb import CriteoDays
from bluewhale.dataset.synthetic_criteo import SyntheticCriteo
from bluewhale.engine.pandas import PandasEngine
from bluewhale.recdp import process

CONF = Path(__file__).resolve().parent.parent / "conf"
DLRM = yaml.safe_load((CONF / "recdp" / "criteo_dlrm.yaml").read_text())
# every op that fits something, on Criteo columns: each is merged across pieces
FITTED = {
    "name": "fitted",
    "split": {"by": "position", "test_fraction": 0.2, "valid_fraction": 0.1},
    "ops": [
        {"op": "fill_na", "columns": "dense", "value": 0},
        {"op": "normalize", "columns": ["I1", "I2"]},
        {"op": "count_encode", "columns": ["C2"]},
        {"op": "target_encode", "columns": ["C3", "C4"], "target": "label", "folds": 3},
        {"op": "negative_sample", "item": "C5", "ratio": 2, "seed": 7},
        {"op": "hash_mod", "columns": ["C6"], "buckets": 50},
        {"op": "categorify", "columns": ["C7", "C8"], "shared": [["C9", "C10"]], "freq_threshold": 2},
    ],
}


def tables(data, recdp, engine, cache) -> tuple[dict, dict]:
    processed = process(data, recdp, engine, cache)
    splits = {s: pads.dataset(processed.path / f"{s}.parquet").to_table() for s in processed.meta["rows"]}
    return splits, processed.meta


def assert_same(expected: tuple, actual: tuple) -> None:
    (want, want_meta), (got, got_meta) = expected, actual
    assert list(got) == list(want)
    for split in want:
        assert got[split].schema == want[split].schema, split
        assert got[split].num_rows == want[split].num_rows, split
        assert got[split].equals(want[split]), split
    for key in ("rows", "cardinalities", "bad_rows", "input_rows"):
        assert got_meta[key] == want_meta[key], key


@pytest.fixture(scope="module")
def criteo(tmp_path_factory):
    """A planted Criteo file (about 1 MB) with bad lines spread through it."""
    folder = tmp_path_factory.mktemp("criteo")
    source = SyntheticCriteo(rows=4000, seed=3, dir=str(folder))
    source.prepare()
    lines = source.path.read_text().splitlines()
    for n in (5, 1200, 2500, 3999):
        lines[n] = "1\t2" if n % 2 else lines[n].replace("\t", "\tx", 1)
    path = folder / "train.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("recdp", [DLRM, FITTED], ids=["dlrm", "fitted"])
def test_pieces_give_the_in_memory_table_row_for_row(tmp_path, criteo, recdp):
    data = CriteoFile(str(criteo), bad_rows="skip")
    whole = tables(data, recdp, PandasEngine(memory_gb=None), tmp_path / "memory")
    assert whole[1]["bad_rows"]["count"] == 4
    assert_same(whole, tables(data, recdp, PandasEngine(chunk_mb=0.08), tmp_path / "pieces"))  # 12 pieces


def test_the_first_bad_line_is_named_as_in_memory(criteo, tmp_path):
    with pytest.raises(BadRowError) as memory:
        process(CriteoFile(str(criteo)), DLRM, PandasEngine(memory_gb=None), tmp_path / "a")
    with pytest.raises(BadRowError) as pieces:
        process(CriteoFile(str(criteo)), DLRM, PandasEngine(chunk_mb=0.05), tmp_path / "b")
    assert str(pieces.value) == str(memory.value) == f"{criteo}:6: expected 40 tab-separated fields, got 2"
    assert not list((tmp_path / "b").glob("*/"))  # nothing half-written is left


def test_day_files_stream_day_by_day(tmp_path, criteo):
    lines = criteo.read_text().splitlines(keepends=True)
    folder = tmp_path / "days"
    folder.mkdir()
    for k, day in enumerate((20, 21, 22, 23)):
        (folder / f"day_{day}").write_text("".join(lines[k * 1000 : (k + 1) * 1000]))
    recdp = yaml.safe_load((CONF / "recdp" / "criteo_1tb_dlrm.yaml").read_text())
    data = CriteoDays(str(folder), bad_rows="skip")
    whole = tables(data, recdp, PandasEngine(memory_gb=None), tmp_path / "memory")
    assert [e[1][:6] for e in whole[1]["bad_rows"]["examples"]] == ["day_20", "day_21", "day_22", "day_23"]
    assert_same(whole, tables(data, recdp, PandasEngine(chunk_mb=0.1), tmp_path / "pieces"))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="engine.memory_gb: expected a number of GiB > 0"):
        PandasEngine(memory_gb=0)
    with pytest.raises(ValueError, match="engine.chunk_mb: expected a number > 0"):
        PandasEngine(chunk_mb=-1)


@pytest.mark.slow
def test_modin_workers_stream_pieces_to_part_files(tmp_path, criteo):
    from bluewhale.engine.modin import ModinEngine

    data = CriteoFile(str(criteo), bad_rows="skip")
    whole = tables(data, FITTED, PandasEngine(memory_gb=None), tmp_path / "memory")
    modin = tables(data, FITTED, ModinEngine(workers=2, chunk_mb=0.1), tmp_path / "modin")
    assert_same(whole, modin)
    assert len(list((tmp_path / "modin").glob("*/train.parquet/part-*.parquet"))) >= 10


PEAK = """
import json, re, sys, yaml
from bluewhale.dataset.criteo import CriteoFile
from bluewhale.engine.pandas import PandasEngine
from bluewhale.recdp import process

def peak_rss():  # this process's own peak (getrusage's would count the parent's, kept across exec)
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024

path, cache, memory_gb, pipeline = sys.argv[1:]
recdp = yaml.safe_load(open(pipeline))
with open(path) as f, open(cache + ".txt", "w") as head:  # a few lines run first: every module loaded
    head.writelines(next(f) for _ in range(100))
process(CriteoFile(cache + ".txt"), recdp, PandasEngine(memory_gb=None), cache + "_warm")
before = peak_rss()
process(CriteoFile(path), recdp, PandasEngine(memory_gb=float(memory_gb) or None), cache)
print(json.dumps(peak_rss() - before))
"""


def growth(path: Path, cache: Path, memory_gb: float) -> int:
    """How far a fresh process's peak RSS rises while it processes `path` (memory_gb 0: in memory)."""
    command = [sys.executable, "-c", PEAK, str(path), str(cache), str(memory_gb)]
    command.append(str(CONF / "recdp" / "criteo_dlrm.yaml"))
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def test_peak_memory_stays_within_a_budget_far_below_the_input(tmp_path):
    """A 100k-row file (25 MB of text) in a 32 MiB budget: the peak RSS of the process processing it
    rises by less than the budget, where processing it in memory takes over 3 times the budget."""
    data = SyntheticCriteo(rows=100_000, seed=5, dir=str(tmp_path))
    data.prepare()
    budget_gb = 32 / 1024
    in_memory = growth(data.path, tmp_path / "a", 0)
    streamed = growth(data.path, tmp_path / "b", budget_gb)
    print(f"peak RSS growth: in memory {in_memory / 2**20:.0f} MiB, in pieces {streamed / 2**20:.0f} MiB")
    assert in_memory > 3 * budget_gb * 2**30
    assert streamed <= budget_gb * 2**30
