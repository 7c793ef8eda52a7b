"""EER / minDCF against the golden metrics.json, and the metric definitions on small cases."""

import json
import math

import numpy as np
import pytest

from wespk.scoring.metrics import act_dcf, bayes_threshold, calibration_metrics, cllr, eer_min_dcf, error_rates
from wespk.scoring.score_files import read_score_file


@pytest.fixture(scope="module")
def golden_metrics(golden_scoring_full):
    return json.loads((golden_scoring_full / "metrics.json").read_text())


def test_eer_and_min_dcf_match_golden_within_1e9(golden_scoring_full, golden_metrics):
    assert len(golden_metrics["score_files"]) == 5
    for name, relative in golden_metrics["score_files"].items():
        expected = golden_metrics["metrics"][name]
        table = read_score_file(golden_scoring_full / relative, require_labels=True)
        result = eer_min_dcf(table.scores, table.is_target, (0.01, 0.05))
        assert result.num_trials == expected["n_trials"] and result.num_target == expected["n_target"]
        assert abs(result.eer - expected["eer"]) <= 1e-9, name
        assert result.eer_threshold == expected["eer_threshold"], name
        assert abs(result.min_dcf[0.01] - expected["min_dcf_p0.01"]) <= 1e-9, name
        assert abs(result.min_dcf[0.05] - expected["min_dcf_p0.05"]) <= 1e-9, name


def brute_force(scores, labels, p_target):
    """Sweep every threshold 'accept if score > t' over the sorted scores (no accept-all point)."""
    costs, points = [], []
    for t in np.sort(scores):
        p_miss = np.mean(scores[labels] <= t)
        p_fa = np.mean(scores[~labels] > t)
        costs.append(p_target * p_miss + (1 - p_target) * p_fa)
        points.append((p_miss, p_fa))
    return min(costs) / min(p_target, 1 - p_target), points


def test_min_dcf_and_rates_equal_a_threshold_sweep():
    rng = np.random.default_rng(11)
    labels = rng.random(300) < 0.2
    scores = np.where(labels, 1.0, 0.0) + rng.standard_normal(300)
    expected_dcf, points = brute_force(scores, labels, 0.05)
    _, p_miss, p_fa = error_rates(scores, labels)
    np.testing.assert_allclose(np.stack([p_miss, p_fa], 1), points, atol=1e-12)
    assert eer_min_dcf(scores, labels, [0.05]).min_dcf[0.05] == pytest.approx(expected_dcf, abs=1e-12)


def test_eer_on_separable_and_interleaved_scores():
    # perfectly separated: EER 0; the threshold is the highest non-target score (reject scores <= it)
    result = eer_min_dcf(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True]), [0.5])
    assert result.eer == 0.0 and result.eer_threshold == 0.2
    # one target below one non-target out of two each: EER 50% between the two middle points
    result = eer_min_dcf(np.array([0.1, 0.3, 0.2, 0.9]), np.array([False, False, True, True]), [0.5])
    assert result.eer == pytest.approx(0.5)
    # the lowest score is a target: no point with miss < fa; handled instead of crashing
    result = eer_min_dcf(np.array([0.0, 0.5, 0.6, 1.0]), np.array([True, False, False, True]), [0.5])
    assert 0 <= result.eer <= 1


def test_single_class_is_an_error():
    with pytest.raises(ValueError, match="need both target and non-target"):
        eer_min_dcf(np.zeros(3), np.ones(3, bool))


def test_cllr_reference_values():
    labels = np.array([True, False, True, False])
    assert cllr(np.zeros(4), labels) == pytest.approx(1.0)  # an uninformative system costs 1 bit
    assert cllr(np.array([50.0, -50.0, 50.0, -50.0]), labels) < 1e-20
    assert cllr(np.array([2.0, -1.0]), np.array([True, False])) == pytest.approx(
        0.5 * (math.log2(1 + math.exp(-2)) + math.log2(1 + math.exp(-1))))
    assert math.isfinite(cllr(np.array([1e4, -1e4]), np.array([False, True])))  # no overflow


def test_act_dcf_uses_the_bayes_threshold():
    threshold = bayes_threshold(0.01)
    assert threshold == pytest.approx(math.log(99))
    llrs = np.array([threshold + 0.1, threshold - 0.1, threshold + 0.1, -10])
    labels = np.array([True, True, False, False])
    # one miss of two targets, one false alarm of two non-targets
    expected = (0.01 * 0.5 + 0.99 * 0.5) / 0.01
    assert act_dcf(llrs, labels, 0.01) == pytest.approx(expected)
    assert calibration_metrics(llrs, labels, [0.01]).act_dcf[0.01] == pytest.approx(expected)
    # actDCF is never below minDCF at the same prior
    rng = np.random.default_rng(2)
    labels = rng.random(500) < 0.5
    llrs = np.where(labels, 3.0, -3.0) + 2 * rng.standard_normal(500)
    assert act_dcf(llrs, labels, 0.05) >= eer_min_dcf(llrs, labels, [0.05]).min_dcf[0.05] - 1e-12
