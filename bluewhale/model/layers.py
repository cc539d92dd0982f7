"""Layers the models share: MLPs, and one embedding table for many id columns."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(sizes: Sequence[int], last_activation: bool) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (and after the last, if asked)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class TableCollection(nn.Module):
    """The tables of several id columns as one `nn.Embedding` (rows offset per column), so a batch
    needs a single lookup; with `sparse`, its gradients are sparse, so an optimizer step touches only the
    rows the batch used. Looks up ids [..., n_columns] as vectors [..., n_columns, dim]."""

    def __init__(self, cardinalities: Sequence[int], dim: int, sparse: bool = True, init: float = 0.05):
        super().__init__()
        self.embedding = nn.Embedding(max(sum(cardinalities), 1), dim, sparse=sparse)
        nn.init.uniform_(self.embedding.weight, -init, init)
        offsets = torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids + self.offsets)


def logits_out(x: torch.Tensor, tasks: int) -> torch.Tensor:
    """A head's output [B, T] as the trainer wants it: [B] for one task, [B, T] for several."""
    return x.squeeze(1) if tasks == 1 else x
