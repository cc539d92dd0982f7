"""Which optimiser updates which parameters, and row-wise Adagrad for embedding tables.

A model may choose its own (`model.optimizers(lr)`, e.g. Wide & Deep's FTRL for the wide part). Else the
dense weights get Adam and the embedding tables (modules built with sparse=True) get the model's
`embedding_optimizer`: `sparse_adam` (the default: SparseAdam, touching only the rows a batch used) or
`rowwise_adagrad` (one accumulator per row, as FBGEMM/TorchRec train DLRM). Row-wise Adagrad can be
fused into the backward (`fused_embedding_update`): a `TableCollection` then applies the update to the
rows it looked up as its gradient arrives, and no sparse gradient is ever made (see layers.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

EMBEDDING_OPTIMIZERS = ("sparse_adam", "rowwise_adagrad")


class RowwiseAdagrad(torch.optim.Optimizer):
    """Adagrad with one accumulator per table row: the mean of the row's squared gradient.

    The state is 1/dim of Adagrad's (4 bytes a row), and an update reads and writes only the rows a
    batch used: a sparse gradient's rows in `step()`, or the looked-up rows in `update_rows` (fused).
    A dense gradient updates every row (the same rule, for tables trained without sparse gradients).
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 0.01, eps: float = 1e-8) -> None:
        if lr <= 0:
            raise ValueError(f"train.lr: row-wise Adagrad needs a positive learning rate, got {lr}")
        super().__init__(params, {"lr": lr, "eps": eps})
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError(
                        f"RowwiseAdagrad updates 2-d tables [rows, dim], got shape {tuple(p.shape)}"
                    )

    def _accumulator(self, p: torch.Tensor) -> torch.Tensor:
        state = self.state[p]
        if "sum" not in state:
            state["sum"] = torch.zeros(p.shape[0], dtype=torch.float32, device=p.device)
        return state["sum"]

    def _group(self, p: torch.Tensor) -> dict:
        return next(g for g in self.param_groups if any(q is p for q in g["params"]))

    @torch.no_grad()
    def _apply(self, p: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor, group: dict) -> None:
        """Update the distinct `rows` of `p` with their summed gradients `grad` [len(rows), dim]."""
        acc = self._accumulator(p)
        total = acc.index_select(0, rows).add_(grad.square().mean(1))
        acc.index_copy_(0, rows, total)
        step = grad.mul_((-group["lr"] / total.sqrt_().add_(group["eps"])).unsqueeze(1))
        p.index_put_((rows,), p.index_select(0, rows).add_(step.to(p.dtype)))  # rows are distinct: a put
        # (index_add_ on a many-million-row table measured 3-4x slower than select + put here)

    @torch.no_grad()
    def update_rows(self, p: torch.Tensor, ids: torch.Tensor, grad: torch.Tensor) -> None:
        """The fused update: `ids` [n] (repeats allowed) were looked up and got gradients `grad` [n, dim]."""
        rows, where = torch.unique(ids, return_inverse=True)
        summed = grad.new_zeros(len(rows), grad.shape[1], dtype=torch.float32)
        summed.index_add_(0, where, grad.float())
        self._apply(p, rows, summed, self._group(p))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue  # fused tables (updated in backward) never get one
                grad = p.grad
                if grad.is_sparse:
                    grad = grad.coalesce()
                    self._apply(p, grad.indices()[0], grad.values().float().clone(), group)
                else:
                    rows = torch.arange(p.shape[0], device=p.device)
                    self._apply(p, rows, grad.float().clone(), group)
        return loss


def embedding_tables(model: nn.Module) -> list[nn.Module]:
    """The modules whose weights take sparse gradients (embeddings built with sparse=True)."""
    return [m for m in model.modules() if getattr(m, "sparse", False)]


def optimizers(model: nn.Module, lr: float) -> list[torch.optim.Optimizer]:
    """The optimisers of `model` at learning rate `lr` (the single place that chooses them)."""
    if hasattr(model, "optimizers"):
        return model.optimizers(lr)
    kind = getattr(model, "embedding_optimizer", "sparse_adam")
    if kind not in EMBEDDING_OPTIMIZERS:
        raise ValueError(f"model.embedding_optimizer: expected one of {EMBEDDING_OPTIMIZERS}, got {kind!r}")
    sparse = [p for m in embedding_tables(model) for p in m.parameters(recurse=False)]
    sparse_ids = {id(p) for p in sparse}
    dense = [p for p in model.parameters() if id(p) not in sparse_ids]
    # fused: one kernel for all the dense weights' updates, 1.05x DLRM's training step at Kaggle sizes
    # (recipes/dlrm_criteo/README.md)
    chosen: list[torch.optim.Optimizer] = [torch.optim.Adam(dense, lr=lr, fused=True)]
    if not sparse:
        return chosen
    if kind == "sparse_adam":
        chosen.append(torch.optim.SparseAdam(sparse, lr=lr))
        return chosen
    embedding_lr = lr * getattr(model, "embedding_lr_scale", 1.0)
    rowwise = RowwiseAdagrad(sparse, lr=embedding_lr)
    chosen.append(rowwise)
    several_ranks = torch.distributed.is_available() and torch.distributed.is_initialized()
    several_ranks = several_ranks and torch.distributed.get_world_size() > 1
    if getattr(model, "fused_embedding_update", False) and not several_ranks:  # ranks exchange gradients
        for module in model.modules():
            if hasattr(module, "fuse_update"):
                module.fuse_update(rowwise)
    return chosen
