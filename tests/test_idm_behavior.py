"""Scripted IDM behavior agents (MetaDrive): their params are checked up front, and a snapshot drives.

The drive check runs in a subprocess (MetaDrive allows one engine per process)."""
import importlib.util
import json
import subprocess
import sys

import pytest
import yaml
from pydantic import ValidationError

from dspo.core.errors import ParamError
from dspo.data.behavior import AgentSpec, BehaviorConfig, check_agents
from dspo.data.tasks import get_task
from tests.conftest import REPO


def _behavior(agents):
    section = yaml.safe_load((REPO / "params.yaml").read_text())["behavior"]
    return BehaviorConfig.model_validate({**section, "agents": agents})


def test_idm_agent_needs_a_target_speed_and_no_cost_limit():
    assert AgentSpec(name="idm_10", kind="idm", target_speed_kmh=10).target_speed_kmh == 10
    for bad in ({"name": "a", "kind": "idm"}, {"name": "a", "kind": "idm", "target_speed_kmh": 10, "cost_limit": 5},
                {"name": "a", "kind": "idm", "target_speed_kmh": 0}, {"name": "a", "cost_limit": 5, "target_speed_kmh": 10},
                {"name": "a", "kind": "sac", "cost_limit": 5}):
        with pytest.raises(ValidationError):
            AgentSpec.model_validate(bad)


def test_ppo_agents_keep_their_params():
    agent = AgentSpec.model_validate({"name": "ppol_k5", "cost_limit": 5})
    assert agent.kind == "ppo" and agent.cost_limit == 5 and agent.target_speed_kmh is None


def test_idm_agents_refused_off_metadrive():
    cfg = _behavior([{"name": "idm_10", "kind": "idm", "target_speed_kmh": 10}, {"name": "ppo", "cost_limit": None}])
    with pytest.raises(ParamError, match=r"kind idm drives MetaDrive tasks only, not BallCircle"):
        check_agents(get_task("BallCircle"), cfg)
    check_agents(get_task("MetaDrive-easysparse"), cfg)  # accepted there


_DRIVE = r"""
import json, sys, numpy as np
from pathlib import Path
from dspo.data.behavior import BehaviorConfig, SnapshotPolicy, train_population
from dspo.data.envs import make_env
from dspo.data.rollout import rollout_episodes
from dspo.data.tasks import get_task
spec = get_task("MetaDrive-easysparse")
out = Path(sys.argv[1])
section = dict(agents=[{"name": "idm_40", "kind": "idm", "target_speed_kmh": 40}], env_steps=8, snapshots=1,
               hidden=[8], lr=1e-3, episode_per_collect=1, train_envs=1, workers=1)
rows = train_population(spec, BehaviorConfig.model_validate(section), 0, out)
env = make_env(spec)
policy = SnapshotPolicy(out / rows[0]["path"], spec, env.observation_space.shape[0])
eps = rollout_episodes(spec, policy, [3, 3], envs=[env])
env.close()
print("RESULT " + json.dumps({"rows": rows, "returns": [e.reward_return for e in eps],
      "lengths": [e.length for e in eps], "terminated": [bool(e.terminated[-1]) for e in eps],
      "same": bool(np.array_equal(eps[0].actions, eps[1].actions))}))
"""


@pytest.mark.metadrive
@pytest.mark.skipif(importlib.util.find_spec("metadrive") is None, reason="metadrive not installed")
def test_idm_snapshot_drives_the_route(tmp_path):
    """A 40 km/h IDM driver finishes the easy map (DSRL's R_max 425.8) with no training, reproducibly."""
    proc = subprocess.run([sys.executable, "-c", _DRIVE, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["rows"] == [{"agent": "idm_40", "cost_limit": None, "env_steps": 0, "path": "idm_40/step_00000000.pt"}]
    spec = get_task("MetaDrive-easysparse")
    assert all(spec.normalized_reward(r) > 0.5 for r in out["returns"]), out
    assert out["same"], "the same env seed must give the same IDM episode"


PROBE = REPO / "scripts" / "metadrive_map_probe.py"


def run_map_probe(tmp_path, *args):
    proc = subprocess.run([sys.executable, str(PROBE), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


def test_map_probe_refuses_other_families_and_a_bad_speed(tmp_path):
    code, err = run_map_probe(tmp_path, "--task", "BallCircle")
    assert code == 2 and "MetaDrive tasks only" in err
    code, err = run_map_probe(tmp_path, "--speed", "0")
    assert code == 2 and "--speed 0" in err


@pytest.mark.metadrive
@pytest.mark.skipif(importlib.util.find_spec("metadrive") is None, reason="metadrive not installed")
def test_map_probe_finds_the_easy_map_drivable(tmp_path):
    """DSRL's easy map (seed 0) is drivable on metadrive 0.4.3: IDM finishes it at DSRL's R_max."""
    out = tmp_path / "maps.json"
    code, err = run_map_probe(tmp_path, "--task", "MetaDrive-easysparse", "--count", "1", "--json", str(out))
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["drivable"] == [0] and report["rows"][0]["end"] == "arrive"
    assert report["rows"][0]["normalized_return"] == pytest.approx(1.0, abs=0.05)
