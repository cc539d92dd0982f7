"""Vector recall side by side in one run: exact batched search (faiss IndexFlatIP) against IVF-Flat,
IVF-PQ and HNSW on the same item vectors and queries, through bluewhale.recall's own build and search.
Reports recall@10 against exact search, queries per second, the speedup over exact search and each index's
build time (training included); writes benchmarks/results/recall.json.

    .venv/bin/python benchmarks/recall.py                    # 1M x 64 items, 2000 queries
    .venv/bin/python benchmarks/recall.py --items 200000 --queries 2000

Items are unit vectors around planted centres (a Gaussian mixture, as trained item embeddings cluster);
queries are drawn from the same mixture, not from the items. Target: recall@10 >= 0.95 at >= 20x the
queries per second of exact search.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import faiss
import numpy as np

from bluewhale.atomic import write_json_atomically
from bluewhale.recall import evaluate, index

K = 10
CONFIGS = {  # name -> recall group settings
    "ivf_flat nprobe=8": {"index": "ivf_flat", "nlist": 1024, "nprobe": 8},
    "ivf_flat nprobe=16": {"index": "ivf_flat", "nlist": 1024, "nprobe": 16},
    "ivf_flat nprobe=32": {"index": "ivf_flat", "nlist": 1024, "nprobe": 32},
    "ivf_pq m=16 nprobe=16": {"index": "ivf_pq", "nlist": 1024, "nprobe": 16, "m": 16, "nbits": 8},
    "ivf_pq m=16 nprobe=64": {"index": "ivf_pq", "nlist": 1024, "nprobe": 64, "m": 16, "nbits": 8},
    "hnsw ef=32": {"index": "hnsw", "M": 16, "ef_construction": 40, "ef_search": 32},
    "hnsw ef=64": {"index": "hnsw", "M": 16, "ef_construction": 40, "ef_search": 64},
    "hnsw ef=128": {"index": "hnsw", "M": 16, "ef_construction": 40, "ef_search": 128},
}
SEARCH = ("nprobe", "ef_search")  # query-time parameters: one build serves every value


def mixture(n: int, dim: int, centres: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), n)] + spread * rng.normal(size=(n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--centres", type=int, default=2000)
    parser.add_argument("--spread", type=float, default=0.1, help="noise around a centre, per dimension")
    parser.add_argument("--only", nargs="*", default=list(CONFIGS))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "recall.json"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.centres, args.dim)).astype(np.float32) / np.sqrt(args.dim)
    items = mixture(args.items, args.dim, centres, rng, args.spread)
    queries = mixture(args.queries, args.dim, centres, rng, args.spread)

    exact, build_s = index.build({"index": "flat"}, items)
    truth, exact_qps = evaluate.timed_search(exact, queries, K, repeats=1)
    rows = {"exact (flat)": {"recall_at_10": 1.0, "qps": exact_qps, "speedup": 1.0, "build_s": build_s}}
    print(
        f"{args.items} x {args.dim} items, {args.queries} queries, faiss threads {faiss.omp_get_max_threads()}"
    )
    print(f"exact: {exact_qps:.0f} queries/s")
    builds: dict[str, tuple] = {}
    for name in args.only:
        settings = CONFIGS[name]
        key = json.dumps({k: v for k, v in settings.items() if k not in SEARCH}, sort_keys=True)
        if key not in builds:
            builds.clear()  # one index in memory at a time
            builds[key] = index.build(settings, items)
        built, build_s = builds[key]
        index.set_search_params(built, settings)
        found, qps = evaluate.timed_search(built, queries, K, repeats=2)
        rows[name] = {
            "recall_at_10": evaluate.recall_at_k(found, truth),
            "qps": qps,
            "speedup": qps / exact_qps,
            "build_s": build_s,
            "settings": CONFIGS[name],
        }
        print(f"{name}: recall@10 {rows[name]['recall_at_10']:.4f}, {qps:.0f} q/s, build {build_s:.1f} s")

    print(f"\n{'index':24} {'recall@10':>9} {'queries/s':>10} {'x exact':>8} {'build s':>8}  target")
    for name, r in rows.items():
        met = "met" if r["recall_at_10"] >= 0.95 and r["speedup"] >= 20 else "-"
        print(
            f"{name:24} {r['recall_at_10']:9.4f} {r['qps']:10.0f} {r['speedup']:8.1f} {r['build_s']:8.1f}  {met}"
        )
    out = {
        "items": args.items,
        "dim": args.dim,
        "queries": args.queries,
        "centres": args.centres,
        "spread": args.spread,
        "faiss_threads": faiss.omp_get_max_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "indexes": rows,
    }
    write_json_atomically(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
