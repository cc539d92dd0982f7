"""A planted Criteo 1TB: the planted Criteo click model written as a few small day files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from bluewhale.atomic import publish_atomically
from bluewhale.dataset.criteo_1tb import CriteoDays
from bluewhale.dataset.planted import positive_rows
from bluewhale.dataset.synthetic_criteo import GENERATOR_VERSION, write_planted_criteo


class SyntheticCriteo1TB(CriteoDays):
    """Writes `<dir>/rows<N>_seed<S>_days<D>_v<V>/day_<24-D> … day_23` once: the last D days of the real
    set, so day_23 is the test day here too and a pipeline's split works on both unchanged."""

    planted_keys: tuple[str, ...] = ()  # a row's truth is found by its input row (days in order) alone

    def __init__(self, rows: int, seed: int, dir: str, days: int = 3, bad_rows: str = "error") -> None:
        if rows < 1000:
            raise ValueError(f"dataset.rows must be at least 1000, got {rows}")
        if not 2 <= days <= 24:
            raise ValueError(f"dataset.days must be 2 to 24 day files, got {days}")
        self.folder = Path(dir) / f"rows{rows}_seed{seed}_days{days}_v{GENERATOR_VERSION}"
        super().__init__(path=str(self.folder), bad_rows=bad_rows)
        self.rows, self.seed, self.num_days = rows, seed, days

    def prepare(self) -> None:
        if not (self.folder / "planted_probability.npy").exists():
            with publish_atomically(self.folder) as tmp:
                write_planted_days(tmp, self.rows, self.seed, self.num_days)

    def planted_probability(self) -> np.ndarray:
        """The true click probability of every row, days in order."""
        self.prepare()
        return np.load(self.folder / "planted_probability.npy")

    def planted(self, keys: pa.Table) -> np.ndarray:
        """The true click probability of each row of `keys` (by `__row`; sampled negatives are refused)."""
        truth = self.planted_probability()
        return truth[positive_rows(keys, len(truth), "synthetic_criteo_1tb")].astype(np.float64)


def write_planted_days(folder: Path, rows: int, seed: int, days: int) -> None:
    """Write the planted Criteo rows split into `days` nearly equal day files, in order, ending at day_23."""
    write_planted_criteo(folder, rows, seed)
    lines = (folder / "train.txt").read_text().splitlines(keepends=True)
    bounds = np.linspace(0, len(lines), days + 1).astype(int)
    for k in range(days):
        (folder / f"day_{24 - days + k}").write_text("".join(lines[bounds[k] : bounds[k + 1]]))
    (folder / "train.txt").unlink()
