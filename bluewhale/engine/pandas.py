"""The pandas engine: runs a RecDP op list in memory, vectorised column by column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from bluewhale.recdp.ops import Op


class PandasEngine:
    """Single-process engine for data that fits in memory (the embedded default)."""

    name = "pandas"

    def run(self, table: pa.Table, ops: list[Op], test_rows: int) -> tuple[dict[str, pa.Table], dict]:
        """Fit `ops` on the first rows, apply them to all; return {'train', 'test'} tables and fitted state."""
        frame = table.to_pandas()
        train_rows = len(frame) - test_rows
        fitted: dict = {}
        for op in ops:
            apply = getattr(self, f"_{op.op}")
            for column in op.columns:
                frame[column] = apply(frame[column], train_rows, op, fitted.setdefault(column, {}))
        splits = {"train": frame.iloc[:train_rows], "test": frame.iloc[train_rows:]}
        return {k: pa.Table.from_pandas(v, preserve_index=False) for k, v in splits.items()}, fitted

    @staticmethod
    def _fill_na(col: pd.Series, train_rows: int, op: Op, state: dict) -> pd.Series:
        return col.fillna(op.args["value"])

    @staticmethod
    def _clip(col: pd.Series, train_rows: int, op: Op, state: dict) -> pd.Series:
        return col.clip(lower=op.args.get("lower"), upper=op.args.get("upper"))

    @staticmethod
    def _log1p(col: pd.Series, train_rows: int, op: Op, state: dict) -> pd.Series:
        return np.log1p(col.astype(np.float32))

    @staticmethod
    def _categorify(col: pd.Series, train_rows: int, op: Op, state: dict) -> pd.Series:
        counts = col.iloc[:train_rows].value_counts()
        counts = counts[counts >= op.args.get("freq_threshold", 1)]
        # Ids by descending frequency, ties by value: every engine assigns the same ids.
        ordered = (
            counts.rename("n").rename_axis("v").reset_index().sort_values(["n", "v"], ascending=[False, True])
        )
        vocabulary = pd.Index(ordered["v"])
        state["cardinality"] = len(vocabulary) + 1  # id 0: rare, unseen or missing values
        return pd.Series(vocabulary.get_indexer(col) + 1, index=col.index, dtype=np.int32)
