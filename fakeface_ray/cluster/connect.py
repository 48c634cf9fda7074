"""Join a Ray cluster, or start a local one sized to this machine on loopback."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from ..config import RayConfig
from ..console import output

# Quiet TensorFlow's C++ start-up chatter in every worker; real errors still print.
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


def connect(config: RayConfig) -> dict[str, float]:
    """Initialise Ray once per process and return `ray.cluster_resources()`.

    `config.address` or `RAY_ADDRESS` joins a cluster; otherwise a local Ray starts with
    `num_cpus` (default: this machine's cores), its dashboard off, listening on loopback only.
    A local Ray's workers inherit WORKER_ENV from this process, with no runtime env: a job
    runtime env makes Ray start a fresh worker for every task and actor, and leaves the workers
    it prestarted idle (3-6 s of the demo's first row on 2 cores).
    While the console captures chatter, this node's Ray session logs are linked as `ray` beside
    the driver's log.
    """
    import ray
    from ray._private import ray_constants

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        address = config.address or os.environ.get("RAY_ADDRESS")
        if address:
            # A job's own runtime env (jobs/runtime_env.yaml) already sets these; repeating them
            # here would be a conflict Ray refuses.
            context = ray.init(address=address, logging_level=logging.WARNING)
        else:
            # Ray swaps 127.0.0.1 for the machine's public address unless told the cluster is
            # single-node; with this, every Ray server of a local run listens on loopback only.
            # Ray reads the variable at import, so the constant is set too if Ray is loaded already.
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
            ray_constants.ENABLE_RAY_CLUSTER = False
            for name, value in WORKER_ENV.items():
                os.environ.setdefault(name, value)
            # "local" always starts a fresh instance: without it ray.init joins (or fails on) any
            # cluster `ray start` left registered on this machine.
            context = ray.init(address="local", num_cpus=config.num_cpus or os.cpu_count(), include_dashboard=False,
                               logging_level=logging.WARNING)
        output.link_logs("ray", Path(context.address_info["session_dir"]) / "logs")
    return {k: float(v) for k, v in ray.cluster_resources().items()}


@contextlib.contextmanager
def connection_scope() -> Iterator[None]:
    """Within: code that may `connect`. After: a connection it made is shut down, Ctrl-C held off.

    Otherwise Ray's own exit hook shuts it down as the interpreter exits, when the command's
    results are already committed: a Ctrl-C landing there broke the shutdown half-way, with a
    traceback and, in 3 of 6 tries, a crashed exit status (SIGSEGV or SIGABRT). A connection
    that was open before (a test's shared Ray) is left open.
    """
    was_connected = _connected()
    try:
        yield
    finally:
        if not was_connected and _connected():
            import ray

            held = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                ray.shutdown()
            finally:
                signal.signal(signal.SIGINT, held)


def _connected() -> bool:
    ray = sys.modules.get("ray")  # not imported yet: not connected, and not worth importing to ask
    return ray is not None and ray.is_initialized()
