"""DIEN (Zhou et al., 2019): the Deep Interest Evolution Network for click-through prediction.

A user's behaviours (the items of their history, each with its category) are embedded with the same
tables as the target item; an interest extractor GRU turns them into interest states, trained also by an
auxiliary loss (does interest state t tell the next behaviour from a sampled one?); an interest evolving
layer (AUGRU: a GRU whose update gate is scaled by each state's attention to the target item) reduces them
to a final interest; an MLP scores [user, target item, history mean, target * history mean, final interest].

Padded histories are handled with masks and by running both GRUs only over each row's real steps (rows
sorted by length, the active rows shrinking step by step, as in a packed sequence): no per-row Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bluewhale.model.inputs import Input, Inputs, tasks
from bluewhale.model.layers import TableCollection, logits_out

ACTIVATIONS = ("dice", "prelu")


def check_dien_inputs(inputs: Inputs) -> None:
    """The inputs DIEN needs, or an error naming `model.inputs.<key>`: `item` ids and `history` lists that
    pair with them one to one (history column i is looked up in item column i's table, so the two must
    share one vocabulary: RecDP's categorify `shared: [[asin, hist_asin], ...]`), and optional `user` ids."""
    for key, kind, what in (
        ("item", "int", "the target item's id columns (e.g. [asin, category])"),
        ("history", "list", "the user's earlier items as list columns (e.g. [hist_asin, hist_category])"),
    ):
        if key not in inputs:
            raise ValueError(f"model.inputs.{key}: missing; DIEN needs {what}")
        if inputs[key].kind != kind or not len(inputs[key]):
            got = f"{inputs[key].kind} columns {list(inputs[key].columns)}" if len(inputs[key]) else "nothing"
            raise ValueError(f"model.inputs.{key}: expected {what}, which hold {kind}s; got {got}")
    item, history = inputs["item"], inputs["history"]
    if len(history) != len(item):
        raise ValueError(
            f"model.inputs.history: {len(history)} history columns {list(history.columns)} for "
            f"{len(item)} item columns {list(item.columns)}; DIEN pairs them in order (history column i "
            "uses item column i's embedding table), so give one history column per item column"
        )
    for h, i, h_size, i_size in zip(
        history.columns, item.columns, history.cardinalities, item.cardinalities, strict=True
    ):
        if h_size != i_size:
            raise ValueError(
                f"model.inputs.history: {h!r} has {h_size} ids but its item column {i!r} has {i_size}: they "
                f"share one embedding table, so categorify them with one vocabulary "
                f"(recdp categorify shared: [[{i}, {h}]])"
            )
    if "user" in inputs and len(inputs["user"]) and inputs["user"].kind != "int":
        raise ValueError(
            f"model.inputs.user: expected id columns (e.g. [reviewerID]), got {inputs['user'].kind} "
            f"columns {list(inputs['user'].columns)}"
        )


class Dice(nn.Module):
    """Dice (Zhou et al., 2018, DIN): a PReLU whose rectification point follows the batch's statistics,
    p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + eps)), f(s) = p(s) * s + (1 - p(s)) * alpha * s."""

    def __init__(self, width: int, eps: float = 1e-8):
        super().__init__()
        self.norm = nn.BatchNorm1d(width, affine=False, eps=eps)
        self.alpha = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.norm(x))
        return p * x + (1 - p) * self.alpha * x


def head(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers of the given widths with `activation` (dice or prelu) between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(Dice(n_out) if activation == "dice" else nn.PReLU(n_out))
    return nn.Sequential(*layers)


class AUGRU(nn.Module):
    """GRU with attentional update gate: u'_t = a_t * u_t, h_t = (1 - u'_t) * h_{t-1} + u'_t * h~_t.

    Gates as in a GRU (reset r, update u, candidate h~ = tanh(W x + r * (U h + b))). A step with attention
    0 leaves the state as it was, so padded steps (attention 0) never move it.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.from_input = nn.Linear(input_size, 3 * hidden_size)
        self.from_hidden = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, x: torch.Tensor, attention: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The final state [B, H] of inputs x [B, L, I] with attention [B, L] over each row's first
        `lengths` [B] steps (a row of length 0 keeps the zero state)."""
        batch, steps = x.shape[0], x.shape[1]
        order = torch.argsort(lengths, descending=True)
        ordered = lengths[order]
        # rows active at step t: the first `active[t]` in length order (the packed-sequence batch sizes)
        active = (ordered.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1).tolist()
        # the input's share of every gate, at once, then one tensor a step (slicing a step out of the whole
        # [B, L, 3H] would cost a zero-filled [B, L, 3H] gradient per step in backward)
        gates_x = self.from_input(x[order]).unbind(1)  # L x [B, 3H]
        weight = attention[order].unsqueeze(2).unbind(1)  # L x [B, 1]
        h = x.new_zeros(batch, self.hidden_size)  # the active rows' states
        done = []  # final states of rows whose history ended, shortest rows first (length 0: zeros)
        for t, k in enumerate(active):
            if k < len(h):  # rows whose history ended: their state is final
                done.append(h[k:])
                h = h[:k]
            if k == 0:
                break
            xr, xu, xn = gates_x[t][:k].chunk(3, 1)
            hr, hu, hn = self.from_hidden(h).chunk(3, 1)
            reset = torch.sigmoid(xr + hr)
            update = torch.sigmoid(xu + hu) * weight[t][:k]
            candidate = torch.tanh(xn + reset * hn)
            h = h + update * (candidate - h)
        done.append(h)
        return torch.cat(done[::-1])[torch.argsort(order)]


class DIEN(nn.Module):
    """Scores `item` ids [B, n] against the `history` lists [B, n, L] (`history_lengths` [B, n]) and `user`
    ids [B, u] as click logits [B] ([B, T] for T label columns).

    Tables: one `TableCollection` for the item columns, which the history columns use too (history column
    i is looked up in item column i's table), and one for the user columns.
    """

    def __init__(
        self,
        inputs: Inputs,
        embedding_dim: int = 18,
        hidden_dim: int | None = None,
        mlp: Sequence[int] = (200, 80),
        activation: str = "dice",
        aux_weight: float = 1.0,
        aux_mlp: Sequence[int] = (100, 50),
        sparse_gradients: bool = True,
    ) -> None:
        super().__init__()
        check_dien_inputs(inputs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.activation: expected one of {ACTIVATIONS}, got {activation!r}")
        if aux_weight < 0:
            raise ValueError(f"model.aux_weight: expected a weight >= 0, got {aux_weight}")
        item: Input = inputs["item"]
        user: Input | None = inputs["user"] if "user" in inputs and len(inputs["user"]) else None
        self.tasks = tasks(inputs)
        self.aux_weight = aux_weight
        # a behaviour (or the target) is its columns' vectors side by side
        behaviour = len(item) * embedding_dim
        hidden = hidden_dim or behaviour
        self.items = TableCollection(item.cardinalities, embedding_dim, sparse=sparse_gradients)
        self.users = (
            TableCollection(user.cardinalities, embedding_dim, sparse=sparse_gradients) if user else None
        )
        self.extractor = nn.GRU(behaviour, hidden, batch_first=True)
        self.attention = nn.Linear(hidden, behaviour, bias=False)  # a_t ∝ exp(h_t W e_target)
        self.evolution = AUGRU(hidden, hidden)
        self.auxiliary = head([hidden + behaviour, *aux_mlp, 1], "prelu")
        width = (len(user) * embedding_dim if user else 0) + 3 * behaviour + hidden
        self.mlp = head([width, *mlp, self.tasks], activation)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.score(batch, auxiliary=False)[0]

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Binary cross entropy of the click (mean over the batch, summed over tasks) + aux_weight * the
        auxiliary loss of the interest extractor."""
        logits, aux = self.score(batch, auxiliary=self.aux_weight > 0)
        per_row = nn.functional.binary_cross_entropy_with_logits(logits, batch["label"], reduction="none")
        return per_row.mean(0).sum() + self.aux_weight * aux

    def score(self, batch: dict[str, torch.Tensor], auxiliary: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits and (when asked, else 0) the auxiliary loss."""
        target = self.items(batch["item"]).flatten(1)  # [B, E]
        lengths = batch["history_lengths"].amin(1)  # [B]: steps every history column has
        steps = max(int(lengths.max()), 1) if len(lengths) else 1
        ids = batch["history"][:, :, :steps].transpose(
            1, 2
        )  # [B, L, n]: padding beyond the batch's longest cut
        behaviours = self.items(ids).flatten(2)  # [B, L, E]
        mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)  # [B, L]

        packed = pack_padded_sequence(
            behaviours, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        interests = pad_packed_sequence(self.extractor(packed)[0], batch_first=True, total_length=steps)[0]
        interests = interests * mask.unsqueeze(2)  # [B, L, H]; rows without history: zeros

        scores = torch.bmm(self.attention(interests), target.unsqueeze(2)).squeeze(2)  # [B, L]
        attention = torch.softmax(scores.masked_fill(~mask, -1e9), dim=1) * mask
        final = self.evolution(interests, attention, lengths)  # [B, H]

        count = lengths.clamp(min=1).unsqueeze(1).to(behaviours.dtype)
        mean = (behaviours * mask.unsqueeze(2)).sum(1) / count  # [B, E]
        parts = [target, mean, target * mean, final]
        if self.users is not None:
            parts.insert(0, self.users(batch["user"]).flatten(1))
        logits = logits_out(self.mlp(torch.cat(parts, dim=1)), self.tasks)
        aux = self.auxiliary_loss(interests, behaviours, ids, mask) if auxiliary else logits.new_zeros(())
        return logits, aux

    def auxiliary_loss(
        self, interests: torch.Tensor, behaviours: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Interest state t against the next behaviour (label 1) and against a behaviour drawn at random
        from the batch's histories (label 0; by popularity, with its own category): binary cross entropy,
        mean over the steps that have a next behaviour. A draw that is the next item itself is left out."""
        if mask.shape[1] < 2:
            return interests.new_zeros(())
        has_next = mask[:, 1:]  # [B, L-1]
        state = interests[:, :-1][has_next]  # [N, H]
        if not len(state):
            return interests.new_zeros(())
        positive = behaviours[:, 1:][has_next]  # [N, E]
        pool = mask.flatten().nonzero().squeeze(1)  # every real behaviour of the batch
        drawn = pool[torch.randint(len(pool), (len(state),))]
        negative = behaviours.flatten(0, 1)[drawn]
        other = ids.flatten(0, 1)[drawn, 0] != ids[:, 1:][has_next][:, 0]  # not the next item itself
        pos = self.auxiliary(torch.cat([state, positive], 1)).squeeze(1)
        neg = self.auxiliary(torch.cat([state[other], negative[other]], 1)).squeeze(1)
        loss = nn.functional.binary_cross_entropy_with_logits
        return loss(pos, torch.ones_like(pos)) + (loss(neg, torch.zeros_like(neg)) if len(neg) else 0.0)
