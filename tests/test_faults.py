"""Killed workers, a lost node, interrupted drivers and resumes: every input ends up exactly once."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest

from fakeface_ray.stages import sources
from fakeface_ray.config import load_config
from fakeface_ray.pipeline import extract_embeddings
from fakeface_ray.runs import run_extract, run_train

from .conftest import SMALL_GRID, copy_corpus

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).parents[1]
# Small batches, and parts committed every second: the first part shows up long before the run ends.
SMALL_BATCHES = ["extract.batch_size=2", "embed.batch_size=2", "read.files_per_block=2", "output.commit_interval_s=1"]


def _rows(out: Path) -> list[dict]:
    return pads.dataset(str(out / "embeddings"), format="parquet").to_table(
        columns=["image_id", "status", "sha256"]).to_pylist()


def _assert_exactly_once(out: Path, corpus: Path) -> None:
    ids = [r["image_id"] for r in _rows(out)]
    expected = sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*.jpg"))
    assert sorted(ids) == expected  # every input, none twice
    for part in (out / "embeddings").glob("*.parquet"):
        pads.dataset(str(part), format="parquet").to_table()  # every visible part is whole


def _wait_for_part(out: Path, alive, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not list((out / "embeddings").glob("part-*.parquet")):
        assert alive(), "the run ended before it wrote a part"
        assert time.time() < deadline, "no part written in time"
        time.sleep(0.2)


def _extractor_pids() -> list[int]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in ps.splitlines() if "MapBatches(FaceExtractor)" in line]


def _long_corpus(demo_corpus: Path, tmp_path: Path) -> Path:
    """The demo corpus twice over: a run long enough that a signal or a kill sent when its first part
    appears lands mid-run (the demo corpus alone can finish within the poll). It landed with 2-4 rows of
    78 written in three runs of each test."""
    return copy_corpus(demo_corpus, tmp_path / "corpus", times=2)


def test_a_killed_extract_worker_loses_nothing(demo_corpus, tmp_path, ray_session):
    corpus, out = _long_corpus(demo_corpus, tmp_path), tmp_path / "out"
    config = load_config(overrides=SMALL_BATCHES, infile=str(corpus), out=str(out))
    listing = sources.list_sources(str(corpus), config.read.extensions)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=extract_embeddings(config, out, listing)))
    worker.start()
    _wait_for_part(out, worker.is_alive)
    pids = _extractor_pids()
    assert pids, "no extract actor process found"
    assert len(_rows(out)) < sum(1 for _ in corpus.rglob("*.jpg")), "every row was written before the kill"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    worker.join(timeout=600)
    assert "result" in outcome, "the run did not survive the killed worker"
    assert not set(pids) & set(_extractor_pids())  # the pool was rebuilt with new processes
    _assert_exactly_once(out, corpus)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_an_interrupted_run_resumes_to_exactly_once(demo_corpus, tmp_path, sig):
    corpus, out = _long_corpus(demo_corpus, tmp_path), tmp_path / "out"
    command = [sys.executable, "-m", "fakeface_ray.cli", "extract", "--infile", str(corpus), "--out", str(out)]
    for item in SMALL_BATCHES:
        command += ["--set", item]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        _wait_for_part(out, lambda: first.poll() is None)
        first.send_signal(sig)
        output, _ = first.communicate(timeout=120)
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)  # whatever the killed driver left running
        except ProcessLookupError:
            pass
    if sig == signal.SIGINT:
        assert first.returncode == 130 and "rerun with --resume" in output, output[-3000:]
    embeddings = out / "embeddings"
    assert not (embeddings / "_COMPLETE").exists() and not (out / "run.json").exists()
    before = len(_rows(out))
    assert 0 < before < sum(1 for _ in corpus.rglob("*.jpg"))

    refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if sig == signal.SIGINT:  # Ctrl-C released the lock
        assert refused.returncode == 2 and "interrupted run" in refused.stderr
        resume = ["--resume"]
    else:  # a killed driver leaves its lock: stale (its process is gone), broken only when asked
        assert refused.returncode == 2 and "stale lock" in refused.stderr and "its process is gone" in refused.stderr
        still = subprocess.run(command + ["--resume"], cwd=ROOT, capture_output=True, text=True)
        assert still.returncode == 2 and "rerun with --break-lock" in still.stderr
        resume = ["--resume", "--break-lock"]

    resumed = subprocess.run(command + resume, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"({before} rows already written, resuming)" in resumed.stdout
    assert not (out / "_LOCK").exists()
    _assert_exactly_once(out, corpus)
    assert (embeddings / "_COMPLETE").exists()


def test_resume_replaces_rows_of_changed_files_and_drops_vanished_ones(demo_corpus, tmp_path, ray_session):
    local = tmp_path / "corpus"
    shutil.copytree(demo_corpus, local)
    config = load_config(infile=str(local), out=str(tmp_path / "out"))
    run_extract(config)
    changed = sorted((local / "training_real").glob("*.jpg"))[0]
    vanished = sorted((local / "training_fake").glob("*.jpg"))[0]
    changed.write_bytes(vanished.read_bytes())
    vanished.unlink()
    record = run_extract(config, resume=True).to_dict()
    rows = {r["image_id"]: r for r in _rows(tmp_path / "out")}
    assert len(rows) == record["n_inputs"] == sum(1 for _ in local.rglob("*.jpg"))
    assert str(vanished.relative_to(local)) not in rows
    assert rows[str(changed.relative_to(local))]["sha256"] == sources.hashlib.sha256(changed.read_bytes()).hexdigest()


def test_same_inputs_same_embeddings_and_metrics(demo_corpus, tmp_path, ray_session):
    results = []
    for name in ("a", "b"):
        config = load_config(overrides=list(SMALL_GRID), infile=str(demo_corpus), out=str(tmp_path / name))
        run_extract(config)
        trained = run_train(config, tmp_path / name / "embeddings")
        table = pads.dataset(str(tmp_path / name / "embeddings"), format="parquet").to_table(
            columns=["image_id", "embedding"]).to_pylist()
        results.append(({r["image_id"]: r["embedding"] for r in table}, trained.metrics))
    (emb_a, metrics_a), (emb_b, metrics_b) = results
    assert emb_a.keys() == emb_b.keys()
    assert all(np.array_equal(np.array(emb_a[k], dtype=float), np.array(emb_b[k], dtype=float))
               for k in emb_a if emb_a[k] is not None)
    assert metrics_a == metrics_b


def test_losing_a_worker_node_mid_run_loses_nothing(demo_corpus, tmp_path):
    corpus, out = _long_corpus(demo_corpus, tmp_path), tmp_path / "out"
    command = [sys.executable, "-m", "tests.cluster_scenarios", "node-loss", str(corpus), str(out)]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["error"] is None, result
    assert result["removed_while_running"] and result["nodes_alive_after"] == 2
    assert sum(result["counts"].values()) == result["n_inputs"] == sum(1 for _ in corpus.rglob("*.jpg"))
    _assert_exactly_once(out, corpus)
