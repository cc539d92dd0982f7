"""Wide & Deep: shapes, the hashed crosses, the checks on `model.crosses`, its optimisers and FTRL."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from bluewhale.model.inputs import Input
from bluewhale.model.wnd import FTRL, WideAndDeep, cross_hash, mix32
from bluewhale.train.trainer import bce


def inputs(cardinalities=(5, 7, 3), dense=2, tasks=1, extra=None) -> dict[str, Input]:
    out = {
        "label": Input(tuple(f"y{t}" for t in range(tasks)), "label"),
        "sparse": Input(tuple(f"c{i}" for i in range(len(cardinalities))), "int", tuple(cardinalities)),
        "dense": Input(tuple(f"x{i}" for i in range(dense)), "float"),
    }
    return out | (extra or {})


def batch(n=6, cardinalities=(5, 7, 3), dense=2, seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "sparse": torch.stack([torch.randint(0, c, (n,), generator=g) for c in cardinalities], 1),
        "dense": torch.randn(n, dense, generator=g),
        "label": torch.randint(0, 2, (n,), generator=g).float(),
    }


def test_one_logit_per_row_or_per_task_and_each_part_alone():
    b = batch()
    assert WideAndDeep(inputs(), crosses=[["c0", "c1"]], cross_buckets=64)(b).shape == (6,)
    assert WideAndDeep(inputs(tasks=3), embedding_dim=4, deep_mlp=[8])(b).shape == (6, 3)
    deep_only = WideAndDeep(inputs(), wide=False, deep_mlp=[8])
    assert deep_only.wide is None and deep_only(b).shape == (6,)
    wide_only = WideAndDeep(inputs(tasks=2), crosses=[["c0", "c2"]], deep=False, cross_buckets=16)
    assert wide_only.deep is None and wide_only(b).shape == (6, 2)
    assert wide_only.wide.weight.shape == (5 + 7 + 3 + 16, 2)  # each task its own wide weights
    no_dense = WideAndDeep(inputs(dense=0), deep_mlp=[8])  # Outbrain has no dense group
    assert no_dense({k: v for k, v in b.items() if k != "dense"} | {"dense": torch.zeros(6, 0)}).shape == (6,)
    with pytest.raises(ValueError, match="model.wide, model.deep"):
        WideAndDeep(inputs(), wide=False, deep=False)


def test_the_wide_part_sums_one_weight_per_id_and_per_cross_bucket_and_touches_only_those():
    model = WideAndDeep(inputs(), crosses=[["c0", "c1"]], cross_buckets=1000, deep=False)
    with torch.no_grad():
        model.wide.weight.copy_(torch.randn_like(model.wide.weight))
    b = batch()
    rows = model.wide_rows(b)
    assert rows.shape == (6, 3 + 1)
    ids = b["sparse"] + torch.tensor([0, 5, 12])  # each column's table starts after the previous one's
    assert torch.equal(rows[:, :3], ids)
    assert torch.equal(rows[:, 3], 15 + cross_hash(b["sparse"][:, :2], 0, 1000))
    expected = model.wide.weight[rows].sum(1).squeeze(1) + model.bias
    assert torch.allclose(model(b), expected)
    bce(model(b), b["label"]).backward()
    grad = model.wide.weight.grad
    assert grad.is_sparse and set(grad.coalesce().indices()[0].tolist()) == set(rows.flatten().tolist())


def test_cross_hash_is_a_function_of_the_ids_spread_over_the_buckets():
    a, b = torch.meshgrid(torch.arange(25), torch.arange(300), indexing="ij")
    pairs = torch.stack([a.flatten(), b.flatten()], 1)  # 7500 distinct pairs
    buckets = cross_hash(pairs, 0, 2**17)
    assert buckets.min() >= 0 and buckets.max() < 2**17
    assert torch.equal(buckets, cross_hash(pairs.clone(), 0, 2**17))  # the same pair, the same bucket
    assert torch.equal(buckets[:10], torch.cat([cross_hash(pairs[i : i + 1], 0, 2**17) for i in range(10)]))
    # 7500 pairs in 131072 buckets: about 7500 * 7499 / 2 / 131072 = 215 colliding pairs expected
    assert len(pairs) - len(buckets.unique()) < 300
    assert not torch.equal(buckets, cross_hash(pairs.flip(1), 0, 2**17))  # (a, b) is not (b, a)
    assert (buckets != cross_hash(pairs, 1, 2**17)).float().mean() > 0.99  # another cross, other buckets
    # large ids (64-bit) stay inside int64 and in range
    big = torch.tensor([[2**40 + 3, 2**62], [-1, 7]])
    assert ((cross_hash(big, 0, 97) >= 0) & (cross_hash(big, 0, 97) < 97)).all()
    assert mix32(torch.tensor(0)).item() == 0 and mix32(torch.tensor(1)).item() != 1


def test_a_cross_naming_an_unknown_column_fails_naming_its_key():
    with pytest.raises(ValueError, match=r"model\.crosses\[1\]: \['nope'\] is not among the id columns"):
        WideAndDeep(inputs(), crosses=[["c0", "c1"], ["c2", "nope"]])
    with pytest.raises(ValueError, match=r"model\.crosses\[0\]: \['x0'\]"):  # a float column is no id
        WideAndDeep(inputs(), crosses=[["c0", "x0"]])
    with pytest.raises(ValueError, match=r"model\.crosses\[0\]: expected a list of two or more"):
        WideAndDeep(inputs(), crosses=[["c0"]])
    with pytest.raises(ValueError, match=r"model\.crosses\[0\]: .* names a column twice"):
        WideAndDeep(inputs(), crosses=[["c0", "c0"]])
    with pytest.raises(ValueError, match=r"model\.crosses: expected a list of crosses"):
        WideAndDeep(inputs(), crosses="c0")
    # a column of another id input may be crossed
    hour = {"hour": Input(("hour",), "int", (24,))}
    model = WideAndDeep(inputs(extra=hour), crosses=[["hour", "c1"]], cross_buckets=32)
    assert model(batch() | {"hour": torch.arange(6)[:, None]}).shape == (6,)


def test_check_config_catches_a_bad_cross_before_processing_from_the_planned_groups():
    groups = {"label": ["clicked"], "sparse": ["geo_state", "advertiser_id"], "time": ["timestamp_hour"]}
    model = OmegaConf.create(
        {
            "inputs": {"label": "label", "sparse": "sparse", "hour": ["timestamp_hour"]},
            "crosses": [["geo_state", "advertiser_id"], ["timestamp_hour", "geo_city"]],
        }
    )
    with pytest.raises(ValueError, match=r"model\.crosses\[1\]: \['geo_city'\]"):
        WideAndDeep.check_config(model, groups)
    model.crosses = [["geo_state", "advertiser_id"], ["timestamp_hour", "geo_state"]]
    WideAndDeep.check_config(model, groups)


def test_lists_are_refused_and_bad_settings_name_their_key():
    lists = {"hist": Input(("h",), "list", (9,))}
    with pytest.raises(ValueError, match=r"model.inputs: \['hist'\] hold lists"):
        WideAndDeep(inputs(extra=lists))
    with pytest.raises(ValueError, match="model.wide_optimizer"):
        WideAndDeep(inputs(), wide_optimizer="sgd")
    with pytest.raises(ValueError, match="model.cross_buckets"):
        WideAndDeep(inputs(), cross_buckets=0)


def test_optimisers_sparse_ftrl_or_adagrad_for_the_wide_part_adam_for_the_deep_part():
    model = WideAndDeep(inputs(), crosses=[["c0", "c1"]], wide_lr=0.3, wide_l1=0.01)
    opts = model.optimizers(0.002)
    assert [type(o).__name__ for o in opts] == ["Adam", "SparseAdam", "FTRL"]
    assert opts[2].param_groups[0]["lr"] == 0.3 and opts[2].param_groups[0]["l1"] == 0.01
    assert opts[0].param_groups[0]["lr"] == 0.002
    params = [p for o in opts for g in o.param_groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params}) == len(list(model.parameters()))
    adagrad = WideAndDeep(inputs(), wide_optimizer="adagrad").optimizers(0.002)
    assert [type(o).__name__ for o in adagrad] == ["Adam", "SparseAdam", "Adagrad"]
    assert [type(o).__name__ for o in WideAndDeep(inputs(), wide=False).optimizers(0.1)] == [
        "Adam",
        "SparseAdam",
    ]
    b = batch()
    for o in opts:  # a joint step works with sparse gradients
        o.zero_grad()
    bce(model(b), b["label"]).backward()
    for o in opts:
        o.step()


def ftrl_by_hand(grads, alpha, beta, l1, l2):
    """McMahan et al. (2013), Algorithm 1, one coordinate at a time, in plain Python."""
    size = len(grads[0])
    z, n, w = [0.0] * size, [0.0] * size, [0.0] * size
    for g in grads:
        for i in range(size):
            if g[i] is None:  # not in this step's gradient
                continue
            sigma = (math.sqrt(n[i] + g[i] ** 2) - math.sqrt(n[i])) / alpha
            z[i] += g[i] - sigma * w[i]
            n[i] += g[i] ** 2
            if abs(z[i]) <= l1:
                w[i] = 0.0
            else:
                w[i] = -(z[i] - math.copysign(l1, z[i])) / ((beta + math.sqrt(n[i])) / alpha + l2)
    return w


@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.05, 0.1)])
def test_ftrl_on_sparse_gradients_is_algorithm_1_of_the_paper(l1, l2):
    grads = [
        [0.5, None, -0.2, None],
        [0.1, 0.3, None, None],
        [-0.4, 0.3, 0.05, None],
        [0.2, None, -0.6, None],
    ]
    weight = torch.zeros(4, 1, dtype=torch.float64, requires_grad=True)
    opt = FTRL([weight], lr=0.1, beta=1.0, l1=l1, l2=l2)
    for g in grads:
        rows = [i for i, v in enumerate(g) if v is not None]
        weight.grad = torch.sparse_coo_tensor(
            [rows + rows[:1]],  # a repeated row (as embedding gradients have): its values add up
            [[g[i]] for i in rows] + [[0.0]],
            (4, 1),
            dtype=torch.float64,
            check_invariants=True,
        )
        opt.step()
    expected = ftrl_by_hand(grads, 0.1, 1.0, l1, l2)
    assert torch.allclose(weight.detach().squeeze(1), torch.tensor(expected, dtype=torch.float64))
    assert weight[3].item() == 0.0  # never in a gradient: untouched
    dense = torch.zeros(4, 1, dtype=torch.float64, requires_grad=True)
    dense_opt = FTRL([dense], lr=0.1, beta=1.0, l1=l1, l2=l2)
    for g in grads:  # a dense gradient updates every coordinate (absent ones with g = 0)
        dense.grad = torch.tensor([[0.0 if v is None else v] for v in g], dtype=torch.float64)
        dense_opt.step()
    expected = ftrl_by_hand([[0.0 if v is None else v for v in g] for g in grads], 0.1, 1.0, l1, l2)
    assert torch.allclose(dense.detach().squeeze(1), torch.tensor(expected, dtype=torch.float64))


def test_ftrl_without_l1_l2_or_beta_is_adagrad():
    """With l1 = l2 = beta = 0, FTRL-proximal's closed form reduces to Adagrad's step (w -= lr g / sqrt(n)),
    so the two differ only by FTRL's regularisation."""
    ftrl_w = torch.zeros(5, 2, dtype=torch.float64, requires_grad=True)
    adagrad_w = torch.zeros(5, 2, dtype=torch.float64, requires_grad=True)
    ftrl, adagrad = FTRL([ftrl_w], lr=0.3), torch.optim.Adagrad([adagrad_w], lr=0.3, eps=0.0)
    g = torch.Generator().manual_seed(0)
    for step in range(6):
        rows = torch.randint(0, 5, (3,), generator=g)
        values = torch.randn(3, 2, generator=g, dtype=torch.float64)
        for w in (ftrl_w, adagrad_w):
            w.grad = torch.sparse_coo_tensor(rows[None], values, (5, 2), check_invariants=True)
        ftrl.step()
        adagrad.step()
        assert torch.allclose(ftrl_w, adagrad_w), step


def test_ftrl_l1_makes_exact_zeros_and_a_changed_rate_keeps_learnt_weights():
    weight = torch.zeros(3, 1, requires_grad=True)
    opt = FTRL([weight], lr=0.5, l1=0.3, beta=0.0)
    weight.grad = torch.tensor([[0.2], [-1.0], [0.25]])
    opt.step()
    assert weight[0].item() == 0.0 and weight[2].item() == 0.0 and weight[1].item() > 0
    learnt = weight.detach().clone()
    weight.grad = torch.zeros(3, 1)
    opt.param_groups[0]["lr"] = 0.05  # e.g. a cosine schedule: the step shrinks, the weights stay
    opt.step()
    plain = torch.zeros(1, 1, requires_grad=True)  # without L1: exactly the same weight
    plain_opt = FTRL([plain], lr=0.5, beta=0.0)
    plain.grad = torch.tensor([[-1.0]])
    plain_opt.step()
    before = plain.item()
    plain_opt.param_groups[0]["lr"] = 0.05
    plain.grad = torch.zeros(1, 1)
    plain_opt.step()
    assert plain.item() == pytest.approx(before)
    assert weight[1].item() == pytest.approx(learnt[1].item(), rel=0.2)
    untouched = torch.zeros(2, 1, requires_grad=True)  # a dense zero gradient with beta = 0: no 0 / 0
    untouched.grad = torch.zeros(2, 1)
    FTRL([untouched], lr=0.1).step()
    assert torch.equal(untouched.detach(), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="FTRL"):
        FTRL([weight], lr=0.0)


def planted_cross(n: int, seed: int = 0):
    """Labels from a +-2 effect of the pair (c0, c1) with no effect of either alone (a checkerboard)."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(1, 9, (n,), generator=g), torch.randint(1, 9, (n,), generator=g)
    effect = 2.0 * (((a + b) % 2) * 2 - 1).float()
    label = (torch.rand(n, generator=g) < torch.sigmoid(effect)).float()
    return {"sparse": torch.stack([a, b], 1), "dense": torch.zeros(n, 0), "label": label}


def train(model, data, steps=150, size=256, lr=0.01):
    opts = model.optimizers(lr)
    torch.manual_seed(0)
    for _ in range(steps):
        rows = torch.randint(0, len(data["label"]), (size,))
        b = {k: v[rows] for k, v in data.items()}
        for o in opts:
            o.zero_grad()
        bce(model(b), b["label"]).backward()
        for o in opts:
            o.step()
    return model


def test_the_wide_part_learns_a_declared_cross_a_linear_model_without_it_cannot():
    torch.manual_seed(0)
    data, test = planted_cross(4000), planted_cross(2000, seed=1)
    card = (9, 9)
    ins = inputs(card, dense=0)
    crossed = train(
        WideAndDeep(ins, crosses=[["c0", "c1"]], cross_buckets=256, deep=False, wide_lr=0.5), data
    )
    plain = train(WideAndDeep(ins, deep=False, wide_lr=0.5), data)
    with torch.no_grad():
        loss_crossed, loss_plain = bce(crossed(test), test["label"]), bce(plain(test), test["label"])
    best = -(torch.sigmoid(torch.tensor(2.0)) * math.log(torch.sigmoid(torch.tensor(2.0)).item())).item()
    best += -(torch.sigmoid(torch.tensor(-2.0)) * math.log(torch.sigmoid(torch.tensor(-2.0)).item())).item()
    assert loss_plain > 0.68  # no better than a coin: neither column alone says anything
    assert loss_crossed < best + 0.01  # the planted pair effect: about the entropy of sigmoid(2)
