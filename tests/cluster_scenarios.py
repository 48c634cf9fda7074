"""Fault scenarios that need a Ray of their own (not the shared test-session Ray): run as scripts.

    python -m tests.cluster_scenarios node-loss CORPUS OUT

prints one JSON line with what happened.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path


def node_loss(corpus: str, out: str) -> dict:
    """A head and two worker nodes; one worker node is removed once the first part is written."""
    import ray
    from ray.cluster_utils import Cluster

    from fakeface_ray import sources
    from fakeface_ray.config import load_config
    from fakeface_ray.pipeline import extract_embeddings

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    doomed = cluster.add_node(num_cpus=2)
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    config = load_config(overrides=["extract.batch_size=2", "embed.batch_size=2", "read.files_per_block=2"],
                         infile=corpus, out=out, ray__address=cluster.address)
    listing = sources.list_sources(corpus, config.read.extensions)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = extract_embeddings(config, Path(out), listing)
        except BaseException as exc:  # reported below
            outcome["error"] = repr(exc)

    worker = threading.Thread(target=run)
    worker.start()
    parts = Path(out) / "embeddings"
    deadline = time.time() + 300
    while not list(parts.glob("part-*.parquet")) and worker.is_alive() and time.time() < deadline:
        time.sleep(0.2)
    removed_while_running = worker.is_alive()
    cluster.remove_node(doomed)
    worker.join(timeout=600)
    nodes_alive = sum(1 for n in ray.nodes() if n["Alive"])
    ray.shutdown()
    cluster.shutdown()
    result = outcome.get("result")
    return {"removed_while_running": removed_while_running, "nodes_alive_after": nodes_alive,
            "error": outcome.get("error"), "n_inputs": len(listing),
            "counts": result.counts_by_status if result else None}


if __name__ == "__main__":
    scenario, *args = sys.argv[1:]
    if scenario != "node-loss":
        raise SystemExit(f"unknown scenario {scenario}")
    print("RESULT " + json.dumps(node_loss(*args)), flush=True)
