"""The Modin engine: the pandas engine's ops on a Modin frame, partitioned over dask (default) or ray workers.

Column ops run on Modin (distributed over row partitions); the table ops (join, sequence history,
negative sampling) and the small fitted tables go through pandas. Dask starts worker processes, so a
script that uses this engine needs an `if __name__ == "__main__":` guard (the `bluewhale` command has one).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa

from bluewhale.engine.pandas import _NULLABLE, PandasEngine

log = logging.getLogger(__name__)
BACKENDS = ("dask", "ray")
_RAY_DIR_CHARS = 48  # ray adds about 60 characters of socket path; unix sockets allow 107


class ModinEngine(PandasEngine):
    """Modin on dask by default (`engine.backend=ray` selectable); `workers` defaults to the CPU count."""

    name = "modin"

    def __init__(
        self, backend: str = "dask", workers: int | None = None, temp_dir: str | None = None
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"engine.backend: expected one of {BACKENDS}, got {backend!r}")
        self.backend, self.workers = backend, workers or os.cpu_count()
        self.temp_dir = temp_dir
        self._started = False

    def start(self) -> None:
        """Start (or join) the dask cluster or ray runtime and point Modin at it."""
        if self._started:
            return
        import modin.config as modin_config

        warnings.filterwarnings("ignore", module="modin")  # "defaulting to pandas" notes, one per call
        if self.backend == "dask":
            from distributed import Client, default_client

            try:
                default_client()
            except ValueError:  # no cluster yet: a local one, with worker processes (GIL-free)
                Client(n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None)
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
        self._started = True

    def to_frame(self, table: pa.Table):
        self.start()
        import modin.pandas as mpd

        return mpd.DataFrame(table.to_pandas(types_mapper=_NULLABLE.get))

    def to_arrow(self, frame) -> pa.Table:
        return pa.Table.from_pandas(self.to_pandas(frame), preserve_index=False)

    def to_pandas(self, frame) -> pd.DataFrame:
        if isinstance(frame, pd.DataFrame | pd.Series):
            return frame
        from modin.pandas.io import to_pandas

        return to_pandas(frame)

    def from_pandas(self, frame: pd.DataFrame):
        import modin.pandas as mpd

        return mpd.DataFrame(frame)
