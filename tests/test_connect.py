import os

import pytest

from fakeface_ray.cluster.connect import WORKER_ENV

pytestmark = pytest.mark.ray


def test_local_workers_inherit_the_worker_env_and_the_job_has_no_runtime_env(ray_session):
    """A runtime env would make Ray start a fresh worker per task and actor; the env comes by inheritance."""
    ray = ray_session

    @ray.remote(num_cpus=0)
    def seen() -> dict:
        return {name: os.environ.get(name) for name in WORKER_ENV}

    assert ray.get(seen.remote()) == WORKER_ENV
    assert not ray.get_runtime_context().runtime_env
