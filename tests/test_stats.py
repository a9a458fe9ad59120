"""Bootstrap CIs and probability of improvement against cases with known answers."""
import numpy as np
import pytest

from dspo.core.errors import DataError
from dspo.evaluation.stats import mean_ci, probability_of_improvement, probability_of_improvement_ci


def test_mean_ci_covers_the_mean_and_narrows_with_more_runs():
    rng = np.random.default_rng(0)
    few, many = rng.normal(1.0, 1.0, 5), rng.normal(1.0, 1.0, 200)
    m, lo, hi = mean_ci(few)
    assert lo < m < hi and m == pytest.approx(few.mean())
    _, lo2, hi2 = mean_ci(many)
    assert lo2 < 1.0 < hi2 and (hi2 - lo2) < (hi - lo)
    assert mean_ci(few) == mean_ci(few)  # seeded


def test_mean_ci_degenerate_and_bad_input():
    assert mean_ci([0.4]) == (0.4, 0.4, 0.4)
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    with pytest.raises(DataError, match="no values"):
        mean_ci([])
    with pytest.raises(DataError, match="NaN"):
        mean_ci([1.0, np.nan])


def test_probability_of_improvement_known_cases():
    assert probability_of_improvement([2, 3], [0, 1]) == 1.0
    assert probability_of_improvement([0, 1], [2, 3]) == 0.0
    assert probability_of_improvement([1, 1], [1, 1]) == 0.5
    assert probability_of_improvement([1, 3], [2]) == 0.5
    p, lo, hi = probability_of_improvement_ci([0.5, 0.6, 0.7], [0.1, 0.2, 0.65])
    assert p == pytest.approx(7 / 9) and lo <= p <= hi <= 1.0  # 7 of the 9 pairs
