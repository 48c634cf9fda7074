"""The only module that builds Ray Data graphs: sources -> read -> extract -> embed [-> predict] -> Parquet."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cluster.connect import connect
from .cluster.plan import Plan, PoolPlan, plan_pools
from .config import Config
from .console import output
from .console.progress import Progress
from .errors import RunError
from .learning.artifact import ClassifierArtifact
from .learning.predict import Predictor
from .stages import sources
from .stages.embed import FaceEmbedder
from .stages.embedders import EmbedderError, describe_weights, resolve_embedder
from .stages.extract import FaceExtractor
from .storage import parts
from .storage.locations import Location, location
from .storage.schema import Status

PREDICT_ACTOR_CPUS = 0.0  # scoring a block of rows takes milliseconds: no CPU is held back for it


@dataclass
class ExtractResult:
    folder: Location  # where the rows went: `<out>/embeddings` or `<out>/predictions`
    n_inputs: int
    counts_by_status: dict[str, int]
    embedder: str  # as recorded in the rows, e.g. `forensic-v1`
    embedder_reason: str
    plan: Plan
    weights: dict | None  # FaceNet weight file: path, layout, dims, parameters, sha256
    timings: dict[str, float] = field(default_factory=dict)


def extract_embeddings(config: Config, out: str | Path | Location, listing: list[sources.Source],
                       resume: bool = False) -> ExtractResult:
    """Write `<out>/embeddings/`: one Parquet row per listed file, committed part by part.

    Rows stream back from the embed actors (small: no pixels) and the driver commits each block as
    its own part file (temporary name, then move), so a run that dies keeps what it finished and
    never leaves a file that looks finished. `resume` skips inputs whose row is already committed
    with the same sha256; rows of changed or vanished files are replaced or dropped.
    """
    return _write_rows(config, location(out) / "embeddings", listing, resume=resume)


def predict_images(config: Config, out: str | Path | Location, listing: list[sources.Source],
                   artifact: ClassifierArtifact) -> ExtractResult:
    """Write `<out>/predictions/`: the embed stage's rows, classified by the Predictor stage.

    The caller checks that `artifact` reads the embeddings this config writes.
    """
    return _write_rows(config, location(out) / "predictions", listing, artifact=artifact)


def _write_rows(config: Config, target: Location, listing: list[sources.Source], resume: bool = False,
                artifact: ClassifierArtifact | None = None) -> ExtractResult:
    started = time.perf_counter()
    embedder, reason = resolve_embedder(config.embed.embedder, config.embed.weights)
    weights = describe_weights(config.embed.weights) if embedder == "facenet" else None
    done = parts.committed_rows(target) if resume else {}
    output.echo(f"[fakeface] {len(listing)} images under {config.infile}"
                + (f" ({len(done)} rows already written, resuming)" if done else "") + f"; {reason}")
    resources = connect(config.ray)
    plan = plan_pools(resources, config.extract, config.embed)

    writer = parts.PartWriter(target)
    dataset = build_dataset(listing, config, embedder, plan, done=done, artifact=artifact)
    listed = {s.image_id for s in listing}
    label = "extract+embed" if artifact is None else "predict"
    with Progress(label, len(listed - set(done)), "images", errors=True) as progress:
        first_row = _write_parts(dataset, writer, config.ray.stall_timeout_s, progress)
    written = time.perf_counter()
    if done:
        redone = parts.read_parts(writer.parts, ["image_id"]).column("image_id").to_pylist() if writer.parts else []
        parts.drop_rows(target, set(redone) | (set(done) - listed), keep_parts={p.path for p in writer.parts})

    # One read of the written rows serves the exactly-once check, the embedder check and the counts.
    # Prediction rows carry no embedder column: the caller matched the model to the embedder.
    table = parts.read_folder(target, ["image_id", "status"] + (["embedder"] if artifact is None else []))
    ids = table.column("image_id").to_pylist()
    if len(ids) != len(listing) or set(ids) != listed:
        raise RuntimeError(f"{target} holds {len(ids)} rows ({len(set(ids))} distinct) for "
                           f"{len(listing)} inputs")
    names = set(table.column("embedder").to_pylist()) if artifact is None else {artifact.embedder}
    if len(names) > 1:
        raise EmbedderError(f"{target} mixes embedders {sorted(names)}: resume with the embedder of the "
                            "first run, or --overwrite")
    parts.mark_complete(target, len(ids))
    return ExtractResult(
        folder=target, n_inputs=len(listing), counts_by_status=count_statuses(table.column("status").to_pylist()),
        embedder=names.pop(), embedder_reason=reason, plan=plan, weights=weights,
        timings={"extract_embed_write_s": written - started,
                 "first_row_s": (first_row - started) if first_row else None},
    )


class StalledError(RunError):
    """No rows arrived for `ray.stall_timeout_s`."""


def _write_parts(dataset, writer: parts.PartWriter, stall_timeout_s: float,
                 progress: Progress | None = None) -> float | None:
    """Commit every block of `dataset` as a part (counting its rows and errors in `progress`);
    returns when the first one was committed.

    The blocks are drained in a thread while the main thread waits in short joins: Ctrl-C reaches
    a Python thread only between bytecodes, and Ray's queue wait would swallow it until the end.
    The main thread also gives up when no block arrives for `stall_timeout_s`: Ray Data 2.60 does
    not shrink an actor pool while it has pending actors, so a cluster that lost the capacity for
    both pools waits forever instead of failing.
    """
    written: list[float] = []
    failure: list[BaseException] = []

    def drain() -> None:
        try:
            for block in dataset.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=0):
                writer.write(block)
                written.append(time.perf_counter())
                if progress is not None:
                    statuses = block.column("status").to_pylist()
                    progress.add(len(statuses), sum(Status(s).is_error for s in statuses))
        except BaseException as exc:  # handed to the main thread below
            failure.append(exc)

    worker = threading.Thread(target=drain, name="fakeface-parquet-writer", daemon=True)
    started = time.perf_counter()
    worker.start()
    while worker.is_alive():
        worker.join(timeout=0.5)
        quiet = time.perf_counter() - (written[-1] if written else started)
        if worker.is_alive() and quiet > stall_timeout_s:
            raise StalledError(
                f"no rows for {quiet:.0f} s ({len(writer.parts)} parts written); the cluster may have lost the "
                "capacity its actor pools need. Rerun with --resume to carry on from the written parts")
    if failure:
        raise failure[0]
    return written[0] if written else None


def status_counts(folder: Location) -> dict[str, int]:
    """Rows per status in an embeddings or predictions folder, sorted by status."""
    return count_statuses(parts.read_folder(folder, ["status"]).column("status").to_pylist())


def count_statuses(statuses: list[str]) -> dict[str, int]:
    """Rows per status, sorted by status."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))


def build_dataset(listing: list[sources.Source], config: Config, embedder: str, plan: Plan,
                  done: dict[str, str] | None = None, artifact: ClassifierArtifact | None = None):
    """The lazy Ray Dataset: rows of the embeddings schema (or predictions), one per listed file.

    Args:
        embedder: the concrete embedder (`auto` resolved on the driver, so every actor agrees).
        done: image_id -> sha256 of rows already written; files with the same bytes are skipped.
        artifact: a trained classifier; the Predictor stage then turns the rows into predictions.
    """
    import ray

    # The driver shows its own progress (rows written, errors so far): Ray Data's bars and, where
    # stdout is not a terminal, its block-level status dumps every few seconds, would repeat it.
    ray.data.DataContext.get_current().enable_progress_bars = False
    done = done or {}
    items = [{"image_id": s.image_id, "uri": s.uri, "label": s.label, "done_sha256": done.get(s.image_id, "")}
             for s in listing]
    per_block = config.read.files_per_block
    ds = ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(items) / per_block)))
    ds = ds.map_batches(sources.read_files, batch_size=per_block, batch_format="numpy",
                        num_cpus=plan.read_cpus)
    ds = ds.map_batches(
        FaceExtractor, **_actor_pool(plan.extract),
        fn_constructor_kwargs=dict(config=config.extract, read=config.read, keep_regions=embedder == "forensic",
                                   device="GPU:0" if plan.extract.num_gpus else None,
                                   num_threads=max(1, math.ceil(plan.extract.num_cpus))),
    )
    ds = ds.map_batches(
        FaceEmbedder, **_actor_pool(plan.embed),
        fn_constructor_kwargs=dict(config=dataclasses.replace(config.embed, embedder=embedder,
                                                              batch_size=plan.embed.batch_size),
                                   device="GPU:0" if plan.embed.num_gpus else "CPU:0",
                                   num_threads=max(1, math.ceil(plan.embed.num_cpus))),
    )
    if artifact is None:
        return ds
    return ds.map_batches(Predictor, batch_size=None, batch_format="pyarrow", num_cpus=PREDICT_ACTOR_CPUS,
                          compute=ray.data.ActorPoolStrategy(size=1), fn_constructor_kwargs=dict(artifact=artifact))


def _actor_pool(pool: PoolPlan) -> dict:
    """map_batches arguments for an autoscaling actor pool of numpy batches."""
    import ray

    return dict(batch_size=pool.batch_size, batch_format="numpy", num_cpus=pool.num_cpus,
                num_gpus=pool.num_gpus or None,
                compute=ray.data.ActorPoolStrategy(min_size=pool.min_size, max_size=pool.max_size))
