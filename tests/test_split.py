import numpy as np
import pandas as pd
import pytest

from dspo.core.errors import SplitError
from dspo.data.collect import CollectConfig, check_split, split_episodes


def make_cfg(**overrides):
    base = dict(episodes_per_snapshot=1, noise=[0.0], mix_pairs=[], mix_probs=[], episodes_per_mix=0,
                n_safe_demos=12, demo_return_quantile=0.5, max_unlabeled_episodes=10_000, min_safe_like_demos=5,
                min_unsafe_above_demos=5, strict=True, n_envs=1, workers=1,
                quality=dict(min_best_safe_return=0.1, max_terminated_share=0.9, min_safe_length_ratio=0.75, coverage_bins=5, min_coverage=0.25))
    base.update(overrides)
    return CollectConfig.from_section(base)


def episodes_frame(seed=0):
    """Two agents: a safe one (returns 100..500) and an unsafe reward-only one (returns 300..700)."""
    rng = np.random.default_rng(seed)
    safe = pd.DataFrame({"reward_return": rng.uniform(100, 500, 200), "cost_return": rng.uniform(0, 9, 200),
                         "source_agent": "ppol"})
    unsafe = pd.DataFrame({"reward_return": rng.uniform(300, 700, 100), "cost_return": rng.uniform(40, 100, 100),
                           "source_agent": "ppo"})
    frame = pd.concat([safe, unsafe], ignore_index=True)
    frame["is_safe"] = frame["cost_return"] <= 10
    return frame


def test_demos_come_from_upper_safe_range_but_are_not_the_top():
    frame = episodes_frame()
    demos, rest, problems = split_episodes(frame, make_cfg(), seed=0)
    assert problems == []
    assert len(demos) == 12 and len(set(demos) & set(rest)) == 0 and len(demos) + len(rest) == len(frame)
    safe_returns = frame.loc[frame["is_safe"], "reward_return"]
    d = frame.loc[demos]
    assert d["is_safe"].all()
    assert (d["reward_return"] >= safe_returns.median()).all()
    top12 = set(safe_returns.nlargest(12).index)
    assert set(demos) != top12  # drawn, not the 12 best
    # Return alone must not separate demos from the safe episodes left in D^U.
    u = frame.loc[rest]
    assert (u["is_safe"] & (u["reward_return"] > d["reward_return"].min())).sum() >= 5


def test_split_is_seeded():
    frame = episodes_frame()
    a = split_episodes(frame, make_cfg(), seed=3)[0]
    b = split_episodes(frame, make_cfg(), seed=3)[0]
    c = split_episodes(frame, make_cfg(), seed=4)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_too_few_safe_episodes_fails_clearly():
    frame = episodes_frame()
    with pytest.raises(SplitError, match=r"only 200 of 300 episodes are safe \(cost <= kappa\) but collect.n_safe_demos=500"):
        split_episodes(frame, make_cfg(n_safe_demos=500), seed=0)


def test_missing_unsafe_high_return_episodes_is_reported():
    frame = episodes_frame()
    frame = frame[frame["is_safe"] | (frame["reward_return"] < 400)].reset_index(drop=True)
    demos, rest, problems = split_episodes(frame, make_cfg(), seed=0)
    assert any("unsafe episodes with return above the best demo" in p for p in problems)


def test_missing_safe_episodes_of_demo_agent_is_reported():
    frame = episodes_frame()
    demos = frame.index[frame["is_safe"]][:12].to_numpy()
    rest = frame.index[~frame["is_safe"]].to_numpy()  # D^U without any safe episode
    problems = check_split(frame, demos, rest, make_cfg())
    assert any("no safe episode from demo agent 'ppol'" in p for p in problems)
    assert any("safe episodes with returns in the demos' range" in p for p in problems)


def test_unlabeled_cap_subsamples():
    frame = episodes_frame()
    demos, rest, _ = split_episodes(frame, make_cfg(max_unlabeled_episodes=50, min_safe_like_demos=0,
                                                    min_unsafe_above_demos=0), seed=0)
    assert len(rest) == 50


def test_bad_collect_params_are_refused():
    from dspo.core.errors import ParamError

    with pytest.raises(ParamError, match="collect.n_safe_demos=1: Input should be greater than or equal to 2"):
        make_cfg(n_safe_demos=1)
    with pytest.raises(ParamError, match="collect.noise"):
        make_cfg(noise=[-0.1])
    with pytest.raises(ParamError, match="collect.mix_probs"):
        make_cfg(mix_probs=[1.5])
