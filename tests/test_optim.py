"""Row-wise Adagrad: the rule on the rows a batch used (and no others), the fused update equal to the
unfused one, and the per-model choice of embedding optimiser."""

import pickle

import pytest
import torch

from bluewhale.model.dlrm import DLRM
from bluewhale.model.inputs import Input
from bluewhale.train.optim import RowwiseAdagrad, optimizers
from bluewhale.train.trainer import bce


def inputs(cardinalities=(7, 5, 9)) -> dict[str, Input]:
    return {
        "label": Input(("y",), "label"),
        "dense": Input(("I0", "I1"), "float"),
        "sparse": Input(tuple(f"C{i}" for i in range(len(cardinalities))), "int", tuple(cardinalities)),
    }


def batches(n: int, size: int = 16, cardinalities=(7, 5, 9)) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        {
            "dense": torch.randn(size, 2, generator=g),
            "sparse": torch.stack([torch.randint(0, c, (size,), generator=g) for c in cardinalities], 1),
            "label": (torch.rand(size, generator=g) < 0.3).float(),
        }
        for _ in range(n)
    ]


def test_rowwise_adagrad_updates_the_rows_used_by_the_rule_and_no_others():
    weight = torch.nn.Parameter(torch.randn(10, 4))
    before = weight.detach().clone()
    opt = RowwiseAdagrad([weight], lr=0.1, eps=1e-8)
    ids = torch.tensor([1, 3, 3, 7])
    grads = [torch.randn(4, 4), torch.randn(4, 4)]
    expected, acc = before.clone(), torch.zeros(10)
    for grad in grads:  # the rule, written out densely: per-row sum of gradients, mean square accumulates
        dense = torch.zeros(10, 4).index_add_(0, ids, grad)
        touched = dense.abs().sum(1) > 0
        acc = acc + torch.where(touched, dense.square().mean(1), 0.0)
        expected -= torch.where(touched[:, None], 0.1 * dense / (acc.sqrt()[:, None] + 1e-8), 0.0)
        weight.grad = torch.sparse_coo_tensor(
            ids[None], grad, (10, 4), check_invariants=False
        )  # uncoalesced, as nn.Embedding's
        opt.step()
    torch.testing.assert_close(weight.detach(), expected)
    untouched = [r for r in range(10) if r not in (1, 3, 7)]
    assert torch.equal(weight.detach()[untouched], before[untouched])
    assert torch.equal(opt.state[weight]["sum"][untouched], torch.zeros(len(untouched)))
    # the fused entry point (ids with repeats, per-lookup gradients) applies the same rule
    fused_weight = torch.nn.Parameter(before.clone())
    fused = RowwiseAdagrad([fused_weight], lr=0.1, eps=1e-8)
    for grad in grads:
        fused.update_rows(fused_weight, ids, grad)
    torch.testing.assert_close(fused_weight.detach(), expected)


def train(model: torch.nn.Module, data: list[dict[str, torch.Tensor]]) -> list[torch.optim.Optimizer]:
    opts = optimizers(model, lr=0.05)
    for batch in data:
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        bce(model(batch), batch["label"]).backward()
        for opt in opts:
            opt.step()
    return opts


def dlrm(**kw) -> DLRM:
    torch.manual_seed(0)
    return DLRM(
        inputs(), embedding_dim=4, bottom_mlp=[8], top_mlp=[8], embedding_optimizer="rowwise_adagrad", **kw
    )


def test_the_fused_update_equals_the_unfused_one_and_makes_no_gradient():
    data = batches(6)
    unfused, fused = dlrm(), dlrm(fused_embedding_update=True)
    train(unfused, data)
    opts = train(fused, data)
    assert fused.tables.embedding.weight.grad is None  # updated in backward, no sparse gradient made
    for (name, a), b in zip(unfused.state_dict().items(), fused.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(dlrm().parameters(), fused.parameters(), strict=True))
    # the state a checkpoint saves holds the accumulators; evaluation lookups are plain
    saved = opts[1].state_dict()
    assert saved["state"][0]["sum"].shape == (7 + 5 + 9,)
    fused.eval()
    with torch.no_grad():
        assert fused(data[0]).shape == (16,)
    pickle.loads(pickle.dumps(fused))  # MLflow pickles the model: the optimiser is not carried


def test_the_learning_rate_schedule_reaches_the_fused_update():
    model = dlrm(fused_embedding_update=True)
    before = model.tables.embedding.weight.detach().clone()
    opts = optimizers(model, lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opts[1], lambda step: 0.0)  # warm-up's first factor
    batch = batches(1)[0]
    bce(model(batch), batch["label"]).backward()
    assert scheduler.get_last_lr() == [0.0]
    assert torch.equal(model.tables.embedding.weight.detach(), before)


def test_the_embedding_optimiser_is_a_per_model_choice():
    assert [type(o).__name__ for o in optimizers(DLRM(inputs()), 0.01)] == ["Adam", "SparseAdam"]
    scaled = dlrm(embedding_lr_scale=4.0)
    chosen = optimizers(scaled, 0.01)
    assert [type(o).__name__ for o in chosen] == ["Adam", "RowwiseAdagrad"]
    assert chosen[1].param_groups[0]["lr"] == pytest.approx(0.04)
    with pytest.raises(ValueError, match=r"model.embedding_optimizer: expected one of .*got 'adagrad'"):
        optimizers(DLRM(inputs(), embedding_optimizer="adagrad"), 0.01)
