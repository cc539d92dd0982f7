"""DLRM (Naumov et al., 2019): bottom MLP on dense features, one embedding per categorical feature,
pairwise dot-product interactions, top MLP to a click logit (one per task)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bluewhale.model.inputs import Inputs, tasks
from bluewhale.model.layers import TableCollection, logits_out, mlp


class DLRM(nn.Module):
    """Scores a batch of `dense` floats [B, n_dense] and `sparse` ids [B, n_sparse] as logits [B] ([B, T]).

    With no dense features the interactions are among the embeddings alone.
    """

    def __init__(
        self,
        inputs: Inputs,
        embedding_dim: int = 16,
        bottom_mlp: Sequence[int] = (64, 32),
        top_mlp: Sequence[int] = (128, 64),
        sparse_gradients: bool = True,
        embedding_optimizer: str = "sparse_adam",
        embedding_lr_scale: float = 1.0,
        fused_embedding_update: bool = False,
    ) -> None:
        super().__init__()
        # read by bluewhale/train/optim.py, which builds the optimisers
        self.embedding_optimizer, self.embedding_lr_scale = embedding_optimizer, embedding_lr_scale
        self.fused_embedding_update = fused_embedding_update
        self.dense_dtype: torch.dtype | None = None  # set_precision: bf16 MLPs where the CPU has it
        num_dense = len(inputs["dense"]) if "dense" in inputs else 0
        self.has_dense = num_dense > 0
        self.tasks = tasks(inputs)
        self.bottom = (
            mlp([num_dense, *bottom_mlp, embedding_dim], last_activation=True) if num_dense else None
        )
        self.tables = TableCollection(inputs["sparse"].cardinalities, embedding_dim, sparse=sparse_gradients)
        n_vectors = len(inputs["sparse"]) + self.has_dense
        rows, cols = torch.tril_indices(n_vectors, n_vectors, offset=-1)
        # the pairs' places in a flattened [n, n] product: one index_select picks them (its backward an
        # index_add), 1.14x the step of 2-d advanced indexing at Kaggle sizes (recipes/dlrm_criteo/README.md)
        self.register_buffer("pairs", rows * n_vectors + cols, persistent=False)
        width = embedding_dim * self.has_dense + len(rows)
        self.top = mlp([width, *top_mlp, self.tasks], last_activation=False)

    def set_precision(self, dtype: torch.dtype | None) -> None:
        """Compute the MLPs and interactions in `dtype` (bf16 where the CPU has it; see train/cpu.py);
        None: in the weights' fp32. Weights, embeddings and logits stay fp32."""
        self.dense_dtype = dtype

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        vectors = self.tables(batch["sparse"])  # [B, F, D]
        dtype = getattr(self, "dense_dtype", None)
        with torch.autocast(vectors.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            if self.bottom is not None:
                x = self.bottom(batch["dense"])  # [B, D]
                vectors = torch.cat([x.unsqueeze(1), vectors.to(x.dtype)], dim=1)  # [B, F+1, D]
            dots = (
                torch.bmm(vectors, vectors.transpose(1, 2)).flatten(1).index_select(1, self.pairs)
            )  # [B, pairs]
            top_in = torch.cat([x, dots.to(x.dtype)], dim=1) if self.bottom is not None else dots
            logits = self.top(top_in)
        return logits_out(logits.float(), self.tasks)
