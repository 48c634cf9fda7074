"""`fakeface submit` against a real Ray head on loopback, started from the project's environment."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import SMALL_GRID_ARGS, copy_corpus

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """`ray start --head --block` in its own process group; the whole group is stopped after."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled",  # Ray 2.60's documented opt-out for a loopback head
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    dashboard = _free_port()
    # Every port explicit: the test session's own Ray already holds the default agent ports, and a
    # head whose job agent cannot bind answers every submission with "No available agent".
    command = [str(BIN / "ray"), "start", "--head", "--block", f"--port={_free_port()}", "--num-cpus=2",
               "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
               f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
               f"--runtime-env-agent-port={_free_port()}", f"--metrics-export-port={_free_port()}",
               f"--ray-client-server-port={_free_port()}", "--disable-usage-stats"]
    log = open(tmp_path_factory.mktemp("head") / "head.log", "w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.time() + 120
    while True:
        try:
            with socket.create_connection(("127.0.0.1", dashboard), timeout=1):
                break
        except OSError:
            assert process.poll() is None and time.time() < deadline, "the Ray head did not start"
            time.sleep(1)
    yield address, env
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:  # Ray's graceful stop waits on its processes one by one: about 30 s
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, demo_corpus):
    return copy_corpus(demo_corpus, tmp_path_factory.mktemp("jobcorpus"), per_class=6)


def _submit(address, env, *args):
    command = [str(BIN / "fakeface"), "submit", "--address", address, "--", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_submit_runs_a_job_and_exits_with_its_outcome(head, small_corpus, tmp_path):
    address, env = head
    started = time.time()
    done = _submit(address, env, "run", "--infile", str(small_corpus), "--out", str(tmp_path / "out"), *SMALL_GRID_ARGS)
    round_trip = time.time() - started
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "SUCCEEDED; outputs in " + str(tmp_path / "out") in done.stdout
    assert "macro F1" in done.stdout  # the job's own summary, streamed back
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(metrics["per_class"]) == {"real", "fake"}
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["n_inputs"] == sum(1 for _ in small_corpus.rglob("*.jpg"))
    print(f"submit round trip: {round_trip:.1f} s")

    failed = _submit(address, env, "extract", "--infile", str(tmp_path / "missing"), "--out", str(tmp_path / "x"))
    assert failed.returncode == 1 and "FAILED" in failed.stdout
    assert "input not found" in failed.stdout


def test_submit_without_a_head_is_a_clear_error(tmp_path):
    done = subprocess.run([str(BIN / "fakeface"), "submit", "--address", f"http://127.0.0.1:{_free_port()}",
                           "--", "show-config"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cannot reach the Ray Jobs API" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_local_run_starts_its_own_ray_beside_a_running_head(head):
    _, env = head
    env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
    code = ("from fakeface_ray.cluster.connect import connect; from fakeface_ray.config import RayConfig; "
            "print('CPUS', connect(RayConfig(num_cpus=1))['CPU'])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert "CPUS 1.0" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
