"""Small shared pieces of the planted generators: Zipf-like draws, a logistic link, an atomic write."""

from __future__ import annotations

import numpy as np


def zipf_choice(rng: np.random.Generator, n: int, size: int, exponent: float = 1.1) -> np.ndarray:
    """Draw `size` indices in [0, n) with Zipf-like popularity (index 0 the most popular)."""
    weight = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.choice(n, size=size, p=weight / weight.sum())


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def intercept_for_rate(logit: np.ndarray, rate: float) -> float:
    """The constant that makes the mean of sigmoid(logit + c) equal `rate` (bisection: it is monotone)."""
    low, high = -30.0, 30.0
    for _ in range(60):
        mid = (low + high) / 2
        if np.mean(sigmoid(logit + mid)) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2
