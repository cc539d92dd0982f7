"""Criteo 1TB: 24 day files `day_0` … `day_23` (optionally `.gz`), each in the Criteo TSV format.

The days are read in order with the Criteo TSV reader; a `day` column says which file each row came
from, so a pipeline can hold out the usual test day (day_23, the last one given) by value.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from bluewhale.dataset.badrows import EXAMPLES, BadRowError, BadRows, check_mode
from bluewhale.dataset.base import Dataset
from bluewhale.dataset.criteo import (
    _CHECKS,
    COLUMNS,
    DENSE,
    LABEL,
    SPARSE,
    STRINGS,
    WHAT,
    _typed,
    read_criteo_tsv,
)
from bluewhale.dataset.delimited import line_ranges, read_delimited, read_delimited_range
from bluewhale.dataset.files import fingerprint_files, require_path

log = logging.getLogger(__name__)
DAY_FILE = re.compile(r"^day_(\d+)(\.gz)?$")


def day_files(path: str | list[str], days: list[int] | None = None) -> list[Path]:
    """The day files of a folder (sorted by day, optionally only `days`) or an explicit list, in order."""
    if isinstance(path, str | Path):
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"dataset.path={folder}: expected a folder of day_0 … day_23 files")
        found = {int(m.group(1)): p for p in folder.iterdir() if (m := DAY_FILE.match(p.name))}
        wanted = sorted(found) if days is None else list(days)
        missing = [d for d in wanted if d not in found]
        if missing or not wanted:
            raise FileNotFoundError(
                f"dataset.path={folder}: no day file for days {missing or 'any'}; "
                f"found {sorted(found) or 'none'} (expected names day_N or day_N.gz)"
            )
        return [found[d] for d in wanted]
    files = [Path(p).expanduser() for p in path]
    missing = [str(p) for p in files if not p.is_file()]
    if missing or not files:
        raise FileNotFoundError(f"dataset.path: day files not found: {missing or 'the list is empty'}")
    return files


class CriteoDays(Dataset):
    """Criteo 1TB day files (`dataset=criteo_1tb`): rows of every day in order, with their `day`."""

    label, dense, sparse, day = LABEL, DENSE, SPARSE, ["day"]
    pipelines = ("criteo_1tb_dlrm", "criteo_dlrm")  # the RecDP pipelines made for it (dataset.check_pipeline)

    def __init__(self, path: str | list[str] | None, days: list[int] | None = None, bad_rows: str = "error"):
        if not path:
            require_path(path, "a folder of Criteo 1TB day files (day_0 … day_23), or a list of them")
        self.path = str(path) if isinstance(path, str | Path) else [str(p) for p in path]
        self.days = None if days is None else [int(d) for d in days]
        self.bad_rows = check_mode(bad_rows)

    def files(self) -> list[Path]:
        """The day files this data set reads, in order (the last is the test day)."""
        self.prepare()
        return day_files(self.path, self.days)

    def prepare(self) -> None:
        """Make sure the input exists (a synthetic data set writes it here)."""
        day_files(self.path, self.days)

    def fingerprint(self) -> dict:
        return fingerprint_files(self.files())

    def read(self) -> tuple[pa.Table, BadRows]:
        """Every row of every day, in order, with an int16 `day` column (the day number, or list index)."""
        tables, report = [], BadRows()
        for index, path in enumerate(self.files()):
            table, bad = read_criteo_tsv(path, self.bad_rows)
            match = DAY_FILE.match(path.name)
            day = int(match.group(1)) if match else index
            tables.append(table.append_column("day", pa.array(np.full(table.num_rows, day, np.int16))))
            report += BadRows(bad.count, [(line, f"{path.name}: {reason}") for line, reason in bad.examples])
        return pa.concat_tables(tables), report

    # Pieces: what the streaming engines read one at a time (see `bluewhale.engine.streaming`).
    def pieces(self, max_bytes: int, at_least: int = 1) -> list[tuple[int, tuple[int, int] | None]]:
        """(file index, byte range) pieces of at most about `max_bytes`, day by day in order; a gzipped
        day is one piece (a compressed stream cannot be entered in the middle)."""
        out: list[tuple[int, tuple[int, int] | None]] = []
        files = self.files()
        for index, path in enumerate(files):
            if path.suffix == ".gz":
                out.append((index, None))
                continue
            parts = max(-(-at_least // len(files)), -(-path.stat().st_size // max_bytes))
            out += [(index, r) for r in line_ranges(path, parts)]
        return out

    def read_piece(
        self, piece: tuple[int, tuple[int, int] | None]
    ) -> tuple[pa.Table, list[tuple[int, str]], int]:
        """A piece's typed rows with their `day`, its problems (lines from its first line) and its lines."""
        index, byte_range = piece
        path = self.files()[index]
        if byte_range is None:
            table, problems = read_delimited(path, COLUMNS, _CHECKS, "\t", what=WHAT, strings=STRINGS)
            lines = 0  # the whole file: nothing comes after it in this file
        else:
            table, problems, lines = read_delimited_range(
                path, byte_range, COLUMNS, _CHECKS, "\t", what=WHAT, strings=STRINGS
            )
        match = DAY_FILE.match(path.name)
        day = int(match.group(1)) if match else index
        table = _typed(table)
        return table.append_column("day", pa.array(np.full(table.num_rows, day, np.int16))), problems, lines

    def report_pieces(self, count: int, first: list[tuple[int, int, str]]) -> BadRows:
        """The report (or error) for the bad lines of all pieces: (file index, file line, reason)."""
        if not count:
            return BadRows()
        files, first = self.files(), sorted(first)[:EXAMPLES]
        if self.bad_rows == "error":
            index, line, reason = first[0]
            raise BadRowError(f"{files[index]}:{line}: {reason}")
        report = BadRows(count, [(line, f"{files[i].name}: {reason}") for i, line, reason in first])
        log.warning("%s: skipped %d bad rows, e.g. %s", self.path, count, report.examples[:3])
        return report
