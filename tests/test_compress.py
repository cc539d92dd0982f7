"""Compression techniques on real models: each shrinks what it says and the compressed model still computes
(nearly) what the original did; refused combinations fail naming the key."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from bluewhale.compress import embeddings, measure, prune, quantize, techniques
from bluewhale.compress.distill import Distilled
from bluewhale.model.dien import DIEN
from bluewhale.model.dlrm import DLRM
from bluewhale.model.inputs import Input
from bluewhale.model.wnd import WideAndDeep
from bluewhale.train.trainer import fit, predict

B = 256


def dlrm_inputs(rows: int = 5000) -> dict[str, Input]:
    return {
        "label": Input(("label",), "label"),
        "dense": Input(tuple(f"I{i}" for i in range(4)), "float"),
        "sparse": Input(("C1", "C2", "C3"), "int", (rows, 40, 7)),
    }


def dlrm_batches(n: int, seed: int = 0, rows: int = 5000) -> list[dict[str, torch.Tensor]]:
    """A planted click model: the label depends on the first dense value and on C2's parity."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        dense = torch.randn(B, 4, generator=g)
        sparse = torch.stack(
            [
                torch.randint(0, rows, (B,), generator=g),
                torch.randint(0, 40, (B,), generator=g),
                torch.randint(0, 7, (B,), generator=g),
            ],
            1,
        )
        p = torch.sigmoid(2 * dense[:, 0] + 2 * (sparse[:, 1] % 2) - 1)
        out.append({"dense": dense, "sparse": sparse, "label": torch.bernoulli(p, generator=g)})
    return out


def dien_model_and_batch():
    inputs = {
        "label": Input(("label",), "label"),
        "item": Input(("asin", "category"), "int", (300, 12)),
        "history": Input(("hist_asin", "hist_category"), "list", (300, 12)),
        "user": Input(("user",), "int", (50,)),
    }
    torch.manual_seed(0)
    model = DIEN(inputs, embedding_dim=8, mlp=(32, 16), aux_mlp=(16,))
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(0, 6, (64,), generator=g)
    batch = {
        "item": torch.stack(
            [torch.randint(0, 300, (64,), generator=g), torch.randint(0, 12, (64,), generator=g)], 1
        ),
        "history": torch.stack(
            [torch.randint(0, 300, (64, 6), generator=g), torch.randint(0, 12, (64, 6), generator=g)], 1
        ),
        "history_lengths": torch.stack([lengths, lengths], 1),
        "user": torch.randint(0, 50, (64, 1), generator=g),
        "label": torch.randint(0, 2, (64,), generator=g).float(),
    }
    return model, batch


def trained_dlrm() -> tuple[DLRM, list]:
    torch.manual_seed(0)
    model = DLRM(dlrm_inputs(), embedding_dim=8, bottom_mlp=(32, 16), top_mlp=(64, 32))
    batches = dlrm_batches(24)
    fit(model, batches, 2, 0.01, progress=False)
    return model.eval(), batches


@pytest.fixture(scope="module")
def dlrm():
    return trained_dlrm()


def test_structured_pruning_removes_dead_neurons_exactly_and_shrinks_the_layers(dlrm):
    model, batches = copy.deepcopy(dlrm[0]), dlrm[1]
    with torch.no_grad():  # kill half of each hidden layer's neurons: removing them must change nothing
        for seq in (model.bottom, model.top):
            for i, _ in prune.prunable_pairs(seq):
                dead = torch.arange(seq[i].out_features)[::2]
                seq[i].weight[dead] = 0
                seq[i].bias[dead] = -1.0  # ReLU(-1) = 0: these neurons never fire
    before = predict(model, batches[:3])[0]
    pruned = copy.deepcopy(model)
    widths = prune.prune_neurons(pruned, 0.5, "compression.prune")
    assert widths == {"bottom.0": 16, "bottom.2": 8, "top.0": 32, "top.2": 16}
    assert pruned.top[0].out_features == 32 and pruned.top[2].in_features == 32
    np.testing.assert_allclose(predict(pruned, batches[:3])[0], before, atol=1e-6)
    assert measure.parameter_count(pruned) < measure.parameter_count(model)
    assert measure.disk_bytes(pruned) < measure.disk_bytes(model)


def test_structured_pruning_handles_dice_and_refuses_a_model_without_mlps():
    model, batch = dien_model_and_batch()
    model.eval()
    prune.prune_neurons(model, 0.5, "compression.prune")
    assert model.mlp[0].out_features == 16 and model.mlp[1].alpha.shape == (16,)
    assert model(batch).shape == (64,)
    with pytest.raises(ValueError, match="compression.prune: Embedding has no MLP hidden layer"):
        prune.prune_neurons(nn.Embedding(10, 4), 0.5, "compression.prune")
    with pytest.raises(ValueError, match=r"compression.prune.amount: expected a fraction in \(0, 1\)"):
        prune.prune_neurons(model, 1.5, "compression.prune")


def test_int8_and_fp16_rows_look_up_within_their_step_and_cut_table_memory(dlrm):
    model = dlrm[0]
    table = model.tables.embedding.weight.detach()
    for bits, ratio in ((8, 2.6), (16, 1.99)):
        small = embeddings.quantize_tables(copy.deepcopy(model), bits, "compression.x")
        q = small.tables.embedding
        assert isinstance(q, embeddings.QuantizedEmbedding)
        ids = torch.arange(len(table))
        step = ((table.amax(1) - table.amin(1)) / 255).unsqueeze(1) if bits == 8 else 0.0
        fp16 = 2e-3 * table.abs().amax(1, keepdim=True)  # scale and offset (or the rows) held as fp16
        assert ((q(ids) - table).abs() <= step * 0.51 + fp16).all()
        assert table.numel() * 4 / measure.memory_bytes(q) > ratio
        assert small(dlrm[1][0]).shape == (B,)


def test_quotient_remainder_tables_start_at_the_bucket_mean_and_are_smaller(dlrm):
    model = copy.deepcopy(dlrm[0])
    table = model.tables.embedding.weight.detach().clone()
    embeddings.qr_tables(model, 8, 1000, "compression.qr_embeddings")
    qr = model.tables.embedding
    assert isinstance(qr, embeddings.QREmbedding) and qr.quotient.num_embeddings == -(-len(table) // 8)
    np.testing.assert_allclose(
        qr(torch.tensor([16, 17, 23])).detach(), table[16:24].mean(0).expand(3, -1), atol=1e-6
    )
    assert measure.memory_bytes(qr) < measure.memory_bytes(nn.Embedding(*table.shape)) / 7
    with pytest.raises(
        ValueError, match="compression.qr_embeddings.min_rows: DLRM has no embedding table of"
    ):
        embeddings.qr_tables(copy.deepcopy(dlrm[0]), 8, 10**9, "compression.qr_embeddings")
    with pytest.raises(
        ValueError, match="compression.x: WideAndDeep has no embedding table"
    ):  # wide part only
        inputs = {"label": Input(("label",), "label"), "sparse": Input(("C1",), "int", (100,))}
        embeddings.quantize_tables(WideAndDeep(inputs, deep=False), 8, "compression.x")


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_int8_mlps_compute_nearly_what_fp32_does(dlrm, mode):
    model, batches = dlrm
    if mode == "dynamic":
        small = quantize.dynamic_int8(copy.deepcopy(model), "compression.int8")
    else:
        small = quantize.static_int8(copy.deepcopy(model), batches, 10, "compression.int8")
    assert measure.memory_bytes(small) < measure.memory_bytes(model)
    ref, got = predict(model, batches[:4])[0], predict(small, batches[:4])[0]
    assert np.corrcoef(ref, got)[0, 1] > 0.99 and np.abs(ref - got).max() < (
        0.05 if mode == "dynamic" else 0.1
    )


def test_dien_takes_dynamic_int8_including_its_gru_and_refuses_static():
    model, batch = dien_model_and_batch()
    model.eval()
    small = quantize.dynamic_int8(copy.deepcopy(model), "compression.int8")
    assert "DynamicQuantized" in type(small.extractor).__module__ + type(small.extractor).__name__ or hasattr(
        small.extractor, "_all_weight_values"
    )
    with torch.no_grad():
        ref, got = torch.sigmoid(model(batch)), torch.sigmoid(small(batch))
    assert (ref - got).abs().max() < 0.05
    with pytest.raises(
        ValueError, match="compression.int8.mode=static: DIEN has no MLP made of Linear and ReLU"
    ):
        quantize.static_int8(copy.deepcopy(model), [batch], 1, "compression.int8")


def test_gradual_magnitude_pruning_follows_its_schedule_while_training():
    torch.manual_seed(0)
    model = DLRM(dlrm_inputs(), embedding_dim=8, bottom_mlp=(32, 16), top_mlp=(64, 32))
    pruning = prune.MagnitudePruning(0.0, 0.75, start_step=5, end_step=25, every=5)
    seen = []

    class Watch(prune.Callback):
        def on_step_end(self, state, loss, batch_size):
            seen.append((state.step, prune.sparsity(state.model)))

    fit(model, dlrm_batches(20), 2, 0.01, progress=False, callbacks=[pruning, Watch()])
    by_step = dict(seen)
    assert by_step[4] < 0.01 and by_step[15] == pytest.approx(
        prune.cubic_sparsity(15, 0, 0.75, 5, 25), abs=0.02
    )
    assert prune.sparsity(model) == pytest.approx(0.75, abs=0.01)  # held to the end (Adam cannot revive)
    steps = [s for s, _ in seen]
    assert all(
        b >= a - 1e-9
        for a, b in zip([by_step[s] for s in steps], [by_step[s] for s in steps[1:]], strict=False)
    )


def test_a_distilled_student_learns_the_teacher(dlrm):
    teacher, batches = dlrm
    torch.manual_seed(1)
    student = DLRM(dlrm_inputs(), embedding_dim=4, bottom_mlp=(8,), top_mlp=(8,))
    untrained = predict(student, batches[:4])[0]
    fit(Distilled(student, teacher, alpha=0.0), batches, 2, 0.01, progress=False)
    ref, got = predict(teacher, batches[:4])[0], predict(student, batches[:4])[0]
    assert np.corrcoef(ref, got)[0, 1] > 0.9 > abs(np.corrcoef(ref, untrained)[0, 1])
    assert measure.parameter_count(student) < measure.parameter_count(teacher) / 1.8
    assert not any(p is q for p in student.parameters() for q in teacher.parameters())


def test_techniques_in_order_and_refused_combinations():
    assert techniques({"source": None, "prune": {}, "int8": {}}) == ["prune", "int8"]
    with pytest.raises(ValueError, match=r"compression: prune after int8: .* list prune first"):
        techniques({"int8": {}, "prune": {}})
    with pytest.raises(ValueError, match="int8_embeddings and fp16_embeddings both store the rows"):
        techniques({"int8_embeddings": {}, "fp16_embeddings": {}})
    with pytest.raises(ValueError, match="compression.shrink: unknown technique"):
        techniques({"shrink": {}})


def test_tables_trained_with_a_fused_row_update_still_compress_and_fine_tune():
    from bluewhale.compress import apply

    torch.manual_seed(0)
    model = DLRM(
        dlrm_inputs(), embedding_dim=8, embedding_optimizer="rowwise_adagrad", fused_embedding_update=True
    )
    batches = dlrm_batches(3)
    fit(model, batches, 1, 0.01, progress=False)

    class Job:
        lr, calibration, sample = 0.01, batches, batches[0]

        @staticmethod
        def fine_tune(m, epochs, lr, callbacks):
            return fit(m, batches, epochs, lr, progress=False, callbacks=callbacks)

    settings = {
        "qr_embeddings": {"collisions": 4, "min_rows": 100, "finetune_epochs": 1},
        "int8_embeddings": {},
    }
    small, done = apply(model, settings, Job)
    assert isinstance(small.tables.embedding.quotient, embeddings.QuantizedEmbedding)
    assert small(batches[0]).shape == (B,) and model(batches[0]).shape == (B,)  # the original still runs
