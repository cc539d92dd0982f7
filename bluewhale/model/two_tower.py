"""Two-tower retrieval model: a user tower (the user's id and the mean of their history's items) and an
item tower (the item's id columns), each an MLP to an L2-normalised vector; the score is their dot product
over a temperature. Trained on the positive rows with in-batch negatives (every other positive item of the
batch; the same item elsewhere in the batch is masked), optionally plus sampled-softmax negatives drawn
uniformly from the item vocabulary; logits are corrected by the log of each negative's sampling
probability (logQ, Yi et al. 2019), else in-batch negatives would teach the model to shun popular items. Item vectors for every item id feed a vector index (bluewhale.recall).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from bluewhale.model.inputs import Input, Inputs
from bluewhale.model.layers import TableCollection, mlp

NEGATIVES = ("in_batch", "sampled", "both")


def check_two_tower_inputs(inputs: Inputs) -> None:
    """`user` ids and `item` ids (first column: the item itself), optional `history` lists paired with the
    item columns (history column i is looked up in item column i's table)."""
    for key, what in (("user", "the user's id columns (e.g. [user_id])"), ("item", "the item's id columns")):
        if key not in inputs or inputs[key].kind != "int" or not len(inputs[key]):
            raise ValueError(f"model.inputs.{key}: expected {what}, which hold ids")
    if "history" in inputs and len(inputs["history"]):
        history, item = inputs["history"], inputs["item"]
        if history.kind != "list" or len(history) != len(item):
            raise ValueError(
                f"model.inputs.history: expected one list column per item column {list(item.columns)} "
                f"(paired in order, sharing the item column's vocabulary), got {list(history.columns)}"
            )
        if tuple(history.cardinalities) != tuple(item.cardinalities):
            raise ValueError(
                "model.inputs.history: history and item columns must share vocabularies (recdp categorify "
                f"shared); sizes {list(history.cardinalities)} vs {list(item.cardinalities)}"
            )


class TwoTower(nn.Module):
    """Scores (user, item) rows as logits [B] = <user vector, item vector> / temperature."""

    def __init__(
        self,
        inputs: Inputs,
        embedding_dim: int = 32,
        tower_mlp: Sequence[int] = (64,),
        output_dim: int = 32,
        temperature: float = 0.05,
        negatives: str = "in_batch",
        num_sampled: int = 256,
        logq_correction: bool = True,
        sparse_gradients: bool = True,
    ) -> None:
        super().__init__()
        check_two_tower_inputs(inputs)
        if negatives not in NEGATIVES:
            raise ValueError(f"model.negatives: expected one of {NEGATIVES}, got {negatives!r}")
        if temperature <= 0:
            raise ValueError(f"model.temperature: expected a value > 0, got {temperature}")
        user, item = inputs["user"], inputs["item"]
        self.history = "history" in inputs and len(inputs["history"]) > 0
        self.temperature, self.negatives, self.num_sampled = temperature, negatives, num_sampled
        self.logq_correction = logq_correction
        self.users = TableCollection(user.cardinalities, embedding_dim, sparse=sparse_gradients)
        self.items = TableCollection(item.cardinalities, embedding_dim, sparse=sparse_gradients)
        user_width = (len(user) + len(item) * self.history) * embedding_dim
        self.user_tower = mlp([user_width, *tower_mlp, output_dim], last_activation=False)
        self.item_tower = mlp([len(item) * embedding_dim, *tower_mlp, output_dim], last_activation=False)
        self.num_items = item.cardinalities[0]
        # each item id's other columns (e.g. its genre) as last seen in training, for `item_embeddings`
        rows = torch.zeros(self.num_items, len(item), dtype=torch.long)
        rows[:, 0] = torch.arange(self.num_items)
        self.register_buffer("item_rows", rows, persistent=True)
        # positives seen per item: in-batch negatives are drawn by popularity, which logQ correction undoes
        self.register_buffer("item_counts", torch.ones(self.num_items), persistent=True)
        self.item_input: Input = item

    def user_vectors(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The user tower's unit vectors [B, output_dim] of a batch's `user` (and `history`) ids."""
        parts = [self.users(batch["user"]).flatten(1)]
        if self.history:
            ids = batch["history"]  # [B, n, L]
            steps = torch.arange(ids.shape[2]).view(1, 1, -1)
            mask = (steps < batch["history_lengths"].unsqueeze(2)).unsqueeze(3)  # [B, n, L, 1]
            vectors = self.items(ids.transpose(1, 2)).transpose(1, 2)  # [B, n, L, D]
            count = mask.sum(2).clamp(min=1)
            parts.append(((vectors * mask).sum(2) / count).flatten(1))
        return nn.functional.normalize(self.user_tower(torch.cat(parts, 1)), dim=1)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """The item tower's unit vectors [B, output_dim] of item id rows [B, n_item_columns]."""
        return nn.functional.normalize(self.item_tower(self.items(items).flatten(1)), dim=1)

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        """Every item id's vector [num_items, output_dim] (row = item id; 0 is the rare/unseen id)."""
        self.eval()
        return torch.cat([self.item_vectors(rows) for rows in self.item_rows.split(65536)])

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, items = self.user_vectors(batch), self.item_vectors(batch["item"])
        return (users * items).sum(1) / self.temperature

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Softmax cross entropy of each positive row's item against the batch's other positive items
        (and/or `num_sampled` uniformly drawn items)."""
        positive = batch["label"] > 0.5
        with torch.no_grad():
            self.item_rows[batch["item"][:, 0]] = batch["item"]
            self.item_counts.index_add_(0, batch["item"][positive][:, 0], torch.ones(int(positive.sum())))
        if positive.sum() < 1:
            return self(batch).sum() * 0.0
        pos = {k: v[positive] for k, v in batch.items()}
        users, items = self.user_vectors(pos), self.item_vectors(pos["item"])  # [P, D]
        logits, ids = [], pos["item"][:, 0]
        if self.negatives in ("in_batch", "both"):
            in_batch = users @ items.T / self.temperature  # [P, P]; the diagonal is each row's own item
            if self.logq_correction:  # minus the log of how often item j is drawn as a negative
                share = self.item_counts[ids] / self.item_counts.sum()
                in_batch = in_batch - torch.log(share * len(ids)).unsqueeze(0)
            same = (ids.unsqueeze(0) == ids.unsqueeze(1)) & ~torch.eye(len(ids), dtype=torch.bool)
            logits.append(in_batch.masked_fill(same, -1e9))
        else:
            logits.append(((users * items).sum(1) / self.temperature).unsqueeze(1))
        if self.negatives in ("sampled", "both"):
            drawn = torch.randint(1, max(self.num_items, 2), (self.num_sampled,))
            negatives = self.item_vectors(self.item_rows[drawn])
            sampled = users @ negatives.T / self.temperature  # [P, S]
            if self.logq_correction:
                sampled = sampled - math.log(self.num_sampled / max(self.num_items - 1, 1))
            logits.append(sampled.masked_fill(drawn.unsqueeze(0) == ids.unsqueeze(1), -1e9))
        return nn.functional.cross_entropy(
            torch.cat(logits, 1), torch.arange(len(ids)) * (self.negatives != "sampled")
        )
