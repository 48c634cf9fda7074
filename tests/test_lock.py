"""One run per output folder: the lock is exclusive, names its holder, and only a stale one is broken."""

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from fakeface_ray.storage import lock as lock_module
from fakeface_ray.storage.lock import LOCK, LockedError, RunLock, read_holder
from fakeface_ray.storage.locations import Location, location

from .test_storage import Recording

ROOT = Path(__file__).parents[1]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _stale_lock(out: Path, **holder) -> None:
    out.mkdir(parents=True, exist_ok=True)
    values = {"host": platform.node(), "pid": _dead_pid(), "started": "2026-11-27 10:00:00",
              "command": "fakeface extract --out x", "token": "old", "heartbeat": time.time()} | holder
    (out / LOCK).write_text(json.dumps(values))


def test_a_second_run_is_refused_with_the_holder_and_the_lock_goes_when_the_first_ends(tmp_path):
    out = location(tmp_path / "out")
    with RunLock(out, command="fakeface extract --out out"):
        holder = read_holder(out / LOCK)
        assert holder.pid == __import__("os").getpid() and holder.command == "fakeface extract --out out"
        with pytest.raises(LockedError, match=r"is in use by pid \d+ on .* \(fakeface extract --out out\): wait"):
            RunLock(out).acquire()
        with pytest.raises(LockedError, match="--break-lock only breaks stale locks"):
            RunLock(out, break_stale=True).acquire()
    assert not (tmp_path / "out" / LOCK).exists()


def test_the_lock_is_released_when_the_run_fails_or_is_interrupted(tmp_path):
    out = location(tmp_path / "out")
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with RunLock(out):
                raise error
        assert not (tmp_path / "out" / LOCK).exists()


@pytest.mark.parametrize("holder, reason", [({}, "its process is gone"),
                                            ({"host": "elsewhere", "pid": 1, "heartbeat": 0.0}, "no heartbeat for")],
                         ids=["dead-pid", "old-heartbeat"])
def test_a_stale_lock_is_reported_and_broken_only_when_asked(tmp_path, holder, reason):
    _stale_lock(tmp_path / "out", **holder)
    out = location(tmp_path / "out")
    with pytest.raises(LockedError, match=f"holds a stale lock of pid .*: {reason}.*rerun with --break-lock"):
        RunLock(out).acquire()
    with RunLock(out, break_stale=True) as taken:
        assert read_holder(out / LOCK).token == taken.holder.token
    assert not (tmp_path / "out" / LOCK).exists()


def test_a_live_holder_on_another_host_keeps_its_lock_while_its_heartbeat_is_fresh(tmp_path):
    _stale_lock(tmp_path / "out", host="elsewhere", pid=1, heartbeat=time.time())
    with pytest.raises(LockedError, match="in use by pid 1 on elsewhere"):
        RunLock(location(tmp_path / "out"), break_stale=True).acquire()


def test_the_holder_beats_its_heartbeat(tmp_path):
    out = location(tmp_path / "out")
    with RunLock(out, heartbeat_s=0.05, stale_s=1.0):
        first = read_holder(out / LOCK).heartbeat
        deadline = time.monotonic() + 30  # a loaded machine may run the beat late, never not at all
        while read_holder(out / LOCK).heartbeat == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read_holder(out / LOCK).heartbeat > first


RACE = """
import pathlib, sys, time
from fakeface_ray.storage.lock import LockedError, RunLock
from fakeface_ray.storage.locations import location
gates = pathlib.Path(sys.argv[2])
(gates / f"ready{sys.argv[3]}").touch()
while not (gates / "go").exists():
    time.sleep(0.001)
try:
    with RunLock(location(sys.argv[1])):
        print("won", flush=True)
        while not (gates / "release").exists():  # held until every other racer has tried
            time.sleep(0.01)
except LockedError as exc:
    print("refused", exc)
"""


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.slow
def test_of_runs_started_together_exactly_one_takes_the_lock(tmp_path):
    gates = tmp_path / "gates"
    gates.mkdir()
    racers = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path / "out"), str(gates), str(k)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(6)]
    # Every racer imported and polling before any may start: they race within milliseconds.
    _wait_for(lambda: len(list(gates.glob("ready*"))) == len(racers))
    (gates / "go").touch()
    _wait_for(lambda: sum(r.poll() is not None for r in racers) >= len(racers) - 1)
    (gates / "release").touch()
    outcomes = [r.communicate(timeout=60) for r in racers]
    assert all(r.returncode == 0 for r in racers), outcomes
    words = sorted(out.split()[0] for out, _ in outcomes)
    assert words == ["refused"] * 5 + ["won"], outcomes
    assert not (tmp_path / "out" / LOCK).exists()


def test_object_stores_take_the_lock_by_token_read_back(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "SETTLE_S", 0.0)
    store = Location(pafs.PyFileSystem(Recording()), str(tmp_path / "out"), "s3://bucket/out")
    assert not store.is_local
    with RunLock(store) as held:
        assert held.held()
        with pytest.raises(LockedError, match="in use by"):
            RunLock(store).acquire()
    assert not (tmp_path / "out" / LOCK).exists()
