"""Batches of tensors from a processed table, held in memory (the single-process loading path)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import torch

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # dense [B, n_dense], sparse [B, n_sparse], label [B]


class TensorBatches:
    """Iterates (dense float32, sparse int64, label float32) batches; reshuffled each pass if asked."""

    def __init__(
        self,
        table: pa.Table,
        label: str,
        dense: list[str],
        sparse: list[str],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        def stacked(columns: list[str], dtype) -> np.ndarray:
            return np.stack([table.column(c).to_numpy().astype(dtype, copy=False) for c in columns], axis=1)

        self.dense = torch.from_numpy(stacked(dense, np.float32))
        self.sparse = torch.from_numpy(stacked(sparse, np.int64))
        self.label = torch.from_numpy(table.column(label).to_numpy().astype(np.float32))
        self.batch_size, self.shuffle = batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.label) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.label)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                rows = slice(start, start + self.batch_size)
            else:
                rows = order[start : start + self.batch_size]
            yield self.dense[rows], self.sparse[rows], self.label[rows]
