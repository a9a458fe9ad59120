"""Statistics over learner seeds: bootstrap confidence intervals and the probability of improvement.

What a reviewer expects beside a mean over a few training seeds (Agarwal et al., 2021, "Deep RL at
the Edge of the Statistical Precipice"): a percentile-bootstrap CI of the mean (scipy's
`bootstrap`), and P(X > Y), the probability that a run of algorithm X beats a run of Y (the
Mann-Whitney U statistic divided by n*m, ties counting half), with its own bootstrap CI.
Seeded, so the same runs give the same intervals.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from dspo.core.errors import DataError

DEFAULT_RESAMPLES = 10_000


def _values(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise DataError(f"{name}: no values to summarize")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: NaN/inf among the values {arr.tolist()}")
    return arr


def mean_ci(x, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
            name: str = "values") -> tuple[float, float, float]:
    """(mean, lo, hi): the mean and its percentile-bootstrap CI; one value gives a zero-width interval."""
    arr = _values(x, name)
    mean = float(arr.mean())
    if arr.size == 1 or np.all(arr == arr[0]):
        return mean, mean, mean
    res = stats.bootstrap((arr,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", random_state=np.random.default_rng(seed), vectorized=True)
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


def probability_of_improvement(x, y) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs of one run of X and one run of Y."""
    a, b = _values(x, "x"), _values(y, "y")
    u = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").statistic
    return float(u / (a.size * b.size))


def probability_of_improvement_ci(x, y, confidence: float = 0.95, n_resamples: int = 2_000,
                                  seed: int = 0) -> tuple[float, float, float]:
    """(P(X > Y), lo, hi) with the runs of X and of Y resampled independently (stratified bootstrap)."""
    a, b = _values(x, "x"), _values(y, "y")
    point = probability_of_improvement(a, b)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, (n_resamples, a.size))
    ib = rng.integers(0, b.size, (n_resamples, b.size))
    xa, yb = a[ia][:, :, None], b[ib][:, None, :]  # [R, n, 1] vs [R, 1, m]: every pair, no Python loop
    draws = ((xa > yb) + 0.5 * (xa == yb)).mean(axis=(1, 2))
    tail = (1.0 - confidence) / 2.0
    return point, float(np.quantile(draws, tail)), float(np.quantile(draws, 1.0 - tail))
