"""scripts/metadrive_expert_probe.py: refuses what it cannot probe; a capped expert respects its cap."""
import importlib.util
import json
import subprocess

import pytest

from tests.conftest import PYTHON, REPO

SCRIPT = REPO / "scripts" / "metadrive_expert_probe.py"


def run_probe(tmp_path, *args):
    proc = subprocess.run([PYTHON, str(SCRIPT), *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


def test_refuses_a_task_without_the_expert_and_a_bad_cap(tmp_path):
    code, _, err = run_probe(tmp_path, "--task", "BallCircle")
    assert code == 2 and "MetaDrive tasks only" in err
    code, _, err = run_probe(tmp_path, "--speed-cap", "-5")
    assert code == 2 and "--speed-cap -5" in err
    code, _, err = run_probe(tmp_path, "--speed-cap", "fast")
    assert code == 2 and "--speed-cap fast" in err


@pytest.mark.metadrive
@pytest.mark.skipif(importlib.util.find_spec("metadrive") is None, reason="metadrive not installed")
def test_capped_expert_episode_is_slower_and_recorded(tmp_path):
    out = tmp_path / "probe.json"
    code, stdout, err = run_probe(tmp_path, "--task", "MetaDrive-easysparse", "--episodes", "1",
                                  "--speed-cap", "none", "--speed-cap", "8", "--json", str(out))
    assert code == 0, err
    rows = json.loads(out.read_text())["rows"]
    assert [r["speed_cap_kmh"] for r in rows] == [None, 8.0]
    for r in rows:
        assert sum(r["end_shares"].values()) == pytest.approx(1.0) and r["cost_mean"] >= 0.0
        assert set(r["end_shares"]) <= {"arrive", "crash", "out_of_road", "time_limit"}
    # under an 8 km/h cap the speed cost (above 10 km/h) vanishes: the capped episode costs less per step
    per_step = [r["cost_mean"] / r["length_mean"] for r in rows]
    assert per_step[1] < per_step[0]
