"""Labeling metrics (Table 2): AUROC, the min-demo-z decision rule's F1 and the oracle F1 ceiling."""
import numpy as np
import pandas as pd
import pytest

from dspo.data.schemas import SAFE_DEMO, UNLABELED, StepData
from dspo.evaluation.labeling import auroc, best_f1, classification, score_metrics
from tests.conftest import synthetic_columns


def brute_force_best_f1(scores, labels):
    return max(classification(scores >= t, labels)["f1"] for t in np.unique(scores))


def test_auroc_perfect_inverted_and_tied():
    labels = np.array([1, 1, 0, 0], bool)
    assert auroc(np.array([4.0, 3.0, 2.0, 1.0]), labels) == 1.0
    assert auroc(np.array([1.0, 2.0, 3.0, 4.0]), labels) == 0.0
    assert auroc(np.ones(4), labels) == 0.5
    assert np.isnan(auroc(np.arange(3.0), np.ones(3, bool)))


def test_best_f1_finds_the_separating_threshold():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    f1, t = best_f1(scores, labels)
    assert f1 == 1.0 and t == 0.7
    assert classification(scores >= 0.9, labels)["f1"] == pytest.approx(0.5)  # a strict rule: recall 1/3


def test_best_f1_keeps_ties_on_one_side():
    scores = np.array([1.0, 1.0, 0.0])  # a tie of a safe and an unsafe episode cannot be split
    labels = np.array([1, 0, 0], bool)
    f1, t = best_f1(scores, labels)
    assert f1 == pytest.approx(brute_force_best_f1(scores, labels)) and t == 1.0
    assert np.isnan(best_f1(scores, np.zeros(3, bool))[0])
    assert all(np.isnan(best_f1(np.zeros(0), np.zeros(0, bool))))  # nothing scored: no threshold either


def test_best_f1_equals_the_brute_force_maximum():
    rng = np.random.default_rng(0)
    for _ in range(200):  # small integer scores: many ties
        n = int(rng.integers(1, 30))
        scores, labels = rng.integers(0, 7, n).astype(float), rng.random(n) < rng.random()
        f1, t = best_f1(scores, labels)
        if not labels.any():
            assert np.isnan(f1)
            continue
        assert f1 == pytest.approx(brute_force_best_f1(scores, labels))
        assert classification(scores >= t, labels)["f1"] == pytest.approx(f1)


def test_score_metrics_reads_the_unlabeled_rows_only():
    episodes = pd.DataFrame({
        "split": [SAFE_DEMO, UNLABELED, UNLABELED, UNLABELED, UNLABELED],
        "is_safe": [True, True, True, False, False],
        "source_agent": ["a", "a", "b", "a", "b"],
        "return": [5.0, 1.0, 2.0, 3.0, 4.0]})
    z = np.array([0.0, 0.8, 0.6, 0.7, 0.1])  # the demo's z would break the ranking if it were counted
    m = score_metrics(z, episodes, threshold=0.75)
    assert m["auroc"] == pytest.approx(0.75)  # (0.8 beats both unsafe, 0.6 beats one) / 4
    assert m["recall"] == 0.5 and m["precision"] == 1.0
    assert m["f1_best"] == pytest.approx(0.8) and m["threshold_f1_best"] == 0.6  # 2 TP of 3 predicted
    assert m["auroc_within_agent"] == pytest.approx(1.0)  # a: 0.8 > 0.7, b: 0.6 > 0.1


def test_table2_names_the_scorer_from_new_and_older_reports():
    from dspo.evaluation.report import table2_markdown, z_source

    assert z_source({"scorer": "rgm", "backbone": None}) == "rgm"
    assert z_source({"scorer": "discriminator", "backbone": "transformer"}) == "transformer"
    assert z_source({"backbone": "rgm"}) == "rgm" and z_source({"backbone": "mlp"}) == "mlp"  # before `scorer`
    base = {"seeds": [0], "auroc": 0.9, "auroc_ci": [0.8, 1.0], "auroc_within_agent": 0.8, "f1": 0.4,
            "pearson_return": -0.4, "yardsticks": {"-return": 0.8}}
    md = table2_markdown([{**base, "task": "A", "z_from": "rgm", "f1_best": 0.81, "pearson_return_true_label": -0.47,
                           "yardsticks": {"-return": 0.8, "untrained network": float("nan")}},
                          {**base, "task": "B", "backbone": "mlp"}])  # an older suite copy: no z_from, no f1_best
    row = {ln.split("|")[1].strip(): ln for ln in md.splitlines()[2:]}
    assert "RGM correction" in row["A"] and "0.810" in row["A"] and "-0.470" in row["A"]
    assert "MLP discriminator" in row["B"] and "n/a" in row["B"]
    assert "nan" not in md and row["A"].rstrip(" |").endswith("n/a")  # no untrained network behind RGM


def test_the_true_label_row_shows_a_perfect_scores_correlation_with_return():
    """On data where safe episodes earn less, even a perfect score correlates with return: the reference row says how
    much, so a return-agnostic target is read against what the data allows."""
    from dspo.evaluation.labeling import TRUE_LABEL_ROW, labeling_rows

    rng = np.random.default_rng(0)
    n = 60
    ret = rng.normal(size=n)
    safe = ret + 0.5 * rng.normal(size=n) < 0  # safety tied to low return
    episodes = pd.DataFrame({"split": [SAFE_DEMO] * 3 + [UNLABELED] * (n - 3), "is_safe": safe,
                             "source_agent": np.where(np.arange(n) % 2 == 0, "a", "b"), "return": ret},
                            index=pd.Index(np.arange(n), name="episode_id"))
    rows = labeling_rows(StepData("BallCircle", **synthetic_columns(n_episodes=n, length=4, n_demos=3)), episodes, rng.random(n), threshold=0.5)
    ref = rows[TRUE_LABEL_ROW]
    unl = slice(3, None)
    assert ref["auroc"] == 1.0 and ref["f1"] == 1.0 and ref["f1_best"] == 1.0
    assert ref["pearson_return"] == pytest.approx(np.corrcoef(safe[unl], ret[unl])[0, 1])
    assert ref["pearson_return"] < -0.5
    assert not TRUE_LABEL_ROW.startswith("yardstick")  # never the "best trivial yardstick" the margin is taken over

