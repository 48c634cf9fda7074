"""joblib backends for the grid search: Ray's, shut down without killing its actors mid-exit, and loky.

Both report each finished batch of fits to an optional callback (the driver's progress bar).
"""

from __future__ import annotations

from typing import Callable

from joblib._parallel_backends import LokyBackend
from ray.util.joblib.ray_backend import RayBackend

from ..config import JoblibBackend

OnDone = Callable[[int], None]


class _Counting:
    """Calls `on_done(n)` in the driver when a batch of n tasks has finished (or failed)."""

    on_done: OnDone | None = None

    def submit(self, func, callback=None):
        def done(result):
            if self.on_done is not None:
                self.on_done(len(func))
            if callback is not None:
                callback(result)

        return super().submit(func, callback=done)


class CountingLokyBackend(_Counting, LokyBackend):
    """joblib's default process pool on this machine."""


class CleanRayBackend(_Counting, RayBackend):
    """Ray's joblib backend, with its pool's actors left to exit on their own.

    joblib ends every Parallel call with `pool.close()` then `pool.terminate()`. On Ray's pool,
    `close()` queues `__ray_terminate__` on each actor and `terminate()` then `ray.kill`s them at
    once, so the kill races the actor's own exit. Measured on 60 pools of 2 actors: 53 actors
    killed mid-exit, one of them seen by the raylet as dying from a system error (the
    "(raylet) A worker died or was killed while executing a task ... SYSTEM_ERROR" lines after
    training). Waiting for the exits first (`join()`) leaves the kill nothing to do: 120 of 120
    exits clean. On errors and Ctrl-C (`abort_everything`) the fits' results are not wanted and
    the actors are killed without waiting.
    """

    _aborting = False

    def configure(self, n_jobs=1, parallel=None, prefer=None, require=None, **pool_args):
        # joblib always hands a multiprocessing context to the pool; Ray's pool cannot use one
        # and warns "The 'context' argument is not supported using ray" when given it.
        pool_args.pop("context", None)
        return super().configure(n_jobs, parallel, prefer, require, **pool_args)

    def terminate(self):
        if self._pool is not None and not self._aborting:
            self._pool.close()
            self._pool.join()
        super().terminate()

    def abort_everything(self, ensure_ready=True):
        self._aborting = True
        try:
            super().abort_everything(ensure_ready)
        finally:
            self._aborting = False


def make_backend(name: JoblibBackend, on_done: OnDone | None = None):
    """The joblib backend instance for `train.backend`; for `ray` the caller connects to Ray first."""
    backend = CleanRayBackend() if name == "ray" else CountingLokyBackend()
    backend.on_done = on_done
    return backend
