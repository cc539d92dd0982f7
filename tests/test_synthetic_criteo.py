"""The planted generator writes real Criteo-format data whose best achievable AUC is known."""

import re

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from bluewhale.dataset.planted import keys_table
from bluewhale.dataset.synthetic_criteo import SyntheticCriteo

HEX8 = re.compile(r"^[0-9a-f]{8}$")


def test_writes_the_published_format_with_its_quirks(tmp_path):
    data = SyntheticCriteo(rows=5000, seed=1, dir=str(tmp_path))
    data.prepare()
    lines = data.path.read_text().splitlines()
    assert len(lines) == 5000
    fields = [row.split("\t") for row in lines]
    assert {len(f) for f in fields} == {40}
    assert {f[0] for f in fields} == {"0", "1"}
    assert any(f[2].startswith("-") for f in fields), "I2 takes negative values"
    assert any(f[k] == "" for f in fields for k in range(1, 14)), "dense fields are sometimes empty"
    assert any(f[k] == "" for f in fields for k in range(14, 40)), "categorical fields are sometimes empty"
    assert all(HEX8.match(v) for f in fields for v in f[14:] if v)


def test_click_rate_and_planted_optimum_are_realistic(tmp_path):
    data = SyntheticCriteo(rows=50_000, seed=0, dir=str(tmp_path))
    table, _ = data.read()
    label = table.column("label").to_numpy()
    planted = data.planted_probability()
    assert len(planted) == table.num_rows
    assert 0.22 < label.mean() < 0.28
    assert 0.75 < roc_auc_score(label, planted) < 0.90  # informative, yet far from trivial


def test_same_seed_same_file_and_the_click_model_does_not_depend_on_rows(tmp_path):
    a = SyntheticCriteo(rows=2000, seed=3, dir=str(tmp_path / "a"))
    b = SyntheticCriteo(rows=2000, seed=3, dir=str(tmp_path / "b"))
    small = SyntheticCriteo(rows=1000, seed=3, dir=str(tmp_path / "c"))
    for d in (a, b, small):
        d.prepare()
    assert a.path.read_bytes() == b.path.read_bytes()

    # the click model (vocabulary, effects) depends on the seed only: a smaller draw shares its values
    def top_value(d, column=14):
        values = [line.split("\t")[column] for line in d.path.read_text().splitlines()]
        return max(set(values), key=values.count)

    assert all(top_value(a, c) == top_value(small, c) for c in range(14, 20))
    assert not np.allclose(
        a.planted_probability()[:1000],
        SyntheticCriteo(2000, 4, str(tmp_path / "d")).planted_probability()[:1000],
    )


def test_planted_keys_find_each_rows_probability_and_refuse_what_they_cannot(tmp_path):
    data = SyntheticCriteo(rows=1000, seed=2, dir=str(tmp_path))
    table, _ = data.read()
    assert data.planted_keys == ()
    rows = [999, 0, 500, 500]
    got = data.planted(keys_table(table, [], rows))
    assert got.dtype == np.float64 and got.shape == (4,)
    assert got.tolist() == data.planted_probability()[rows].astype(np.float64).tolist()
    good = keys_table(table, [], [3, 4])
    with pytest.raises(
        ValueError, match=r"synthetic_criteo.planted: keys row 1 has __row=1000, but the twin wrote 1000"
    ):
        data.planted(good.set_column(0, "__row", pa.array([3, 1000], pa.int64())))
    with pytest.raises(ValueError, match=r"keys row 0 is negative sample 1 \(__sub=1\) of input row 3"):
        data.planted(good.set_column(1, "__sub", pa.array([1, 0], pa.int32())))
    with pytest.raises(ValueError, match=r"keys row 0 has a null __sub"):
        data.planted(good.set_column(1, "__sub", pa.array([None, 0], pa.int32())))
    with pytest.raises(ValueError, match=r"the keys table has no __row column"):
        data.planted(good.drop_columns(["__row"]))


def test_cardinalities_set_the_table_sizes_and_leave_the_rest_of_the_click_model(tmp_path):
    sizes = [3, 50, 2_000_000, 7, *([20] * 22)]  # one table far larger than the rows drawn from it
    default = SyntheticCriteo(rows=3000, seed=5, dir=str(tmp_path))
    sized = SyntheticCriteo(rows=3000, seed=5, dir=str(tmp_path), cardinalities=sizes)
    assert sized.folder != default.folder and sized.folder.name.startswith("rows3000_seed5_card")
    for d in (default, sized):
        d.prepare()
    rows_default = [line.split("\t") for line in default.path.read_text().splitlines()]
    rows_sized = [line.split("\t") for line in sized.path.read_text().splitlines()]
    assert [r[1:14] for r in rows_default] == [r[1:14] for r in rows_sized]  # dense draws unchanged
    distinct = [len({r[14 + j] for r in rows_sized} - {""}) for j in range(26)]
    assert distinct[0] == 3 and distinct[3] == 7 and all(d <= n for d, n in zip(distinct, sizes, strict=True))
    assert distinct[2] > 100, "a 2M-row Zipf table still spreads over many values"
    assert all(HEX8.match(r[16]) for r in rows_sized if r[16])
    label = np.array([int(r[0]) for r in rows_sized])
    assert 0.5 < roc_auc_score(label, sized.planted_probability()) < 0.95


def test_kaggle_preset_and_bad_cardinalities(tmp_path):
    from bluewhale.dataset.synthetic_criteo import KAGGLE_CARDINALITIES, resolve_cardinalities

    assert resolve_cardinalities("kaggle") == KAGGLE_CARDINALITIES
    assert len(KAGGLE_CARDINALITIES) == 26 and sum(KAGGLE_CARDINALITIES) == 33_762_577
    assert SyntheticCriteo(1000, 0, str(tmp_path), cardinalities="kaggle").folder.name == (
        "rows1000_seed0_kaggle_v1"
    )
    with pytest.raises(ValueError, match=r"dataset.cardinalities: unknown preset 'kagle'"):
        SyntheticCriteo(1000, 0, str(tmp_path), cardinalities="kagle")
    with pytest.raises(ValueError, match=r"dataset.cardinalities: expected 26 positive integers"):
        SyntheticCriteo(1000, 0, str(tmp_path), cardinalities=[10] * 25)
    with pytest.raises(ValueError, match=r"dataset.cardinalities: expected 26 positive integers"):
        SyntheticCriteo(1000, 0, str(tmp_path), cardinalities=[0] * 26)
