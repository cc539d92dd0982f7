"""The two-tower model: shapes, its in-batch softmax (duplicates masked, logQ-corrected) against a direct
computation, item vectors for every id, and bad inputs."""

from __future__ import annotations

import pytest
import torch

from bluewhale.model.inputs import Input
from bluewhale.model.two_tower import TwoTower

INPUTS = {
    "label": Input(("label",), "label"),
    "user": Input(("user_id",), "int", (20,)),
    "item": Input(("item_id", "genre"), "int", (30, 4)),
    "history": Input(("hist_item_id", "hist_genre"), "list", (30, 4)),
}


def batch(n: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    items = torch.randint(1, 30, (n,), generator=g)
    items[1] = items[0]  # a duplicate positive: it must not count as its own negative
    lengths = torch.randint(0, 5, (n,), generator=g)
    return {
        "user": torch.randint(0, 20, (n, 1), generator=g),
        "item": torch.stack([items, items % 4], 1),
        "history": torch.randint(0, 30, (n, 2, 5), generator=g) % torch.tensor([30, 4]).view(1, 2, 1),
        "history_lengths": torch.stack([lengths, lengths], 1),
        "label": torch.tensor([1.0, 1, 1, 1, 1, 1, 0, 0])[:n],
    }


def test_scores_vectors_and_item_table():
    torch.manual_seed(0)
    model = TwoTower(INPUTS, embedding_dim=8, tower_mlp=(16,), output_dim=8)
    b = batch()
    assert model(b).shape == (8,)
    users = model.user_vectors(b)
    assert users.shape == (8, 8) and torch.allclose(users.norm(dim=1), torch.ones(8))
    model.training_loss(b)  # records each trained item's columns
    table = model.item_embeddings()
    assert table.shape == (30, 8)
    assert torch.allclose(table[b["item"][:, 0]], model.item_vectors(b["item"]), atol=1e-6)


def test_in_batch_softmax_masks_duplicates_and_corrects_for_popularity():
    torch.manual_seed(0)
    model = TwoTower(INPUTS, embedding_dim=8, tower_mlp=(16,), output_dim=8, logq_correction=True)
    b = batch()
    loss = model.training_loss(b)  # counts are updated first, then used
    pos = {k: v[:6] for k, v in b.items()}
    u, v, ids = model.user_vectors(pos), model.item_vectors(pos["item"]), pos["item"][:, 0]
    logits = u @ v.T / model.temperature
    share = model.item_counts[ids] / model.item_counts.sum()
    logits = logits - torch.log(share * 6).unsqueeze(0)
    logits[0, 1] = logits[1, 0] = -1e9
    assert loss.item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, torch.arange(6)).item(), rel=1e-5
    )
    for negatives in ("sampled", "both"):
        other = TwoTower(INPUTS, embedding_dim=8, negatives=negatives, num_sampled=16)
        other.training_loss(b).backward()


def test_bad_inputs_name_the_key():
    with pytest.raises(ValueError, match="model.inputs.user: expected the user's id columns"):
        TwoTower({k: v for k, v in INPUTS.items() if k != "user"})
    bad = dict(INPUTS, history=Input(("hist_item_id",), "list", (30,)))
    with pytest.raises(ValueError, match="model.inputs.history: expected one list column per item column"):
        TwoTower(bad)
    with pytest.raises(ValueError, match="model.negatives: expected one of"):
        TwoTower(INPUTS, negatives="hard")
