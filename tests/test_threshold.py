import numpy as np
import pytest

from fakeface_ray.threshold import choose_threshold, rates

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
