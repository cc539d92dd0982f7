"""The Twitter RecSys Challenge 2021 model: one network for the four engagement tasks (reply, retweet,
quote, like), a shared bottom with one tower a task (multi-task learning with hard parameter sharing,
Caruana 1997), trained on the sum of the task losses (the trainer's BCE sums over tasks).

Every input but the label is taken by its kind, so a recipe decides the features in config alone:
float groups (log-scaled counts) pass through a batch norm; id groups (tweet type, language, flags,
hour, user ids) are looked up in one sparse embedding table; list groups (hashtags, domains, media)
become one pooled embedding per list, padding masked, with the list's log length beside it (so "has
media" is a feature even when its items are rare).

What makes it train on engagement data, where most users are seen a handful of times and the rare tasks
are 1-3% positive: each tower's output bias starts at the logit of its task's positive rate (from the
first training batch); an optional linear part (one weight per id value and task, added to the towers'
logits, as Wide & Deep's wide part) learns the per-user propensities at its own, faster pace while the
embeddings learn at a slower one (`optimizers`); and `l2` penalises the id vectors a batch uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bluewhale.model.inputs import LABEL, Inputs, tasks
from bluewhale.model.layers import TableCollection, logits_out, mlp
from bluewhale.train.trainer import bce

POOLINGS = ("mean", "sum")


class RecSysMultiTask(nn.Module):
    """Scores a batch as logits [B, T] (T = label columns; [B] for one task).

    Bottom input: the embeddings of every id column [B, n_ids * D], the pooled embedding of every list
    column [B, n_lists * D], log(1 + length) of every list [B, n_lists] and the batch-normed floats.
    `bottom_mlp` maps it to a shared representation (ReLU after each layer); each task's tower
    (`tower_mlp`, then one logit) reads that representation.
    """

    def __init__(
        self,
        inputs: Inputs,
        embedding_dim: int = 16,
        bottom_mlp: Sequence[int] = (256, 128),
        tower_mlp: Sequence[int] = (64,),
        pooling: str = "mean",
        dropout: float = 0.0,
        l2: float = 0.0,
        linear: bool = False,
        embedding_lr_scale: float = 1.0,
        linear_lr_scale: float = 1.0,
        sparse_gradients: bool = True,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling: expected one of {list(POOLINGS)}, got {pooling!r}")
        if embedding_dim < 1:
            raise ValueError(f"model.embedding_dim: expected a positive width, got {embedding_dim}")
        if not bottom_mlp:
            raise ValueError("model.bottom_mlp: the shared bottom needs at least one layer, got []")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout: expected a rate in [0, 1), got {dropout}")
        if l2 < 0:
            raise ValueError(f"model.l2: expected a penalty >= 0, got {l2}")
        for key, scale in (("embedding_lr_scale", embedding_lr_scale), ("linear_lr_scale", linear_lr_scale)):
            if scale <= 0:
                raise ValueError(f"model.{key}: expected a multiple of train.lr > 0, got {scale}")
        self.tasks, self.pooling, self.l2 = tasks(inputs), pooling, l2
        self.sparse_gradients = sparse_gradients
        self.lr_scales = {"embedding": embedding_lr_scale, "linear": linear_lr_scale}
        by_kind: dict[str, list[str]] = {"float": [], "int": [], "list": []}
        for key, spec in inputs.items():
            if key != LABEL and len(spec):
                by_kind[spec.kind].append(key)
        self.float_keys, self.id_keys, self.list_keys = by_kind["float"], by_kind["int"], by_kind["list"]
        if not self.id_keys and not self.list_keys:
            raise ValueError(
                "model.inputs: the RecSys model needs id columns (e.g. `user: user`, `sparse: sparse`); "
                f"got only {sorted(k for k in inputs if k != LABEL) or 'labels'}"
            )
        id_sizes = [c for k in self.id_keys for c in inputs[k].cardinalities]
        list_sizes = [c for k in self.list_keys for c in inputs[k].cardinalities]
        n_floats = sum(len(inputs[k]) for k in self.float_keys)
        self.ids = TableCollection(id_sizes, embedding_dim, sparse=sparse_gradients) if id_sizes else None
        # a list group [B, n, L] is looked up as [B, L, n] so the per-column offsets broadcast
        self.bags = (
            TableCollection(list_sizes, embedding_dim, sparse=sparse_gradients) if list_sizes else None
        )
        self.norm = nn.BatchNorm1d(n_floats) if n_floats else None
        width = embedding_dim * (len(id_sizes) + len(list_sizes)) + len(list_sizes) + n_floats
        self.bottom = mlp([width, *bottom_mlp], last_activation=True)
        self.dropout = nn.Dropout(dropout)
        self.towers = nn.ModuleList(
            mlp([bottom_mlp[-1], *tower_mlp, 1], last_activation=False) for _ in range(self.tasks)
        )
        # set from the first training batch: each tower's output bias at the logit of its positive rate
        self.register_buffer("bias_set", torch.tensor(False))
        # one weight per id value and task, added to the towers' logits (a wide part, off by default)
        self.linear = (
            TableCollection(id_sizes, self.tasks, sparse=sparse_gradients, init=0.0)
            if linear and id_sizes
            else None
        )

    def pool(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lists [B, n, L] (0-padded after `lengths` [B, n]) as pooled vectors [B, n, D] and log lengths."""
        vectors = self.bags(ids.transpose(1, 2)).transpose(1, 2)  # [B, n, L, D]
        mask = torch.arange(ids.shape[2], device=ids.device) < lengths.unsqueeze(-1)  # [B, n, L]
        pooled = (vectors * mask.unsqueeze(-1)).sum(2)
        if self.pooling == "mean":
            pooled = pooled / lengths.clamp(min=1).unsqueeze(-1)
        return pooled, torch.log1p(lengths.float())

    def scores(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, T] and the mean squared norm of the embeddings the batch looked up (for `l2`)."""
        parts, norms = [], []
        if self.ids is not None:
            ids = torch.cat([batch[k] for k in self.id_keys], 1)  # [B, n_ids]
            vectors = self.ids(ids)  # [B, n_ids, D]
            parts.append(vectors.flatten(1))
            norms.append(vectors.square().sum((1, 2)))
        if self.bags is not None:
            lists = [self.pool(batch[k], batch[f"{k}_lengths"]) for k in self.list_keys]
            parts += [pooled.flatten(1) for pooled, _ in lists] + [length for _, length in lists]
        if self.norm is not None:
            parts.append(self.norm(torch.cat([batch[k] for k in self.float_keys], 1)))
        shared = self.dropout(self.bottom(torch.cat(parts, 1)))
        logits = torch.cat([tower(shared) for tower in self.towers], 1)
        if self.linear is not None:
            weights = self.linear(ids)  # [B, n_ids, T]
            logits = logits + weights.sum(1)
            norms.append(weights.square().sum((1, 2)))
        penalty = torch.stack([n.mean() for n in norms]).sum() if norms else logits.new_zeros(())
        return logits, penalty

    def optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """Adam for the dense weights at `lr`; the embedding rows (sparse: SparseAdam) at
        `embedding_lr_scale * lr` and the linear weights at `linear_lr_scale * lr`: on rows seen a few
        times each, the deep part memorises fast and the linear part learns slowly, so they get their own
        pace."""
        tables = {
            "embedding": [p for t in (self.ids, self.bags) if t is not None for p in t.parameters()],
            "linear": list(self.linear.parameters()) if self.linear is not None else [],
        }
        in_tables = {id(p) for params in tables.values() for p in params}
        chosen: list[torch.optim.Optimizer] = [
            torch.optim.Adam([p for p in self.parameters() if id(p) not in in_tables], lr=lr)
        ]
        for name, params in tables.items():
            if params:
                kind = torch.optim.SparseAdam if self.sparse_gradients else torch.optim.Adam
                chosen.append(kind(params, lr=lr * self.lr_scales[name]))
        return chosen

    @torch.no_grad()
    def start_at_the_positive_rates(self, labels: torch.Tensor) -> None:
        """Each tower's output bias at the logit of its task's positive rate in `labels` (a batch), so
        training does not spend its first thousand steps walking a rare task's intercept from 0 (p=0.5)
        down to, say, -4.6 (p=0.01), bending the shared weights on the way."""
        rates = labels.reshape(len(labels), -1).float().mean(0).clamp(1e-3, 1 - 1e-3)
        for tower, rate in zip(self.towers, rates, strict=True):
            tower[-1].bias.fill_(torch.logit(rate).item())
        self.bias_set.fill_(True)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return logits_out(self.scores(batch)[0], self.tasks)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The sum of the tasks' BCE, plus `l2` times the squared norm of the id embeddings (and linear
        weights) the batch used: rows are penalised as often as they are seen, so rare users' vectors
        stay near zero unless the data says otherwise."""
        if not self.bias_set:
            self.start_at_the_positive_rates(batch[LABEL])
        logits, penalty = self.scores(batch)
        loss = bce(logits_out(logits, self.tasks), batch[LABEL])
        return loss + self.l2 * penalty if self.l2 else loss
