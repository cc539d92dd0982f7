"""The connector's speed beside what DLRM consumes, in one run on one machine (ratios, not absolutes).

Measures: conversion into the cache (a miss) against a cache hit, with the fingerprint given (the
pipeline's way) and with the content hashed; the pyarrow loader's samples/s into DLRM-shaped tensors
with 0, 1 and 2 DataLoader workers; DLRM's training samples/s on batches already in memory; and, where
.venv-petastorm exists, Petastorm's make_batch_reader on the same cache entry (run in that venv).

    .venv/bin/python -m benchmarks.connector [--rows 1000000] [--out outputs/benchmarks/connector.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bluewhale.atomic import write_json_atomically

ROOT = Path(__file__).resolve().parent.parent
DENSE = tuple(f"I{i}" for i in range(1, 14))
SPARSE = tuple(f"C{i}" for i in range(1, 27))
BATCH = 1024


def _features():
    from bluewhale.connector.reader import Features

    return Features({"label": ("label",), "dense": DENSE, "sparse": SPARSE})


def processed_like(rows: int, seed: int = 0) -> tuple[pa.Table, list[int]]:
    """A table shaped like RecDP's Criteo output: label, 13 log1p floats, 26 categorified int32 ids."""
    rng = np.random.default_rng(seed)
    cards = [int(c) for c in np.exp(rng.uniform(np.log(4), np.log(20000), len(SPARSE)))]
    columns = {"label": (rng.random(rows) < 0.25).astype(np.int64)}
    for name in DENSE:
        columns[name] = np.log1p(rng.lognormal(1, 1, rows)).astype(np.float32)
    for name, card in zip(SPARSE, cards, strict=True):
        columns[name] = np.minimum(rng.zipf(1.2, rows), card - 1).astype(np.int32)
    return pa.table(columns), cards


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def loader_rate(loader) -> float:
    seconds, rows = timed(lambda: sum(len(batch["label"]) for batch in loader))
    return rows / seconds


def petastorm_rate(url: str) -> float:
    """Petastorm's make_batch_reader through bluewhale's petastorm backend (this runs inside .venv-petastorm)."""
    from bluewhale.connector.petastorm import PetastormConnector

    loader = PetastormConnector(cache_dir="unused").loader(
        url, _features(), BATCH, train=True, rank=0, world_size=1
    )
    return loader_rate(loader)


def in_memory(table: pa.Table, steps: int) -> list:
    """The first `steps` batches as tensors held in memory: training on them measures DLRM alone."""
    import torch

    dense = torch.from_numpy(np.stack([table.column(c).to_numpy() for c in DENSE], 1))
    sparse = torch.from_numpy(np.stack([table.column(c).to_numpy() for c in SPARSE], 1).astype(np.int64))
    label = torch.from_numpy(table.column("label").to_numpy().astype(np.float32))
    n = min(steps * BATCH, len(label))
    return [
        {"dense": dense[i : i + BATCH], "sparse": sparse[i : i + BATCH], "label": label[i : i + BATCH]}
        for i in range(0, n, BATCH)
    ]


def dlrm_rate(batches, cards: list[int], steps: int) -> float:
    """DLRM (the default config) training samples/s over the first `steps` of `batches`."""
    import torch

    from bluewhale.model.dlrm import DLRM
    from bluewhale.model.inputs import Input
    from bluewhale.train.trainer import fit

    torch.manual_seed(0)
    inputs = {
        "label": Input(("label",), "label"),
        "dense": Input(DENSE, "float"),
        "sparse": Input(SPARSE, "int", tuple(cards)),
    }
    model = DLRM(inputs)
    warm = [next(iter(batches))] * 3
    fit(model, warm, 1, 0.003, progress=False)  # first-step allocations out of the timing
    return fit(model, itertools.islice(batches, steps), 1, 0.003, progress=False).samples_per_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "benchmarks" / "connector.json"))
    parser.add_argument(
        "--petastorm-only", metavar="URL", help=argparse.SUPPRESS
    )  # the petastorm venv's part
    args = parser.parse_args()
    if args.petastorm_only:
        print(json.dumps({"petastorm": petastorm_rate(args.petastorm_only)}))
        return

    from bluewhale.connector import Cache, convert, make_loader

    table, cards = processed_like(args.rows)
    features = _features()
    results: dict[str, float] = {"rows": args.rows, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(tmp)
        miss, data = timed(lambda: convert(table, cache, fingerprint="bench"))
        hit, again = timed(lambda: convert(table, cache, fingerprint="bench"))
        hashed_hit, _ = timed(lambda: convert(table, cache))  # a miss first (its own key), then:
        hashed_hit, hashed = timed(lambda: convert(table, cache))
        assert not data.cache_hit and again.cache_hit and hashed.cache_hit
        results |= {
            "convert_miss_s": miss,
            "cache_hit_s": hit,
            "cache_hit_hashing_content_s": hashed_hit,
            "hit_over_miss": hit / miss,
            "hit_hashing_over_miss": hashed_hit / miss,
        }
        for workers in (0, 1, 2):
            loader = make_loader(data.url, features, BATCH, shuffle=True, num_workers=workers)
            results[f"loader_{workers}_workers_samples_per_s"] = loader_rate(loader)
        results["dlrm_train_samples_per_s"] = dlrm_rate(
            in_memory(table, args.train_steps), cards, args.train_steps
        )
        for workers in (0, 1):  # the same training, fed by the connector while it trains
            loader = make_loader(data.url, features, BATCH, shuffle=True, num_workers=workers)
            rate = dlrm_rate(loader, cards, args.train_steps)
            results[f"dlrm_train_fed_by_loader_{workers}_workers_samples_per_s"] = rate
        best = max(results[f"loader_{w}_workers_samples_per_s"] for w in (1, 2))
        results["loader_over_training"] = best / results["dlrm_train_samples_per_s"]
        petastorm_python = ROOT / ".venv-petastorm" / "bin" / "python"
        if petastorm_python.exists():
            out = subprocess.run(
                [str(petastorm_python), "-m", "benchmarks.connector", "--petastorm-only", data.url],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if out.returncode == 0:
                rate = json.loads(out.stdout.strip().splitlines()[-1])["petastorm"]
                results["petastorm_samples_per_s"] = rate
                results["petastorm_over_loader_1_worker"] = rate / results["loader_1_workers_samples_per_s"]
            else:
                print(f"petastorm run failed:\n{out.stderr[-2000:]}", file=sys.stderr)

    print(f"\nconnector benchmark: {args.rows:,} rows, batch {BATCH}, {os.cpu_count()} CPUs\n")
    print(f"{'measure':<40}{'value':>16}")
    for key, value in results.items():
        shown = f"{value:,.4f}" if isinstance(value, float) and value < 100 else f"{value:,.0f}"
        print(f"{key:<40}{shown:>16}")
    print(
        f"\ntargets: loader_over_training >= 3 ({results['loader_over_training']:.1f}); "
        f"hit_over_miss < 0.05 ({results['hit_over_miss']:.4f})"
    )
    out = Path(args.out)
    write_json_atomically(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
