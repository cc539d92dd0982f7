"""The Modin engine: the pandas engine's steps on row partitions, run by Modin's execution engine
(a dask cluster by default, ray selectable) on worker processes, in parallel.

Modin's own frame methods default to single-process pandas for much of what RecDP does (mapping through
a vocabulary, exploding lists, counting values of many columns), with a round trip per call. So this
engine drives the workers Modin runs on directly, as Modin's partition API does (`unwrap_partitions`):
each op's per-partition step is a task on the partition's worker, only the small summaries (value counts,
sums) come back to be combined, and each partition writes its own part files. `sequence_history` needs
all of a user's rows together: the partitions are gathered for it and split again.
Dask starts worker processes, so a script that uses this engine needs an `if __name__ == "__main__":`
guard (the `bluewhale` command has one).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from bluewhale.dataset.badrows import EXAMPLES, BadRows
from bluewhale.engine import add_hidden, planted_keys, streaming
from bluewhale.engine.pandas import _NULLABLE, PandasEngine
from bluewhale.recdp.ops import Split

log = logging.getLogger(__name__)
BACKENDS = ("dask", "ray")
_RAY_DIR_CHARS = 48  # ray adds about 60 characters of socket path; unix sockets allow 107
_STEPS = PandasEngine()  # what a worker runs: the pandas engine's steps on one partition


def _step(step, *args):
    """Run a step on a worker: a pandas engine method (by name) or a function of this module."""
    return getattr(_STEPS, step)(*args) if isinstance(step, str) else step(*args)


def _read_chunk(dataset, byte_range: tuple[int, int]) -> tuple[pa.Table, list, int]:
    return dataset.read_chunk(byte_range)


def _chunk_summary(chunk: tuple[pa.Table, list, int]) -> tuple[int, int, int, list]:
    """What the driver needs of a chunk: rows kept, lines, bad lines and the first few of them."""
    table, problems, lines = chunk
    return table.num_rows, lines, len(problems), sorted(problems)[:EXAMPLES]


def _chunk_frame(
    chunk: tuple[pa.Table, list, int], split: Split, first_row: int, total_rows: int, keys: tuple[str, ...]
):
    return _STEPS.to_frame(add_hidden(chunk[0], split, first_row, total_rows, keys))


class ModinEngine(PandasEngine):
    """Modin on dask by default (`engine.backend=ray` selectable); `workers` defaults to the CPU count,
    `partitions` (row partitions of the table) to the number of workers. An input that can be read in
    pieces streams through them (`bluewhale.engine.streaming`), `workers` pieces at a time, each piece
    sized for a worker's share of `memory_gb` (at least `partitions` pieces; one part file each)."""

    name = "modin"
    parallel = True

    def __init__(
        self,
        backend: str = "dask",
        workers: int | None = None,
        partitions: int | None = None,
        temp_dir: str | None = None,
        memory_gb: float = 2.0,
        chunk_mb: float | None = None,
    ) -> None:
        super().__init__(memory_gb, chunk_mb)
        if backend not in BACKENDS:
            raise ValueError(f"engine.backend: expected one of {BACKENDS}, got {backend!r}")
        self.backend, self.workers = backend, workers or os.cpu_count()
        self.partitions = partitions or self.workers
        if self.partitions < 1:
            raise ValueError(f"engine.partitions: expected an integer >= 1, got {partitions!r}")
        self.temp_dir = temp_dir
        self._started = False
        self._client = self._remote = None

    def start(self) -> None:
        """Start (or join) the dask cluster or ray runtime and point Modin at it."""
        if self._started:
            return
        import modin.config as modin_config

        warnings.filterwarnings("ignore", module="modin")  # "defaulting to pandas" notes, one per call
        if self.backend == "dask":
            from distributed import Client, default_client

            try:
                self._client = default_client()
            except ValueError:  # no cluster yet: a local one, with worker processes (GIL-free)
                self._client = Client(
                    n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None
                )
            modin_config.Engine.put("Dask")
        else:
            try:
                import ray
            except ImportError as e:
                raise ImportError(
                    "engine.backend=ray needs ray: pip install ray (pinned in requirements.txt)"
                ) from e
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            if not ray.is_initialized():
                temp = Path(
                    self.temp_dir or Path.cwd() / ".ray"
                ).resolve()  # ray's default /tmp/ray is shared
                if len(str(temp)) > _RAY_DIR_CHARS:  # its unix sockets live below it: paths must stay short
                    temp = Path(tempfile.mkdtemp(prefix="bluewhale-ray-"))
                    log.warning(
                        "ray session folder %s (the run folder's path is too long for ray's sockets)", temp
                    )
                temp.mkdir(parents=True, exist_ok=True)
                ray.init(
                    num_cpus=self.workers, _temp_dir=str(temp), include_dashboard=False, log_to_driver=False
                )
            modin_config.Engine.put("Ray")
            self._remote = ray.remote(_step)
        self._started = True

    # Streaming: pieces on the workers, a wave of `workers` at a time; each writes its own part files.
    def piece_bytes(self) -> int:
        return streaming.piece_bytes(self.memory_gb, self.chunk_mb, self.workers)

    def min_pieces(self) -> int:
        return self.partitions

    def stream_map(self, step, arguments: list[tuple], merge=None) -> list:
        self.start()
        results: list = []
        for a in range(0, len(arguments), self.workers):
            results += self._gather([self._submit(step, *args) for args in arguments[a : a + self.workers]])
            if merge is not None and len(results) >= max(streaming.MERGE_EVERY, self.workers):
                results = [merge(results)]
        return [merge(results)] if merge is not None and len(results) > 1 else results

    def write_stream(self, sources: list, where: list, ops: list, states: list, splits, out: Path) -> None:
        for s in splits:
            (out / f"{s}.parquet").mkdir()
        shared = [self._share(s) for s in states]
        paths = [
            {s: str(out / f"{s}.parquet/part-{i:05d}.parquet") for s in splits} for i in range(len(where))
        ]
        self.stream_map(
            streaming.transform_piece,
            [(src, at, ops, p, *shared) for src, at, p in zip(sources, where, paths, strict=True)],
        )

    # Where the pandas engine's steps run: a task per partition on the workers.
    def read(self, dataset, split: Split) -> tuple[list, int, BadRows]:
        """Workers read a data set that can be read in pieces (a Criteo file) in parallel, each its own
        byte range; only counts and a few bad lines come back. Others are read here and sent out."""
        if not hasattr(dataset, "read_chunk"):
            return super().read(dataset, split)
        self.start()
        chunks = [self._submit(_read_chunk, dataset, r) for r in dataset.chunks(self.partitions)]
        summaries = self._gather([self._submit(_chunk_summary, c) for c in chunks])
        lines = rows = count = 0
        first, starts = [], []
        for kept, chunk_lines, bad, problems in summaries:  # number rows and lines across the chunks
            starts.append(rows)
            first += [(line + lines, reason) for line, reason in problems]
            rows, lines, count = rows + kept, lines + chunk_lines, count + bad
        report = dataset.report_chunks(count, first)
        keys = planted_keys(dataset)
        parts = [
            self._submit(_chunk_frame, c, split, s, rows, keys) for c, s in zip(chunks, starts, strict=True)
        ]
        return parts, rows, report

    def partition(self, table: pa.Table) -> list:
        self.start()
        bounds = np.linspace(0, table.num_rows, self.partitions + 1).astype(int)
        return [
            self._submit("to_frame", table.slice(a, b - a))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    def partition_frame(self, frame: pd.DataFrame) -> list:
        bounds = np.linspace(0, len(frame), self.partitions + 1).astype(int)
        return [
            self._put(frame.iloc[a:b].reset_index(drop=True))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    def _submit(self, method: str, *args):
        if self.backend == "dask":
            return self._client.submit(_step, method, *args, pure=False)
        return self._remote.remote(method, *args)

    def _gather(self, results: list) -> list:
        if self.backend == "dask":
            return self._client.gather(results)
        import ray

        return ray.get(results)

    def _share(self, value):
        return self._put(value, broadcast=True)

    def _put(self, value, broadcast: bool = False):
        """`value` in the cluster's memory (on every worker when `broadcast`), for tasks to read."""
        if self.backend == "dask":
            return self._client.scatter(value, broadcast=broadcast)
        import ray

        return ray.put(value)

    def modin_frame(self, table: pa.Table):
        """A Modin DataFrame of `table` (for code that works on Modin frames, e.g. the data connector)."""
        self.start()
        import modin.pandas as mpd

        return mpd.DataFrame(table.to_pandas(types_mapper=_NULLABLE.get))
