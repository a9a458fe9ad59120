"""MetaDrive tasks (DSRL's easy/medium/hard x sparse/mean/dense), on metadrive-simulator 0.4.3.

DSRL's own wrapper (`dsrl/offline_metadrive/gym_envs.py`, run on a metadrive 0.2.6 fork) does
not run on 0.4.3, so this module rebuilds it:

* map: 3 blocks in a fixed sequence per level, easy "SCS", medium "XST", hard "TRO", with
  start_seed 0/100/200 and ONE scenario per task (DSRL's `environment_num: 1`; the reward
  normalization constants refer to that one map). An integer `map` in `spec.env_kwargs` (a block
  count) is superseded by DSRL's sequence; a string `map` is used as the block sequence, and
  `num_scenarios` may be set in `spec.env_kwargs` to use more maps.
* traffic: density 0.1/0.15/0.2, `random_traffic=True`, `TrafficMode.Hybrid`, no accidents,
  `crash_vehicle_penalty=0` (as DSRL); horizon = `spec.max_episode_steps` (1000).
* cost: SafeMetaDriveEnv's (1 for crash or out-of-road) + DSRL's speed cost
  0.01 * max(0, v - 10) with v in km/h (metadrive 0.2.6 reported `info["velocity"]` in km/h;
  0.4.3 reports m/s, so we convert) + DSRL's tiny proximity cost 0.01 * max(0, 0.1 - min lidar)^2.
* termination: arrival, crash or out-of-road (as DSRL); truncation at `spec.max_episode_steps`.

Map (hard level): metadrive 0.4.3 draws DSRL's hard start seed 200 with an exit ramp whose solid white
lines cross all three lanes of the main road (40-150 m after the T junction), so every car that follows
the route touches a continuous line there and is out of road (max normalized return 0.38; the bundled
expert and an IDM driver both end there). The hard level uses the first start seed >= 200 whose map an
IDM driver finishes without traffic, 204 (return 452 of DSRL's R_max 487); easy (seed 0: 425.7 vs 425.8)
and medium (seed 100: 259.6 vs 269.8) finish at DSRL's seeds (`scripts/metadrive_map_probe.py`,
reports/probes/MetaDrive-*-maps.json).

Scripted driver: `IDMDriver` is MetaDrive's IDM lane follower (traffic cars' policy) driving the ego
car at a target speed -- a behavior agent that needs no training (`behavior.agents` kind `idm`).

Offline: the wheel ships no assets and the engine's first start tries to download them, so
`BaseEngine.try_pull_asset` is patched to a no-op before any env is made (in every process that
makes one, since the patch is applied inside `make_metadrive_env`). Headless (`use_render=False`).

Reproducibility: `reset(seed=s)` draws the scenario index in [start_seed, start_seed +
num_scenarios) and the traffic seed from `np.random.default_rng(s)` (MetaDrive does not reseed
random traffic itself), and `force_destroy=True` rebuilds all objects on every reset (MetaDrive
otherwise recycles the ego vehicle, whose physics state leaks into the next episode).

MetaDrive allows ONE engine per process: a second env in the same process would silently share
the first one's engine and config, so `make_metadrive_env` refuses while another is open. Call
`env.close()` to free the engine; use one process per MetaDrive env for parallel rollouts.
"""
from __future__ import annotations

import logging

import gymnasium as gym
import numpy as np

from dspo.data.envs.common import box32
from dspo.data.tasks import TaskSpec

DSRL_BLOCKS = {"easy": "SCS", "medium": "XST", "hard": "TRO"}  # block sequence per level
NUM_SCENARIOS = 1  # DSRL's environment_num
SPEED_LIMIT_KMH = 10.0  # DSRL: velocity_cost = 1e-2 * max(0, v_kmh - 10)
SPEED_COST_SCALE = 1e-2
PROXIMITY_RANGE, PROXIMITY_SCALE = 0.1, 1e-2  # on the normalized 240-beam lidar (last 240 obs)
N_LIDAR = 240


def _offline_patch() -> None:
    """Stop MetaDrive from trying to download its asset pack (no internet; not needed headless)."""
    from metadrive.engine.base_engine import BaseEngine

    BaseEngine.try_pull_asset = staticmethod(lambda: None)


class MetaDriveSafeEnv(gym.Env):
    """DSRL-style SafeMetaDriveEnv with the dspo contract (5-tuple, float cost, float32 spaces)."""

    metadata = {"render_modes": []}

    def __init__(self, config: dict, max_episode_steps: int):
        from metadrive.engine.engine_utils import engine_initialized
        from metadrive.envs.safe_metadrive_env import SafeMetaDriveEnv

        if engine_initialized():
            raise RuntimeError("MetaDrive allows one env per process: close() the open one first "
                               "or make this env in another process")
        self._env = SafeMetaDriveEnv(config)
        self._env.lazy_init()  # start the engine now, so that a second env fails loudly (above)
        self.observation_space = box32(self._env.observation_space)
        self.action_space = box32(self._env.action_space)
        self._start, self._n = int(config["start_seed"]), int(config["num_scenarios"])
        self._max_steps = max_episode_steps
        self._rng = np.random.default_rng()
        self._t = 0
        self._closed = False

    def reset(self, *, seed: int | None = None, options=None):
        from metadrive.base_class.randomizable import Randomizable

        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self.action_space.seed(seed)
        scenario = self._start + int(self._rng.integers(self._n))
        # random traffic is not reseeded by MetaDrive: seed the traffic manager's stream ourselves
        Randomizable.seed(self._env.engine.traffic_manager, int(self._rng.integers(2**31 - 1)))
        obs, info = self._env.reset(seed=scenario)
        self._t = 0
        return np.asarray(obs, dtype=np.float32), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self._env.step(np.asarray(action, np.float32))
        self._t += 1
        speed_kmh = 3.6 * info["velocity"]
        info["velocity_cost"] = SPEED_COST_SCALE * max(0.0, speed_kmh - SPEED_LIMIT_KMH)
        nearest = float(np.min(obs[-N_LIDAR:]))
        info["proximity_cost"] = PROXIMITY_SCALE * max(0.0, PROXIMITY_RANGE - nearest) ** 2
        info["crash_cost"] = float(info["cost"]) if info["crash"] else 0.0
        info["out_of_road_cost"] = float(info["cost"]) if info["out_of_road"] else 0.0
        info["cost"] = float(info["cost"]) + info["velocity_cost"] + info["proximity_cost"]
        terminated = bool(terminated or info["arrive_dest"] or info["crash"] or info["out_of_road"])
        truncated = bool(truncated) or self._t >= self._max_steps
        return np.asarray(obs, dtype=np.float32), float(reward), terminated, truncated, info

    def close(self):
        if not self._closed:
            self._closed = True
            self._env.close()


def metadrive_config(spec: TaskSpec) -> dict:
    """The SafeMetaDriveEnv config for a registry task (DSRL's settings, see the module doc)."""
    from metadrive.manager.traffic_manager import TrafficMode

    kw = dict(spec.env_kwargs)
    level = next(lv for lv in DSRL_BLOCKS if spec.env_id.startswith(lv))
    blocks = kw["map"] if isinstance(kw.get("map"), str) else DSRL_BLOCKS[level]
    return dict(
        use_render=False, log_level=logging.WARNING,
        start_seed=int(kw.get("start_seed", 0)),
        num_scenarios=int(kw.get("num_scenarios", NUM_SCENARIOS)),
        map=blocks, traffic_density=float(kw["traffic_density"]), accident_prob=0.0,
        random_traffic=True, traffic_mode=TrafficMode.Hybrid, crash_vehicle_penalty=0.0,
        horizon=spec.max_episode_steps, force_destroy=True,
    )


def make_metadrive_env(spec: TaskSpec) -> gym.Env:
    """Make a registry MetaDrive task; at most one may be open per process (see module doc)."""
    _offline_patch()
    return MetaDriveSafeEnv(metadrive_config(spec), spec.max_episode_steps)


def episode_end(info: dict) -> str:
    """How a MetaDrive episode ended, from its last step's info: arrive, crash, out_of_road or time_limit."""
    return ("arrive" if info["arrive_dest"] else "crash" if info["crash"] else
            "out_of_road" if info["out_of_road"] else "time_limit")


def _ego_vehicle():
    """The one ego car of this process's MetaDrive engine (an env must be open here)."""
    from metadrive.engine.engine_utils import engine_initialized, get_engine

    if not engine_initialized():
        raise RuntimeError("IDMDriver acts on this process's MetaDrive env: make one first")
    agents = list(get_engine().agent_manager.active_agents.values())
    if len(agents) != 1:
        raise RuntimeError(f"IDMDriver drives one ego car, the engine has {len(agents)}")
    return agents[0]


class IDMDriver:
    """MetaDrive's IDM policy (lane following, route lane changes, keeping a gap to the car ahead) at a
    target speed, as a batched act function over this process's one MetaDrive env.

    It reads the simulator (lanes, route, surrounding cars), not the observation, which is why it only
    acts for the env open in this process (one per process anyway, see the module doc). A new ego car
    (every reset rebuilds it) gets a fresh IDM state, seeded by the episode count, so a rollout is
    reproducible from its env seeds."""

    def __init__(self, target_speed_kmh: float):
        if not target_speed_kmh > 0:
            raise ValueError(f"target_speed_kmh must be > 0, got {target_speed_kmh}")
        self.target_speed_kmh = float(target_speed_kmh)
        self._vehicle = None
        self._policy = None
        self._episodes = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        from metadrive.policy.idm_policy import IDMPolicy

        if len(obs) != 1:
            raise ValueError(f"IDMDriver drives one MetaDrive env per process, got a batch of {len(obs)}")
        vehicle = _ego_vehicle()
        if vehicle is not self._vehicle:
            self._vehicle, self._episodes = vehicle, self._episodes + 1
            self._policy = IDMPolicy(vehicle, self._episodes)
            # IDM resets target_speed to its class speeds on lane changes: set those on the instance
            self._policy.NORMAL_SPEED = self._policy.target_speed = self.target_speed_kmh
            self._policy.CREEP_SPEED = min(IDMPolicy.CREEP_SPEED, self.target_speed_kmh)
        return np.clip(np.asarray(self._policy.act(), dtype=np.float32), -1.0, 1.0)[None, :]
