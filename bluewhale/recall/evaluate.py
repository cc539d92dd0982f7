"""How good an index and the model behind it are: recall@k of the index against exact search, hit
rate@k of held-out interactions against a popularity baseline, and queries per second."""

from __future__ import annotations

import time

import faiss
import numpy as np


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found ∩ exact| / k (both [q, k] ids; -1 for a missing result)."""
    k = exact.shape[1]
    hits = [len(set(f[f >= 0]) & set(e[e >= 0])) for f, e in zip(found, exact, strict=True)]
    return float(np.mean(hits) / k) if len(hits) else float("nan")


def hit_rate(found: np.ndarray, truth: np.ndarray) -> float:
    """The fraction of queries whose held-out item is among their results (found [q, k], truth [q])."""
    return float(np.mean((found == truth[:, None]).any(1))) if len(truth) else float("nan")


def timed_search(
    index: faiss.Index, queries: np.ndarray, k: int, repeats: int = 3
) -> tuple[np.ndarray, float]:
    """Row positions [q, k] of the top k for every query, and queries per second (the best of `repeats`
    batched searches)."""
    best, found = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        _, found = index.search(queries, k)
        best = min(best, time.perf_counter() - start)
    return found, len(queries) / max(best, 1e-9)
