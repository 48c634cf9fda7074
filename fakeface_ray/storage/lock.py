"""One run at a time per output folder: `<out>/_LOCK` names its holder and carries a heartbeat.

On a local filesystem the lock is created with O_EXCL, which the kernel makes atomic: of two runs
started together exactly one gets it. Object stores offer pyarrow no exclusive create, so there a
run writes the lock with its own token, waits `SETTLE_S` and reads it back; whoever's token is
there owns the folder. That catches two runs whose checks and writes fall within a few seconds of
each other, but it is not a mutex: a run whose check and write are further apart than `SETTLE_S`
(a stalled process) can still miss the other.

The holder rewrites the lock every `heartbeat_s`. A lock is stale when its host is this one and
its process is gone, or when its heartbeat is older than `stale_s` (another host, a hung run).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass

from ..errors import UserError
from .locations import Location

LOCK = "_LOCK"
SETTLE_S = 2.0  # object stores: wait before reading a freshly written lock back


class LockedError(UserError):
    """Another run holds the output folder, or left a stale lock behind."""


@dataclass(frozen=True)
class Holder:
    """What a lock file says about the run that holds it."""

    host: str
    pid: int
    started: str  # local time, for people
    command: str
    token: str
    heartbeat: float  # time.time() of the last heartbeat

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.started} ({self.command})"

    def stale_because(self, stale_s: float, now: float | None = None) -> str | None:
        """Why this holder is gone, or None while it may still be running."""
        if self.host == platform.node() and not _alive(self.pid):
            return "its process is gone"
        age = (time.time() if now is None else now) - self.heartbeat
        if age > stale_s:
            return f"no heartbeat for {age:.0f} s"
        return None


class RunLock:
    """The lock on one output folder; use as a context manager around everything the run writes.

    Args:
        out: the output folder (created if missing).
        break_stale: take over a stale lock (`--break-lock`); a live holder is never broken.
        heartbeat_s: how often the holder rewrites the lock.
        stale_s: a lock whose heartbeat is older than this counts as stale.
        command: what the lock says the holder runs; the process's command line by default.
    """

    def __init__(self, out: Location, break_stale: bool = False, heartbeat_s: float = 60.0,
                 stale_s: float = 600.0, command: str | None = None):
        self.file = out / LOCK
        self.out = out
        self.break_stale = break_stale
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self.holder = Holder(host=platform.node(), pid=os.getpid(), started=time.strftime("%Y-%m-%d %H:%M:%S"),
                             command=command or shlex.join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
                             token=uuid.uuid4().hex, heartbeat=time.time())
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise LockedError naming who holds it and what to do."""
        self.out.mkdir()
        for _ in range(3):  # a holder that finishes between our attempt and our read: try again
            if self._create():
                self._beat = threading.Thread(target=self._heartbeat, name="fakeface-lock-heartbeat", daemon=True)
                self._beat.start()
                return
            holder = read_holder(self.file)
            if isinstance(holder, str):  # perhaps created a moment ago and not yet written: look again
                time.sleep(0.5)
                holder = read_holder(self.file)
            if holder is None:
                continue
            if isinstance(holder, Holder):
                who, stale = holder.describe(), holder.stale_because(self.stale_s)
            else:
                who, stale = f"an unreadable lock file ({self.file})", "it holds no run"
            if stale is None:
                hint = "; --break-lock only breaks stale locks" if self.break_stale else ""
                raise LockedError(f"{self.out} is in use by {who}: wait for it to finish or choose another "
                                  f"--out{hint}")
            if not self.break_stale:
                raise LockedError(f"{self.out} holds a stale lock of {who}: {stale}; if no run is using the "
                                  "folder, rerun with --break-lock")
            print(f"[fakeface] breaking the stale lock of {who} ({stale})", file=sys.stderr, flush=True)
            if read_holder(self.file) == holder:
                self.file.delete()
        raise LockedError(f"{self.out}: could not take the lock; another run keeps taking it")

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
            if self.held():
                self.file.delete()

    def held(self) -> bool:
        """Whether the lock file still carries this run's token."""
        holder = read_holder(self.file)
        return isinstance(holder, Holder) and holder.token == self.holder.token

    def _create(self) -> bool:
        data = self._payload()
        if self.file.is_local:
            return self.file.create_exclusive(data)
        if self.file.exists():
            return False
        self.file.write_bytes(data)
        time.sleep(SETTLE_S)
        return self.held()

    def _payload(self) -> bytes:
        return json.dumps(asdict(self.holder)).encode()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            # Failures (a full disk, a flaky store) are not the run's: a missed beat only ages the lock.
            with contextlib.suppress(Exception):
                if not self.held():
                    print(f"[fakeface] warning: the lock on {self.out} was taken over by another run",
                          file=sys.stderr, flush=True)
                    return
                self.holder = Holder(**{**asdict(self.holder), "heartbeat": time.time()})
                self.file.write_bytes(self._payload())


def read_holder(file: Location) -> Holder | str | None:
    """The lock's holder; the raw text if the file is not a lock (e.g. cut short); None if absent."""
    try:
        text = file.read_text()
    except FileNotFoundError:
        return None
    try:
        return Holder(**json.loads(text))
    except (ValueError, TypeError):
        return text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
