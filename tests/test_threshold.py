import numpy as np
import pytest

from fakeface_ray.learning.threshold import choose_threshold, rates, rates_at

Y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
S = np.array([-3.0, -2.0, -1.0, 0.5, 1.5, -0.5, 1.0, 2.0, 3.0, 4.0])


def test_rates_count_fake_as_positive():
    recall, precision, macro = rates(Y, S, 0.0)
    assert recall == 0.8 and precision == pytest.approx(4 / 6)
    assert macro == pytest.approx((2 * 4 / (8 + 2 + 1) + 2 * 3 / (6 + 1 + 2)) / 2)


def test_default_maximises_macro_f1():
    point = choose_threshold(Y, S)
    assert point.rule == "max_macro_f1"
    best = max(rates(Y, S, t)[2] for t in np.linspace(-5, 5, 1001))
    assert point.macro_f1 == pytest.approx(best)


def test_a_recall_floor_takes_the_highest_threshold_that_reaches_it():
    point = choose_threshold(Y, S, min_fake_recall=1.0)
    assert point.fake_recall == 1.0 and -1.0 < point.threshold < -0.5
    assert point.fake_precision == pytest.approx(5 / 7)
    loose = choose_threshold(Y, S, min_fake_recall=0.6)
    assert loose.threshold > 1.5 and loose.fake_recall == pytest.approx(0.6) and loose.fake_precision == 1.0


def test_rates_at_many_thresholds_match_one_at_a_time():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(y, 1.0), 1)  # ties on purpose
    thresholds = np.linspace(-4, 5, 37)
    table = np.column_stack(rates_at(y, scores, thresholds))
    for t, row in zip(thresholds, table):
        pred = scores >= t
        tp, fp = np.sum(pred & (y == 1)), np.sum(pred & (y == 0))
        fn, tn = np.sum(~pred & (y == 1)), np.sum(~pred & (y == 0))
        assert row[0] == pytest.approx(tp / (tp + fn))
        assert row[1] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
        assert row[2] == pytest.approx((_f1(tp, fp, fn) + _f1(tn, fn, fp)) / 2)


def _f1(hits: int, false_alarms: int, misses: int) -> float:
    return 2 * hits / (2 * hits + false_alarms + misses) if hits else 0.0
