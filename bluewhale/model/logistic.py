"""Logistic regression on categorical ids (and dense floats): the baseline every recipe must beat.

One weight per id value (a 1-dimensional sparse table per column) plus a linear term on the dense
features and a bias; trained like any model here (`bluewhale experiment=<recipe> model=logistic`).
"""

from __future__ import annotations

import torch
from torch import nn

from bluewhale.model.inputs import Inputs, tasks
from bluewhale.model.layers import TableCollection, logits_out


class Logistic(nn.Module):
    """Scores `ids` [B, n_ids] (and `dense` [B, n_dense] where given) as logits [B] ([B, T])."""

    def __init__(self, inputs: Inputs, sparse_gradients: bool = True) -> None:
        super().__init__()
        self.tasks = tasks(inputs)
        self.weights = TableCollection(
            inputs["ids"].cardinalities, self.tasks, sparse=sparse_gradients, init=0.0
        )
        num_dense = len(inputs["dense"]) if "dense" in inputs else 0
        self.linear = nn.Linear(num_dense, self.tasks) if num_dense else None
        self.bias = nn.Parameter(torch.zeros(self.tasks))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.weights(batch["ids"]).sum(1) + self.bias  # [B, T]
        if self.linear is not None:
            logits = logits + self.linear(batch["dense"])
        return logits_out(logits, self.tasks)
