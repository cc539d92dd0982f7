"""Which optimiser updates which parameters.

A model may choose its own (`model.optimizers(lr)`, e.g. Wide & Deep's FTRL for the wide part); else
parameters whose gradients are sparse (embeddings built with sparse=True) get SparseAdam, which touches
only the rows a batch used, and the rest get Adam.
"""

from __future__ import annotations

import torch
from torch import nn


def optimizers(model: nn.Module, lr: float) -> list[torch.optim.Optimizer]:
    if hasattr(model, "optimizers"):
        return model.optimizers(lr)
    sparse = [p for m in model.modules() if getattr(m, "sparse", False) for p in m.parameters(recurse=False)]
    sparse_ids = {id(p) for p in sparse}
    dense = [p for p in model.parameters() if id(p) not in sparse_ids]
    chosen: list[torch.optim.Optimizer] = [torch.optim.Adam(dense, lr=lr)]
    if sparse:
        chosen.append(torch.optim.SparseAdam(sparse, lr=lr))
    return chosen
