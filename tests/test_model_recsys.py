"""The RecSys 2021 multi-task model: shapes, masked pooling, the starting biases, its optimizers, and the
bad configs and bad data it refuses before any training."""

import math

import pyarrow as pa
import pytest
import torch
from hydra.utils import instantiate

from bluewhale.app import compose_experiment
from bluewhale.model.inputs import Input, resolve_inputs
from bluewhale.model.recsys import RecSysMultiTask
from bluewhale.pipeline import check_experiment
from bluewhale.train.optim import optimizers

INPUTS = {
    "label": Input(("reply", "retweet", "quote", "like"), "label"),
    "dense": Input(("followers", "following"), "float"),
    "sparse": Input(("tweet_type", "follows"), "int", (5, 3)),
    "user": Input(("engaging_user_id", "engaged_with_user_id"), "int", (50, 20)),
    "lists": Input(("hashtags", "present_media"), "list", (30, 4)),
}


def batch(b: int = 6, length: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, length + 1, (b, 2), generator=g)
    lists = torch.stack([torch.randint(1, 4, (b, length), generator=g)] * 2, 1)
    lists = lists * (torch.arange(length) < lengths.unsqueeze(-1))  # zero-padded after each length
    return {
        "label": (torch.rand(b, 4, generator=g) < 0.3).float(),
        "dense": torch.randn(b, 2, generator=g),
        "sparse": torch.stack([torch.randint(0, 5, (b,)), torch.randint(0, 3, (b,))], 1),
        "user": torch.stack([torch.randint(0, 50, (b,)), torch.randint(0, 20, (b,))], 1),
        "lists": lists,
        "lists_lengths": lengths,
    }


def model(**kw) -> RecSysMultiTask:
    torch.manual_seed(0)
    return RecSysMultiTask(INPUTS, **{"embedding_dim": 4, "bottom_mlp": [8], "tower_mlp": [4], **kw})


def test_scores_four_tasks_and_one_task_as_the_trainer_wants():
    assert model()(batch()).shape == (6, 4)
    one = {**INPUTS, "label": Input(("like",), "label")}
    assert RecSysMultiTask(one, embedding_dim=4, bottom_mlp=[8])(
        batch() | {"label": torch.zeros(6)}
    ).shape == (6,)


@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_padding_is_masked_out_of_the_pooled_lists(pooling):
    m = model(pooling=pooling).eval()
    b = batch()
    padded = b["lists"].clone()
    beyond = torch.arange(3) >= b["lists_lengths"].unsqueeze(-1)
    padded[beyond] = 2  # garbage where only padding may be
    longer = torch.cat([b["lists"], torch.zeros(6, 2, 5, dtype=torch.long)], 2)  # another split's L
    with torch.no_grad():
        assert torch.allclose(m(b), m(b | {"lists": padded}))
        assert torch.allclose(m(b), m(b | {"lists": longer}))


def test_mean_pooling_averages_and_sum_pooling_adds_the_items():
    m = model(pooling="mean")
    ids, lengths = torch.tensor([[[1, 2, 0], [3, 0, 0]]]), torch.tensor([[2, 1]])
    pooled, log_lengths = m.pool(ids, lengths)
    table = m.bags.embedding.weight
    assert torch.allclose(pooled[0, 0], (table[1] + table[2]) / 2)
    assert torch.allclose(pooled[0, 1], table[30 + 3])  # the second list's rows start after the first's
    assert torch.allclose(log_lengths, torch.log1p(lengths.float()))
    m.pooling = "sum"
    assert torch.allclose(m.pool(ids, lengths)[0][0, 0], table[1] + table[2])


def test_towers_start_at_their_tasks_positive_rates():
    m = model()
    b = batch(b=100)
    b["label"] = torch.zeros(100, 4)
    b["label"][:3, 0], b["label"][:40, 3] = 1, 1  # reply 3%, like 40%, retweet and quote never
    m.training_loss(b)
    biases = [tower[-1].bias.item() for tower in m.towers]
    assert biases[0] == pytest.approx(math.log(0.03 / 0.97), abs=1e-5)
    assert biases[3] == pytest.approx(math.log(0.4 / 0.6), abs=1e-5)
    assert biases[1] == pytest.approx(math.log(1e-3 / (1 - 1e-3)), abs=1e-4)  # clamped, not -inf
    m.training_loss(batch())  # only the first batch sets them
    assert [tower[-1].bias.item() for tower in m.towers] == biases


def test_training_loss_is_the_summed_task_bce_plus_the_embedding_penalty():
    b = batch()
    plain = model(l2=0.0, linear=False)
    with torch.no_grad():
        plain.bias_set.fill_(True)
        loss = plain.training_loss(b)
        per_task = torch.nn.functional.binary_cross_entropy_with_logits(
            plain(b), b["label"], reduction="none"
        )
        assert loss == pytest.approx(per_task.mean(0).sum().item(), rel=1e-5)
        penalised = model(l2=0.5, linear=False)
        penalised.bias_set.fill_(True)
        vectors = penalised.ids(torch.cat([b["sparse"], b["user"]], 1))
        expected = loss + 0.5 * vectors.square().sum((1, 2)).mean()
        assert penalised.training_loss(b) == pytest.approx(expected.item(), rel=1e-5)


def test_sparse_updates_touch_only_the_rows_used_at_their_own_learning_rates():
    m = model(linear=True, embedding_lr_scale=0.5, linear_lr_scale=10.0)
    b = batch()
    m.training_loss(b).backward()
    grad = m.ids.embedding.weight.grad
    assert grad.is_sparse
    ids = torch.cat([b["sparse"], b["user"]], 1) + m.ids.offsets
    assert set(grad.coalesce().indices()[0].tolist()) == set(ids.flatten().tolist())
    chosen = optimizers(m, lr=0.01)
    assert [(type(o).__name__, o.param_groups[0]["lr"]) for o in chosen] == [
        ("Adam", 0.01),
        ("SparseAdam", 0.005),
        ("SparseAdam", 0.1),
    ]
    params = [p for o in chosen for g in o.param_groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params}) == len(list(m.parameters()))


def test_the_linear_part_adds_one_weight_per_id_and_task():
    m = model(linear=True).eval()
    b = batch()
    with torch.no_grad():
        before = m(b)
        m.linear.embedding.weight[5 + 3 + 50 + b["user"][0, 1]] += torch.tensor([1.0, 0, 0, 2.0])
        shift = m(b) - before
    assert shift[0].tolist() == pytest.approx([1.0, 0.0, 0.0, 2.0], abs=1e-6)


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"pooling": "max"}, "model.pooling"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"bottom_mlp": []}, "model.bottom_mlp"),
        ({"l2": -1.0}, "model.l2"),
        ({"linear_lr_scale": 0.0}, "model.linear_lr_scale"),
    ],
)
def test_bad_settings_fail_naming_the_key(kw, key):
    with pytest.raises(ValueError, match=key):
        model(**kw)


def test_a_model_without_ids_fails_naming_its_inputs():
    with pytest.raises(ValueError, match="model.inputs: the RecSys model needs id columns"):
        RecSysMultiTask({"label": INPUTS["label"], "dense": INPUTS["dense"]})


def test_the_recipe_on_data_without_users_fails_before_any_work_naming_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose_experiment(["experiment=recsys_twitter", "dataset=criteo_kaggle", "recdp=criteo_dlrm"])
    with pytest.raises(ValueError, match=r"model.inputs.time: the pipeline makes no group or column 'time'"):
        check_experiment(cfg, instantiate(cfg.dataset.twin))
    assert not (tmp_path / "data").exists()  # nothing was generated or processed


def test_text_tokens_are_refused_until_the_pipeline_turns_them_into_ids():
    meta = {"groups": {"label": ["like"], "sequence": ["text_tokens"]}, "cardinalities": {}}
    schema = pa.schema([("like", pa.int8()), ("text_tokens", pa.list_(pa.int32()))])
    with pytest.raises(ValueError, match=r"model.inputs.text: columns \['text_tokens'\] hold integers"):
        resolve_inputs({"label": "label", "text": ["text_tokens"]}, meta, schema)
