import numpy as np
import pytest

from fakeface_ray.learning.threshold import choose_threshold, rates, rates_at

Y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
S = np.array([-3.0, -2.0, -1.0, 0.5, 1.5, -0.5, 1.0, 2.0, 3.0, 4.0])


def test_rates_count_fake_as_positive():
    recall, precision, macro = rates(Y, S, 0.0)
    assert recall == 0.8 and precision == pytest.approx(4 / 6)
    assert macro == pytest.approx((2 * 4 / (8 + 2 + 1) + 2 * 3 / (6 + 1 + 2)) / 2)


def test_boundary_keeps_the_models_own_and_reports_its_rates():
    point = choose_threshold(Y, S, "boundary")
    assert point.rule == "boundary" and point.threshold == 0.0
    assert (point.fake_recall, point.fake_precision, point.macro_f1) == pytest.approx(rates(Y, S, 0.0))


def test_max_macro_f1_takes_the_best_threshold_on_the_scores():
    point = choose_threshold(Y, S, "max_macro_f1")
    assert point.rule == "max_macro_f1" and point.threshold != 0.0
    best = max(rates(Y, S, t)[2] for t in np.linspace(-5, 5, 1001))
    assert point.macro_f1 == pytest.approx(best)


def test_a_recall_floor_takes_the_highest_threshold_that_reaches_it():
    assert choose_threshold(Y, S, "max_macro_f1", min_fake_recall=1.0) == choose_threshold(Y, S, min_fake_recall=1.0)
    point = choose_threshold(Y, S, min_fake_recall=1.0)
    assert point.fake_recall == 1.0 and -1.0 < point.threshold < -0.5
    assert point.fake_precision == pytest.approx(5 / 7)
    loose = choose_threshold(Y, S, min_fake_recall=0.6)
    assert loose.threshold > 1.5 and loose.fake_recall == pytest.approx(0.6) and loose.fake_precision == 1.0


def test_one_se_keeps_the_boundary_when_the_best_is_within_noise():
    # Ten rows: the best (0.8 at 0.75) is within one bootstrap standard error of the boundary's 0.70.
    point = choose_threshold(Y, S, "one_se")
    assert point.rule == "one_se" and point.threshold == 0.0
    assert choose_threshold(Y, S) == point  # the default


def test_one_se_moves_towards_a_best_that_many_rows_make_clear():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 1000)
    scores = rng.normal(y.astype(float), 0.3)  # the classes cross at 0.5, far from the boundary 0
    best = choose_threshold(y, scores, "max_macro_f1")
    point = choose_threshold(y, scores, "one_se")
    assert 0.3 < point.threshold <= best.threshold and point.macro_f1 > rates(y, scores, 0.0)[2] + 0.15
    assert point.macro_f1 >= best.macro_f1 - 0.02
    assert choose_threshold(y, scores, "one_se") == point  # the bootstrap is seeded


def test_a_false_alarm_allowance_lowers_the_threshold_and_never_raises_it():
    rule = choose_threshold(Y, S, "one_se")
    assert rule.threshold == 0.0 and rule.false_alarm_rate == pytest.approx(0.4)  # reals at 0.5 and 1.5
    lowered = choose_threshold(Y, S, "one_se", false_alarm_allowance=0.6)
    # Three reals called fake (-1 joins them): the cut midway between the next real down (-2) and -1,
    # which also catches the fake at -0.5.
    assert lowered.threshold == pytest.approx(-1.5) and lowered.rule == "one_se, false_alarm_allowance=0.6"
    assert lowered.false_alarm_rate == pytest.approx(0.6) and lowered.fake_recall == 1.0
    assert (lowered.fake_recall, lowered.fake_precision, lowered.macro_f1) == pytest.approx(rates(Y, S, -1.5))
    # An allowance equal to the rule's own false alarms moves the cut down to the lowest with them
    # (-0.25), which calls no more rows fake here.
    assert choose_threshold(Y, S, "one_se", false_alarm_allowance=0.4).threshold == pytest.approx(-0.25)
    # An allowance below the rule's own false alarms leaves the rule's threshold as it was.
    assert choose_threshold(Y, S, "one_se", false_alarm_allowance=0.2) == rule


def test_an_allowance_spends_no_false_alarm_where_the_folds_separate_the_classes():
    y = np.repeat([0, 1], 50)
    scores = np.where(y == 1, np.linspace(0.5, 1.0, 100), np.linspace(-1.0, -0.5, 100))
    point = choose_threshold(y, scores, "one_se", false_alarm_allowance=0.2)
    # Only thresholds between the classes are as good as the best: the allowance cannot reach the reals.
    assert -0.5 < point.threshold < 0.5 and point.false_alarm_rate == 0.0 and point.macro_f1 == 1.0


def test_a_recall_floor_overrides_the_allowance():
    floor = choose_threshold(Y, S, min_fake_recall=0.6)
    assert choose_threshold(Y, S, min_fake_recall=0.6, false_alarm_allowance=0.8) == floor
    assert floor.false_alarm_rate == 0.0


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="boundary, max_macro_f1, one_se"):
        choose_threshold(Y, S, "median")


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
