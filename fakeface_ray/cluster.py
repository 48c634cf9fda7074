"""Join a Ray cluster, or start a local one sized to this machine on loopback."""

from __future__ import annotations

import logging
import os

from .config import RayConfig

# Quiet TensorFlow's C++ start-up chatter in every worker; real errors still print.
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


def connect(config: RayConfig) -> dict[str, float]:
    """Initialise Ray once per process and return `ray.cluster_resources()`.

    `config.address` or `RAY_ADDRESS` joins a cluster; otherwise a local Ray starts with
    `num_cpus` (default: this machine's cores), its dashboard off and bound to 127.0.0.1.
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        address = config.address or os.environ.get("RAY_ADDRESS")
        runtime_env = {"env_vars": WORKER_ENV}
        if address:
            ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=config.num_cpus or os.cpu_count(), include_dashboard=False,
                     _node_ip_address="127.0.0.1", runtime_env=runtime_env,
                     logging_level=logging.WARNING)
    return {k: float(v) for k, v in ray.cluster_resources().items()}
