"""Intervals over replicate runs (seeds)."""

import math
from collections.abc import Iterable

import numpy as np
from scipy.stats import t as student_t


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float | None, float | None, int]:
    """Mean and two-sided Student-t interval, mean ± t_{(1+confidence)/2, n-1} · s / sqrt(n) with s the sample
    standard deviation (ddof=1); returns (mean, low, high, n).

    NaN values are left out and not counted in n (a seed without the quantity); infinities raise ValueError (a
    "never" has no mean: decide before averaging). n = 1 gives (value, None, None, 1): one seed has no interval;
    n = 0 gives (nan, None, None, 0)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1)")
    x = np.asarray(list(values), dtype=float)
    if np.isinf(x).any():
        raise ValueError("mean_ci of infinite values")
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return math.nan, None, None, 0
    mean = float(x.mean())
    if n == 1:
        return mean, None, None, 1
    half = float(student_t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n
