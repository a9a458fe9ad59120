"""The 2-D illustration (paper Fig. 3): the vCLUB term fixes the ranking a plain discriminator gets wrong."""
import pytest
import torch

from dspo.evaluation.toy2d import make_toy_data, plot_toy, run_toy

torch.set_num_threads(1)


@pytest.mark.parametrize("seed", [0, 1])
def test_return_agnostic_term_recalls_safe_samples(seed):
    plain, agnostic = run_toy(0.0, seed), run_toy(1.0, seed)
    # Without RA, unsafe high-return samples outrank safe lower-return ones in most pairs.
    assert plain["pair_misrank"] > 0.5 and plain["pair_misrank"] > agnostic["pair_misrank"] + 0.4
    # With RA, safe unlabeled samples are recalled (z >= the smallest demo z), unsafe ones are not.
    assert agnostic["recall_safe"] > plain["recall_safe"] + 0.15
    assert agnostic["false_recall_unsafe"] < 0.05
    assert agnostic["corr_return"] < plain["corr_return"]


def test_toy_is_deterministic():
    assert run_toy(1.0, 0, steps=50) == run_toy(1.0, 0, steps=50)
    a, b = make_toy_data(3), make_toy_data(3)
    assert (a["x"] == b["x"]).all() and (a["group"] == b["group"]).all()


def test_plot_toy_writes_png(tmp_path):
    path = tmp_path / "toy.png"
    results = plot_toy(path, seed=0, variants=(("plain", 0.0, 0.0), ("RA", 1.0, 0.0)), steps=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(results) == 2
