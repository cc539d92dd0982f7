"""Criteo display-ads logs (Kaggle `train.txt`, 1TB `day_N`): the published TSV format and its reader.

One example a line, 40 tab-separated fields: label, 13 integer features I1..I13 (may be empty or
negative), 26 categorical features C1..C26 (8-digit hex strings, may be empty).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from bluewhale.dataset.badrows import EXAMPLES, BadRowError, BadRows
from bluewhale.dataset.base import Dataset
from bluewhale.dataset.delimited import INTEGER, Check, line_ranges, read_delimited, read_delimited_range
from bluewhale.dataset.files import require_nonempty

log = logging.getLogger(__name__)

LABEL = "label"
DENSE = [f"I{i}" for i in range(1, 14)]
SPARSE = [f"C{i}" for i in range(1, 27)]
COLUMNS = [LABEL, *DENSE, *SPARSE]

_CHECKS = {
    LABEL: Check(r"^[01]$", "0 or 1"),
    **{c: Check(INTEGER, "an integer of at most 18 digits", required=False) for c in DENSE},
}
WHAT = "tab-separated fields"
STRINGS = pa.large_string()  # the pandas engines' frames take large strings without a copy (delimited.py)


def read_criteo_tsv(path: str | Path, bad_rows: str = "error") -> tuple[pa.Table, BadRows]:
    """Read one Criteo TSV file into an Arrow table: int8 label, int64 dense (null = empty), large_string sparse.

    `bad_rows="error"` stops at the first malformed line with `file:line: reason`;
    `bad_rows="skip"` drops malformed lines and returns how many (and which) were dropped.
    Line numbers are 1-based, as an editor shows them.
    """
    if bad_rows not in ("error", "skip"):
        raise ValueError(f"bad_rows must be 'error' or 'skip', got {bad_rows!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Criteo file")

    table, problems = read_delimited(path, COLUMNS, _CHECKS, "\t", what=WHAT, strings=STRINGS)
    return _typed(table), report_problems(path, len(problems), sorted(problems)[:EXAMPLES], bad_rows)


def report_problems(path: Path, count: int, first: list[tuple[int, str]], bad_rows: str) -> BadRows:
    """Raise `file:line: reason` for the first bad line (error), or count and log them (skip)."""
    if count and bad_rows == "error":
        line, reason = first[0]
        raise BadRowError(f"{path}:{line}: {reason}")
    report = BadRows(count=count, examples=first[:EXAMPLES])
    if report.count:
        log.warning("%s: skipped %d bad rows, e.g. %s", path, report.count, report.examples[:3])
    return report


def _typed(table: pa.Table) -> pa.Table:
    columns = [pc.cast(table.column(LABEL), pa.int8())]
    columns += [pc.cast(table.column(c), pa.int64()) for c in DENSE]
    columns += [table.column(c) for c in SPARSE]
    return pa.table(columns, names=COLUMNS)


class CriteoFile(Dataset):
    """A data set made of one Criteo TSV file (`dataset=criteo_kaggle`): what the pipeline reads."""

    label, dense, sparse = LABEL, DENSE, SPARSE
    pipelines = ("criteo_dlrm",)  # the RecDP pipelines made for this format (dataset.check_pipeline)

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
        require_nonempty(self.path, "Criteo file")  # else pyarrow's bare "Empty CSV file"

    def fingerprint(self) -> dict:
        """What identifies this input for the processing cache: the file's path, size and mtime."""
        self.prepare()
        stat = self.path.stat()
        return {"path": str(self.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def read(self) -> tuple[pa.Table, BadRows]:
        self.prepare()
        return read_criteo_tsv(self.path, self.bad_rows)

    def chunks(self, parts: int) -> list[tuple[int, int]]:
        """Byte ranges of the file, at line starts, that `read_chunk` reads independently (on workers)."""
        self.prepare()
        return line_ranges(self.path, parts)

    def read_chunk(self, byte_range: tuple[int, int]) -> tuple[pa.Table, list[tuple[int, str]], int]:
        """The typed rows of a byte range, its problems (lines numbered from the range's first line) and
        its number of lines: `report_problems` turns the problems of all ranges into the file's report."""
        table, problems, lines = read_delimited_range(
            self.path, byte_range, COLUMNS, _CHECKS, "\t", what=WHAT, strings=STRINGS
        )
        return _typed(table), problems, lines

    def report_chunks(self, count: int, first: list[tuple[int, str]]) -> BadRows:
        """The bad-row report (or error) for the problems of all chunks, numbered by file line."""
        return report_problems(self.path, count, sorted(first)[:EXAMPLES], self.bad_rows)

    # Pieces: what the streaming engines read one at a time (see `bluewhale.engine.streaming`).
    def pieces(self, max_bytes: int, at_least: int = 1) -> list[tuple[int, tuple[int, int]]]:
        """(file index, byte range) pieces of at most about `max_bytes` each, in file order."""
        self.prepare()
        return [
            (0, r) for r in line_ranges(self.path, max(at_least, -(-self.path.stat().st_size // max_bytes)))
        ]

    def read_piece(self, piece: tuple[int, tuple[int, int]]) -> tuple[pa.Table, list[tuple[int, str]], int]:
        """`read_chunk` of a piece: its rows, its problems (numbered from its first line), its lines."""
        return self.read_chunk(piece[1])

    def report_pieces(self, count: int, first: list[tuple[int, int, str]]) -> BadRows:
        """The report (or error) for the bad lines of all pieces: (file index, file line, reason)."""
        return self.report_chunks(count, [(line, reason) for _, line, reason in first])
