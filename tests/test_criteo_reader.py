"""The Criteo reader on real-format files with broken rows: clear errors, or counted skips."""

from pathlib import Path

import numpy as np
import pytest

from bluewhale.dataset.criteo import COLUMNS, BadRowError, CriteoFile, read_criteo_tsv


def line(label="1", dense=None, sparse=None) -> str:
    dense = (
        dense if dense is not None else ["1", "-2", "", "4", "5", "6", "7", "8", "9", "10", "", "12", "13"]
    )
    sparse = sparse if sparse is not None else [f"{i:08x}" for i in range(26)]
    return "\t".join([label, *dense, *sparse])


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_empty_fields_and_negative_integers(tmp_path):
    sparse = [""] + [f"{i:08x}" for i in range(1, 26)]
    table, bad = read_criteo_tsv(write(tmp_path / "train.txt", [line(), line("0", sparse=sparse)]))
    assert table.column_names == COLUMNS
    assert table.column("label").to_pylist() == [1, 0]
    assert table.column("I2").to_pylist() == [-2, -2]
    assert table.column("I3").to_pylist() == [None, None]
    assert table.column("C1").to_pylist() == ["00000000", None]
    assert bad.count == 0


@pytest.mark.parametrize(
    "broken, reason",
    [
        ("\t".join(line().split("\t")[:20]), "expected 40 tab-separated fields, got 20"),
        (line() + "\textra", "expected 40 tab-separated fields, got 41"),
        (line(dense=["1", "x7", *["3"] * 11]), "field I2 expected an integer of at most 18 digits, got 'x7'"),
        (
            line(dense=["9" * 19, *["3"] * 12]),
            f"field I1 expected an integer of at most 18 digits, got '{'9' * 19}'",
        ),
        (line(label="2"), "field label expected 0 or 1, got '2'"),
        (line(label=""), "field label expected 0 or 1, got None"),
    ],
)
def test_error_names_file_line_and_expectation(tmp_path, broken, reason):
    path = write(tmp_path / "train.txt", [line(), line(), broken, line()])
    with pytest.raises(BadRowError) as err:
        read_criteo_tsv(path)
    assert str(err.value) == f"{path}:3: {reason}"


def test_error_reports_the_first_bad_line_of_either_kind(tmp_path):
    path = write(tmp_path / "t.txt", [line(), line(dense=["a"] * 13), "1\t2", line()])
    with pytest.raises(BadRowError, match=r"t.txt:2: field I1 expected an integer"):
        read_criteo_tsv(path)


def test_skip_counts_bad_rows_and_keeps_the_rest_with_true_line_numbers(tmp_path):
    good = [line(dense=[str(i)] * 13) for i in range(10)]
    lines = (
        good[:2]
        + ["0\t1"]
        + good[2:5]
        + [line(label="7")]
        + ["x"]
        + good[5:8]
        + [line(dense=["1", "z", *["1"] * 11])]
        + good[8:]
    )
    table, bad = read_criteo_tsv(write(tmp_path / "train.txt", lines), bad_rows="skip")
    assert table.column("I1").to_pylist() == list(range(10))  # every good row, in order
    assert bad.count == 4
    assert [n for n, _ in bad.examples] == [3, 7, 8, 12]
    assert "label expected 0 or 1" in dict(bad.examples)[7]
    assert "I2 expected an integer of at most 18 digits, got 'z'" in dict(bad.examples)[12]


def test_dataset_needs_a_path_and_an_existing_file(tmp_path):
    with pytest.raises(ValueError, match="dataset.path is not set"):
        CriteoFile(path=None)
    with pytest.raises(FileNotFoundError, match="no such file"):
        CriteoFile(path=str(tmp_path / "missing.txt")).read()
    with pytest.raises(ValueError, match="dataset.bad_rows must be 'error' or 'skip'"):
        CriteoFile(path="x", bad_rows="ignore")


def test_many_skipped_lines_map_back_to_their_lines(tmp_path):
    rng = np.random.default_rng(0)
    bad_lines = set(rng.choice(np.arange(1, 501), size=60, replace=False).tolist())
    bad_lines |= set(range(2, 40, 2))  # crowd the start, so the examples include non-numeric rows
    lines = ["1\t2" if n in bad_lines else line(dense=[str(n)] * 13) for n in range(1, 501)]
    rows = [n for n in range(1, 501) if n not in bad_lines and n % 7 == 0]
    for n in rows:  # a non-numeric field on some good-width lines: their reported line must be exact
        lines[n - 1] = line(dense=["q", *[str(n)] * 12])
    table, bad = read_criteo_tsv(write(tmp_path / "t.txt", lines), bad_rows="skip")
    assert bad.count == len(bad_lines) + len(rows)
    assert [n for n, _ in bad.examples] == sorted(bad_lines | set(rows))[:5]
    assert table.num_rows == 500 - bad.count
    assert table.column("I2").to_pylist() == [n for n in range(1, 501) if n not in bad_lines and n % 7]


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 40])
def test_a_file_read_in_byte_ranges_gives_the_whole_file_and_its_line_numbers(tmp_path, parts):
    bad = {3: "1\t2", 11: line(label="7"), 12: "", 29: line(dense=["x", *["1"] * 12])}
    lines = [bad.get(n, line(dense=[str(n)] * 13)) for n in range(1, 31)]
    data = CriteoFile(str(write(tmp_path / "t.txt", lines)), bad_rows="skip")
    whole, report = data.read()
    tables, first, count, offset = [], [], 0, 0
    for byte_range in data.chunks(parts):
        table, problems, n = data.read_chunk(byte_range)
        tables.append(table)
        first += [(line + offset, reason) for line, reason in problems]
        count, offset = count + len(problems), offset + n
    assert offset == 30  # every line read once
    assert sum(t.num_rows for t in tables) == whole.num_rows == 26
    assert [v for t in tables for v in t.column("I1").to_pylist()] == whole.column("I1").to_pylist()
    assert data.report_chunks(count, first) == report
    with pytest.raises(BadRowError, match=r"t.txt:3: expected 40 tab-separated fields, got 2"):
        CriteoFile(data.path).report_chunks(count, first)
