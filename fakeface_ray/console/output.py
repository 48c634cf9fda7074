"""fakeface's own lines on the console; everything else this process prints in a log file.

A command runs in a `session` (its settings applied with `configure`). Once its output folder is
known, `capture(folder)` sends whatever else the process writes to stdout and stderr to
`folder/driver.log`: Ray's and joblib's Python logging, Ray's C++ core, TensorFlow and absl, and the
worker output Ray forwards to the driver. It works on the file descriptors, so writes from C++ are
caught as well as Python's. fakeface's own lines (`echo`, progress bars) go to the console the
session started on. With `verbose`, nothing is captured: every line shows, as without a session.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, TextIO

from ..config import ConsoleConfig

LOG_NAME = "driver.log"


@dataclass
class _Session:
    config: ConsoleConfig
    out: TextIO  # the console's stdout and stderr, kept while the descriptors point at the log
    err: TextIO
    opened: list[TextIO] = field(default_factory=list)  # streams on duplicated descriptors, closed at the end
    saved: tuple[int, int] | None = None  # the original descriptors 1 and 2 while captured
    log: Path | None = None


_session: _Session | None = None


@contextlib.contextmanager
def session(config: ConsoleConfig = ConsoleConfig()) -> Iterator[None]:
    """One command's console, from its start to its last line (an error's included)."""
    global _session
    if _session is not None:
        raise RuntimeError("console sessions do not nest")
    _session = _Session(config, *_console_streams())
    try:
        yield
    finally:
        _release()


def configure(config: ConsoleConfig) -> None:
    """The command's console settings, once its config is loaded (before `capture`)."""
    if _session is not None:
        _session.config = config


def capture(folder: Path) -> Path | None:
    """From now until the session ends, stdout and stderr go to `folder/driver.log` (appended).

    Returns the log's path; None without a session or with `verbose`. A second call keeps the
    first log.
    """
    if _session is None or _session.config.verbose:
        return None
    if _session.log is not None:
        return _session.log
    path = folder / LOG_NAME
    started = datetime.datetime.now().isoformat(timespec="seconds")
    fd = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, f"==== {started} pid {os.getpid()}: {' '.join(sys.argv)}\n".encode())
    except OSError:  # a full or read-only --out: the chatter stays on the console, the run's own error says why
        if fd is not None:
            os.close(fd)
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    _session.saved = (os.dup(1), os.dup(2))
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    _session.log = path
    return path


def link_logs(name: str, target: Path) -> None:
    """Make `name` in the log folder a link to `target` (e.g. Ray's session logs), replacing an old link."""
    if _session is None or _session.log is None or not target.is_dir():
        return
    link = _session.log.parent / name
    if link.is_symlink():
        link.unlink()
    if not link.exists():
        link.symlink_to(target, target_is_directory=True)


def log_path() -> Path | None:
    """The log this command writes; None when nothing is captured."""
    return _session.log if _session is not None else None


def log_traceback() -> bool:
    """Write the exception being handled, with its traceback, to the log; False when nothing was written
    (output not captured, or the log's disk is full)."""
    if _session is None or _session.saved is None:
        return False
    try:
        sys.stderr.flush()
        os.write(2, traceback.format_exc().encode(errors="replace"))  # descriptor 2 is the log
    except OSError:
        return False
    return True


def echo(message: str = "", err: bool = False) -> None:
    """One of fakeface's own lines, on the console even while stdout and stderr are captured."""
    print(message, file=stream(err), flush=True)


def stream(err: bool = False) -> TextIO:
    """The console's stdout (or stderr): the session's, else the process's."""
    if _session is not None:
        return _session.err if err else _session.out
    return sys.stderr if err else sys.stdout


def progress_interval_s() -> float:
    """Seconds between progress lines where the console is not a terminal."""
    return (_session.config if _session is not None else ConsoleConfig()).progress_interval_s


def _console_streams() -> tuple[TextIO, TextIO, list[TextIO]]:
    """Streams that keep reaching today's stdout and stderr after `capture` moves descriptors 1 and 2.

    A stream on a real descriptor is duplicated; one without (a test runner's buffer) is kept as it is.
    """
    streams, opened = [], []
    for current, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        try:
            real = current.fileno() == fd
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            real = False
        if real:
            current.flush()
            current = os.fdopen(os.dup(fd), "w", buffering=1, encoding=current.encoding, errors="replace")
            opened.append(current)
        streams.append(current)
    return streams[0], streams[1], opened


def _release() -> None:
    global _session
    with contextlib.suppress(OSError):  # a log on a full disk takes no more
        sys.stdout.flush()
        sys.stderr.flush()
    if _session.saved is not None:
        for fd, saved in zip((1, 2), _session.saved):
            os.dup2(saved, fd)
            os.close(saved)
    for opened in _session.opened:
        opened.close()
    _session = None
