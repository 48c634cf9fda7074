"""Shared fixtures: one local Ray per test session, one MTCNN detector."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Credentials for the local S3 server of the object-store test; set before Ray starts so its
# workers inherit them. No real cloud is ever reached.
for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
    os.environ.setdefault(key, value)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it, with explicit CPUs."""
    import ray

    from fakeface_ray.cluster import connect
    from fakeface_ray.config import RayConfig

    connect(RayConfig(num_cpus=2))
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def detector():
    """The real MTCNN detector, loaded once."""
    from fakeface_ray.extract import load_detector

    return load_detector()
