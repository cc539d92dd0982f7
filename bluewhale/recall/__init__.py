"""Vector recall: a faiss index over a trained model's item vectors (`recall` group: flat, ivf_flat,
ivf_pq, hnsw), measured against exact search (recall@k, queries per second, build time) and on held-out
interactions (hit rate@k against the most popular items), logged to MLflow as the `recall_index`
artifact and served by `Index.load(run_id).search(user_ids, k)` and the `bluewhale-recall` command."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

# faiss logs each SIMD build it tries and cannot find (every run would print them): warnings only
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

import faiss  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from torch import nn  # noqa: E402

from bluewhale.model.inputs import Inputs  # noqa: E402
from bluewhale.recall import evaluate, index, vectors  # noqa: E402
from bluewhale.recall.api import Index  # noqa: E402

__all__ = ["Index", "run"]
log = logging.getLogger(__name__)


def popular(train: pa.Table, item: str, label: str, k: int) -> np.ndarray:
    """The k items with the most positive train rows (the popularity baseline)."""
    items = train.column(item).to_numpy()
    positive = train.column(label).to_numpy() > 0.5
    counts = np.bincount(items[positive & (items > 0)])
    return np.argsort(-counts, kind="stable")[:k]


def run(
    model: nn.Module,
    inputs: Inputs,
    settings: Mapping,
    test_batches: Iterable[dict],
    train_table: Callable[[list[str]], pa.Table],
) -> dict[str, float]:
    """Build, measure and log the index; return its metrics (`recall_at_<k>`, `hit_rate_at_<k>`, ...)."""
    settings = dict(settings)
    k = settings.get("k", 10)
    all_items = vectors.item_vectors(model, inputs, settings)
    item_ids = np.arange(1, len(all_items))  # id 0: rare, unseen or missing items, never recalled
    items = np.ascontiguousarray(all_items[1:], dtype=np.float32)
    if not isinstance(k, int) or not 1 <= k <= len(items):
        raise ValueError(f"recall.k: expected an integer in [1, {len(items)}] (the items), got {k!r}")
    index.check(settings, len(items), items.shape[1])
    queries, truth, users = vectors.query_vectors(model, inputs, settings, test_batches)
    built, build_s = index.build(settings, items)
    exact = faiss.IndexFlatIP(items.shape[1])
    exact.add(items)
    exact_rows, exact_qps = evaluate.timed_search(exact, queries, k)
    rows, qps = evaluate.timed_search(built, queries, k)
    found = np.where(rows >= 0, item_ids[rows.clip(0)], -1)
    label = inputs["label"].columns[0]
    top = popular(
        train_table([vectors.item_column(inputs, settings), label]),
        vectors.item_column(inputs, settings),
        label,
        k,
    )
    metrics = {
        f"recall_at_{k}": evaluate.recall_at_k(rows, exact_rows),
        f"hit_rate_at_{k}": evaluate.hit_rate(found, truth),
        f"exact_hit_rate_at_{k}": evaluate.hit_rate(item_ids[exact_rows], truth),
        f"popularity_hit_rate_at_{k}": evaluate.hit_rate(np.tile(top, (len(truth), 1)), truth),
        "recall_qps": qps,
        "exact_qps": exact_qps,
        "recall_speedup": qps / exact_qps,
        "recall_build_time_s": build_s,
        "recall_items": len(items),
        "recall_queries": len(queries),
    }
    last = {int(u): i for i, u in enumerate(users)}  # each user's latest held-out vector
    meta = {"index": settings["index"], "settings": settings, "dim": int(items.shape[1]), "metrics": metrics}
    Index(built, item_ids, np.array(list(last)), queries[list(last.values())], meta).log()
    mlflow.log_metrics(metrics)
    log.info("recall (%s): %s", settings["index"], {k: round(v, 4) for k, v in metrics.items()})
    return metrics
