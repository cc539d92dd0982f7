"""DLRM's shape contract and its sparse embedding updates."""

import pytest
import torch

from bluewhale.model.dlrm import DLRM
from bluewhale.model.inputs import Input
from bluewhale.train.optim import optimizers


def inputs(dense: int, cardinalities: list[int], tasks: int = 1) -> dict[str, Input]:
    return {
        "label": Input(tuple(f"y{t}" for t in range(tasks)), "label"),
        "dense": Input(tuple(f"I{i}" for i in range(dense)), "float"),
        "sparse": Input(tuple(f"C{i}" for i in range(len(cardinalities))), "int", tuple(cardinalities)),
    }


def test_scores_a_batch_and_touches_only_the_embedding_rows_it_used():
    model = DLRM(inputs(3, [5, 7]), embedding_dim=4, bottom_mlp=[8], top_mlp=[8])
    batch = {
        "dense": torch.randn(6, 3),
        "sparse": torch.tensor([[0, 1], [1, 2], [4, 6], [0, 0], [1, 1], [2, 3]]),
    }
    logits = model(batch)
    assert logits.shape == (6,)
    logits.sum().backward()
    grad = model.tables.embedding.weight.grad
    assert grad.is_sparse
    used = {0, 1, 2, 4} | {5 + i for i in (0, 1, 2, 3, 6)}  # second table starts at row 5
    assert set(grad.coalesce().indices()[0].tolist()) == used
    kinds = sorted(type(o).__name__ for o in optimizers(model, lr=0.01))
    assert kinds == ["Adam", "SparseAdam"]


def test_the_same_feature_value_in_two_tables_gets_two_different_vectors():
    model = DLRM(inputs(1, [3, 3]), embedding_dim=2, bottom_mlp=[], top_mlp=[])
    first, second = model.tables(torch.tensor([[1, 1]]))[0]
    assert not torch.equal(first, second)


def test_without_dense_features_and_with_several_tasks():
    """No dense group (MovieLens, Amazon): interactions among embeddings only; T labels give [B, T]."""
    model = DLRM(inputs(0, [4, 5, 6], tasks=3), embedding_dim=4, bottom_mlp=[8], top_mlp=[8])
    assert model.bottom is None
    logits = model({"dense": torch.zeros(2, 0), "sparse": torch.tensor([[1, 2, 3], [0, 4, 5]])})
    assert logits.shape == (2, 3)


def test_bf16_dense_layers_only_where_the_cpu_has_them_and_logits_stay_fp32():
    from bluewhale.train import cpu

    faster, slower = (lambda threads: 2.0), (lambda threads: 0.5)
    assert cpu.choose("auto", flags={"avx2", "avx512_bf16"}, speedup=faster).bf16
    assert cpu.choose("auto", flags={"avx2", "amx_bf16"}, speedup=faster).bf16
    assert not cpu.choose("auto", flags={"avx2", "fma"}, speedup=faster).bf16  # emulated: never
    # the flags but a VM without AMX, where oneDNN's bf16 measured slower than fp32: fp32
    assert not cpu.choose("auto", flags={"avx512_bf16"}, speedup=slower).bf16
    assert cpu.bf16_speedup(1) > 0 and cpu.bf16_speedup(1) == cpu.bf16_speedup(1)  # measured once
    assert not cpu.choose("fp32", flags={"amx_bf16"}).bf16 and cpu.choose("bf16", flags=set()).bf16
    assert cpu.cpu_flags("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n") == {
        "fpu",
        "avx2",
        "avx512_bf16",
    }
    with pytest.raises(
        ValueError, match=r"train.precision: expected one of \('auto', 'fp32', 'bf16'\), got 'fp16'"
    ):
        cpu.choose("fp16")
    torch.manual_seed(0)
    model = DLRM(inputs(3, [5, 7]), embedding_dim=4, bottom_mlp=[8], top_mlp=[8])
    batch = {
        "dense": torch.randn(6, 3),
        "sparse": torch.tensor([[0, 1], [1, 2], [4, 6], [0, 0], [1, 1], [2, 3]]),
    }
    full = model(batch)
    cpu.apply(cpu.CpuSettings(threads=torch.get_num_threads(), bf16=True), model)
    half = model(batch)
    assert half.dtype == torch.float32 and model.top[0].weight.dtype == torch.float32
    torch.testing.assert_close(half, full, atol=0.02, rtol=0.02)  # bf16 keeps 8 bits of mantissa
    half.sum().backward()  # trains: gradients reach the fp32 weights
    assert model.top[0].weight.grad.dtype == torch.float32


def test_auto_threads_take_the_cores_other_processes_leave():
    from bluewhale.train import cpu

    assert cpu.free_cores(cores=2, load=0.1) == 2
    assert cpu.free_cores(cores=2, load=6.0) == 1  # oversubscribed: one thread, never none
    assert cpu.free_cores(cores=16, load=3.7) == 12
    assert cpu.choose("fp32", "auto").threads >= 1
    with pytest.raises(
        ValueError, match=r"train.threads: expected a positive number of threads, auto or null"
    ):
        cpu.choose("fp32", 0)
