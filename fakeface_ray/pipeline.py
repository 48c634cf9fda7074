"""The only module that builds Ray Data graphs: sources -> read -> extract -> embed -> Parquet."""

from __future__ import annotations

import math
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.dataset as pads

from . import cluster, sources
from .config import Config
from .embed import FaceEmbedder
from .embedders import resolve_embedder
from .extract import FaceExtractor
from .resources import Plan, plan_pools


@dataclass
class ExtractResult:
    embeddings: Path
    n_inputs: int
    counts_by_status: dict[str, int]
    embedder: str  # as recorded in the rows, e.g. `forensic-v1`
    embedder_reason: str
    plan: Plan
    weights: dict | None  # FaceNet weight file: path, layout, dims, parameters, sha256
    timings: dict[str, float] = field(default_factory=dict)


def extract_embeddings(config: Config, out: Path, listing: list[sources.Source]) -> ExtractResult:
    """Write `<out>/embeddings/` (one Parquet row per listed file) and summarise it.

    The data is written under a temporary name and renamed at the end, so a run that dies leaves
    nothing that looks finished.
    """
    started = time.perf_counter()
    embedder, reason = resolve_embedder(config.embed.embedder, config.embed.weights)
    weights = describe_weights(config.embed.weights) if embedder == "facenet" else None
    print(f"[fakeface] {len(listing)} images under {config.infile}; {reason}", flush=True)
    resources = cluster.connect(config.ray)
    plan = plan_pools(resources, config.extract, config.embed)

    target = out / "embeddings"
    staging = out / f".embeddings-{uuid.uuid4().hex[:8]}.tmp"
    dataset = build_dataset(listing, config, embedder, plan)
    dataset.write_parquet(str(staging))
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    written = time.perf_counter()

    table = pads.dataset(str(target), format="parquet").to_table(columns=["embedder"])
    if table.num_rows != len(listing):
        raise RuntimeError(f"wrote {table.num_rows} rows for {len(listing)} inputs")
    names = set(table.column("embedder").to_pylist())
    return ExtractResult(
        embeddings=target, n_inputs=len(listing), counts_by_status=status_counts(target),
        embedder=names.pop() if len(names) == 1 else ",".join(sorted(names)),
        embedder_reason=reason, plan=plan, weights=weights,
        timings={"extract_embed_write_s": written - started},
    )


def describe_weights(path: str) -> dict:
    """Check a FaceNet weight file on the driver (clear errors before any actor starts)."""
    from .embedders import EmbedderError
    from .embedders.facenet_weights import WeightFileError, read_weight_file

    try:
        found = read_weight_file(path)
    except WeightFileError as exc:
        raise EmbedderError(str(exc)) from None
    return {"path": str(found.path), "layout": found.layout, "dims": found.dims,
            "parameters": found.n_parameters, "sha256": found.sha256}


def status_counts(embeddings: Path) -> dict[str, int]:
    """Rows per status in an embeddings folder, sorted by status."""
    statuses = pads.dataset(str(embeddings), format="parquet").to_table(columns=["status"])
    counts: dict[str, int] = {}
    for status in statuses.column("status").to_pylist():
        counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))


def build_dataset(listing: list[sources.Source], config: Config, embedder: str, plan: Plan):
    """The lazy Ray Dataset: rows of the embeddings schema, one per listed file."""
    import ray

    items = [{"image_id": s.image_id, "uri": s.uri, "label": s.label} for s in listing]
    per_block = config.read.files_per_block
    ds = ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(items) / per_block)))
    ds = ds.map_batches(sources.read_files, batch_size=per_block, batch_format="numpy",
                        num_cpus=plan.read_cpus)
    ds = ds.map_batches(
        FaceExtractor,
        batch_size=plan.extract.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=plan.extract.min_size, max_size=plan.extract.max_size),
        num_cpus=plan.extract.num_cpus,
        num_gpus=plan.extract.num_gpus or None,
        fn_constructor_kwargs=dict(
            margin=config.extract.margin, face_size=config.extract.face_size,
            min_face_size=config.extract.min_face_size, region_max_side=config.extract.region_max_side,
            max_pixels=config.read.max_pixels, device=config.extract.device,
            num_threads=max(1, math.ceil(plan.extract.num_cpus))),
    )
    return ds.map_batches(
        FaceEmbedder,
        batch_size=plan.embed.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=plan.embed.min_size, max_size=plan.embed.max_size),
        num_cpus=plan.embed.num_cpus,
        num_gpus=plan.embed.num_gpus or None,
        fn_constructor_kwargs=dict(embedder=embedder, weights=config.embed.weights,
                                   preprocess=config.embed.preprocess, batch_size=plan.embed.batch_size,
                                   device="GPU:0" if plan.embed.num_gpus else "CPU:0",
                                   num_threads=max(1, math.ceil(plan.embed.num_cpus))),
    )
