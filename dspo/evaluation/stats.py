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
    """(P(X > Y), lo, hi): the runs of X and of Y resampled independently (scipy's unpaired bootstrap,
    i.e. rliable's stratified bootstrap over the two algorithms)."""
    a, b = _values(x, "x"), _values(y, "y")
    point = probability_of_improvement(a, b)
    if a.size == 1 and b.size == 1:
        return point, point, point

    def poi(xs, ys, axis=-1):
        xs, ys = np.moveaxis(xs, axis, -1), np.moveaxis(ys, axis, -1)
        xa, yb = xs[..., :, None], ys[..., None, :]  # every pair at once, no Python loop
        return ((xa > yb) + 0.5 * (xa == yb)).mean(axis=(-2, -1))

    # scipy resamples only samples of >= 2 runs; a single run (e.g. a one-seed baseline) stays fixed
    if a.size == 1:
        data, statistic = (b,), lambda ys, axis=-1: poi(np.broadcast_to(a, ys.shape[:-1] + a.shape), ys)
    elif b.size == 1:
        data, statistic = (a,), lambda xs, axis=-1: poi(xs, np.broadcast_to(b, xs.shape[:-1] + b.shape))
    else:
        data, statistic = (a, b), poi
    res = stats.bootstrap(data, statistic, paired=False, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", random_state=np.random.default_rng(seed), vectorized=True)
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)
