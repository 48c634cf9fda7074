"""The grid search's joblib backends: clean shutdown of Ray's pool, and counting finished fits."""

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC

from fakeface_ray.learning.backends import CleanRayBackend, make_backend


class RecordingPool:
    """Stands in for Ray's pool: records the calls joblib's shutdown makes."""

    def __init__(self):
        self.calls = []

    def close(self):
        self.calls.append("close")

    def join(self):
        self.calls.append("join")

    def terminate(self):
        self.calls.append("terminate")


def test_ray_pool_actors_exit_on_their_own_before_the_kill():
    backend = CleanRayBackend()
    backend._pool = pool = RecordingPool()
    backend.terminate()
    assert pool.calls == ["close", "join", "close", "terminate"]  # the second close is joblib's own, a no-op
    assert backend._pool is None


def test_an_abort_kills_without_waiting_for_running_fits():
    backend = CleanRayBackend()
    backend._pool = pool = RecordingPool()
    backend.abort_everything(ensure_ready=False)
    assert "join" not in pool.calls and pool.calls[-1] == "terminate"


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    return x, (x[:, 0] > 0).astype(int)


def test_loky_backend_counts_every_fit_of_a_grid_search():
    done = []
    x, y = _data()
    search = GridSearchCV(SVC(), {"C": [0.1, 1.0, 10.0]}, cv=StratifiedKFold(4), n_jobs=2, refit=False)
    with joblib.parallel_backend(make_backend("loky", done.append)):
        search.fit(x, y)
    assert sum(done) == 3 * 4


@pytest.mark.ray
@pytest.mark.slow
def test_ray_backend_counts_fits_and_returns_their_results(ray_session):
    done = []
    with joblib.parallel_backend(make_backend("ray", done.append)):
        squares = joblib.Parallel()(joblib.delayed(pow)(i, 2) for i in range(10))
    assert squares == [i * i for i in range(10)]
    assert sum(done) == 10
