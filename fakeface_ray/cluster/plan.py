"""Plan actor pools from the cluster's resources, leaving room for the read tasks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import EmbedConfig, ExtractConfig, ReadConfig
from ..errors import UserError

READ_TASK_CPUS = 0.25  # reads are I/O; a quarter CPU lets them interleave with the actors
# The embed pool's share of the actors' CPUs, by embedder: its cost per face against the extract
# stage's per image (on one thread, 600x600: extract 45 ms, FaceNet 20 ms, forensic 58 ms;
# benchmarks/results/throughput_600_numpy_mtcnn.json), so that neither pool waits on the other.
EMBED_CPU_SHARE = {"facenet": 0.3, "forensic": 0.55}


class PlanError(UserError):
    """The cluster cannot run the requested pools."""


@dataclass(frozen=True)
class PoolPlan:
    min_size: int
    max_size: int
    num_cpus: float
    num_gpus: float
    batch_size: int


@dataclass(frozen=True)
class Plan:
    read_cpus: float
    extract: PoolPlan
    embed: PoolPlan


def plan_pools(resources: dict[str, float], extract: ExtractConfig, embed: EmbedConfig) -> Plan:
    """Pool sizes that fit `resources` (as from `ray.cluster_resources()`), or a PlanError.

    CPUs for at least two read tasks are kept free so the actors never starve the reads (a silent
    hang otherwise), and GPUs are only asked for when the cluster has them. The CPUs left are
    split by `EMBED_CPU_SHARE`, at least one actor each.

    Args:
        embed: with `embedder` resolved (not `auto`): the split depends on the embedder's cost.
    """
    if embed.embedder not in EMBED_CPU_SHARE:
        raise ValueError(f"plan_pools needs a resolved embedder, got {embed.embedder!r}")
    cpus = float(resources.get("CPU", 0))
    gpus = float(resources.get("GPU", 0))
    for stage, want in (("extract", extract.num_gpus), ("embed", embed.num_gpus)):
        if want > 0 and gpus <= 0:
            raise PlanError(f"{stage}.num_gpus={want} but the cluster has no GPU; set it to 0")
    reserve = max(2 * READ_TASK_CPUS, 0.1 * cpus)
    available = cpus - reserve
    if available < extract.num_cpus + embed.num_cpus:
        raise PlanError(f"the cluster has {cpus:g} CPUs; extract ({extract.num_cpus:g}) and embed "
                        f"({embed.num_cpus:g}) actors plus {reserve:g} for reads need more")
    # The nearest whole number of embed actors to the share, leaving one extract actor's CPUs and GPUs.
    embed_cpus = available - extract.num_cpus
    if embed.num_cpus > 0:
        wanted = max(1, round(available * EMBED_CPU_SHARE[embed.embedder] / embed.num_cpus))
        embed_cpus = min(embed_cpus, wanted * embed.num_cpus)
    n_embed = _pool_size(embed_cpus, embed.num_cpus, gpus - extract.num_gpus, embed.num_gpus, embed.max_actors)
    n_extract = _pool_size(available - n_embed * embed.num_cpus, extract.num_cpus,
                           gpus - n_embed * embed.num_gpus, extract.num_gpus, extract.max_actors)
    return Plan(
        read_cpus=READ_TASK_CPUS,
        extract=PoolPlan(1, n_extract, extract.num_cpus, extract.num_gpus, extract.batch_size),
        embed=PoolPlan(1, n_embed, embed.num_cpus, embed.num_gpus, embed.batch_size),
    )


def read_tasks(n_files: int, read: ReadConfig) -> int:
    """How many read tasks cut `n_files` inputs: one per `files_per_block`, at most `max_read_tasks`."""
    return max(1, min(math.ceil(n_files / read.files_per_block), read.max_read_tasks))


def _pool_size(cpus: float, per_actor_cpus: float, gpus: float, per_actor_gpus: float,
               cap: int | None) -> int:
    size = math.floor(cpus / per_actor_cpus + 1e-9) if per_actor_cpus > 0 else 1
    if per_actor_gpus > 0:
        size = min(size, math.floor(gpus / per_actor_gpus + 1e-9))
        if size < 1:
            raise PlanError(f"{gpus:g} GPUs left cannot hold an actor asking for {per_actor_gpus:g}")
    if cap is not None:
        size = min(size, cap)
    return max(1, size)
