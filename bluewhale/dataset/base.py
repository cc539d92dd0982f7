"""What every data set offers the pipeline by default (see the package docstring for the whole contract)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from bluewhale.dataset.groups import column_groups


class Dataset:
    """Base of the readers: column groups from class attributes, no side tables, no planted truth."""

    # Raw columns the engines carry through processing as hidden columns `__key_<c>` (their values as
    # read), so later stages can look up each processed row's planted truth; none for real data.
    planted_keys: tuple[str, ...] = ()
    # The RecDP pipelines (`recdp=<name>`) made for this format; a pipeline made for another format is
    # refused before any work (see `check_pipeline`). Empty: no claim, any pipeline is tried.
    pipelines: tuple[str, ...] = ()

    def groups(self) -> dict[str, list[str]]:
        """The column groups a pipeline may name (see bluewhale/dataset/groups.py)."""
        return column_groups(self)

    def side_tables(self) -> dict[str, pa.Table]:
        """Tables a pipeline can join (`join` op), by name."""
        return {}

    def planted_probability(self) -> np.ndarray | None:
        """The true click probability of each row, where the data was generated; real data has none."""
        return None
