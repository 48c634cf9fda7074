"""What a person sees in a terminal: `fakeface run` under a pseudo-terminal, quiet and with --verbose."""

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from .conftest import SMALL_GRID_ARGS, copy_corpus

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
# What a healthy run printed before: Ray's, Ray Data's and joblib's chatter, and a worker's death.
ALARMING = ("Token authentication is enabled", "core_worker.cc", "A new progress UI is available",
            "The 'context' argument is not supported", "A worker died or was killed", "SYSTEM_ERROR",
            "WARNING", "Traceback", "(raylet)")


def run_in_terminal(args: list[str], cwd: Path, timeout_s: float = 900) -> tuple[int, list[str]]:
    """Run a command on a 120x40 pseudo-terminal; its exit code and the lines left on screen.

    A line redrawn in place (a progress bar: `\\r` then the new text) counts once, as shown last.
    """
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin, stdout and stderr
        os.chdir(cwd)
        os.execv(args[0], args)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    raw, deadline = b"", time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        raw += chunk
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode(errors="replace"))  # colours, cursor moves
    lines = [line.rstrip("\r").split("\r")[-1] for line in text.split("\n")]  # the tty sends \r\n
    return os.waitstatus_to_exitcode(status), [line for line in lines if line.strip()]


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, demo_corpus):
    return copy_corpus(demo_corpus, tmp_path_factory.mktemp("terminal"), per_class=6)


def _run(corpus, out, *extra, command="run"):
    return run_in_terminal([str(BIN / "fakeface"), command, "--infile", str(corpus), "--out", str(out),
                            *SMALL_GRID_ARGS, *extra], cwd=Path(__file__).parents[1])


def test_a_small_run_shows_progress_and_the_summary_and_nothing_alarming(small_corpus, tmp_path):
    code, lines = _run(small_corpus, tmp_path / "out")
    shown = "\n".join(lines)
    assert code == 0, shown
    assert len(lines) < 30, shown
    bars = {line.split(":")[0]: line for line in lines if re.match(r"(audit|extract\+embed|train): +100%", line)}
    assert set(bars) == {"audit", "extract+embed", "train"}, shown
    extract = bars["extract+embed"]
    assert "12/12" in extract and "images/s" in extract and "errors 0" in extract
    assert "fits/s" in bars["train"]
    assert "macro F1" in shown
    assert [line for line in lines if line.startswith("audit      ")], shown  # the shortcut audit's verdict
    assert f"logs       {tmp_path / 'out' / 'logs' / 'driver.log'}" in shown
    for phrase in ALARMING:
        assert phrase not in shown, phrase
    log = (tmp_path / "out" / "logs" / "driver.log").read_text()
    # The chatter went to the log. Ray Data's INFO lines are in every run; the token-auth warning
    # depends on whether this machine has ~/.ray/auth_token.
    assert "streaming_executor.py" in log and "streaming_executor.py" not in shown
    assert (tmp_path / "out" / "logs" / "ray" / "raylet.out").is_file()


def test_verbose_brings_rays_own_lines_back(small_corpus, tmp_path):
    # Ray Data's lines come from extraction; `extract` shows them without a training to wait for.
    code, lines = _run(small_corpus, tmp_path / "out", "--verbose", command="extract")
    shown = "\n".join(lines)
    assert code == 0, shown
    assert "streaming_executor.py" in shown
    assert not (tmp_path / "out" / "logs").exists()
