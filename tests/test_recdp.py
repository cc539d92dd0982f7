"""RecDP on the pandas engine: every op's meaning on planted inputs, fitted on train only, deterministic
ids, atomic cached output, and bad pipelines refused naming the config key."""

import json
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from omegaconf import OmegaConf

from bluewhale.dataset.criteo import DENSE, SPARSE, BadRows, CriteoFile
from bluewhale.engine import negative_draw
from bluewhale.engine.pandas import PandasEngine
from bluewhale.recdp import process
from bluewhale.recdp.ops import Op, parse_ops, parse_split

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
CONF = Path(__file__).resolve().parent.parent / "conf"


class TableData:
    """A data set held in memory: a table, its column groups and side tables (for engine tests), and
    the raw columns the engines carry as hidden keys (`keys`; without them it has no `planted_keys`
    attribute at all, as a data set that does not derive from `Dataset`)."""

    def __init__(
        self, name: str, table: pa.Table, groups: dict, sides: dict | None = None, keys: tuple = ()
    ) -> None:
        self.name, self.table, self._groups, self.sides = name, table, groups, sides or {}
        if keys:
            self.planted_keys = tuple(keys)

    def groups(self) -> dict:
        return self._groups

    def prepare(self) -> None:
        pass

    def fingerprint(self) -> dict:
        return {"name": self.name, "rows": self.table.num_rows, "keys": getattr(self, "planted_keys", ())}

    def read(self):
        return self.table, BadRows()

    def side_tables(self) -> dict:
        return self.sides

    def planted_probability(self):
        return None


def write_criteo(path, c1_values, i1_values):
    rows = []
    for c1, i1 in zip(c1_values, i1_values, strict=False):
        rows.append("\t".join(["1", i1, *["1"] * 12, c1, *["aaaaaaaa"] * 25]))
    path.write_text("\n".join(rows) + "\n")
    return CriteoFile(str(path))


def run(tmp_path, table, ops, groups, split=None, sides=None, name="t", keys=(), hidden=False):
    """Process `table` with `ops` on pandas; return each split as Python lists by column (the data
    columns alone, or with the hidden ones too when `hidden`)."""
    data = TableData(name, table, groups, sides, keys)
    recdp = {"name": name, "split": split or {"by": "position", "test_fraction": 0.25}, "ops": ops}
    processed = process(data, recdp, PandasEngine(), tmp_path / "cache")
    out = {}
    for s in processed.meta["rows"]:
        t = processed.table(s)
        out[s] = (
            t if hidden else t.select([c for c in t.column_names if not c.startswith("__")])
        ).to_pydict()
    return processed, out


def test_categorify_orders_by_frequency_then_value_and_fits_on_train_only(tmp_path):
    # train: b x3, a x3, c x2, d x1 (rare) | test: e (unseen), d (rare in train), a
    c1 = ["b", "a", "b", "c", "a", "b", "a", "c", "d", "e", "d", "a"]
    ops = [{"op": "categorify", "columns": ["C1"], "freq_threshold": 2}]
    processed, out = run(
        tmp_path, pa.table({"C1": c1}), ops, {"sparse": ["C1"]}, {"by": "position", "test_fraction": 0.25}
    )
    assert out["train"]["C1"] == [2, 1, 2, 3, 1, 2, 1, 3, 0]  # a=1, b=2 (tie, by value), c=3
    assert out["test"]["C1"] == [0, 0, 1]
    assert processed.meta["cardinalities"]["C1"] == 4


def test_shared_vocabulary_over_a_column_and_a_list_column(tmp_path):
    table = pa.table({"item": ["x", "y", "x", "z"], "hist": [[], ["x"], ["x", "y"], ["q", None]]})
    ops = [{"op": "categorify", "shared": [["item", "hist"]]}]
    processed, out = run(
        tmp_path, table, ops, {"sparse": ["item", "hist"]}, {"by": "position", "test_fraction": 0.25}
    )
    # train counts over both columns: x 4, y 2, z 0 (z is only in test) -> x=1, y=2; q unseen, None missing
    assert out["train"] == {"item": [1, 2, 1], "hist": [[], [1], [1, 2]]}
    assert out["test"] == {"item": [0], "hist": [[0, 0]]}
    assert processed.meta["cardinalities"] == {"item": 3, "hist": 3}


def test_dense_ops_fill_clip_and_log(tmp_path):
    data = write_criteo(tmp_path / "t.txt", ["x"] * 4, ["", "-3", "0", "7"])
    processed = process(data, PIPELINE, PandasEngine(), tmp_path / "cache")
    i1 = processed.table("train").column("I1").to_pylist() + processed.table("test").column("I1").to_pylist()
    assert i1 == pytest.approx([0.0, 0.0, 0.0, 2.0794415])  # log(1 + 7)


def test_numeric_ops_fit_on_train(tmp_path):
    x = [1.0, 3.0, None, 5.0, 100.0]  # the last row is test: it must not move the fitted mean
    table = pa.table({"x": x, "b": x, "n": pa.array([7, -3, None, 12, 5], pa.int64())})
    ops = [
        {"op": "normalize", "columns": ["x"]},
        {"op": "bucketize", "columns": ["b"], "boundaries": [2, 5]},
        {"op": "hash_mod", "columns": ["n"], "buckets": 5},
        {"op": "clip", "columns": ["x"], "upper": 1.0},
    ]
    processed, out = run(
        tmp_path, table, ops, {"dense": ["x", "b", "n"]}, {"by": "position", "test_fraction": 0.2}
    )
    rows = {c: out["train"][c] + out["test"][c] for c in out["train"]}
    std = np.std([1.0, 3.0, 5.0])
    assert rows["x"][2] is None
    assert [rows["x"][i] for i in (0, 1, 3, 4)] == pytest.approx([-2 / std, 0.0, 1.0, 1.0])
    assert rows["b"] == [1, 2, 0, 3, 3]  # 1 + how many boundaries <= x; missing -> 0
    assert rows["n"] == [3, 3, 0, 3, 1]  # 1 + (x mod 5): -3 mod 5 = 2 (never negative); missing -> 0
    assert processed.meta["cardinalities"] == {"b": 4, "n": 6}


def test_count_and_target_encoding_are_out_of_fold(tmp_path):
    # 8 train rows, 2 folds by row position: even rows are fold 0, odd rows fold 1
    v = ["a", "a", "a", "a", "b", "b", "b", "b", "a", "c"]
    y = [1, 1, 0, 0, 1, 0, 1, 1, 1, 0]
    table = pa.table({"v": v, "w": v, "y": pa.array(y, pa.int8())})
    ops = [
        {"op": "count_encode", "columns": ["w"]},
        {"op": "target_encode", "columns": ["v"], "target": "y", "folds": 2, "smoothing": 0},
    ]
    _, out = run(
        tmp_path, table, ops, {"label": ["y"], "sparse": ["v", "w"]}, {"by": "position", "test_fraction": 0.2}
    )
    assert out["train"]["w"] == [4] * 8 and out["test"]["w"] == [4, 0]
    # row 0 (a, fold 0) sees fold 1's a rows: rows 1, 3 -> y 1, 0 -> 0.5; row 5 (b) sees rows 4, 6 -> 1.0
    assert out["train"]["v"] == pytest.approx([0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 0.5, 1.0])
    # test rows use all train rows: a -> 2/4; c is unseen -> the train mean 5/8
    assert out["test"]["v"] == pytest.approx([0.5, 0.625])


def test_time_features_join_history_and_time_split(tmp_path):
    day = 86400
    ts = [0, 3600 * 5, day * 4 + 60, day * 4 + 7200, day * 10]  # Thu 00:00, Thu 05:00, Mon, Mon, Sun
    table = pa.table(
        {
            "user": ["u", "u", "v", "u", "v"],
            "item": ["i1", "i2", "i1", "i3", "i2"],
            "ts": pa.array(ts, pa.int64()),
            "label": pa.array([1] * 5, pa.int8()),
        }
    )
    sides = {"items": pa.table({"item": ["i1", "i2"], "cat": ["c1", "c2"]})}
    ops = [
        {"op": "time_features", "columns": ["ts"], "unit": "s"},
        {"op": "join", "table": "items", "keys": ["item"], "columns": ["cat"]},
        {
            "op": "sequence_history",
            "user": "user",
            "item": "item",
            "time": "ts",
            "max_len": 1,
            "columns": ["item", "cat"],
        },
    ]
    groups = {"label": ["label"], "user": ["user"], "item": ["item"], "time": ["ts"]}
    split = {"by": "time", "column": "ts", "test_after": day * 4 + 100}
    processed, out = run(tmp_path, table, ops, groups, split, sides)
    rows = {c: out["train"][c] + out["test"][c] for c in out["train"]}
    assert out["test"]["ts"] == ts[3:]  # after Monday 00:01:40
    assert rows["ts_hour"] == [0, 5, 0, 2, 0] and rows["ts_weekday"] == [3, 3, 0, 0, 6]
    assert rows["ts_day"] == [0, 0, 4, 4, 10]
    assert rows["cat"] == ["c1", "c2", "c1", None, "c2"]
    assert rows["hist_item"] == [[], ["i1"], [], ["i2"], ["i1"]]  # max_len 1: only the latest one
    assert rows["hist_cat"] == [[], ["c1"], [], ["c2"], ["c1"]]
    assert processed.meta["groups"]["history"] == ["hist_item", "hist_cat"]
    assert processed.meta["cardinalities"] == {"ts_hour": 24, "ts_weekday": 7}


def test_negative_sampling_draws_other_items_reproducibly(tmp_path):
    n = 40
    table = pa.table(
        {"item": [f"i{k % 7}" for k in range(n)], "label": pa.array([k % 2 for k in range(n)], pa.int8())}
    )
    ops = [{"op": "negative_sample", "item": "item", "ratio": 2, "seed": 5}]
    _, out = run(tmp_path, table, ops, {"label": ["label"], "item": ["item"]})
    _, again = run(tmp_path / "again", table, ops, {"label": ["label"], "item": ["item"]})
    assert out == again
    rows = list(zip(*(out["train"][c] + out["test"][c] for c in ("item", "label")), strict=True))
    assert len(rows) == n + 2 * (n // 2)
    k = 0
    for i in range(n):
        item, label = table.column("item")[i].as_py(), i % 2
        assert rows[k] == (item, label)
        k += 1
        if label:  # each positive is followed by its two negatives, other items from the train rows
            for _ in range(2):
                assert rows[k][1] == 0 and rows[k][0] != item and rows[k][0] in {f"i{j}" for j in range(7)}
                k += 1
    draws = negative_draw(np.arange(10000), 0, 1, seed=5)
    assert 0.45 < (draws % 2).mean() < 0.55 and draws.max() < 2**32  # spread evenly over 32 bits


def test_negatives_take_the_sampled_items_own_columns(tmp_path):
    n = 60
    table = pa.table(
        {
            "item": [f"i{k % 9}" for k in range(n)],
            "cat": [f"c{k % 9 % 3}" for k in range(n)],  # each item has one category
            "label": pa.array([k % 2 for k in range(n)], pa.int8()),
        }
    )
    groups = {"label": ["label"], "item": ["item", "cat"]}
    ops = [{"op": "negative_sample", "item": "item", "item_columns": ["cat"], "ratio": 3, "seed": 1}]
    _, out = run(tmp_path, table, ops, groups)
    rows = [
        r for s in ("train", "test") for r in zip(out[s]["item"], out[s]["cat"], out[s]["label"], strict=True)
    ]
    negatives = [r for r in rows if r[2] == 0]
    assert len(rows) == n + 3 * (n // 2)
    assert all(cat == f"c{int(item[1:]) % 3}" for item, cat, _ in rows)  # negatives too
    assert len({item for item, _, _ in negatives}) == 9

    ambiguous = table.set_column(1, "cat", pa.array([f"c{k % 4}" for k in range(n)]))
    with pytest.raises(ValueError, match=r"negative_sample.item_columns: item 'i0' has more than one value"):
        run(tmp_path / "ambiguous", ambiguous, ops, groups)


def test_valid_split_sits_between_train_and_test_and_is_not_fitted_on(tmp_path):
    # position: 10 rows, test the last 2, valid the 3 before them
    values = ["a", "a", "b", "b", "b", "v", "v", "v", "t", "t"]
    table = pa.table({"x": values, "label": pa.array([1] * 10, pa.int8())})
    ops = [{"op": "categorify", "columns": ["x"]}]
    split = {"by": "position", "test_fraction": 0.2, "valid_fraction": 0.3}
    processed, out = run(tmp_path, table, ops, {"label": ["label"], "sparse": ["x"]}, split)
    assert processed.meta["rows"] == {"train": 5, "valid": 3, "test": 2}
    assert out["train"]["x"] == [2, 2, 1, 1, 1] and out["valid"]["x"] == [0, 0, 0]  # v: not in train
    assert out["test"]["x"] == [0, 0]
    assert (processed.path / "valid.parquet").exists()
    # time: valid_after < t <= test_after
    table = pa.table(
        {"t": pa.array([5, 1, 9, 3, 7, None], pa.int64()), "label": pa.array([1] * 6, pa.int8())}
    )
    split = {"by": "time", "column": "t", "test_after": 6, "valid_after": 2}
    _, out = run(tmp_path / "time", table, [], {"label": ["label"], "time": ["t"]}, split)
    assert (out["train"]["t"], out["valid"]["t"], out["test"]["t"]) == ([1, None], [5, 3], [9, 7])


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
    with pytest.raises(
        ValueError, match=r"t.txt:3: field I1 expected an integer of at most 18 digits, got 'oops'"
    ):
        process(data, PIPELINE, PandasEngine(), tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_bad_pipelines_fail_naming_the_config_key():
    with pytest.raises(ValueError, match=r"recdp.ops\[0\].op: unknown operator 'explode'"):
        parse_ops([{"op": "explode", "columns": "dense"}], GROUPS)
    with pytest.raises(ValueError, match=r"recdp.ops\[1\].columns: unknown columns \['C99'\]"):
        parse_ops([{"op": "log1p", "columns": "dense"}, {"op": "log1p", "columns": ["C99"]}], GROUPS)
    with pytest.raises(ValueError, match=r"recdp.ops\[0\]: operator fill_na needs \['value'\]"):
        parse_ops([{"op": "fill_na", "columns": "dense"}], GROUPS)
    with pytest.raises(ValueError, match=r"recdp.ops\[0\].boundaries: expected a non-empty increasing list"):
        parse_ops([{"op": "bucketize", "columns": "dense", "boundaries": [3, 1]}], GROUPS)
    with pytest.raises(ValueError, match=r"recdp.ops\[0\].user: unknown columns \['who'\]"):
        parse_ops(
            [{"op": "sequence_history", "user": "who", "item": "C1", "time": "I1", "max_len": 5}], GROUPS
        )
    with pytest.raises(ValueError, match=r"recdp.ops\[0\].table: expected a side table of the data set"):
        parse_ops([{"op": "join", "table": "t", "keys": "C1", "columns": ["x"]}], GROUPS, side_tables={})
    with pytest.raises(ValueError, match=r"recdp.ops\[1\].columns: unknown columns \['hist_C3'\]"):
        parse_ops(
            [
                {"op": "sequence_history", "user": "C1", "item": "C2", "time": "I1", "max_len": 5},
                {"op": "categorify", "columns": ["hist_C3"]},  # C2's history is hist_C2
            ],
            GROUPS,
        )
    with pytest.raises(ValueError, match=r"recdp.split: expected by=position, 0 < test_fraction"):
        parse_split({"by": "position", "test_fraction": 1.5}, GROUPS)
    with pytest.raises(ValueError, match=r"recdp.split: .*a sum below 1"):
        parse_split({"by": "position", "test_fraction": 0.5, "valid_fraction": 0.5}, GROUPS)
    with pytest.raises(ValueError, match=r"recdp.split.valid_after: expected a value below test_after"):
        parse_split({"by": "time", "column": "I1", "test_after": 3, "valid_after": 3}, GROUPS)
    yaml_on = OmegaConf.to_container(OmegaConf.create("- {op: join, table: t, on: [C1], columns: [x]}"))
    with pytest.raises(ValueError, match=r"recdp.ops\[0\]: argument names must be strings, got \[True\]"):
        parse_ops(yaml_on, GROUPS)
    with pytest.raises(ValueError, match=r"recdp.split.column: unknown column 'when'"):
        parse_split({"by": "time", "column": "when", "test_after": 3}, GROUPS)
    assert parse_ops([{"op": "log1p", "columns": "I3"}], GROUPS) == [Op("log1p", ("I3",), {})]
    # columns an op adds can be named by the ops after it
    later = parse_ops(
        [
            {"op": "sequence_history", "user": "C1", "item": "C2", "time": "I1", "max_len": 5},
            {"op": "categorify", "shared": [["C2", "hist_C2"]]},
        ],
        GROUPS,
    )
    assert later[1].args["vocabularies"] == [("C2", "hist_C2")]


def test_amazon_dien_pipeline_pairs_each_review_with_a_consistent_negative(tmp_path):
    from bluewhale.dataset.synthetic_amazon_books import SyntheticAmazonBooks

    recdp = OmegaConf.to_container(OmegaConf.load(CONF / "recdp" / "amazon_dien.yaml"))
    data = SyntheticAmazonBooks(rows=3000, seed=2, dir=str(tmp_path / "raw"))
    processed = process(data, recdp, PandasEngine(), tmp_path / "cache")
    rows = processed.meta["rows"]
    assert sum(rows.values()) == 2 * 3000 and min(rows.values()) > 0  # train, valid and test
    for split in rows:
        t = processed.table(split).to_pandas()
        assert list(t["label"][::2]) == [1] * (len(t) // 2) and list(t["label"][1::2]) == [0] * (len(t) // 2)
        positives, negatives = t[::2].reset_index(drop=True), t[1::2].reset_index(drop=True)
        assert (positives["asin"] != negatives["asin"]).all()
        assert [list(h) for h in positives["hist_asin"]] == [list(h) for h in negatives["hist_asin"]]
        assert t["hist_asin"].map(len).max() <= 50
        # an item has one category, in positives and negatives alike (id 0: items unseen in train)
        known = t[t["asin"] > 0]
        assert (known.groupby("asin")["category"].nunique() == 1).all()


def test_hidden_columns_follow_the_data_columns_with_raw_planted_keys(tmp_path):
    # item 'i3' is rare (categorified to 0 with the unseen ones); each item has one category
    items = ["i1", "i2", "i1", "i3", "i2", "i1", "i2", "i1", "i4", "i1"]
    table = pa.table(
        {
            "item": items,
            "cat": [{"i1": "a", "i2": "b", "i3": None, "i4": "d"}[i] for i in items],
            "price": [1.0, None, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
            "label": pa.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0], pa.int8()),
        }
    )
    groups = {"label": ["label"], "dense": ["price"], "item": ["item", "cat"]}
    ops = [
        {"op": "fill_na", "columns": ["price", "cat"], "value": 0},
        {"op": "negative_sample", "item": "item", "item_columns": ["cat"], "ratio": 2, "seed": 3},
        {"op": "categorify", "columns": ["item", "cat"], "freq_threshold": 2},
    ]
    split = {"by": "position", "test_fraction": 0.2}
    keys = ("price", "item", "cat")
    processed, out = run(tmp_path, table, ops, groups, split, keys=keys, hidden=True)
    schema = processed.table("train").schema
    assert schema.names == ["item", "cat", "price", "label", "__row", "__sub", *[f"__key_{c}" for c in keys]]
    assert (schema.field("__row").type, schema.field("__sub").type) == (pa.int64(), pa.int32())
    assert [schema.field(f"__key_{c}").type for c in keys] == [pa.float64(), pa.string(), pa.string()]
    rows = {c: out["train"][c] + out["test"][c] for c in out["train"]}
    assert rows["__row"] == [r for r in range(10) for _ in range(1 + 2 * (table["label"][r].as_py() == 1))]
    assert rows["__sub"] == [k for r in range(10) for k in range(1 + 2 * (table["label"][r].as_py() == 1))]
    assert rows["__key_price"] == [table["price"][r].as_py() for r in rows["__row"]]  # raw: None, not 0
    real = [i for i, sub in enumerate(rows["__sub"]) if sub == 0]
    assert [rows["__key_item"][i] for i in real] == items and [rows["__key_cat"][i] for i in real] == [
        table["cat"][r].as_py() for r in range(10)
    ]
    # a negative's item keys are its sampled item's raw values, whatever ids the item got
    cats = {"i1": "a", "i2": "b", "i3": None, "i4": "d"}
    ids = {}
    for i, sub in enumerate(rows["__sub"]):
        raw = rows["__key_item"][i]
        assert rows["__key_cat"][i] == cats[raw] and ids.setdefault(raw, rows["item"][i]) == rows["item"][i]
        if sub:
            assert raw != items[rows["__row"][i]]  # another item than the positive's
    assert "__part" not in schema.names


def test_a_data_set_without_planted_keys_writes_row_and_sub_only(tmp_path):
    table = pa.table({"x": ["a", "b", "a", "c"], "label": pa.array([1, 0, 1, 0], pa.int8())})
    _, out = run(tmp_path, table, [{"op": "categorify", "columns": ["x"]}], {"sparse": ["x"]}, hidden=True)
    assert list(out["train"]) == ["x", "label", "__row", "__sub"]
    assert out["train"]["__row"] == [0, 1, 2] and out["test"]["__sub"] == [0]


def test_hidden_column_names_are_reserved_and_planted_keys_must_exist(tmp_path):
    table = pa.table({"__x": [1, 2, 3, 4], "y": [1, 2, 3, 4]})
    with pytest.raises(ValueError, match=r"columns \['__x'\]: names starting with '__' are reserved"):
        run(tmp_path / "a", table, [], {"dense": ["y"]})
    with pytest.raises(ValueError, match=r"planted_keys \['z'\]: not columns of the data set"):
        run(tmp_path / "b", table.drop_columns(["__x"]), [], {"dense": ["y"]}, keys=("z",))
    sides = {"s": pa.table({"y": [1, 2], "__w": [3, 4]})}
    join = [{"op": "join", "table": "s", "keys": ["y"], "columns": ["__w"]}]
    with pytest.raises(ValueError, match=r"columns \['__w'\] start with '__', which is reserved"):
        run(tmp_path / "c", table.drop_columns(["__x"]), join, {"dense": ["y"]}, sides=sides)


def history_reference(table: pa.Table, user: str, time: str, column: str, max_len: int, subs) -> list:
    """Each row's history by the definition: the `column` values of its user's real rows (sub 0) with a
    user and a time strictly before its own, in (time, row) order, the last `max_len` of them."""
    users, times, values = (table.column(c).to_pylist() for c in (user, time, column))
    rows = table.column("__row").to_pylist()
    out = []
    for u, t in zip(users, times, strict=True):
        if u is None or t is None:
            out.append([])
            continue
        earlier = sorted(
            (times[j], rows[j], values[j])
            for j in range(len(users))
            if subs[j] == 0 and users[j] == u and times[j] is not None and times[j] < t
        )
        out.append([v for _, _, v in earlier][len(earlier) - min(len(earlier), max_len) :])
    return out


def null_events(n: int = 80, seed: int = 4) -> pa.Table:
    """Events with ties in time, and nulls in the user, the time, the item, the category and the label."""
    rng = np.random.default_rng(seed)
    item = rng.integers(0, 9, n)
    return pa.table(
        {
            "user": pa.array([f"u{u}" for u in rng.integers(0, 4, n)], mask=rng.random(n) < 0.1),
            "item": pa.array([f"i{i}" for i in item], mask=rng.random(n) < 0.1),
            "cat": pa.array([None if i == 7 else f"c{i % 3}" for i in item]),  # i7's category is unknown
            "ts": pa.array(rng.integers(0, 12, n), pa.int64(), mask=rng.random(n) < 0.1),  # ties
            "label": pa.array(rng.integers(0, 2, n), pa.int8(), mask=rng.random(n) < 0.1),
        }
    )


@pytest.mark.parametrize("negatives_first", [True, False])
def test_history_holds_only_strictly_earlier_real_events_whatever_the_op_order(tmp_path, negatives_first):
    table = null_events()
    history = {
        "op": "sequence_history",
        "user": "user",
        "item": "item",
        "time": "ts",
        "max_len": 3,
        "columns": ["item", "cat"],
    }
    negatives = {"op": "negative_sample", "item": "item", "item_columns": ["cat"], "ratio": 2, "seed": 1}
    ops = [negatives, history] if negatives_first else [history, negatives]
    groups = {"label": ["label"], "sparse": ["user", "item", "cat"], "time": ["ts"]}
    _, out = run(tmp_path, table, ops, groups, keys=("user",), hidden=True)
    got = pa.table({c: out["train"][c] + out["test"][c] for c in out["train"]})
    subs = got.column("__sub").to_pylist()
    assert max(subs) == 2  # negatives were drawn
    for c in ("item", "cat"):
        assert got.column(f"hist_{c}").to_pylist() == history_reference(got, "user", "ts", c, 3, subs), c
    # the item and category histories line up element by element, nulls included (i7 has no category)
    for items, cats in zip(
        got.column("hist_item").to_pylist(), got.column("hist_cat").to_pylist(), strict=True
    ):
        assert len(items) == len(cats)
        for i, c in zip(items, cats, strict=True):
            assert i is None or c == (None if i == "i7" else f"c{int(i[1:]) % 3}")
    assert any(None in h for h in got.column("hist_item").to_pylist())  # null items stay as null elements
    assert any(None in h for h in got.column("hist_cat").to_pylist())
    # a negative gets its positive's history: it never ends with the positive's own item
    rows = got.to_pylist()
    by_row = {(r["__row"], r["__sub"]): r for r in rows}
    for r in rows:
        if r["__sub"]:
            assert r["hist_item"] == by_row[(r["__row"], 0)]["hist_item"]
    # a row without a time or a user has no history and is in no one's
    timeless = {r["item"] for r in rows if r["ts"] is None and r["__sub"] == 0} - {
        r["item"] for r in rows if r["ts"] is not None and r["__sub"] == 0
    }
    assert all(r["hist_item"] == [] for r in rows if r["ts"] is None or r["user"] is None)
    assert not timeless & {i for r in rows for i in r["hist_item"]}


def test_target_encode_ignores_null_targets(tmp_path):
    v = ["a", "a", "a", "b", "b", "a", "b"]
    y = pa.array([1, None, 0, None, 1, 1, 0], pa.int8())  # train: the first 5 rows (a: 1, 0; b: 1)
    ops = [{"op": "target_encode", "columns": ["v"], "target": "y", "folds": 2, "smoothing": 0}]
    _, out = run(tmp_path, pa.table({"v": v, "y": y}), ops, {"label": ["y"], "sparse": ["v"]})
    # fold = row % 2; row 0 (a, fold 0) sees fold 1's a rows: row 1 has no target -> none -> the prior
    prior = 2 / 3  # train targets 1, 0, 1 (two nulls ignored)
    assert out["train"]["v"] == pytest.approx([prior, 0.5, prior, 1.0, prior])
    assert out["test"]["v"] == pytest.approx([0.5, 1.0])  # a: 1, 0 (the null is not a 0); b: 1


def test_hash_mod_keeps_id_0_for_missing_values(tmp_path):
    table = pa.table(
        {
            "s": pa.array(["x", None, "", "y", "x", None]),
            "f": pa.array([1.5, float("nan"), None, 2.5, 1.5, 0.0]),
            "n": pa.array([0, None, 5, 10, -5, 3], pa.int64()),
        }
    )
    ops = [{"op": "hash_mod", "columns": ["s", "f", "n"], "buckets": 5}]
    processed, out = run(tmp_path, table, ops, {"sparse": ["s", "f", "n"]})
    rows = {c: out["train"][c] + out["test"][c] for c in out["train"]}
    crc = {v: zlib.crc32(v.encode()) % 5 + 1 for v in ("x", "", "y", "1.5", "2.5", "0.0")}
    assert rows["s"] == [crc["x"], 0, crc[""], crc["y"], crc["x"], 0]  # "" is a value, not missing
    assert rows["f"] == [crc["1.5"], 0, 0, crc["2.5"], crc["1.5"], crc["0.0"]]  # NaN is missing
    assert rows["n"] == [1, 0, 1, 1, 1, 4]  # 1 + (x mod 5)
    assert processed.meta["cardinalities"] == {"s": 6, "f": 6, "n": 6}
