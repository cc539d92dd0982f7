"""Per-CPU training settings: threads, and bf16 only where the CPU computes it natively.

bf16 matrix products can pay on CPUs with AMX or AVX-512-bf16 (Sapphire Rapids and later, AMD Zen 4 and
later) and are emulated, slower than fp32, elsewhere (AVX2-only machines). The flags alone do not decide:
a virtual machine may show avx512_bf16 but hide AMX, and there oneDNN's bf16 products measured 2x slower
than MKL's fp32 ones (a 2-core Xeon VM); so `auto` asks the flags, then times one MLP-sized product in
both precisions (about 0.1 s, once a process) and takes bf16 only where it wins clearly. Threads are
torch's own choice (the cores it finds) unless `train.threads` sets them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CHOICES = ("auto", "fp32", "bf16")
BF16_MIN_SPEEDUP = 1.2  # the casts autocast adds around each product eat some of a small win
_speedups: dict[int, float] = {}


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The feature flags of the first CPU in /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(flags: set[str] | None = None) -> bool:
    """Whether this CPU multiplies bf16 natively (AMX or AVX-512-bf16)."""
    return any(f in (cpu_flags() if flags is None else flags) for f in BF16_FLAGS)


def bf16_speedup(threads: int | None = None) -> float:
    """How many times faster this CPU multiplies a [2048, 512] x [512, 256] product (a DLRM MLP layer at
    batch 2048) in bf16 than in fp32, on `threads` threads (None: torch's current number); best of 5
    runs each, measured once a process per thread count."""
    threads = threads or torch.get_num_threads()
    if threads not in _speedups:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            best = {}
            for dtype in (torch.float32, torch.bfloat16):
                a, b = torch.randn(2048, 512, dtype=dtype), torch.randn(512, 256, dtype=dtype)
                times = []
                for _ in range(7):  # the first two warm up (oneDNN builds its kernel)
                    start = time.perf_counter()
                    torch.mm(a, b)
                    times.append(time.perf_counter() - start)
                best[dtype] = min(times[2:])
            _speedups[threads] = best[torch.float32] / best[torch.bfloat16]
        finally:
            torch.set_num_threads(before)
    return _speedups[threads]


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, as `taskset`/Slurm set it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores(cores: int | None = None, load: float | None = None) -> int:
    """The usable cores other processes leave idle (1-minute load average), at least one: on a shared
    machine OpenMP threads that compete with other processes spin at their barriers (measured on 2 cores
    at load 6-8: one thread ran DLRM 4x faster than two)."""
    cores = usable_cores() if cores is None else cores
    load = (os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0) if load is None else load
    return max(1, min(cores, int(cores - load + 0.5)))


@dataclass(frozen=True)
class CpuSettings:
    threads: int
    bf16: bool  # autocast the dense layers (MLPs, interaction) to bf16; embeddings and loss stay fp32


def choose(
    precision: str = "auto",
    threads: int | str | None = None,
    flags: set[str] | None = None,
    speedup: Callable[[int | None], float] = bf16_speedup,
) -> CpuSettings:
    """The settings for this CPU: `precision` auto|fp32|bf16 (auto: bf16 where the CPU has it natively and
    `speedup(threads)` measures it at least BF16_MIN_SPEEDUP times faster); `threads` (None: torch's own
    choice, which ranks sharing a machine may have set already; auto: the cores left idle)."""
    if precision not in CHOICES:
        raise ValueError(f"train.precision: expected one of {CHOICES}, got {precision!r}")
    if threads == "auto":
        threads = free_cores()
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(
            f"train.threads: expected a positive number of threads, auto or null, got {threads!r}"
        )
    if precision == "auto":
        bf16 = native_bf16(flags)
        if bf16:
            measured = speedup(threads)
            bf16 = measured >= BF16_MIN_SPEEDUP
            log.info(
                "bf16 products measured %.2fx as fast as fp32's here: %s",
                measured,
                "bf16" if bf16 else "fp32",
            )
    else:
        bf16 = precision == "bf16"
    return CpuSettings(threads=threads or torch.get_num_threads(), bf16=bf16)


def apply(settings: CpuSettings, model: torch.nn.Module | None = None) -> CpuSettings:
    """Set torch's thread pool and tell a model that can use bf16 (`model.set_precision`) to do so."""
    if torch.get_num_threads() != settings.threads:
        torch.set_num_threads(settings.threads)
    if model is not None and hasattr(model, "set_precision"):
        model.set_precision(torch.bfloat16 if settings.bf16 else None)
    log.info(
        "CPU settings: %d threads, %s dense layers", settings.threads, "bf16" if settings.bf16 else "fp32"
    )
    return settings
