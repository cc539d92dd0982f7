"""Criteo display-ads logs (Kaggle `train.txt`, 1TB `day_N`): the published TSV format and its reader.

One example a line, 40 tab-separated fields: label, 13 integer features I1..I13 (may be empty or
negative), 26 categorical features C1..C26 (8-digit hex strings, may be empty).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from bluewhale.dataset.badrows import BadRowError, BadRows
from bluewhale.dataset.base import Dataset

log = logging.getLogger(__name__)

LABEL = "label"
DENSE = [f"I{i}" for i in range(1, 14)]
SPARSE = [f"C{i}" for i in range(1, 27)]
COLUMNS = [LABEL, *DENSE, *SPARSE]

_INTEGER = r"^-?[0-9]+$"
_LABEL = r"^[01]$"
_EXAMPLES = 5


def read_criteo_tsv(path: str | Path, bad_rows: str = "error") -> tuple[pa.Table, BadRows]:
    """Read one Criteo TSV file into an Arrow table: int8 label, int64 dense (null = empty), string sparse.

    `bad_rows="error"` stops at the first malformed line with `file:line: reason`;
    `bad_rows="skip"` drops malformed lines and returns how many (and which) were dropped.
    Line numbers are 1-based, as an editor shows them.
    """
    if bad_rows not in ("error", "skip"):
        raise ValueError(f"bad_rows must be 'error' or 'skip', got {bad_rows!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Criteo file")

    table, wrong_width = _read_strings(path, use_threads=True)
    if wrong_width:
        # Arrow's threaded reader cannot say which line was bad; re-read in order to name the lines.
        table, wrong_width = _read_strings(path, use_threads=False)

    skipped_lines = np.array(sorted(n for n, _ in wrong_width), dtype=np.int64)
    invalid = np.zeros(table.num_rows, dtype=bool)
    reasons: dict[int, str] = {}  # row -> reason, for the first few bad rows of each field
    for name, pattern, expected in [(LABEL, _LABEL, "0 or 1"), *[(c, _INTEGER, "an integer") for c in DENSE]]:
        col = table.column(name)
        ok = pc.match_substring_regex(col, pattern)
        bad = pc.invert(pc.fill_null(ok, name != LABEL)).to_numpy(zero_copy_only=False)
        for row in np.flatnonzero(bad & ~invalid)[:_EXAMPLES]:
            reasons[int(row)] = f"field {name} expected {expected}, got {col[int(row)].as_py()!r}"
        invalid |= bad

    rows = np.flatnonzero(invalid)
    lines = _row_to_line(rows, skipped_lines)
    problems = sorted(wrong_width) + [
        (int(n), reasons.get(int(r), "malformed field")) for r, n in zip(rows, lines, strict=False)
    ]
    if problems and bad_rows == "error":
        line, reason = min(problems)
        raise BadRowError(f"{path}:{line}: {reason}")
    report = BadRows(count=len(problems), examples=sorted(problems)[:_EXAMPLES])
    if rows.size:
        table = table.filter(pa.array(~invalid))

    if report.count:
        log.warning("%s: skipped %d bad rows, e.g. %s", path, report.count, report.examples[:3])
    return _typed(table), report


def _read_strings(path: Path, use_threads: bool) -> tuple[pa.Table, list[tuple[int | None, str]]]:
    wrong_width: list[tuple[int | None, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        wrong_width.append(
            (row.number, f"expected {row.expected_columns} tab-separated fields, got {row.actual_columns}")
        )
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=COLUMNS, use_threads=use_threads, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(
            delimiter="\t",
            quote_char=False,
            invalid_row_handler=on_invalid,
            ignore_empty_lines=False,  # an empty line is a bad row (its label is missing), not nothing
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in COLUMNS}, strings_can_be_null=True, null_values=[""]
        ),
    )
    return table, wrong_width


def _row_to_line(rows: np.ndarray, skipped_lines: np.ndarray) -> np.ndarray:
    """Map indices of kept rows back to 1-based file lines, given the lines already skipped."""
    # Kept row k is on line k + 1 + (skipped lines before it). Skipped line s_i (sorted) has s_i - i
    # kept-or-itself lines up to it, so a kept row comes after s_i exactly when k + 1 >= s_i - i.
    kept_before_skipped = skipped_lines - np.arange(len(skipped_lines))
    return rows + 1 + np.searchsorted(kept_before_skipped, rows + 1, side="right")


def _typed(table: pa.Table) -> pa.Table:
    columns = [pc.cast(table.column(LABEL), pa.int8())]
    columns += [pc.cast(table.column(c), pa.int64()) for c in DENSE]
    columns += [table.column(c) for c in SPARSE]
    return pa.table(columns, names=COLUMNS)


class CriteoFile(Dataset):
    """A data set made of one Criteo TSV file (`dataset=criteo_kaggle`): what the pipeline reads."""

    label, dense, sparse = LABEL, DENSE, SPARSE

    def __init__(self, path: str | None, bad_rows: str = "error") -> None:
        if not path:
            raise ValueError(
                "dataset.path is not set: point it at a Criteo TSV file, e.g. dataset.path=/data/criteo/train.txt"
            )
        if bad_rows not in ("error", "skip"):
            raise ValueError(f"dataset.bad_rows must be 'error' or 'skip', got {bad_rows!r}")
        self.path, self.bad_rows = Path(path).expanduser(), bad_rows

    def prepare(self) -> None:
        """Make sure the input exists (a synthetic data set writes it here)."""
        if not self.path.is_file():
            raise FileNotFoundError(f"dataset.path={self.path}: no such file")

    def fingerprint(self) -> dict:
        """What identifies this input for the processing cache: the file's path, size and mtime."""
        self.prepare()
        stat = self.path.stat()
        return {"path": str(self.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def read(self) -> tuple[pa.Table, BadRows]:
        self.prepare()
        return read_criteo_tsv(self.path, self.bad_rows)
