"""Progress of one stage: done out of total, rate, time left and errors so far.

On a terminal it is a tqdm bar; anywhere else (a pipe, CI, `ray job logs`) one short line every
`console.progress_interval_s` and one at the end, so a log shows liveness without a line per block.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TextIO

from tqdm import tqdm

from . import output

TICK_S = 1.0  # how often the bar's clock and the interval lines are brought up to date
COLUMNS = 100  # bar width on a terminal that reports none (tqdm would draw nothing)
# tqdm's default, with the rate always as items per second (never inverted to seconds per item)
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"


class Progress:
    """Thread-safe counter of finished items, shown while it runs; use as a context manager.

    Args:
        label: the stage, e.g. `extract+embed`.
        unit: what is counted, plural (`images`, `fits`).
        errors: whether the stage has failed items worth counting (shown as `errors N`).
        stream: where to show it; by default the console's stderr.
        interval_s: seconds between lines where `stream` is not a terminal; by default
            `console.progress_interval_s` of the command's session.
    """

    def __init__(self, label: str, total: int, unit: str, errors: bool = False, stream: TextIO | None = None,
                 interval_s: float | None = None, tick_s: float = TICK_S):
        self.label, self.total, self.unit = label, max(total, 0), unit
        self.done = self.failed = 0
        self.show_errors = errors
        self.stream = stream if stream is not None else output.stream(err=True)
        self.interval_s = interval_s if interval_s is not None else output.progress_interval_s()
        self.started = time.monotonic()
        self._last_line = self.started
        self._lock = threading.Lock()
        self._bar = None
        if self.stream.isatty():
            sized = _has_width(self.stream)
            self._bar = tqdm(total=self.total, desc=label, unit=f" {unit}", file=self.stream, leave=True,
                             bar_format=BAR_FORMAT, dynamic_ncols=sized, ncols=None if sized else COLUMNS,
                             postfix=self._postfix())
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, args=(tick_s,), name=f"progress-{label}", daemon=True)
        self._ticker.start()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, done: int, errors: int = 0) -> None:
        """Count `done` more finished items, `errors` of which failed."""
        with self._lock:
            self.done += done
            self.failed += errors
            self.total = max(self.total, self.done)  # resumed inputs whose bytes changed are redone
            if self._bar is not None:
                self._bar.total = self.total
                self._bar.set_postfix_str(self._postfix(), refresh=False)
                self._bar.update(done)

    def close(self) -> None:
        """Stop updating; the bar stays on screen, or the last line is written."""
        self._stop.set()
        self._ticker.join()
        with self._lock:
            if self._bar is not None:
                self._bar.close()
            else:
                self._write_line()

    def line(self) -> str:
        """`[fakeface] extract+embed 96/194 images (49%), 3.1 images/s, 0:32 left, errors 2, 0:31 elapsed`."""
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"[fakeface] {self.label} {self.done}/{self.total} {self.unit}"
                 + (f" ({100 * self.done / self.total:.0f}%)" if self.total else ""),
                 f"{rate:.1f} {self.unit}/s"]
        if 0 < self.done < self.total:
            parts.append(f"{tqdm.format_interval((self.total - self.done) / rate)} left")
        if self.show_errors:
            parts.append(f"errors {self.failed}")
        parts.append(f"{tqdm.format_interval(elapsed)} elapsed")
        return ", ".join(parts)

    def _postfix(self) -> str:
        return f"errors {self.failed}" if self.show_errors else ""

    def _tick(self, tick_s: float) -> None:
        while not self._stop.wait(tick_s):
            with self._lock:
                if self._bar is not None:
                    self._bar.refresh()  # the elapsed time and rate move even while no item finishes
                elif time.monotonic() - self._last_line >= self.interval_s:
                    self._write_line()

    def _write_line(self) -> None:
        print(self.line(), file=self.stream, flush=True)
        self._last_line = time.monotonic()


def _has_width(stream: TextIO) -> bool:
    """Whether the terminal says how wide it is (a pty opened without a size says 0)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, OSError, ValueError):
        return False
