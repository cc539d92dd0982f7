"""DLRM (Naumov et al., 2019): bottom MLP on dense features, one embedding per categorical feature,
pairwise dot-product interactions, top MLP to a click logit."""

from __future__ import annotations

import torch
from torch import nn


def mlp(sizes: list[int], last_activation: bool) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (and after the last, if asked)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    """Scores a batch of (dense [B, n_dense] float, sparse [B, n_sparse] int ids) as click logits [B].

    All categorical tables live in one `nn.Embedding` (rows offset per feature), so a batch needs a
    single lookup; its gradients are sparse, so an optimizer step touches only the rows the batch used.
    """

    def __init__(
        self,
        num_dense: int,
        cardinalities: list[int],
        embedding_dim: int = 16,
        bottom_mlp: list[int] = (64, 32),
        top_mlp: list[int] = (128, 64),
        sparse_gradients: bool = True,
    ) -> None:
        super().__init__()
        self.bottom = mlp([num_dense, *bottom_mlp, embedding_dim], last_activation=True)
        self.embedding = nn.Embedding(sum(cardinalities), embedding_dim, sparse=sparse_gradients)
        nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
        offsets = torch.tensor([0, *cardinalities[:-1]]).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=True)
        n_vectors = len(cardinalities) + 1
        rows, cols = torch.tril_indices(n_vectors, n_vectors, offset=-1)
        self.register_buffer("pair_rows", rows, persistent=False)
        self.register_buffer("pair_cols", cols, persistent=False)
        self.top = mlp([embedding_dim + len(rows), *top_mlp, 1], last_activation=False)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        x = self.bottom(dense)  # [B, D]
        vectors = torch.cat([x.unsqueeze(1), self.embedding(sparse + self.offsets)], dim=1)  # [B, F+1, D]
        dots = torch.bmm(vectors, vectors.transpose(1, 2))[:, self.pair_rows, self.pair_cols]  # [B, pairs]
        return self.top(torch.cat([x, dots], dim=1)).squeeze(1)
