"""The one task registry: every task the pipeline knows, with its cost limit and reference constants.

Normalization follows DSRL (Liu et al. 2023, "Datasets and Benchmarks for Offline Safe RL"):
normalized reward = (R - R_min) / (R_max - R_min), normalized cost = C / kappa. The R_max / R_min
values below are DSRL's per-task reference returns (`dsrl/infos.py`, MAX/MIN_EPISODE_REWARD);
episode lengths are DSRL's DEFAULT_MAX_EPISODE_STEPS. Cost limits are the field's defaults:
10 for BulletGym and MetaDrive, 20 for SafetyGym (the lowest of DSRL's 20/40/80 sweep).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dspo.core.errors import UnknownTaskError

BULLET = "bullet"
SAFETY_GYM = "safety_gymnasium"
METADRIVE = "metadrive"
FAMILIES = (BULLET, SAFETY_GYM, METADRIVE)


@dataclass(frozen=True)
class TaskSpec:
    """Everything the pipeline needs to know about one task."""

    name: str
    family: str
    env_id: str  # simulator id (gym id for bullet / safety-gymnasium, map name for MetaDrive)
    cost_limit: float  # kappa: an episode is safe when its cost return is <= kappa
    max_episode_steps: int
    reward_max: float  # DSRL reference R_max
    reward_min: float  # DSRL reference R_min
    obs_dim: int  # observation size, as the simulator reports it (tests/test_tasks.py checks against live envs)
    act_dim: int  # action size; every registered task's action space is the box [-1, 1]^act_dim
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def act_low(self) -> np.ndarray:
        return np.full(self.act_dim, -1.0, dtype=np.float32)

    @property
    def act_high(self) -> np.ndarray:
        return np.full(self.act_dim, 1.0, dtype=np.float32)

    @property
    def one_env_per_process(self) -> bool:
        """MetaDrive runs one engine per process: no lock-step or vectorized envs in one process."""
        return self.family == METADRIVE

    def normalized_reward(self, episode_return: float) -> float:
        return (episode_return - self.reward_min) / (self.reward_max - self.reward_min)

    def normalized_cost(self, episode_cost: float) -> float:
        # DSRL uses (C + 1) / (kappa + 1) only when kappa == 0, to avoid dividing by zero.
        if self.cost_limit == 0:
            return (episode_cost + 1.0) / (self.cost_limit + 1.0)
        return episode_cost / self.cost_limit


def _bullet(name: str, r_max: float, r_min: float, steps: int, obs_dim: int, act_dim: int) -> TaskSpec:
    return TaskSpec(name, BULLET, f"Safety{name}-v0", 10.0, steps, r_max, r_min, obs_dim, act_dim)


def _safety_gym(name: str, env_id: str, r_max: float, r_min: float, obs_dim: int, act_dim: int,
                steps: int = 1000) -> TaskSpec:
    return TaskSpec(name, SAFETY_GYM, env_id, 20.0, steps, r_max, r_min, obs_dim, act_dim)


# MetaDrive settings used by DSRL (dsrl/offline_metadrive/gym_envs.py): map difficulty ->
# (start_seed, block sequence of its one 3-block map), and traffic density. Observations: 259 (lidar + state).
# Hard: DSRL's seed 200 draws, on metadrive 0.4.3, an exit ramp whose solid lines cross the route (no car can
# pass: out of road), so the hard level takes the first seed >= 200 an IDM driver finishes, 204
# (dspo/data/envs/metadrive.py; scripts/metadrive_map_probe.py, reports/probes/MetaDrive-*-maps.json).
METADRIVE_MAPS = {"easy": (0, "SCS"), "medium": (100, "XST"), "hard": (204, "TRO")}
METADRIVE_TRAFFIC = {"sparse": 0.1, "mean": 0.15, "dense": 0.2}
_METADRIVE_REWARD = {  # DSRL reference (R_max, R_min)
    "easysparse": (425.801, 20.094), "easymean": (425.824, 22.143), "easydense": (425.817, 19.711),
    "mediumsparse": (269.801, 17.447), "mediummean": (269.822, 17.033), "mediumdense": (269.781, 15.102),
    "hardsparse": (486.805, 17.248), "hardmean": (486.997, 19.388), "harddense": (486.636, 15.387),
}


def _metadrive(level: str, traffic: str) -> TaskSpec:
    name = f"{level}{traffic}"
    r_max, r_min = _METADRIVE_REWARD[name]
    start_seed, blocks = METADRIVE_MAPS[level]
    kwargs = {"start_seed": start_seed, "map": blocks, "traffic_density": METADRIVE_TRAFFIC[traffic]}
    return TaskSpec(f"MetaDrive-{name}", METADRIVE, name, 10.0, 1000, r_max, r_min, 259, 2, kwargs)


_ALL: list[TaskSpec] = [
    _bullet("BallCircle", 881.463, 0.383, 200, 8, 2),
    _bullet("BallRun", 1327.446, 26.340, 100, 7, 2),
    _bullet("CarCircle", 534.306, 3.484, 300, 8, 2),
    _bullet("CarRun", 574.653, 204.287, 200, 7, 2),
    _bullet("DroneCircle", 996.389, 207.794, 300, 18, 4),
    _bullet("DroneRun", 682.833, 10.557, 200, 17, 4),
    _bullet("AntCircle", 460.709, 0.0177, 500, 34, 8),
    _bullet("AntRun", 955.482, 0.00177, 200, 33, 8),
    _safety_gym("SwimmerVelocity", "SafetySwimmerVelocityGymnasium-v1", 238.958, 0.0711, 8, 2),
    _safety_gym("HopperVelocity", "SafetyHopperVelocityGymnasium-v1", 1911.397, 37.052, 11, 3),
    _safety_gym("HalfCheetahVelocity", "SafetyHalfCheetahVelocityGymnasium-v1", 2806.933, 5.751, 17, 6),
    _safety_gym("Walker2dVelocity", "SafetyWalker2dVelocityGymnasium-v1", 3418.224, 18.668, 17, 6),
    _safety_gym("AntVelocity", "SafetyAntVelocityGymnasium-v1", 2976.277, 6.152, 27, 8),
    _safety_gym("PointGoal1", "SafetyPointGoal1Gymnasium-v0", 30.071, 0.0120, 60, 2),
    _safety_gym("PointButton1", "SafetyPointButton1Gymnasium-v0", 41.193, 0.00882, 76, 2),
    _safety_gym("CarGoal1", "SafetyCarGoal1Gymnasium-v0", 39.908, 0.0122, 72, 2),
    _safety_gym("CarButton1", "SafetyCarButton1Gymnasium-v0", 44.420, 0.00289, 88, 2),
] + [_metadrive(level, traffic) for level in METADRIVE_MAPS for traffic in METADRIVE_TRAFFIC]

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in _ALL}
DEFAULT_TASK = "BallCircle"


def get_task(name: str) -> TaskSpec:
    """Look a task up by name; an unknown name fails at once and lists the valid ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(
            f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}"
        ) from None
