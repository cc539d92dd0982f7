"""Logistic regression on categorical ids (and dense floats): the baseline every recipe must beat.

One weight per id value (a 1-dimensional sparse table per column) plus a linear term on the dense
features and a bias; trained like any model here (`bluewhale experiment=<recipe> model=logistic`).
"""

from __future__ import annotations

import torch
from torch import nn

from bluewhale.model.inputs import Inputs, tasks
from bluewhale.model.layers import TableCollection, logits_out
from bluewhale.train.trainer import bce


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
        self.register_buffer("bias_set", torch.tensor(False))

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """BCE; the first batch sets the bias to the logit of each task's positive rate, so a rare task's
        intercept does not start at p = 0.5 and take thousands of steps to come down."""
        if not self.bias_set:
            with torch.no_grad():
                rates = batch["label"].reshape(len(batch["label"]), -1).float().mean(0).clamp(1e-3, 1 - 1e-3)
                self.bias.copy_(torch.logit(rates))
                self.bias_set.fill_(True)
        return bce(self(batch), batch["label"])

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.weights(batch["ids"]).sum(1) + self.bias  # [B, T]
        if self.linear is not None:
            logits = logits + self.linear(batch["dense"])
        return logits_out(logits, self.tasks)
