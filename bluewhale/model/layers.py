"""Layers the models share: MLPs, and one embedding table for many id columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn


def mlp(sizes: Sequence[int], last_activation: bool) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (and after the last, if asked).

    The ReLUs work in place on their Linear's fresh output (nothing else holds it): one allocation less a
    layer, 1.05x DLRM's training step at Kaggle sizes (recipes/dlrm_criteo/README.md)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class RowUpdate(Protocol):
    """What a fused table calls in backward: apply the optimiser to the rows `ids` [n] with `grad` [n, dim]."""

    def update_rows(self, p: torch.Tensor, ids: torch.Tensor, grad: torch.Tensor) -> None: ...


class _LookupWithUpdate(torch.autograd.Function):
    """Rows of `weight` for `ids`; in backward, the optimiser updates those rows in place and no weight
    gradient (dense or sparse) is made: the fused-optimiser trick of FBGEMM's TBE kernels."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, ids: torch.Tensor, optimizer: RowUpdate) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.weight, ctx.optimizer = weight, optimizer
        return nn.functional.embedding(ids, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, None]:
        (ids,) = ctx.saved_tensors
        ctx.optimizer.update_rows(ctx.weight, ids.reshape(-1), grad.reshape(-1, grad.shape[-1]))
        return None, None, None


class TableCollection(nn.Module):
    """The tables of several id columns as one `nn.Embedding` (rows offset per column), so a batch
    needs a single lookup; with `sparse`, its gradients are sparse, so an optimizer step touches only the
    rows the batch used. Looks up ids [..., n_columns] as vectors [..., n_columns, dim].

    After `fuse_update(optimizer)`, a training lookup applies the optimiser to its rows in backward
    (see `_LookupWithUpdate`); evaluation and `torch.no_grad()` lookups are plain ones."""

    def __init__(self, cardinalities: Sequence[int], dim: int, sparse: bool = True, init: float = 0.05):
        super().__init__()
        self.embedding = nn.Embedding(max(sum(cardinalities), 1), dim, sparse=sparse)
        nn.init.uniform_(self.embedding.weight, -init, init)
        offsets = torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=True)
        self.fused: RowUpdate | None = None

    def fuse_update(self, optimizer: RowUpdate | None) -> None:
        """Update this table's rows in backward with `optimizer` (None: back to gradients and `step()`)."""
        if optimizer is not None and type(self.embedding) is not nn.Embedding:
            raise ValueError(
                f"a fused update needs a plain nn.Embedding, not {type(self.embedding).__name__}"
            )
        self.fused = optimizer

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids + self.offsets
        weight = self.embedding.weight if self.fused is not None else None
        if weight is not None and self.training and torch.is_grad_enabled() and weight.requires_grad:
            return _LookupWithUpdate.apply(weight, ids, self.fused)
        return self.embedding(ids)

    def __getstate__(self) -> dict:
        state = super().__getstate__().copy()
        state["fused"] = None  # a pickled model (MLflow) carries its weights, not the optimiser
        return state


def logits_out(x: torch.Tensor, tasks: int) -> torch.Tensor:
    """A head's output [B, T] as the trainer wants it: [B] for one task, [B, T] for several."""
    return x.squeeze(1) if tasks == 1 else x
