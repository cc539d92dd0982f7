"""DLRM's shape contract and its sparse embedding updates."""

import torch

from bluewhale.model.dlrm import DLRM
from bluewhale.train.trainer import optimizers


def test_scores_a_batch_and_touches_only_the_embedding_rows_it_used():
    model = DLRM(num_dense=3, cardinalities=[5, 7], embedding_dim=4, bottom_mlp=[8], top_mlp=[8])
    dense, sparse = torch.randn(6, 3), torch.tensor([[0, 1], [1, 2], [4, 6], [0, 0], [1, 1], [2, 3]])
    logits = model(dense, sparse)
    assert logits.shape == (6,)
    logits.sum().backward()
    grad = model.embedding.weight.grad
    assert grad.is_sparse
    used = {0, 1, 2, 4} | {5 + i for i in (0, 1, 2, 3, 6)}  # second table starts at row 5
    assert set(grad.coalesce().indices()[0].tolist()) == used
    kinds = sorted(type(o).__name__ for o in optimizers(model, lr=0.01))
    assert kinds == ["Adam", "SparseAdam"]


def test_the_same_feature_value_in_two_tables_gets_two_different_vectors():
    model = DLRM(num_dense=1, cardinalities=[3, 3], embedding_dim=2, bottom_mlp=[], top_mlp=[])
    ids = torch.tensor([[1, 1]]) + model.offsets
    first, second = model.embedding(ids)[0]
    assert not torch.equal(first, second)
