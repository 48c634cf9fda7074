"""Fault scenarios that need a Ray of their own (not the shared test-session Ray): run as scripts.

    python -m tests.cluster_scenarios node-loss|multi-node CORPUS OUT

prints one JSON line with what happened.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path


def _three_nodes(corpus: str, out: str, head_cpus: int = 1, overrides: tuple[str, ...] = ()):
    """A head and two worker nodes (2 CPUs each), Ray joined, a small-batch config."""
    import ray
    from ray.cluster_utils import Cluster

    from fakeface_ray.stages import sources
    from fakeface_ray.config import load_config

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus})
    worker = cluster.add_node(num_cpus=2)
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    # One CPU per extract actor (not the default half) keeps the pools small enough for this machine;
    # parts committed every second show up long before the run ends.
    config = load_config(overrides=["extract.batch_size=2", "embed.batch_size=2", "read.files_per_block=2",
                                    "extract.num_cpus=1.0", "output.commit_interval_s=1", *overrides],
                         infile=corpus, out=out, ray__address=cluster.address)
    return cluster, worker, config, sources.list_sources(corpus, config.read.extensions)


def node_loss(corpus: str, out: str) -> dict:
    """A head and two worker nodes; one worker node is removed once the first part is written.

    The survivors (4 CPUs) can hold both pools (2 extract + 1 embed actors) and the reads, so the
    actors that die with the node restart there. (When they cannot, Ray Data 2.60 waits for them
    forever and the run ends with StalledError.)
    """
    import ray

    from fakeface_ray.pipeline import extract_embeddings

    cluster, doomed, config, listing = _three_nodes(
        corpus, out, head_cpus=2, overrides=("extract.max_actors=2", "embed.max_actors=1", "ray.stall_timeout_s=300"))
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
    if worker.is_alive():  # leave the stuck driver thread and its Ray to the process exit
        return {"error": "the run did not end within 600 s of the node loss"}
    nodes_alive = sum(1 for n in ray.nodes() if n["Alive"])
    ray.shutdown()
    cluster.shutdown()
    result = outcome.get("result")
    return {"removed_while_running": removed_while_running, "nodes_alive_after": nodes_alive,
            "error": outcome.get("error"), "n_inputs": len(listing),
            "counts": result.counts_by_status if result else None}


def multi_node(corpus: str, out: str) -> dict:
    """A head and two worker nodes; CPU seconds of extract actors per node (worker processes are
    children of their node's raylet, so the parent pid tells the node)."""
    import psutil
    import ray

    from fakeface_ray.pipeline import extract_embeddings

    # One embed actor leaves the extract pool room for 4 actors of 1 CPU, more than one 2-CPU node
    # holds (the forensic embedder's larger share had cut it to 2, and Ray packed both on one node).
    cluster, _, config, listing = _three_nodes(corpus, out, overrides=("embed.max_actors=1",))
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(result=extract_embeddings(config, Path(out), listing)))
    worker.start()
    cpu: dict[int, float] = {}
    node_of: dict[int, int] = {}
    while worker.is_alive():
        for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
            if "MapBatches(FaceExtractor)" in " ".join(proc.info["cmdline"] or []):
                try:
                    cpu[proc.pid] = sum(proc.cpu_times()[:2])
                    node_of[proc.pid] = proc.info["ppid"]
                except psutil.NoSuchProcess:
                    pass
        time.sleep(0.5)
    worker.join()
    per_node: dict[str, float] = {}
    for pid, seconds in cpu.items():
        key = f"raylet-{node_of[pid]}"
        per_node[key] = round(per_node.get(key, 0.0) + seconds, 1)
    plan = outcome["result"].plan
    ray.shutdown()
    cluster.shutdown()
    return {"extract_cpu_seconds_per_node": per_node, "extract_actors": len(cpu),
            "extract_pool_max": plan.extract.max_size, "rows": sum(outcome["result"].counts_by_status.values()),
            "n_inputs": len(listing)}


SCENARIOS = {"node-loss": node_loss, "multi-node": multi_node}

if __name__ == "__main__":
    scenario, *args = sys.argv[1:]
    print("RESULT " + json.dumps(SCENARIOS[scenario](*args)), flush=True)
