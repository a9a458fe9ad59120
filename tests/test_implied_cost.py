"""The implied-cost diagnostic (scripts/generation_probe.py) on a reference whose answers are known."""
import numpy as np
import pytest
import torch

from dspo.evaluation.implied_cost import Reference, by_condition, implied_cost, match
from dspo.learners.normalizers import GaussianNormalizer


def _reference():
    """Pairs on a line: x < 0 costs nothing (safe episode), x >= 0 costs 1 per step (unsafe episode)."""
    x = np.linspace(-1, 1, 201, dtype=np.float32)[:, None]
    sa = np.concatenate([x, np.zeros_like(x)], axis=1)
    norm = GaussianNormalizer.fit(sa)
    cost = (x[:, 0] >= 0).astype(np.float32)
    ref = Reference(torch.as_tensor(norm.normalize(sa)), cost, cost > 0, np.linspace(0, 1, 201))
    return norm, ref


def test_queries_take_their_nearest_pairs_cost():
    norm, ref = _reference()
    safe_q = np.array([[-0.9, 0.0], [-0.5, 0.1]], dtype=np.float32)
    unsafe_q = np.array([[0.5, 0.0], [0.9, -0.1]], dtype=np.float32)
    safe = implied_cost(*match(safe_q, norm, ref), ref, steps_per_episode=100, cost_limit=10)
    unsafe = implied_cost(*match(unsafe_q, norm, ref), ref, steps_per_episode=100, cost_limit=10)
    assert safe["implied_step_cost"] == 0.0 and safe["nn_in_unsafe_episode"] == 0.0
    assert unsafe["implied_step_cost"] == 1.0 and unsafe["implied_normalized_cost"] == pytest.approx(10.0)
    mixed = implied_cost(*match(np.concatenate([safe_q, unsafe_q]), norm, ref), ref, 100, 10, segment_length=2)
    assert mixed["implied_normalized_cost"] == pytest.approx(5.0) and mixed["segments_with_cost"] == 0.5
    idx, dist = match(np.array([[-1.0, 0.0]], dtype=np.float32), norm, ref)
    assert idx[0] == 0 and dist[0] == pytest.approx(0.0, abs=1e-5)


def test_cost_per_condition_bin_follows_the_condition():
    norm, ref = _reference()
    x = np.linspace(-1, 1, 40, dtype=np.float32)
    idx, _ = match(np.stack([x, np.zeros_like(x)], axis=1), norm, ref)
    bins = by_condition(idx, condition=x, ref=ref, bins=2)  # the condition is the position itself
    assert [b["implied_step_cost"] for b in bins] == [0.0, 1.0] and sum(b["pairs"] for b in bins) == 40
    one = by_condition(idx, condition=np.full(40, 3.0), ref=ref, bins=4)  # a constant condition: one bin
    assert len(one) == 1 and one[0]["implied_step_cost"] == pytest.approx(0.5)

