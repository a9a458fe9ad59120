"""The inverse-dynamics model behind `distill.actions: inverse_dynamics` and the generation probe's action error."""
import numpy as np
import pytest

from dspo.core.errors import DataError, ParamError
from dspo.learners.dspo.distill import DistillConfig
from dspo.learners.dspo.inverse_dynamics import (consecutive, fit_inverse_dynamics, generated_segments, relabel,
                                                 segment_pairs)


def test_inverse_dynamics_tells_consistent_actions_from_inconsistent_ones():
    """s' = s + 0.1 a: real actions are recovered from (s, s'); shuffled actions are not."""
    rng = np.random.default_rng(0)
    n_ep, length = 40, 25
    act = rng.uniform(-1, 1, size=(n_ep, length, 2)).astype(np.float32)
    obs = np.zeros((n_ep, length, 2), dtype=np.float32)
    obs[:, 1:] = np.cumsum(0.1 * act[:, :-1], axis=1)
    episode_id, step = np.repeat(np.arange(n_ep), length), np.tile(np.arange(length), n_ep)
    s, s_next, a, ep = consecutive(episode_id, step, obs.reshape(-1, 2), act.reshape(-1, 2))
    assert len(s) == n_ep * (length - 1) and np.allclose(s_next - s, 0.1 * a, atol=1e-6)
    model = fit_inverse_dynamics(s, s_next, a, hidden=(64, 64), steps=1500, batch_size=256, lr=1e-3, seed=0)
    gs, gn, ga = segment_pairs(obs, act)
    consistent = model.action_error(gs, gn, ga).mean()
    shuffled = model.action_error(gs, gn, rng.permutation(ga)).mean()
    assert consistent < 0.1 < shuffled
    # relabeling: each segment's first H - 1 states with the actions that move them as recorded
    seg_obs, seg_act = generated_segments(episode_id, step, obs.reshape(-1, 2), act.reshape(-1, 2))
    assert seg_obs.shape == (n_ep, length, 2) and np.array_equal(seg_act, act)
    s_rel, a_rel = relabel(model, seg_obs)
    assert s_rel.shape == (n_ep * (length - 1), 2) and np.abs(a_rel - act[:, :-1].reshape(-1, 2)).mean() < 0.1
    wrong = generated_segments(episode_id[::-1].copy(), step[::-1].copy(), obs.reshape(-1, 2)[::-1], act.reshape(-1, 2)[::-1])
    assert np.array_equal(wrong[0], seg_obs)  # rows in any order come back in (segment, step) order



def test_relabeling_refuses_what_it_cannot_do():
    from dspo.core.config import load_params

    distill = dict(load_params()["distill"])
    DistillConfig.from_section({**distill, "actions": "inverse_dynamics"})
    with pytest.raises(ParamError, match="relabels generated actions"):
        DistillConfig.from_section({**distill, "actions": "inverse_dynamics", "source": "unlabeled"})
    with pytest.raises(ParamError, match="distill.actions"):
        DistillConfig.from_section({**distill, "actions": "inverse"})
    with pytest.raises(DataError, match="at least 2 steps"):
        relabel(None, np.zeros((3, 1, 2), dtype=np.float32))
    with pytest.raises(DataError, match="do not split"):
        generated_segments(np.array([0, 0, 1]), np.array([0, 1, 0]), np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(DataError, match="no consecutive pairs"):
        fit_inverse_dynamics(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 1)), (8,), 1, 1, 1e-3, 0)
