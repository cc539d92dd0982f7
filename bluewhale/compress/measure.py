"""What a compressed model is measured by: size on disk and in memory, parameter count, and inference
latency (batch 1) and throughput (a large batch), each against the original."""

from __future__ import annotations

import io
import statistics
import time
from typing import Any

import torch
from torch import nn


def _tensors(value: Any):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tensors(v)
    elif hasattr(value, "__getstate__") and type(value).__module__.startswith("torch"):  # packed params
        yield from _tensors(value.__getstate__())


def disk_bytes(model: nn.Module) -> int:
    """Bytes of the pickled model (what `mlflow.pytorch.log_model` saves)."""
    buffer = io.BytesIO()
    torch.save(model, buffer)
    return buffer.tell()


def memory_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights and buffers as held in memory (int8 packed weights included)."""
    return sum(t.numel() * t.element_size() for v in model.state_dict().values() for t in _tensors(v))


def parameter_count(model: nn.Module) -> int:
    """Numbers the model stores as weights (floating point or quantised; integer index buffers excluded)."""
    return sum(
        t.numel()
        for v in model.state_dict().values()
        for t in _tensors(v)
        if t.is_floating_point() or t.is_quantized or t.dtype == torch.int8
    )


def rows(batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    return {k: v[:n] for k, v in batch.items()}


@torch.no_grad()
def latency_ms(model: nn.Module, batch: dict[str, torch.Tensor], repeats: int = 200) -> float:
    """Median milliseconds of one forward pass on one row."""
    model.eval()
    one = rows(batch, 1)
    model(one)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(one)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


@torch.no_grad()
def throughput(model: nn.Module, batch: dict[str, torch.Tensor], repeats: int = 5) -> float:
    """Rows per second of forward passes on the whole `batch` (the best of `repeats`)."""
    model.eval()
    model(batch)
    best = min(_timed(model, batch) for _ in range(repeats))
    return len(batch["label"]) / best


def _timed(model: nn.Module, batch: dict[str, torch.Tensor]) -> float:
    start = time.perf_counter()
    model(batch)
    return time.perf_counter() - start


def profile(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Every figure of a model: sizes, parameters, latency at batch 1 and throughput at `len(batch)`."""
    return {
        "disk_mb": disk_bytes(model) / 2**20,
        "memory_mb": memory_bytes(model) / 2**20,
        "parameters": parameter_count(model),
        "latency_b1_ms": latency_ms(model, batch),
        "throughput_rows_per_s": throughput(model, batch),
    }
