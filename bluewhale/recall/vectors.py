"""Item and user vectors from a trained model: a model's own `item_embeddings()` / `user_vectors(batch)`
(the two-tower model), or the rows of the embedding tables of named id columns (`recall.items`,
`recall.users`: e.g. DLRM's or DIEN's item_id and user_id tables, which its dot products compare)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from bluewhale.model.inputs import Inputs
from bluewhale.model.layers import TableCollection


def locate(inputs: Inputs, column: str, key: str) -> tuple[str, int]:
    """The batch key and position of an id column the model reads."""
    for name, i in inputs.items():
        if i.kind == "int" and column in i.columns:
            return name, i.columns.index(column)
    known = [c for i in inputs.values() if i.kind == "int" for c in i.columns]
    raise ValueError(f"{key}: {column!r} is not an id column the model reads; its id columns: {known}")


def table_of(model: nn.Module, inputs: Inputs, name: str, key: str) -> TableCollection:
    """The model's table collection that holds input `name`'s columns (matched by columns and rows)."""
    sizes = inputs[name].cardinalities
    for module in model.modules():
        if isinstance(module, TableCollection) and len(module.offsets) == len(sizes):
            if int(module.offsets[-1]) + sizes[-1] == getattr(module.embedding, "num_embeddings", -1):
                return module
    raise ValueError(f"{key}: no embedding table of {type(model).__name__} holds the input {name!r}")


@torch.no_grad()
def column_rows(model: nn.Module, inputs: Inputs, column: str, key: str) -> np.ndarray:
    """Every id's vector [cardinality, dim] of an id column's embedding table (row = id)."""
    name, j = locate(inputs, column, key)
    table = table_of(model, inputs, name, key)
    ids = torch.arange(inputs[name].cardinalities[j]) + table.offsets[j]
    return table.embedding(ids).float().numpy()


def item_vectors(model: nn.Module, inputs: Inputs, settings: Mapping) -> np.ndarray:
    """[n_items, dim]: row = item id."""
    if settings.get("items"):
        return column_rows(model, inputs, settings["items"], "recall.items")
    if not hasattr(model, "item_embeddings"):
        raise ValueError(
            f"recall.items: {type(model).__name__} has no item_embeddings(); name the id column whose "
            "embedding rows are the items (e.g. recall.items=item_id recall.users=user_id)"
        )
    return model.item_embeddings().float().numpy()


def item_column(inputs: Inputs, settings: Mapping) -> str:
    return settings.get("items") or inputs["item"].columns[0]


@torch.no_grad()
def query_vectors(
    model: nn.Module, inputs: Inputs, settings: Mapping, batches: Iterable[dict]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the held-out positive rows (up to `max_queries`): user vectors [q, dim], their items [q] and
    users [q]; the last vector of each user is also what `Index.search(user_ids)` serves."""
    model.eval()
    item_key, item_j = locate(inputs, item_column(inputs, settings), "recall.items")
    if settings.get("items"):
        if not settings.get("users"):
            raise ValueError(
                "recall.users: with recall.items, name the id column of the users (e.g. user_id)"
            )
        user_key, user_j = locate(inputs, settings["users"], "recall.users")
        users_table = column_rows(model, inputs, settings["users"], "recall.users")
    else:
        user_key, user_j, users_table = "user", 0, None
    vectors, items, users, count = [], [], [], 0
    for batch in batches:
        positive = batch["label"].reshape(len(batch["label"]), -1)[:, 0] > 0.5
        rows = {k: v[positive] for k, v in batch.items()}
        user = rows[user_key][:, user_j]
        if users_table is None:
            vectors.append(model.user_vectors(rows).float().numpy())
        else:
            vectors.append(users_table[user.numpy()])
        items.append(rows[item_key][:, item_j].numpy())
        users.append(user.numpy())
        count += len(user)
        if count >= settings.get("max_queries", 20000):
            break
    n = settings.get("max_queries", 20000)
    return (
        np.concatenate(vectors)[:n].astype(np.float32),
        np.concatenate(items)[:n],
        np.concatenate(users)[:n],
    )
