"""The console: progress as bars or interval lines, and other output captured into a log file."""

import io
import subprocess
import sys
import textwrap
import time

from fakeface_ray.console.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_in_a_pipe_is_one_line_per_interval_and_one_at_the_end():
    stream = io.StringIO()
    progress = Progress("extract+embed", 10, "images", errors=True, stream=stream, interval_s=0.2, tick_s=0.02)
    started = time.monotonic()
    progress.add(4, errors=1)
    while "\n" not in stream.getvalue() and time.monotonic() < started + 30:  # the first interval's line
        time.sleep(0.02)
    progress.add(6)
    progress.close()
    elapsed = time.monotonic() - started
    lines = stream.getvalue().splitlines()
    # One line per 0.2 s interval at most (not one per tick), then the last; a loaded machine may be late.
    assert 2 <= len(lines) <= elapsed / 0.2 + 2, (lines, elapsed)
    assert lines[0].startswith("[fakeface] extract+embed 4/10 images (40%), ")
    assert " left, errors 1, " in lines[0] and "images/s" in lines[0]
    assert lines[-1].startswith("[fakeface] extract+embed 10/10 images (100%), ") and "errors 1" in lines[-1]


def test_progress_on_a_terminal_is_a_bar_with_errors_so_far():
    stream = Terminal()
    with Progress("extract+embed", 10, "images", errors=True, stream=stream) as progress:
        progress.add(3, errors=2)
    shown = stream.getvalue().split("\r")[-1]
    assert "extract+embed" in shown and "3/10" in shown and "images/s" in shown and "errors 2" in shown


def test_more_items_than_expected_raise_the_total():
    stream = io.StringIO()
    with Progress("train", 2, "fits", stream=stream, interval_s=60) as progress:
        progress.add(3)
    assert stream.getvalue().startswith("[fakeface] train 3/3 fits (100%)")
    assert "errors" not in stream.getvalue()


CAPTURE = textwrap.dedent("""
    import logging, os, sys
    from pathlib import Path
    from fakeface_ray.config import ConsoleConfig
    from fakeface_ray.console import output

    with output.session(ConsoleConfig(verbose={verbose})):
        print("before capture")
        output.capture(Path(sys.argv[1]))
        print("python stdout")
        logging.warning("python logging")
        os.write(2, b"C-level stderr\\n")
        output.echo("fakeface line")
        try:
            raise ValueError("boom")
        except ValueError:
            output.log_traceback()
        log = output.log_path()
    print("after", log)
""")


def _run_capture(tmp_path, verbose):
    return subprocess.run([sys.executable, "-c", CAPTURE.format(verbose=verbose), str(tmp_path / "logs")],
                          capture_output=True, text=True, timeout=120)


def test_captured_output_goes_to_the_log_and_fakeface_lines_to_the_console(tmp_path):
    done = _run_capture(tmp_path, verbose=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["before capture", "fakeface line", f"after {tmp_path / 'logs' / 'driver.log'}"]
    assert done.stderr == ""
    log = (tmp_path / "logs" / "driver.log").read_text()
    for line in ("python stdout", "python logging", "C-level stderr", "ValueError: boom"):
        assert line in log
    assert log.startswith("==== ")


def test_verbose_captures_nothing(tmp_path):
    done = _run_capture(tmp_path, verbose=True)
    assert "python stdout" in done.stdout and "C-level stderr" in done.stderr and "python logging" in done.stderr
    assert done.stdout.splitlines()[-1] == "after None"
    assert not (tmp_path / "logs").exists()


FULL_DISK = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from fakeface_ray.console import output

    with output.session():
        print("unlogged:", output.capture(Path(sys.argv[1]) / "logs"))  # a file where the folder should be
    (Path(sys.argv[3]) / "driver.log").symlink_to("/dev/full")  # a log that opens but takes no byte
    before = len(os.listdir("/proc/self/fd"))
    with output.session():
        unwritable = output.capture(Path(sys.argv[3]))
    print("unwritable:", unwritable, "fds left open:", len(os.listdir("/proc/self/fd")) - before)
    with output.session():
        output.capture(Path(sys.argv[2]))
        full = os.open("/dev/full", os.O_WRONLY)  # the log's disk fills up
        os.dup2(full, 1)
        os.dup2(full, 2)
        try:
            raise ValueError("boom")
        except ValueError:
            output.echo(f"logged: {output.log_traceback()}")
""")


def test_a_log_that_cannot_be_written_never_hides_the_error(tmp_path):
    (tmp_path / "file").write_text("")
    (tmp_path / "full").mkdir()
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path / "file"), str(tmp_path / "logs"),
                           str(tmp_path / "full")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["unlogged: None", "unwritable: None fds left open: 0", "logged: False"]
