"""On a head and two worker nodes (ray.cluster_utils), extract work runs on more than one node."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import copy_corpus

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_corpus):
    # 300 images: the pool starts with one actor and grows; with the numpy MTCNN, 150 were mostly
    # done by the first actor before the second, on the other node, had started.
    return copy_corpus(demo_corpus, tmp_path_factory.mktemp("multinode"), per_class=15, times=10)


def test_extract_work_is_spread_over_nodes(corpus, tmp_path):
    command = [sys.executable, "-m", "tests.cluster_scenarios", "multi-node", str(corpus), str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    print("per-node extract CPU seconds:", result["extract_cpu_seconds_per_node"])
    assert result["rows"] == result["n_inputs"]
    assert result["extract_pool_max"] >= 2
    busy = [node for node, seconds in result["extract_cpu_seconds_per_node"].items() if seconds > 2.0]
    assert len(busy) >= 2, result
