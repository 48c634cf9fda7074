"""Shared fixtures: one local Ray per test session, one MTCNN detector, one demo corpus."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Credentials for the local S3 server of the object-store test; set before Ray starts so its
# workers inherit them. No real cloud is ever reached.
for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
    os.environ.setdefault(key, value)


# For tests of the plumbing around training, not of its quality: the trees (what `auto` picks on
# these corpora) on one leaf size of the default grid's two, with a tenth of its trees.
SMALL_GRID = ("train.tree_leaf_grid=[2]", "train.tree_count=50")
# The same, as `fakeface` command-line options.
SMALL_GRID_ARGS = tuple(arg for item in SMALL_GRID for arg in ("--set", item))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it, with explicit CPUs."""
    import ray

    from fakeface_ray.cluster.connect import connect
    from fakeface_ray.config import RayConfig

    connect(RayConfig(num_cpus=2))
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def detector():
    """The real MTCNN detector, loaded once."""
    from fakeface_ray.stages.extract import load_detector

    return load_detector()


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory, detector) -> Path:
    """One small demo corpus (20 real, 20 fake 600x600 JPEGs) for every test that runs it through MTCNN.

    Read-only: a test that changes files works on `copy_corpus(...)`.
    """
    from fakeface_ray import demo

    out = tmp_path_factory.mktemp("demo-corpus")
    demo.build_demo_corpus(out, seed=1, variants=1, identities=40, detector=detector)
    return out / demo.CORPUS


def copy_corpus(corpus: Path, to: Path, per_class: int | None = None, times: int = 1) -> Path:
    """A copy of `corpus` under `to`: the first `per_class` images of each class folder (all by default).

    Args:
        times: copies of each image, named `<stem>-<k>` when more than one.
    """
    root = to / corpus.name
    for folder in sorted(p for p in corpus.iterdir() if p.is_dir()):
        (root / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:per_class]:
            for k in range(times):
                name = image.name if times == 1 else f"{image.stem}-{k}{image.suffix}"
                shutil.copy2(image, root / folder.name / name)
    return root
