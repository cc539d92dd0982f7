"""faiss indexes against exact search on planted clusters, their parameters' checks, the `Index` API and
command, and table models (DLRM) feeding the index."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
import torch

from bluewhale.model.dlrm import DLRM
from bluewhale.model.inputs import Input
from bluewhale.recall import Index, cli, evaluate, index, vectors

K = 10


@pytest.fixture(scope="module")
def items() -> np.ndarray:
    """5,000 unit vectors in 32 dimensions around 100 planted centres."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(100, 32))
    x = centres[rng.integers(0, 100, 5000)] + 0.3 * rng.normal(size=(5000, 32))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(
    "settings,least",
    [
        ({"index": "flat"}, 1.0),
        ({"index": "hnsw", "M": 16, "ef_construction": 100, "ef_search": 64}, 0.95),
        ({"index": "ivf_flat", "nlist": None, "nprobe": 16}, 0.9),
        ({"index": "ivf_pq", "nlist": 50, "nprobe": 8, "m": 8, "nbits": 6}, 0.3),
    ],
)
def test_each_index_finds_what_exact_search_finds(items, settings, least):
    queries = items[:500] + 0.01
    exact = faiss.IndexFlatIP(32)
    exact.add(items)
    truth, _ = evaluate.timed_search(exact, queries, K, repeats=1)
    built, seconds = index.build(settings, items)
    found, qps = evaluate.timed_search(built, queries, K, repeats=1)
    assert evaluate.recall_at_k(found, truth) >= least and seconds > 0 and qps > 0


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"index": "ivf_flat", "nlist": 50, "nprobe": 1}, r"recall.nlist: 50 IVF lists for 40 item vectors"),
        (
            {"index": "ivf_pq", "nlist": 4, "nprobe": 1, "m": 5, "nbits": 4},
            r"recall.m: 5 PQ subquantisers do not divide",
        ),
        (
            {"index": "ivf_pq", "nlist": 4, "nprobe": 1, "m": 4, "nbits": 8},
            r"recall.nbits: 8 bits need at least 256",
        ),
        (
            {"index": "ivf_flat", "nlist": 4, "nprobe": 9},
            r"recall.nprobe: expected an integer in \[1, nlist=4\]",
        ),
        ({"index": "hnsw", "M": 1, "ef_construction": 10, "ef_search": 10}, r"recall.M: expected a positive"),
        ({"index": "annoy"}, r"recall.index: expected one of"),
    ],
)
def test_impossible_parameters_fail_naming_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        index.build(settings, np.random.default_rng(0).normal(size=(40, 16)))


def test_index_serves_users_and_vectors_and_checks_the_query(items, tmp_path, capsys):
    settings = {"index": "hnsw", "M": 16, "ef_construction": 100, "ef_search": 64}
    items = items[:1000]
    built, _ = index.build(settings, items)
    users = items[:3] + 0.01
    served = Index(
        built,
        np.arange(1, len(items) + 1),
        np.array([7, 8, 9]),
        users,
        {"index": "hnsw", "settings": settings},
    )
    served.save(tmp_path / "ix")
    loaded = Index.load(tmp_path / "ix")
    ids, scores = loaded.search([8, 7], K)
    assert ids[0, 0] == 2 and ids[1, 0] == 1 and scores.shape == (2, K)  # item id = row + 1
    np.testing.assert_array_equal(ids, loaded.search_vectors(users[[1, 0]], K)[0])
    with pytest.raises(ValueError, match=r"vectors: queries of shape \[2, 16\], expected \[n, 32\]"):
        loaded.search_vectors(np.zeros((2, 16)), K)
    with pytest.raises(ValueError, match=r"user_ids: \[5\] have no vector in this index"):
        loaded.search([5], K)
    assert cli.main([str(tmp_path / "ix"), "--users", "9", "-k", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["items"][0] == 3
    assert (
        cli.main([str(tmp_path / "nothing"), "--users", "9", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
        == 2
    )


def test_a_dlrm_item_table_feeds_the_index():
    inputs = {
        "label": Input(("label",), "label"),
        "sparse": Input(("user_id", "item_id", "genre"), "int", (30, 50, 5)),
    }
    model = DLRM(inputs, embedding_dim=8)
    rows = vectors.column_rows(model, inputs, "item_id", "recall.items")
    np.testing.assert_array_equal(rows, model.tables.embedding.weight.detach()[30:80].numpy())
    batch = {"sparse": torch.tensor([[3, 4, 1], [5, 6, 2]]), "label": torch.tensor([1.0, 1.0])}
    settings = {"items": "item_id", "users": "user_id"}
    queries, truth, users = vectors.query_vectors(model, inputs, settings, [batch])
    np.testing.assert_array_equal(truth, [4, 6])
    np.testing.assert_array_equal(queries[1], model.tables.embedding.weight.detach()[5].numpy())
    with pytest.raises(ValueError, match=r"recall.items: 'asin' is not an id column the model reads"):
        vectors.item_vectors(model, inputs, {"items": "asin"})
    with pytest.raises(ValueError, match="recall.items: DLRM has no item_embeddings"):
        vectors.item_vectors(model, inputs, {})
