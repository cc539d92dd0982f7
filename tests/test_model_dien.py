"""DIEN's contract: shapes, padding that changes nothing, the AUGRU cell, the auxiliary loss, and the input
checks that name `model.inputs.<key>`."""

import pytest
import torch

from bluewhale.model.dien import AUGRU, DIEN
from bluewhale.model.inputs import Input
from bluewhale.train.optim import optimizers


def inputs(items=(50, 6), history=None, user=(30,), tasks: int = 1) -> dict[str, Input]:
    history = items if history is None else history
    spec = {
        "label": Input(tuple(f"y{t}" for t in range(tasks)), "label"),
        "item": Input(("asin", "category")[: len(items)], "int", tuple(items)),
        "history": Input(("hist_asin", "hist_category")[: len(history)], "list", tuple(history)),
    }
    if user:
        spec["user"] = Input(("reviewerID",), "int", tuple(user))
    return spec


def batch(lengths: list[int], pad_to: int | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Rows with histories of `lengths`, padded with zeros to `pad_to` (default: the longest)."""
    g = torch.Generator().manual_seed(seed)
    size = pad_to or max(max(lengths), 1)
    b = len(lengths)
    hist = torch.stack(
        [torch.randint(1, 50, (b, size), generator=g), torch.randint(1, 6, (b, size), generator=g)], 1
    )
    lengths_t = torch.tensor(lengths)
    hist = hist * (torch.arange(size) < lengths_t[:, None])[:, None]
    return {
        "label": torch.randint(0, 2, (b,), generator=g).float(),
        "item": torch.stack(
            [torch.randint(1, 50, (b,), generator=g), torch.randint(1, 6, (b,), generator=g)], 1
        ),
        "history": hist,
        "history_lengths": lengths_t[:, None].repeat(1, 2),
        "user": torch.randint(1, 30, (b, 1), generator=g),
    }


def model(**kwargs) -> DIEN:
    torch.manual_seed(0)
    kwargs = {"embedding_dim": 4, "mlp": [8], "aux_mlp": [8], "activation": "prelu"} | kwargs
    return DIEN(inputs(), **kwargs).eval()


def test_scores_a_batch_with_empty_and_full_histories():
    dien = model()
    logits = dien(batch([0, 1, 3, 7, 2]))
    assert logits.shape == (5,)
    assert torch.isfinite(logits).all()
    several = DIEN(inputs(tasks=3), embedding_dim=4, mlp=[8], aux_mlp=[8])
    assert several.eval()(batch([2, 0])).shape == (2, 3)


def test_padding_and_the_other_rows_change_no_score():
    """A row's score depends on its own real steps only: not on how far it is padded (the connector pads to
    the split's longest list) nor on which rows share its batch (rows are sorted by length inside)."""
    dien = model()
    short = batch([3, 0, 5])
    padded = {k: v.clone() for k, v in short.items()}
    padded["history"] = torch.nn.functional.pad(short["history"], (0, 9))
    with torch.no_grad():
        assert torch.allclose(dien(short), dien(padded), atol=1e-6)
        alone = dien({k: v[2:3] for k, v in short.items()})
        assert torch.allclose(dien(short)[2:3], alone, atol=1e-6)


def test_the_history_moves_the_score():
    dien = model()
    b = batch([4, 4])
    other = {k: v.clone() for k, v in b.items()}
    other["history"][:, 0, :4] = torch.tensor([[9, 8, 7, 6], [1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(dien(b), dien(other))


def test_augru_is_a_gru_under_full_attention_and_holds_still_under_none():
    """With attention 1 at every step the AUGRU is a GRU (PyTorch's GRU writes the update gate as 1 - u:
    flip the sign of the update rows); with attention 0 the state never leaves zero; padded steps
    (beyond a row's length) do not move it."""
    torch.manual_seed(0)
    cell = AUGRU(3, 4)
    gru = torch.nn.GRU(3, 4, batch_first=True)
    flip = torch.ones(12, 1)
    flip[4:8] = -1  # PyTorch's gate order is r, z, n, as the AUGRU's r, u, candidate
    with torch.no_grad():
        gru.weight_ih_l0.copy_(cell.from_input.weight * flip)
        gru.bias_ih_l0.copy_(cell.from_input.bias * flip.squeeze(1))
        gru.weight_hh_l0.copy_(cell.from_hidden.weight * flip)
        gru.bias_hh_l0.copy_(cell.from_hidden.bias * flip.squeeze(1))
    x = torch.randn(3, 5, 3)
    lengths = torch.tensor([5, 2, 0])
    with torch.no_grad():
        final = cell(x, torch.ones(3, 5), lengths)
        assert torch.allclose(final[0], gru(x[:1])[1][0, 0], atol=1e-5)
        assert torch.allclose(final[1], gru(x[1:2, :2])[1][0, 0], atol=1e-5)
        assert torch.equal(final[2], torch.zeros(4))
        assert torch.equal(cell(x, torch.zeros(3, 5), lengths), torch.zeros(3, 4))


def test_training_loss_adds_the_weighted_auxiliary_loss_and_trains_the_extractor_through_it():
    dien = model().train()
    b = batch([3, 5, 0, 6])
    torch.manual_seed(1)
    logits, aux = dien.score(b, auxiliary=True)
    assert aux.item() > 0
    main = torch.nn.functional.binary_cross_entropy_with_logits(logits, b["label"])
    torch.manual_seed(1)
    assert torch.allclose(dien.training_loss(b), main + aux, atol=1e-6)
    # the auxiliary loss alone reaches the interest extractor GRU and the auxiliary net
    aux.backward()
    assert dien.extractor.weight_ih_l0.grad.abs().sum() > 0
    assert dien.auxiliary[0].weight.grad.abs().sum() > 0
    # without any next behaviour (histories of length <= 1) it is zero
    assert dien.score(batch([1, 0, 1]), auxiliary=True)[1].item() == 0
    off = model(aux_weight=0.0).train()
    assert torch.allclose(
        off.training_loss(b),
        torch.nn.functional.binary_cross_entropy_with_logits(off(b), b["label"]),
        atol=1e-6,
    )


def test_item_and_history_share_a_table_and_update_only_the_rows_used():
    dien = model()
    b = batch([2, 1])
    dien.train()
    loss = dien.training_loss(b)
    loss.backward()
    grad = dien.items.embedding.weight.grad
    assert grad.is_sparse
    grad = grad.coalesce()
    moved = grad.values().abs().sum(1) > 0  # padding (id 0) may be listed, with a zero gradient
    rows = set(grad.indices()[0][moved].tolist())
    items = set(b["item"][:, 0].tolist()) | {
        i for row, n in zip(b["history"][:, 0], [2, 1], strict=False) for i in row[:n].tolist()
    }
    categories = {50 + c for c in b["item"][:, 1].tolist()} | {
        50 + c for row, n in zip(b["history"][:, 1], [2, 1], strict=False) for c in row[:n].tolist()
    }
    assert rows == items | categories  # asin and hist_asin in rows 0..49, the categories after them
    assert sorted(type(o).__name__ for o in optimizers(dien, 0.01)) == ["Adam", "SparseAdam"]


def test_dice_or_prelu_and_without_user():
    dice = DIEN(inputs(user=()), embedding_dim=4, mlp=[8, 4], aux_mlp=[4], activation="dice")
    assert dice.users is None
    b = batch([1, 2, 3])
    del b["user"]
    dice.train()
    dice.training_loss(b).backward()
    assert dice.eval()(b).shape == (3,)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"item": None}, "model.inputs.item: missing"),
        ({"history": None}, "model.inputs.history: missing"),
        ({"history": Input(("hist_asin",), "list", (50,))}, "model.inputs.history: 1 history columns"),
        ({"history": Input(("asin", "category"), "int", (50, 6))}, "model.inputs.history: expected"),
        ({"item": Input(("hist_asin", "hist_category"), "list", (50, 6))}, "model.inputs.item: expected"),
        ({"history": Input(("hist_asin", "hist_category"), "list", (40, 6))}, "one vocabulary"),
        ({"user": Input(("u",), "float")}, "model.inputs.user"),
    ],
)
def test_inputs_that_do_not_fit_fail_naming_the_key(spec, message):
    given = inputs() | {k: v for k, v in spec.items() if v is not None}
    given = {k: v for k, v in given.items() if not (k in spec and spec[k] is None)}
    with pytest.raises(ValueError, match=message):
        DIEN(given)


def test_bad_settings_fail_naming_the_key():
    with pytest.raises(ValueError, match="model.activation"):
        DIEN(inputs(), activation="relu")
    with pytest.raises(ValueError, match="model.aux_weight"):
        DIEN(inputs(), aux_weight=-1)
