"""The NAB-style scorer against values worked out by hand from the published rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iotml.anomaly.nab import (
    PROFILES,
    best_threshold,
    normalised,
    probation,
    scaled_sigmoid,
    score_series,
    windows,
)
from iotml.errors import ConfigError

STD = PROFILES["standard"]
N = 2000  # probation 300; one anomaly at 1000: window width 200, [900, 1100]


def _hits(*at: int, n: int = N) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[list(at)] = True
    return out


def _sigma(y: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def test_windows_are_a_tenth_of_the_series_shared_by_its_anomalies_centred_and_merged() -> None:
    assert windows(N, [1000]).tolist() == [[900, 1100]]
    assert windows(N, [500, 1500]).tolist() == [[450, 550], [1450, 1550]]  # 100 each
    assert windows(N, [1000, 1050]).tolist() == [[950, 1100]]  # overlapping: merged
    assert windows(N, [5]).tolist() == [[0, 105]]  # clipped at the start
    assert windows(N, []).shape == (0, 2)
    with pytest.raises(ConfigError, match="anomaly indices"):
        windows(N, [N])


def test_probation_is_15_percent_capped_at_750() -> None:
    assert probation(2000) == 300
    assert probation(100_000) == 750


def test_scaled_sigmoid_matches_the_formula_and_is_minus_one_far_past() -> None:
    for y in (-1.0, -0.5, 0.0, 0.7, 2.9):
        assert scaled_sigmoid(y) == pytest.approx(_sigma(y))
    assert scaled_sigmoid(3.5) == -1.0


def test_no_detection_scores_minus_a_fn_per_window_and_normalises_to_zero() -> None:
    w = windows(N, [1000])
    r = score_series(np.zeros(N, bool), w, STD)
    assert (r.raw, r.tp, r.fp, r.fn) == (-1.0, 0, 0, 1)
    assert normalised([r], STD) == 0.0
    assert score_series(np.zeros(N, bool), w, PROFILES["reward_low_FN"]).raw == -2.0


def test_a_detection_at_the_window_start_is_perfect_and_earlier_beats_later() -> None:
    w = windows(N, [1000])
    first = score_series(_hits(900), w, STD)
    assert first.raw == pytest.approx(_sigma(-1.0))
    assert normalised([first], STD) == pytest.approx(100.0)
    at_end = score_series(_hits(1100), w, STD)
    assert at_end.raw == pytest.approx(_sigma(-1 / 201))  # y = -(end - i + 1) / width
    middle = score_series(_hits(1000), w, STD)
    assert first.raw > middle.raw > at_end.raw > 0.0


def test_only_the_first_detection_in_a_window_counts() -> None:
    w = windows(N, [1000])
    once = score_series(_hits(950), w, STD)
    many = score_series(_hits(950, 951, 1000, 1090), w, STD)
    assert many.raw == once.raw
    assert (many.tp, many.fp) == (1, 0)


def test_false_positives_cost_a_fp_far_from_windows_and_little_just_after_one() -> None:
    w = windows(N, [1000])
    before = score_series(_hits(500), w, STD)  # before the first window: the full cost
    assert before.raw == pytest.approx(-1.0 - 0.11)
    assert before.fp == 1
    far = score_series(_hits(1800), w, STD)  # 700 past the end: more than 3 widths
    assert far.raw == pytest.approx(-1.0 - 0.11)
    near = score_series(_hits(1110), w, STD)  # 10 past: y = 10 / 200
    assert near.raw == pytest.approx(-1.0 + 0.11 * _sigma(10 / 200))
    assert -1.0 - 0.11 < near.raw < -1.0


def test_detections_in_the_probation_period_are_ignored() -> None:
    w = windows(N, [1000])
    assert score_series(_hits(10, 299), w, STD).raw == -1.0
    assert score_series(_hits(300), w, STD).fp == 1


def test_the_corpus_score_sums_series_and_a_miss_weighs_by_profile() -> None:
    w1, w2 = windows(N, [1000]), windows(N, [600, 1500])
    got = [score_series(_hits(900), w1, STD), score_series(np.zeros(N, bool), w2, STD)]
    # raw: sigma(-1) - 2; null -3; perfect 3 sigma(-1)
    expected = 100.0 * (_sigma(-1.0) - 2.0 + 3.0) / (3 * _sigma(-1.0) + 3.0)
    assert normalised(got, STD) == pytest.approx(expected)
    with pytest.raises(ConfigError, match="labelled window"):
        normalised([score_series(np.zeros(N, bool), windows(N, []), STD)], STD)


def test_the_best_threshold_is_searched_over_the_corpus_and_never_below_the_null() -> None:
    w = windows(N, [1000])
    score = np.zeros(N)
    score[920] = 0.8  # the anomaly, early
    score[400] = 0.6  # a false positive
    t, value = best_threshold([score], [w], STD)
    assert 0.6 < t <= 0.8
    assert value == pytest.approx(normalised([score_series(score >= 0.8, w, STD)], STD))
    t, value = best_threshold([np.zeros(N)], [w], STD, thresholds=[0.5, np.inf])
    assert value == 0.0
