"""Wide & Deep (Cheng et al., 2016): a wide linear model over sparse ids and crossed features, and a deep
MLP over embeddings and numericals, summed into one logit and trained jointly.

The wide part is one-dimensional sparse weights: one per id of every id column, and one per hash bucket of
every declared cross (`crosses: [[a, b], ...]`, columns of the model's id inputs), so it memorises
feature conjunctions the deep part generalises over. It is trained by FTRL-proximal with L1 and L2 (as
the paper did; `FTRL` below, written for sparse gradients) or by Adagrad; the deep part by Adam
(SparseAdam for its embedding rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from bluewhale.model.inputs import Inputs, tasks
from bluewhale.model.layers import TableCollection, logits_out, mlp

MASK32 = 0xFFFFFFFF
_MIX = 0x45D9F3B  # multiplier of a 32-bit integer finaliser (below 2**27: products stay inside int64)
_FNV = 0x01000193  # the FNV-1 prime, to chain the ids of one cross
WIDE_OPTIMIZERS = ("ftrl", "adagrad")


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash of int64 `x` (its low 32 bits), computed in int64 without overflow."""
    x = x & MASK32
    x = ((x >> 16) ^ x) * _MIX & MASK32
    x = ((x >> 16) ^ x) * _MIX & MASK32
    return (x >> 16) ^ x


def cross_hash(ids: torch.Tensor, seed: int, buckets: int) -> torch.Tensor:
    """The bucket in [0, buckets) of each row's combination of ids [B, m] (one cross of m columns);
    `seed` (the cross's position) makes two crosses of the same columns hash apart."""
    h = torch.full(ids.shape[:1], mix32(torch.tensor(seed + 1)).item(), dtype=torch.long, device=ids.device)
    for j in range(ids.shape[1]):
        h = mix32((h * _FNV & MASK32) ^ mix32(ids[:, j]))
    return h % buckets


def id_columns(inputs: Inputs) -> list[tuple[str, int, str, int]]:
    """Every id column of the inputs as (batch key, position in it, column, table size), in input order."""
    return [
        (key, j, column, size)
        for key, i in inputs.items()
        if i.kind == "int"
        for j, (column, size) in enumerate(zip(i.columns, i.cardinalities, strict=True))
    ]


def check_crosses(crosses, known: Iterable[str], where: str = "model.crosses") -> list[list[str]]:
    """`crosses` as lists of at least two distinct column names, each one of `known` (the id columns the
    model reads), or an error naming `model.crosses[i]`."""
    known = list(known)
    if crosses is None:
        return []
    if isinstance(crosses, str) or not isinstance(crosses, Sequence):
        raise ValueError(f"{where}: expected a list of crosses, each a list of columns, got {crosses!r}")
    out = []
    for i, cross in enumerate(crosses):
        key = f"{where}[{i}]"
        if isinstance(cross, str) or not isinstance(cross, Sequence) or len(cross) < 2:
            raise ValueError(
                f"{key}: expected a list of two or more columns, e.g. [geo_state, advertiser_id]"
            )
        if len(set(cross)) != len(cross):
            raise ValueError(f"{key}: {list(cross)} names a column twice")
        unknown = [c for c in cross if c not in known]
        if unknown:
            raise ValueError(
                f"{key}: {unknown} {'is' if len(unknown) == 1 else 'are'} not among the id columns the model "
                f"reads (model.inputs): {known}"
            )
        out.append(list(cross))
    return out


class WideAndDeep(nn.Module):
    """Scores a batch as logits [B] ([B, T] for T tasks): the wide part's sum of weights plus the deep MLP.

    Every id input (int kind; [B, n] ids) feeds both parts: one wide weight per id, one embedding per id.
    Every float input ([B, n]) feeds the deep MLP. `crosses` name id columns; each cross of a row is
    hashed (in torch, over the whole batch) into one of `cross_buckets` wide weights of its own.
    `wide: false` is the deep-only baseline, `deep: false` a logistic regression over ids and crosses.
    """

    def __init__(
        self,
        inputs: Inputs,
        crosses: Sequence[Sequence[str]] = (),
        cross_buckets: int = 2**17,
        wide: bool = True,
        deep: bool = True,
        embedding_dim: int = 16,
        deep_mlp: Sequence[int] = (256, 128),
        wide_optimizer: str = "ftrl",
        wide_lr: float = 0.05,
        wide_l1: float = 0.0,
        wide_l2: float = 0.0,
        wide_beta: float = 0.0,
    ) -> None:
        super().__init__()
        if not (wide or deep):
            raise ValueError("model.wide, model.deep: at least one part must be on")
        if wide_optimizer not in WIDE_OPTIMIZERS:
            raise ValueError(
                f"model.wide_optimizer: expected one of {WIDE_OPTIMIZERS}, got {wide_optimizer!r}"
            )
        if not (isinstance(cross_buckets, int) and 1 <= cross_buckets <= 2**32):
            raise ValueError(f"model.cross_buckets: expected an integer in [1, 2**32], got {cross_buckets!r}")
        lists = [k for k, i in inputs.items() if i.kind == "list"]
        if lists:
            raise ValueError(
                f"model.inputs: {lists} hold lists; Wide & Deep reads id columns and float columns only"
            )
        self.tasks = tasks(inputs)
        columns = id_columns(inputs)
        if not columns:
            raise ValueError("model.inputs: Wide & Deep needs at least one input of id columns (e.g. sparse)")
        self.crosses = check_crosses(crosses, [c for _, _, c, _ in columns])
        where = {c: (k, j) for k, j, c, _ in reversed(columns)}  # a column read twice: its first place
        self.id_keys = list(dict.fromkeys(k for k, _, _, _ in columns))
        self.float_keys = [k for k, i in inputs.items() if i.kind == "float" and len(i)]
        self.cross_at = [[where[c] for c in cross] for cross in self.crosses]
        self.cross_buckets = cross_buckets
        self.wide_optimizer, self.wide_lr = wide_optimizer, wide_lr
        self.wide_l1, self.wide_l2, self.wide_beta = wide_l1, wide_l2, wide_beta
        sizes = [size for _, _, _, size in columns]

        self.wide = None
        if wide:  # a row of weights (one a task): every id of every column, then each cross's buckets
            rows = sum(sizes) + len(self.crosses) * cross_buckets
            self.wide = nn.EmbeddingBag(rows, self.tasks, mode="sum", sparse=True)
            nn.init.zeros_(self.wide.weight)
            offsets = torch.tensor([0, *sizes], dtype=torch.long).cumsum(0)
            self.register_buffer("id_offsets", offsets[:-1], persistent=True)
            self.cross_offset = int(offsets[-1])
        self.tables = self.deep = None
        if deep:
            self.tables = TableCollection(sizes, embedding_dim, sparse=True)
            floats = sum(len(inputs[k]) for k in self.float_keys)
            self.deep = mlp(
                [len(sizes) * embedding_dim + floats, *deep_mlp, self.tasks], last_activation=False
            )
        self.bias = nn.Parameter(torch.zeros(self.tasks)) if not deep else None  # the deep head has its own

    @staticmethod
    def check_config(model: Mapping, groups: Mapping[str, Sequence[str]]) -> None:
        """Before processing: every cross names columns that `model.inputs` reads, by the column groups the
        pipeline will output (`groups`); a hook `check_experiment` may call with the model's config."""
        read = []
        for key, names in model.get("inputs", {}).items():
            if key != "label":
                for name in [names] if isinstance(names, str) else names:
                    read += groups.get(name, [name])
        check_crosses(model.get("crosses"), dict.fromkeys(read))

    def ids(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Every id column of the batch side by side [B, n_ids], in the order of `id_columns`."""
        return torch.cat([batch[k] for k in self.id_keys], dim=1)

    def wide_rows(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The wide weights each row uses [B, n_ids + n_crosses]: its ids, then its crosses' buckets."""
        rows = [self.ids(batch) + self.id_offsets]
        for i, at in enumerate(self.cross_at):
            ids = torch.stack([batch[k][:, j] for k, j in at], dim=1)
            rows.append(
                (self.cross_offset + i * self.cross_buckets + cross_hash(ids, i, self.cross_buckets))[:, None]
            )
        return torch.cat(rows, dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = 0.0
        if self.wide is not None:
            out = out + self.wide(self.wide_rows(batch))  # [B, T]
        if self.deep is not None:
            vectors = self.tables(self.ids(batch)).flatten(1)  # [B, n_ids * D]
            x = torch.cat([vectors, *(batch[k] for k in self.float_keys)], dim=1)
            out = out + self.deep(x)  # [B, T]
        else:
            out = out + self.bias
        return logits_out(out, self.tasks)

    def optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """Adam (deep weights) and SparseAdam (embedding rows) at `lr`; FTRL or Adagrad at `wide_lr` for the
        wide weights."""
        wide = [self.wide.weight] if self.wide is not None else []
        sparse = [self.tables.embedding.weight] if self.tables is not None else []
        taken = {id(p) for p in wide + sparse}
        dense = [p for p in self.parameters() if id(p) not in taken]
        chosen: list[torch.optim.Optimizer] = [torch.optim.Adam(dense, lr=lr)]
        if sparse:
            chosen.append(torch.optim.SparseAdam(sparse, lr=lr))
        if wide and self.wide_optimizer == "ftrl":
            chosen.append(FTRL(wide, lr=self.wide_lr, l1=self.wide_l1, l2=self.wide_l2, beta=self.wide_beta))
        elif wide:
            chosen.append(torch.optim.Adagrad(wide, lr=self.wide_lr, weight_decay=0.0))
        return chosen


class FTRL(torch.optim.Optimizer):
    """FTRL-proximal (McMahan et al., 2013, Algorithm 1) with per-coordinate rates, L1 and L2, for sparse
    (or dense) gradients: a step touches only the rows the gradient names.

    Per coordinate: n sums squared gradients, z sums gradients minus sigma * w, and the weight is
    w = 0 if |z| <= l1, else -(z - sign(z) l1) / ((beta + sqrt(n)) / lr + l2): L1 makes exact zeros.
    sigma is the growth of sqrt(n) / lr since the coordinate's last update, so a learning rate that changes
    (warm-up, cosine schedule) scales steps, not the weights already learnt.
    """

    def __init__(self, params, lr: float = 0.05, l1: float = 0.0, l2: float = 0.0, beta: float = 0.0):
        if lr <= 0 or l1 < 0 or l2 < 0 or beta < 0:
            raise ValueError(f"FTRL: expected lr > 0 and l1, l2, beta >= 0, got {lr}, {l1}, {l2}, {beta}")
        super().__init__(params, {"lr": lr, "l1": l1, "l2": l2, "beta": beta})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, l1, l2, beta = group["lr"], group["l1"], group["l2"], group["beta"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["z"], state["n"], state["scale"] = (torch.zeros_like(p) for _ in range(3))
                z, n, scale = state["z"], state["n"], state["scale"]  # scale: sqrt(n) / lr when last updated
                grad = p.grad
                if grad.is_sparse:
                    grad = grad.coalesce()
                    rows, g = grad.indices()[0], grad.values()
                else:
                    rows, g = slice(None), grad
                n_new = n[rows] + g * g
                scale_new = n_new.sqrt() / lr
                z_new = z[rows] + g - (scale_new - scale[rows]) * p[rows]
                shrunk = z_new - z_new.sign() * l1
                w = torch.where(
                    z_new.abs() <= l1, 0.0, -shrunk / (beta / lr + scale_new + l2).clamp_min(1e-30)
                )
                z[rows], n[rows], scale[rows], p[rows] = z_new, n_new, scale_new, w
        return loss
