"""Criteo 1TB day files: a folder or a list of days read in order, bad rows per day, the planted twin."""

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from bluewhale.dataset.badrows import BadRowError
from bluewhale.dataset.criteo_1tb import CriteoDays
from bluewhale.dataset.planted import keys_table
from bluewhale.dataset.synthetic_criteo_1tb import SyntheticCriteo1TB


def line(i1: str, label: str = "1") -> str:
    return "\t".join([label, i1, "-1", *[""] * 11, *[f"{k:08x}" for k in range(25)], ""])


def write_days(folder: Path, days: dict[int, list[str]]) -> Path:
    folder.mkdir(exist_ok=True)
    for day, lines in days.items():
        (folder / f"day_{day}").write_text("\n".join(lines) + "\n")
    return folder


def test_a_folder_reads_every_day_in_day_order_with_its_day(tmp_path):
    folder = write_days(tmp_path, {10: [line("10")], 2: [line("2"), line("3")], 23: [line("23")]})
    (folder / "notes.txt").write_text("not a day file")
    table, bad = CriteoDays(str(folder)).read()
    assert bad.count == 0
    assert table.column("I1").to_pylist() == [2, 3, 10, 23]
    assert table.column("day").to_pylist() == [2, 2, 10, 23]
    assert table.column("C26").to_pylist() == [None] * 4
    selected, _ = CriteoDays(str(folder), days=[2, 23]).read()
    assert selected.column("I1").to_pylist() == [2, 3, 23]


def test_a_list_of_files_is_read_in_the_given_order(tmp_path):
    folder = write_days(tmp_path, {0: [line("0")], 1: [line("1")]})
    table, _ = CriteoDays([str(folder / "day_1"), str(folder / "day_0")]).read()
    assert table.column("I1").to_pylist() == [1, 0]


def test_missing_days_and_paths_are_named(tmp_path):
    folder = write_days(tmp_path, {0: [line("0")]})
    with pytest.raises(FileNotFoundError, match=r"no day file for days \[23\]; found \[0\]"):
        CriteoDays(str(folder), days=[0, 23]).read()
    with pytest.raises(FileNotFoundError, match="day files not found"):
        CriteoDays([str(folder / "day_5")]).read()
    with pytest.raises(ValueError, match="dataset.path is not set"):
        CriteoDays(None)


def test_bad_rows_name_the_day_file_and_line(tmp_path):
    folder = write_days(tmp_path, {0: [line("1"), line("2")], 1: [line("3"), line("4", label="x"), "1\t2"]})
    with pytest.raises(BadRowError) as err:
        CriteoDays(str(folder)).read()
    assert str(err.value) == f"{folder / 'day_1'}:2: field label expected 0 or 1, got 'x'"
    table, bad = CriteoDays(str(folder), bad_rows="skip").read()
    assert table.column("I1").to_pylist() == [1, 2, 3]
    assert bad.count == 2
    assert bad.examples == [
        (2, "day_1: field label expected 0 or 1, got 'x'"),
        (3, "day_1: expected 40 tab-separated fields, got 2"),
    ]


def test_planted_twin_writes_day_files_with_the_criteo_click_model(tmp_path):
    data = SyntheticCriteo1TB(rows=30_000, seed=0, dir=str(tmp_path), days=3)
    assert [p.name for p in data.files()] == ["day_21", "day_22", "day_23"]
    table, bad = data.read()
    assert bad.count == 0 and table.num_rows == 30_000
    assert np.bincount(table.column("day").to_numpy())[21:].tolist() == [10_000, 10_000, 10_000]
    label = table.column("label").to_numpy()
    assert 0.75 < roc_auc_score(label, data.planted_probability()) < 0.9
    # planted(keys): by input row, days in order (day_23's rows are the last)
    rows = [29_999, 20_000, 0]
    got = data.planted(keys_table(table, data.planted_keys, rows))
    assert got.tolist() == data.planted_probability()[rows].astype(np.float64).tolist()
    with pytest.raises(ValueError, match=r"keys row 0 has __row=30000, but the twin wrote 30000 rows"):
        data.planted(keys_table(table, [], [0]).set_column(0, "__row", pa.array([30_000], pa.int64())))


def test_an_empty_line_is_a_bad_row_not_nothing(tmp_path):
    folder = write_days(tmp_path, {0: [line("1"), "", line("3")]})
    with pytest.raises(BadRowError, match=r"day_0:2: empty line"):
        CriteoDays(str(folder)).read()
    table, bad = CriteoDays(str(folder), bad_rows="skip").read()
    assert table.column("I1").to_pylist() == [1, 3] and bad.count == 1


def test_gzipped_day_files_as_published(tmp_path):
    with gzip.open(tmp_path / "day_0.gz", "wt") as f:
        f.write("\n".join([line("5"), "1\t2", line("6")]) + "\n")
    table, bad = CriteoDays(str(tmp_path), bad_rows="skip").read()
    assert table.column("I1").to_pylist() == [5, 6] and table.column("day").to_pylist() == [0, 0]
    assert bad.examples == [(2, "day_0.gz: expected 40 tab-separated fields, got 2")]
