"""Smaller embedding tables that still look up ids [...] as vectors [..., dim]: rows stored as int8 (with a
per-row scale and offset) or fp16, dequantised only for the rows a batch uses; and quotient-remainder
tables (Shi et al., KDD 2020) that replace n rows by ceil(n / c) + c rows.

They replace the `nn.Embedding` inside a model's tables (`TableCollection.embedding`) in place; an
`nn.EmbeddingBag` (Wide & Deep's wide part: one weight a row) is left alone: with one or a few values a
row, a per-row scale costs more than it saves.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MIN_DIM = 4  # narrower rows (logistic weights, linear parts) are not worth a per-row scale and offset


class QuantizedEmbedding(nn.Module):
    """Rows as int8 codes with a per-row fp16 scale and offset (asymmetric, 255 levels), or as fp16."""

    def __init__(self, weight: torch.Tensor, bits: int) -> None:
        super().__init__()
        if bits not in (8, 16):
            raise ValueError(f"embedding rows: expected 8 or 16 bits, got {bits}")
        self.bits, self.num_embeddings, self.embedding_dim = bits, weight.shape[0], weight.shape[1]
        weight = weight.detach().float()
        if bits == 16:
            self.register_buffer("rows", weight.half())
            return
        low, high = weight.amin(1), weight.amax(1)
        scale = ((high - low) / 255).clamp(min=1e-8)
        codes = torch.round((weight - low[:, None]) / scale[:, None]) - 128
        self.register_buffer("rows", codes.clamp(-128, 127).to(torch.int8))
        self.register_buffer("scale", scale.half())
        self.register_buffer("offset", low.half())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.rows[ids].float()
        if self.bits == 16:
            return rows
        return (rows + 128) * self.scale[ids].float().unsqueeze(-1) + self.offset[ids].float().unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, bits={self.bits}"


class QREmbedding(nn.Module):
    """Quotient-remainder embedding: id -> Q[id // c] * R[id % c]; every id keeps a distinct pair of rows.

    Built from a trained table: each quotient row starts as the mean of the c rows it replaces and the
    remainder rows at one, so the first lookups give the bucket's mean; distillation then trains both.
    """

    def __init__(self, weight: torch.Tensor, collisions: int, sparse: bool = True) -> None:
        super().__init__()
        n, dim = weight.shape
        self.collisions, self.num_embeddings, self.embedding_dim = collisions, n, dim
        buckets = math.ceil(n / collisions)
        padded = torch.zeros(buckets * collisions, dim)
        padded[:n] = weight.detach().float()
        counts = torch.zeros(buckets * collisions)
        counts[:n] = 1
        mean = padded.view(buckets, collisions, dim).sum(1) / counts.view(buckets, collisions).sum(1, True)
        self.quotient = nn.Embedding(buckets, dim, sparse=sparse, _weight=mean)
        self.remainder = nn.Embedding(collisions, dim, sparse=sparse, _weight=torch.ones(collisions, dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.quotient(ids // self.collisions) * self.remainder(ids % self.collisions)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, collisions={self.collisions}"


def tables(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """Every lookup table worth compressing as (parent, attribute, table): `nn.Embedding`s (also inside
    QR tables) at least MIN_DIM wide. `nn.EmbeddingBag`s are never included."""
    found = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Embedding) and child.embedding_dim >= MIN_DIM:
                found.append((parent, name, child))
    return found


def quantize_tables(model: nn.Module, bits: int, key: str) -> nn.Module:
    """`model` with every table's rows stored in `bits` (8 or 16); an error naming `key` if it has none."""
    found = tables(model)
    if not found:
        raise ValueError(
            f"{key}: {type(model).__name__} has no embedding table at least {MIN_DIM} wide to quantise"
        )
    for parent, name, table in found:
        setattr(parent, name, QuantizedEmbedding(table.weight, bits))
    return model


def qr_tables(model: nn.Module, collisions: int, min_rows: int, key: str) -> nn.Module:
    """`model` with every table of at least `min_rows` rows replaced by a quotient-remainder table."""
    if not (isinstance(collisions, int) and collisions >= 2):
        raise ValueError(f"{key}.collisions: expected an integer >= 2, got {collisions!r}")
    found = [t for t in tables(model) if t[2].num_embeddings >= min_rows]
    if not found:
        raise ValueError(
            f"{key}.min_rows: {type(model).__name__} has no embedding table of {min_rows} rows or more"
        )
    for parent, name, table in found:
        setattr(parent, name, QREmbedding(table.weight, collisions, sparse=table.sparse))
    return model
