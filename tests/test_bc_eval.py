import numpy as np
import pytest
import torch

from dspo.core.errors import ParamError
from dspo.core.seeds import EVAL_SEED_START, EVAL_SEEDS_PER_BLOCK, eval_seeds
from dspo.data.collect import CollectConfig, plan_jobs
from dspo.data.tasks import get_task
from dspo.evaluation.evaluate import evaluate_policy
from dspo.evaluation.policies import policy_act_fn
from dspo.learners.bc import BCConfig, train_bc

CFG = BCConfig(steps=400, batch_size=128, lr=3e-3, weight_decay=0.0, hidden=[64, 64], log_every=50, per_algo={})


def test_bc_learns_a_known_mapping_within_bounds():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((2000, 4)).astype(np.float32)
    w = rng.standard_normal((4, 2)).astype(np.float32)
    actions = np.tanh(obs @ w * 0.5)
    policy, curve = train_bc(obs, actions, np.array([-1, -1.0]), np.array([1, 1.0]), CFG, torch.device("cpu"))
    assert curve["mse"].iloc[-1] < 0.2 * curve["mse"].iloc[0]
    pred = policy_act_fn(policy)(obs * 100)  # far outside the data: still inside the bounds
    assert pred.min() >= -1 and pred.max() <= 1


def test_bc_weights_steer_the_fit():
    obs = np.zeros((200, 1), dtype=np.float32)
    actions = np.concatenate([np.full((100, 1), 0.5), np.full((100, 1), -0.5)]).astype(np.float32)
    weights = np.concatenate([np.ones(100), np.zeros(100)])
    policy, _ = train_bc(obs, actions, np.array([-1.0]), np.array([1.0]), CFG, torch.device("cpu"), weights=weights)
    assert policy_act_fn(policy)(obs[:1])[0, 0] == pytest.approx(0.5, abs=0.05)


def test_bc_refuses_empty_and_mismatched_input():
    with pytest.raises(ValueError, match="selected split is empty"):
        train_bc(np.zeros((0, 3)), np.zeros((0, 2)), np.array([-1, -1.0]), np.array([1, 1.0]), CFG, torch.device("cpu"))
    with pytest.raises(ValueError, match="shape mismatch"):
        train_bc(np.zeros((5, 3)), np.zeros((4, 2)), np.array([-1, -1.0]), np.array([1, 1.0]), CFG, torch.device("cpu"))


def test_eval_blocks_are_disjoint_from_each_other_and_from_every_collection_seed():
    tuning, test = eval_seeds("tuning", 20), eval_seeds("test", EVAL_SEEDS_PER_BLOCK)
    seeds = tuning + test
    assert min(seeds) >= EVAL_SEED_START and len(set(seeds)) == len(seeds)
    assert eval_seeds("test", 5) == test[:5]  # a longer block only adds episodes
    with pytest.raises(ParamError, match="unknown evaluation block"):
        eval_seeds("train", 3)
    with pytest.raises(ParamError, match="eval.test_episodes"):
        eval_seeds("test", EVAL_SEEDS_PER_BLOCK + 1)
    cfg = CollectConfig.from_section(dict(episodes_per_snapshot=50, noise=[0.0, 0.3], mix_pairs=[], mix_probs=[],
                                         episodes_per_mix=0, n_safe_demos=2, demo_return_quantile=0.5,
                                         max_unlabeled_episodes=10, min_safe_like_demos=0, min_unsafe_above_demos=0,
                                         strict=False, n_envs=1, workers=1,
                                         quality=dict(min_best_safe_return=0.1, max_terminated_share=0.9, min_safe_length_ratio=0.75, coverage_bins=5, min_coverage=0.25)))
    snaps = [{"agent": "a", "cost_limit": 5.0, "env_steps": k, "path": f"a/{k}.pt"} for k in range(10)]
    jobs = plan_jobs(snaps, __import__("pathlib").Path("."), cfg, seed=99)
    collect_seeds = {s for job in jobs for s in job.seeds}
    assert max(collect_seeds) < EVAL_SEED_START
    assert len(collect_seeds) == sum(len(j.seeds) for j in jobs)  # no seed reused across jobs


def test_evaluate_policy_in_the_real_simulator():
    spec = get_task("BallRun")
    zero = lambda obs: np.zeros((len(obs), 2), dtype=np.float32)  # noqa: E731
    table, metrics = evaluate_policy(spec, zero, eval_seeds("tuning", 3), n_envs=3)
    assert metrics["episodes"] == 3 and len(table) == 3
    assert metrics["normalized_reward"] == pytest.approx(table["normalized_reward"].mean())
    assert metrics["safe"] == (metrics["normalized_cost"] <= 1)
    again, _ = evaluate_policy(spec, zero, eval_seeds("tuning", 3), n_envs=1)
    np.testing.assert_allclose(table["reward"], again["reward"], rtol=1e-5)  # batching does not change results


def test_each_algorithm_can_have_its_own_bc_settings():
    """bc.per_algo.<algo> overrides the shared trainer settings for that algorithm only; unknown names are refused."""
    base = {"steps": 20000, "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-4, "hidden": [256, 256], "log_every": 200}
    cfg = BCConfig.from_section({**base, "per_algo": {"bc_safe": {"steps": 5000, "weight_decay": 0.001}}})
    assert (cfg.for_algo("bc_safe").steps, cfg.for_algo("bc_safe").weight_decay) == (5000, 0.001)
    assert cfg.for_algo("bc_safe").lr == 1e-3 and cfg.for_algo("dspo") == cfg and cfg.for_algo("bc_all").steps == 20000
    with pytest.raises(ParamError, match="not trained by BC"):
        BCConfig.from_section({**base, "per_algo": {"td3bc": {"steps": 5}}})
    with pytest.raises(ParamError, match="steps"):
        BCConfig.from_section({**base, "per_algo": {"bc_safe": {"steps": 0}}})
    with pytest.raises(ParamError, match="unknown key|extra"):
        BCConfig.from_section({**base, "per_algo": {"bc_safe": {"step": 5}}})


def test_distill_mixture_weights_hold_the_share_or_the_plain_union():
    """generated_share s: D^G gets mass s whatever the sizes; null: the paper's plain union (uniform over pairs)."""
    from dspo.core.errors import DataError
    from dspo.learners.dspo.distill import mixture_weights

    w = mixture_weights(10, 990, 0.25)
    assert w.sum() == pytest.approx(1.0) and w[:10].sum() == pytest.approx(0.75) and w[10:].sum() == pytest.approx(0.25)
    union = mixture_weights(10, 990, None)
    assert np.allclose(union, 1 / 1000) and union[:10].sum() == pytest.approx(0.01)
    assert mixture_weights(10, 0, 0.0)[:10].sum() == pytest.approx(1.0)
    with pytest.raises(DataError, match="generated table is empty"):
        mixture_weights(10, 0, None)
    three = mixture_weights(10, 990, 0.25, 40, 0.25)  # demos | generated | labeled safe
    assert len(three) == 1040 and three.sum() == pytest.approx(1.0)
    assert [three[:10].sum(), three[10:1000].sum(), three[1000:].sum()] == pytest.approx([0.5, 0.25, 0.25])
    with pytest.raises(DataError, match="no unlabeled episode is labeled safe"):
        mixture_weights(10, 990, 0.25, 0, 0.25)


def test_labeled_safe_episodes_take_the_score_threshold_and_the_demo_return_floor():
    """z >= the smallest demo z picks the labeled-safe episodes; the return floor then drops those whose return is
    below the asked quantile of the demos' returns, and an empty pick is refused unless the caller allows it."""
    import pandas as pd

    from dspo.core.errors import DataError
    from dspo.data.schemas import SAFE_DEMO, UNLABELED
    from dspo.learners.dspo.distill import labeled_safe_episodes

    labeled = pd.DataFrame({
        "episode_id": [0, 1, 2, 3, 4, 5, 6],
        "split": [SAFE_DEMO] * 3 + [UNLABELED] * 4,
        "return": [10.0, 20.0, 30.0, 5.0, 15.0, 25.0, 40.0],
        "z": [0.8, 0.9, 0.7, 0.95, 0.75, 0.6, 0.71],
    })
    ids, rule = labeled_safe_episodes(labeled)
    assert sorted(ids) == [3, 4, 6] and rule == "z >= the smallest demo z (0.7)"  # 5 scores below it
    assert sorted(labeled_safe_episodes(labeled, return_quantile=0.0)[0]) == [4, 6]  # 3 returns below every demo
    ids, rule = labeled_safe_episodes(labeled, return_quantile=0.5)
    assert sorted(ids) == [6] and "return >= 20 " in rule  # demo median 20
    with pytest.raises(DataError, match="return >= 30"):
        labeled_safe_episodes(labeled.drop(index=6), return_quantile=1.0)
    ids, rule = labeled_safe_episodes(labeled.drop(index=6), return_quantile=1.0, allow_empty=True)
    assert len(ids) == 0 and "return >= 30 " in rule  # the words the lever's fallback warning prints
    with pytest.raises(DataError, match="^my/labeled.parquet: no safe demo is scored"):
        labeled_safe_episodes(labeled[labeled["split"] == UNLABELED], "my/labeled.parquet")


def test_distill_shares_that_cannot_be_drawn_are_refused():
    """labeled_share needs a numeric generated_share, must leave room for the demos, and is not the control too."""
    from dspo.core.config import load_params
    from dspo.core.errors import ParamError
    from dspo.learners.dspo.distill import DistillConfig
    from tests.conftest import REPO

    params = load_params(REPO / "params.yaml")
    assert 0 <= DistillConfig.from_params(params).labeled_share < 1  # the committed default validates
    assert DistillConfig.from_params({"distill": {**params["distill"], "labeled_share": 0.0}}).labeled_share == 0
    for over, message in [({"labeled_share": 0.25, "generated_share": None}, "needs a number"),
                          ({"labeled_share": 0.8, "generated_share": 0.25}, "leaves no share for the demos"),
                          ({"labeled_share": 0.25, "source": "labeled_safe", "actions": "generated"}, "same episodes twice"),
                          ({"source": "unlabeled", "actions": "inverse_dynamics"}, "relabels generated actions"),
                          ({"labeled_return_quantile": 1.5}, "labeled_return_quantile")]:
        with pytest.raises(ParamError, match=message):
            DistillConfig.from_params({**params, "distill": {**params["distill"], **over}})


def test_a_policy_acts_at_one_torch_thread_whatever_the_callers_count():
    """Evaluation is the same on any number of cores: the policy's forward runs at one thread (float sums
    depend on the thread count, and in closed loop a last-bit difference changes the episode)."""
    seen = []

    def act(obs):
        seen.append(torch.get_num_threads())
        return np.zeros((len(obs), 2), dtype=np.float32)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        evaluate_policy(get_task("BallRun"), act, eval_seeds("tuning", 1), n_envs=1)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2  # the caller's count comes back
    finally:
        torch.set_num_threads(before)
