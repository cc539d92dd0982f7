"""faiss indexes over item vectors (inner product), built from the `recall` group's settings, each
parameter checked against the vectors first so a bad one fails naming its key."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import faiss
import numpy as np

KINDS = ("flat", "ivf_flat", "ivf_pq", "hnsw")


def nlist(settings: Mapping, n: int, key: str = "recall") -> int:
    """IVF lists: `nlist`, or 4 * sqrt(n) when null; at most one list a vector."""
    lists = settings.get("nlist") or max(1, min(n, int(4 * math.sqrt(n))))
    if not isinstance(lists, int) or lists < 1:
        raise ValueError(f"{key}.nlist: expected a positive integer, got {lists!r}")
    if lists > n:
        raise ValueError(f"{key}.nlist: {lists} IVF lists for {n} item vectors; at most one list a vector")
    return lists


def check(settings: Mapping, n: int, dim: int, key: str = "recall") -> None:
    """Every parameter of the index against n vectors of width dim, before any build."""
    kind = settings.get("index")
    if kind not in KINDS:
        raise ValueError(f"{key}.index: expected one of {KINDS}, got {kind!r}")
    if n < 1:
        raise ValueError(f"{key}: no item vectors to index")
    if kind in ("ivf_flat", "ivf_pq"):
        lists = nlist(settings, n, key)
        nprobe = settings.get("nprobe", 1)
        if not isinstance(nprobe, int) or not 1 <= nprobe <= lists:
            raise ValueError(f"{key}.nprobe: expected an integer in [1, nlist={lists}], got {nprobe!r}")
    if kind == "ivf_pq":
        m, bits = settings.get("m"), settings.get("nbits", 8)
        if not isinstance(m, int) or m < 1 or dim % m:
            raise ValueError(
                f"{key}.m: {m!r} PQ subquantisers do not divide the vectors' dimension {dim}; "
                f"choose one of {[d for d in range(1, dim + 1) if dim % d == 0]}"
            )
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"{key}.nbits: expected bits a code in [1, 16], got {bits!r}")
        if n < 2**bits:
            raise ValueError(
                f"{key}.nbits: {bits} bits need at least {2**bits} item vectors to train, got {n}"
            )
    if kind == "hnsw":
        for name in ("M", "ef_construction", "ef_search"):
            value = settings.get(name)
            if not isinstance(value, int) or value < (2 if name == "M" else 1):
                raise ValueError(f"{key}.{name}: expected a positive integer (M >= 2), got {value!r}")


def build(settings: Mapping, vectors: np.ndarray, key: str = "recall") -> tuple[faiss.Index, float]:
    """The index over `vectors` [n, dim] (float32) and its build time in seconds (training included)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    check(settings, n, dim, key)
    kind = settings["index"]
    ip = faiss.METRIC_INNER_PRODUCT
    start = time.perf_counter()
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings["M"], ip)
        index.hnsw.efConstruction = settings["ef_construction"]
        index.hnsw.efSearch = settings["ef_search"]
    else:
        quantizer = faiss.IndexFlatIP(dim)
        lists = nlist(settings, n, key)
        if kind == "ivf_flat":
            index = faiss.IndexIVFFlat(quantizer, dim, lists, ip)
        else:
            index = faiss.IndexIVFPQ(quantizer, dim, lists, settings["m"], settings.get("nbits", 8), ip)
        index.train(vectors)
        index.nprobe = settings["nprobe"]
    index.add(vectors)
    return index, time.perf_counter() - start


def set_search_params(index: faiss.Index, settings: Mapping) -> None:
    """Query-time parameters of a loaded index (they are not all saved with it)."""
    if isinstance(index, faiss.IndexHNSW) and settings.get("ef_search"):
        index.hnsw.efSearch = settings["ef_search"]
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and settings.get("nprobe"):
        ivf.nprobe = settings["nprobe"]
