"""Bounded-memory processing for the pandas and Modin engines: an input larger than memory, in pieces.

A data set that can be read in pieces (`pieces(max_bytes)`, `read_piece(piece)`, `report_pieces(...)`:
the Criteo files, cut at line starts) is processed in passes over its pieces, one piece at a time per
process, so peak memory is set by the piece size and the fitted state, not by the number of rows:

1. parse: each piece is read, checked and typed once and kept in a scratch file (Arrow IPC, read back
   memory-mapped: far cheaper than parsing the text again), with its counts of rows, lines and bad lines.
   Then the bad-row report is settled and every piece's first row position is known.
2. fit: each op that fits something (categorify's vocabularies with their counts, normalize's moments,
   target_encode's sums, count_encode's counts, negative_sample's items) gets a pass: every piece runs the
   ops before it and summarises its train rows; the summaries are merged as they arrive, so what is held
   is the fitted state alone. (A position split's pieces past the train rows are skipped.)
3. transform: every piece runs all the ops and is appended to the split files: row groups added to one
   parquet file per split (pandas, written to a temporary name and renamed at the end) or one part file
   per piece (Modin, each worker writes its own).

The output is the in-memory engines' table, row for row. Ops that need a user's rows together
(`sequence_history`) do not stream: such a pipeline runs in memory, and says so in the log.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from bluewhale.dataset.badrows import EXAMPLES
from bluewhale.engine import EngineResult, Pipeline, add_hidden, cardinalities, planted_keys, position_bounds
from bluewhale.recdp.ops import Op, Split

log = logging.getLogger(__name__)
# Peak memory of processing a piece, per byte of its text (Criteo DLRM pipeline on the pandas engine:
# the Arrow strings, the pandas frame, the ops' copies and the parquet writer's buffers), and what a
# process holds besides (allocator pools, writers); measured on 300k-row Criteo files: a peak of about
# 17 MB + 6.6 x the piece's text.
BYTES_PER_TEXT_BYTE = 7
FIXED_BYTES = 32 << 20
MIN_PIECE_BYTES = 1 << 20
MERGE_EVERY = 4  # summaries held before they are merged into one


def streams(engine, dataset, pipeline: Pipeline, whole_table_ops: set[str]) -> bool:
    """Whether `dataset` is processed in pieces by `pipeline` on `engine` (else it runs in memory)."""
    if not hasattr(dataset, "pieces") or (engine.memory_gb is None and engine.chunk_mb is None):
        return False
    whole = [op.op for op in pipeline.ops if op.op in whole_table_ops]
    if whole:
        log.warning(
            "%s needs each user's rows together: this pipeline runs in memory, not in pieces", whole[0]
        )
        return False
    return True


def piece_bytes(memory_gb: float | None, chunk_mb: float | None, processes: int = 1) -> int:
    """Text bytes per piece: `chunk_mb` when given, else what a process's share of `memory_gb` allows."""
    if chunk_mb is not None:
        if not chunk_mb > 0:
            raise ValueError(f"engine.chunk_mb: expected a number > 0, got {chunk_mb!r}")
        return max(int(chunk_mb * 2**20), 1)
    if not (isinstance(memory_gb, int | float) and memory_gb > 0):
        raise ValueError(f"engine.memory_gb: expected a number of GiB > 0, got {memory_gb!r}")
    share = memory_gb * 2**30 / processes - FIXED_BYTES
    return max(int(share / BYTES_PER_TEXT_BYTE), MIN_PIECE_BYTES)


# Steps on one piece (module functions, so Modin's workers run them too).
def _steps():
    """The pandas engine's per-partition steps (stateless), in whatever process runs a piece."""
    from bluewhale.engine.pandas import PandasEngine

    return PandasEngine()


def parse_piece(dataset, piece, path: str | None):
    """Read a piece; keep it at `path` (Arrow IPC), or return it when `path` is None.

    Returns ((rows kept, lines, bad lines, the first few (line, reason)), the table or None)."""
    table, problems, lines = dataset.read_piece(piece)
    summary = (table.num_rows, lines, len(problems), sorted(problems)[:EXAMPLES])
    if path is None:
        return summary, table
    with ipc.new_file(path + ".tmp", table.schema) as writer:
        writer.write_table(table)
    Path(path + ".tmp").rename(path)
    return summary, None


def _load(source) -> pa.Table:
    if isinstance(source, pa.Table):
        return source
    with pa.memory_map(source) as f:
        return ipc.open_file(f).read_all()


def _prepared(steps, source, where: tuple, ops: list[Op], states: tuple):
    """A piece as a frame with the hidden columns, after `ops` (fitted with `states`) ran on it."""
    split, first_row, total_rows, keys = where
    frame = steps.to_frame(add_hidden(_load(source), split, first_row, total_rows, keys))
    for op, state in zip(ops, states, strict=True):
        frame = getattr(steps, f"_apply_{op.op}")(frame, op, state)
    return frame


def summarise_piece(source, where: tuple, op: Op, ops: list[Op], *states):
    """The summary of op `op` on a piece's train rows, after the ops before it."""
    steps = _steps()
    return getattr(steps, f"_partial_{op.op}")(_prepared(steps, source, where, ops, states), op)


def transform_piece(source, where: tuple, ops: list[Op], paths: dict | None, *states):
    """A piece after every op, as Arrow; written to `paths` (split -> part file) when given."""
    steps = _steps()
    table = steps._arrow(_prepared(steps, source, where, ops, states))
    if paths is None:
        return table
    steps._write(table, table.schema, paths)
    return None


def run(engine, dataset, pipeline: Pipeline, out: Path) -> EngineResult:
    """Process `dataset` with `pipeline` in pieces on `engine` (pandas or Modin); see the module doc."""
    out = Path(out)
    scratch = out / "_pieces"
    scratch.mkdir(parents=True)
    try:
        return _run(engine, dataset, pipeline, out, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(engine, dataset, pipeline: Pipeline, out: Path, scratch: Path) -> EngineResult:
    pieces = dataset.pieces(engine.piece_bytes(), engine.min_pieces())
    keep = len(pieces) == 1 and not engine.parallel  # one piece in this process: no scratch file
    paths = [None if keep else str(scratch / f"piece-{i:05d}.arrow") for i in range(len(pieces))]
    parsed = engine.stream_map(parse_piece, [(dataset, p, s) for p, s in zip(pieces, paths, strict=True)])
    sources, firsts, count, rows, problems = [], [], 0, 0, []
    line_start: dict[int, int] = {}
    for piece, path, ((kept, lines, bad, first), table) in zip(pieces, paths, parsed, strict=True):
        file = piece[0]
        start = line_start.get(file, 0)
        problems += [(file, start + line, reason) for line, reason in first]
        line_start[file] = start + lines
        sources.append(table if path is None else path)
        firsts.append(rows)
        rows, count = rows + kept, count + bad
    report = dataset.report_pieces(count, sorted(problems)[:EXAMPLES])
    keys = planted_keys(dataset)
    where = [(pipeline.split, first, rows, keys) for first in firsts]
    sides = dataset.side_tables() if hasattr(dataset, "side_tables") else {}
    train = _train_pieces(pipeline.split, firsts, rows)
    log.info("%d rows in %d pieces (%d bad rows)", rows, len(pieces), report.count)

    done: list[Op] = []
    states: list = []
    sizes: dict[str, int] = {}
    for op in pipeline.ops:
        if hasattr(engine, f"_partial_{op.op}"):
            shared = [engine._share(s) for s in states]
            summaries = engine.stream_map(
                summarise_piece,
                [(sources[i], where[i], op, list(done), *shared) for i in train],
                merge=lambda parts, op=op: getattr(engine, f"_merge_{op.op}")(parts, op),
            )
            state = getattr(engine, f"_fit_{op.op}")(summaries, op, sizes)
        elif op.op == "join":
            from bluewhale.engine.pandas import _side_frame

            state = _side_frame(sides, op)
        else:
            state = None
        done.append(op)
        states.append(state)
    engine.write_stream(sources, where, done, states, pipeline.split.names, out)
    return EngineResult(
        input_rows=rows,
        cardinalities=cardinalities(pipeline.ops, sizes),
        bad_rows={"count": report.count, "examples": report.examples},
    )


def _train_pieces(split: Split, firsts: list[int], rows: int) -> list[int]:
    """The pieces that may hold train rows (all of them, but for a position split's later pieces)."""
    if split.by != "position":
        return list(range(len(firsts)))
    valid_start, _ = position_bounds(split, rows)
    return [i for i, first in enumerate(firsts) if first < valid_start] or [0]


class SplitWriters:
    """One parquet file per split, written row group by row group under a temporary name, renamed when
    every piece is in (so a failed run leaves no split file that looks whole)."""

    def __init__(self, out: Path, splits: tuple[str, ...]) -> None:
        self.paths = {s: out / f"{s}.parquet" for s in splits}
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.schema: pa.Schema | None = None

    def append(self, table: pa.Table, steps) -> None:
        if self.schema is None:
            self.schema = table.schema
            self.writers = {
                s: pq.ParquetWriter(str(p) + ".tmp", steps.output_schema(table.schema))
                for s, p in self.paths.items()
            }
        else:
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise RuntimeError(
                    f"a later piece's columns {table.schema} do not match the first piece's {self.schema}: "
                    "process this input in memory (a larger engine.memory_gb)"
                ) from err
        for split, part in steps.split_tables(table, tuple(self.paths)).items():
            if part.num_rows:
                self.writers[split].write_table(part)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        for path in self.paths.values():
            Path(str(path) + ".tmp").rename(path)
