"""RecDP on the pandas engine: fitted on train only, deterministic ids, atomic cached output."""

import json

import pyarrow as pa
import pytest

from bluewhale.dataset.criteo import DENSE, SPARSE, CriteoFile
from bluewhale.engine.pandas import PandasEngine
from bluewhale.recdp import process
from bluewhale.recdp.ops import Op, parse_ops

PIPELINE = {
    "name": "t",
    "split": {"by": "position", "test_fraction": 0.25},
    "ops": [
        {"op": "fill_na", "columns": "dense", "value": 0},
        {"op": "clip", "columns": "dense", "lower": 0},
        {"op": "log1p", "columns": "dense"},
        {"op": "fill_na", "columns": "sparse", "value": ""},
        {"op": "categorify", "columns": "sparse", "freq_threshold": 2},
    ],
}
GROUPS = {"label": ["label"], "dense": DENSE, "sparse": SPARSE}


def write_criteo(path, c1_values, i1_values):
    rows = []
    for c1, i1 in zip(c1_values, i1_values, strict=False):
        rows.append("\t".join(["1", i1, *["1"] * 12, c1, *["aaaaaaaa"] * 25]))
    path.write_text("\n".join(rows) + "\n")
    return CriteoFile(str(path))


def test_categorify_orders_by_frequency_then_value_and_fits_on_train_only():
    engine = PandasEngine()
    # train: b x3, a x3, c x2, d x1 (rare) | test: e (unseen), d (rare in train), a
    c1 = ["b", "a", "b", "c", "a", "b", "a", "c", "d", "e", "d", "a"]
    table = pa.table({"C1": c1})
    ops = [Op("categorify", ("C1",), {"freq_threshold": 2})]
    splits, fitted = engine.run(table, ops, test_rows=3)
    assert splits["train"].column("C1").to_pylist() == [2, 1, 2, 3, 1, 2, 1, 3, 0]  # a=1, b=2 (tie), c=3
    assert splits["test"].column("C1").to_pylist() == [0, 0, 1]
    assert fitted["C1"]["cardinality"] == 4


def test_dense_ops_fill_clip_and_log(tmp_path):
    data = write_criteo(tmp_path / "t.txt", ["x"] * 4, ["", "-3", "0", "7"])
    processed = process(data, PIPELINE, PandasEngine(), tmp_path / "cache")
    i1 = processed.table("train").column("I1").to_pylist() + processed.table("test").column("I1").to_pylist()
    assert i1 == pytest.approx([0.0, 0.0, 0.0, 2.0794415])  # log(1 + 7)


def test_output_is_cached_by_input_and_pipeline(tmp_path):
    data = write_criteo(tmp_path / "t.txt", list("abcabcab"), ["1"] * 8)
    first = process(data, PIPELINE, PandasEngine(), tmp_path / "cache")
    again = process(data, PIPELINE, PandasEngine(), tmp_path / "cache")
    assert (first.cache_hit, again.cache_hit) == (False, True)
    assert again.path == first.path
    assert json.loads((first.path / "meta.json").read_text())["rows"] == {"train": 6, "test": 2}
    other = process(
        data,
        {**PIPELINE, "split": {"by": "position", "test_fraction": 0.5}},
        PandasEngine(),
        tmp_path / "cache",
    )
    assert not other.cache_hit and other.path != first.path
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [first.path.name, other.path.name]
    )


def test_a_failed_run_leaves_nothing_half_written(tmp_path):
    data = write_criteo(tmp_path / "t.txt", list("abcd"), ["1", "2", "oops", "4"])
    with pytest.raises(ValueError, match=r"t.txt:3: field I1 expected an integer, got 'oops'"):
        process(data, PIPELINE, PandasEngine(), tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_bad_pipelines_fail_naming_the_config_key():
    with pytest.raises(ValueError, match=r"recdp.ops\[0\].op: unknown operator 'explode'"):
        parse_ops([{"op": "explode", "columns": "dense"}], GROUPS)
    with pytest.raises(ValueError, match=r"recdp.ops\[1\].columns: unknown columns \['C99'\]"):
        parse_ops([{"op": "log1p", "columns": "dense"}, {"op": "log1p", "columns": ["C99"]}], GROUPS)
    with pytest.raises(ValueError, match=r"recdp.ops\[0\]: operator fill_na needs \['value'\]"):
        parse_ops([{"op": "fill_na", "columns": "dense"}], GROUPS)
    assert parse_ops([{"op": "log1p", "columns": "I3"}], GROUPS) == [Op("log1p", ("I3",), {})]
