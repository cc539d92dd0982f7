"""Evaluation metrics a recipe chooses by name (`evaluate.metrics`), each a function of labels and scores.

Every metric takes `(labels, scores, context)`: labels 0/1 and predicted probabilities of one task, in
the same row order, and a `Context` with what some metrics need besides (the display each row belongs
to for MAP@12, the training positive rate for RCE). The same function scores the planted generator's
probabilities, which gives each metric's best achievable value on the same rows (`optimal_test_...`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] where a logarithm is taken


@dataclass(frozen=True)
class Context:
    """What a metric may need beyond labels and scores."""

    groups: np.ndarray | None = None  # the group (display) of each row, for ranking metrics
    positive_rate: float | None = None  # the training positive rate, for RCE


NO_CONTEXT = Context()


@dataclass(frozen=True)
class Metric:
    fn: Callable[[np.ndarray, np.ndarray, Context], float]
    higher_is_better: bool
    needs: str | None = None  # the Context field it cannot do without


def auc(labels: np.ndarray, scores: np.ndarray, context: Context = NO_CONTEXT) -> float:
    """Area under the ROC curve."""
    return float(roc_auc_score(labels, scores))


def logloss(labels: np.ndarray, scores: np.ndarray, context: Context = NO_CONTEXT) -> float:
    """Mean binary cross entropy, natural log."""
    return float(log_loss(labels, np.clip(scores, EPS, 1 - EPS), labels=[0, 1]))


def average_precision(labels: np.ndarray, scores: np.ndarray, context: Context = NO_CONTEXT) -> float:
    """Average precision (area under the precision-recall curve, as the RecSys 2021 challenge scored it)."""
    return float(average_precision_score(labels, scores))


def rce(labels: np.ndarray, scores: np.ndarray, context: Context) -> float:
    """Relative cross entropy (RecSys 2021): how much lower, in percent, the cross entropy is than that of
    always predicting the training positive rate."""
    if context.positive_rate is None:
        raise ValueError("rce needs the training positive rate")
    naive = logloss(labels, np.full(len(labels), context.positive_rate))
    return float((1.0 - logloss(labels, scores) / naive) * 100.0)


def map_at_k(labels: np.ndarray, scores: np.ndarray, context: Context, k: int = 12) -> float:
    """Mean average precision at k over groups (Outbrain: the ads of a display, ranked by score).

    A group's AP@k is the mean over its relevant rows within the top k of the precision at their rank,
    divided by min(relevant rows, k); groups with no relevant row count as 0, as Kaggle scored it.
    Ties in score keep row order.
    """
    if context.groups is None:
        raise ValueError("map12 needs the group of each row (evaluate.group)")
    groups = np.asarray(context.groups)
    order = np.lexsort((-np.asarray(scores, float), groups))  # by group, best score first (stable)
    g, y = groups[order], np.asarray(labels)[order] > 0
    first = np.r_[True, g[1:] != g[:-1]]
    starts = np.flatnonzero(first)
    sizes = np.diff(np.r_[starts, len(g)])
    rank = np.arange(len(g)) - np.repeat(starts, sizes) + 1  # 1-based within the group
    group_index = np.cumsum(first) - 1
    seen = np.cumsum(y)
    hits = seen - np.repeat(seen[starts] - y[starts], sizes)  # relevant rows up to this rank
    precision = np.where(y & (rank <= k), hits / rank, 0.0)
    relevant = np.bincount(group_index, weights=y.astype(float))
    per_group = np.bincount(group_index, weights=precision) / np.maximum(np.minimum(relevant, k), 1)
    return float(per_group.mean())


METRICS: dict[str, Metric] = {
    "auc": Metric(auc, True),
    "logloss": Metric(logloss, False),
    "ap": Metric(average_precision, True),
    "rce": Metric(rce, True, needs="positive_rate"),
    "map12": Metric(map_at_k, True, needs="groups"),
}


def check_metrics(names: list[str], key: str = "evaluate.metrics") -> None:
    """Fail before any work on a metric name bluewhale does not know."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"{key}: unknown metrics {unknown}; expected some of {sorted(METRICS)}")


def score(
    names: list[str], labels: np.ndarray, scores: np.ndarray, context: Context, tasks: list[str]
) -> dict[str, float]:
    """Each metric of each task: `<metric>` for one task, `<metric>_<task>` for several.

    `labels` and `scores` are [n] for one task or [n, T] for the T `tasks`.
    """
    labels, scores = np.asarray(labels), np.asarray(scores)
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} do not line up")
    if labels.ndim == 1:
        labels, scores = labels[:, None], scores[:, None]
    out = {}
    for t, task in enumerate(tasks):
        rate = context.positive_rate
        task_context = Context(
            context.groups, rate[t] if isinstance(rate, list | tuple | np.ndarray) else rate
        )
        for name in names:
            key = name if len(tasks) == 1 else f"{name}_{task}"
            out[key] = METRICS[name].fn(labels[:, t], scores[:, t], task_context)
    return out
