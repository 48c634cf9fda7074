"""The only module that builds Ray Data graphs: sources -> read -> extract -> embed [-> predict] -> Parquet,
and the passes over written rows: synthetic fakes, splice scores."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .cluster.connect import connect
from .cluster.plan import Plan, PoolPlan, plan_pools, read_tasks
from .config import Config, ReadConfig
from .console import output
from .console.progress import Progress
from .errors import RunError
from .stages import sources
from .stages.embed import FaceEmbedder
from .stages.embedders import EmbedderError, describe_weights, resolve_embedder
from .stages.extract import FaceExtractor
from .stages.splice_features import SpliceFeatures, SpliceNetworks
from .stages.synth import FakeSynthesizer
from .storage import parts
from .storage.locations import Location, WriteError, location
from .storage.schema import Status

if TYPE_CHECKING:  # scikit-learn is only needed when predicting; `extract` starts without it
    from .learning.artifact import ClassifierArtifact

ERROR_STATUSES = pa.array([s.value for s in Status if s.is_error], pa.string())
PREDICT_ACTOR_CPUS = 0.0  # scoring a block of rows takes milliseconds: no CPU is held back for it


@dataclass
class ExtractResult:
    folder: Location  # where the rows went: `<out>/embeddings` or `<out>/predictions`
    n_inputs: int
    counts_by_status: dict[str, int]
    embedder: str  # as recorded in the rows, e.g. `forensic-v11`
    embedder_reason: str
    plan: Plan | None  # None when a resume found nothing to do and started no Ray
    weights: dict | None  # FaceNet weight file: path, layout, dims, parameters, sha256
    timings: dict[str, float] = field(default_factory=dict)
    work: dict = field(default_factory=dict)  # inputs processed and skipped, parts, quarantined parts


class ExactlyOnceError(RunError):
    """The written folder does not hold exactly one row per input."""


def extract_embeddings(config: Config, out: str | Path | Location, listing: sources.Listing,
                       resume: bool = False, verify: bool = False) -> ExtractResult:
    """Write `<out>/embeddings/`: one Parquet row per listed file, committed part by part.

    Rows stream back from the embed actors (small: no pixels) and the driver commits them in parts
    (temporary name, then move; see `storage.parts`), so a run that dies keeps what it committed and
    never leaves a file that looks finished. `resume` skips inputs whose row was made from the same
    listing (size and mtime), without reading them; `verify` also re-hashes those and redoes the
    ones whose bytes changed. Rows of changed inputs are replaced, rows of vanished ones dropped,
    unreadable parts set aside in `_quarantine/` and their inputs redone.
    """
    return _write_rows(config, location(out) / "embeddings", listing, resume=resume, verify=verify)


def predict_images(config: Config, out: str | Path | Location, listing: sources.Listing,
                   artifact: ClassifierArtifact, splice: SpliceNetworks | None = None) -> ExtractResult:
    """Write `<out>/predictions/`: the embed stage's rows, classified by the Predictor stage.

    The caller checks that `artifact` reads the embeddings this config writes.

    Args:
        splice: the networks, when the classifier reads splice-v1 scores; the embed actors add them.
    """
    return _write_rows(config, location(out) / "predictions", listing, artifact=artifact, splice=splice)


def _write_rows(config: Config, target: Location, listing: sources.Listing, resume: bool = False,
                verify: bool = False, artifact: ClassifierArtifact | None = None,
                splice: SpliceNetworks | None = None) -> ExtractResult:
    started = time.perf_counter()
    embedder, reason = resolve_embedder(config.embed.embedder, config.embed.weights)
    weights = describe_weights(config.embed.weights) if embedder == "facenet" else None
    todo, work, vanished = listing.table, {}, None
    if resume:
        committed = parts.read_committed(target)
        for part in committed.quarantined:
            output.echo(f"[fakeface] warning: {part.name} cannot be read; moved to {part}, its inputs are redone",
                        err=True)
        plan = parts.plan_resume(listing.table, committed.rows, verify)
        todo, vanished = plan.todo, plan.vanished
        work = {"rows_found": committed.rows.num_rows, "unchanged_skipped": plan.unchanged,
                "duplicated_ids": plan.duplicated, "quarantined": [str(p) for p in committed.quarantined]}
    work["to_process"] = todo.num_rows
    output.echo(f"[fakeface] {len(listing)} images under {config.infile}"
                + (f" ({work['rows_found']} rows already written, resuming); {todo.num_rows} to process"
                   if resume else "") + f"; {reason}")
    plan_used, first_row, written_parts = None, None, []
    if todo.num_rows or (vanished is not None and len(vanished)):
        parts.clear_complete(target)
    if todo.num_rows:
        plan_used = plan_pools(connect(config.ray), config.extract,
                               dataclasses.replace(config.embed, embedder=embedder))
        writer = _part_writer(target, config)
        dataset = build_dataset(todo, config, embedder, plan_used, artifact=artifact, splice=splice)
        label = "extract+embed" if artifact is None else "predict"
        with Progress(label, todo.num_rows, "images", errors=True) as progress:
            first_row = _write_parts(dataset, writer, config.ray.stall_timeout_s, progress)
        written_parts = writer.parts
    written = time.perf_counter()
    if resume:
        # Old rows go only where a new one was written; ids new to this run have none to drop.
        stale = [vanished]
        if written_parts:
            fresh = parts.read_parts(written_parts, ["image_id"]).column("image_id").combine_chunks()
            stale.append(fresh.filter(pc.is_in(fresh, value_set=plan.redone)))
        work["rows_dropped"] = parts.drop_rows(target, pa.concat_arrays(stale),
                                               keep_parts={p.path for p in written_parts},
                                               row_group_rows=config.output.row_group_rows)
    work["parts_written"] = len(written_parts)

    # One read of the written rows serves the exactly-once check, the embedder check and the counts.
    # Prediction rows carry no embedder column: the caller matched the model to the embedder.
    table = parts.read_folder(target, ["image_id", "status"] + (["embedder"] if artifact is None else []))
    check_exactly_once(target, table.column("image_id"), listing.table.column("image_id"))
    names = set(pc.unique(table.column("embedder")).to_pylist()) if artifact is None else {artifact.embedder}
    if len(names) > 1:
        raise EmbedderError(f"{target} mixes embedders {sorted(names)}: resume with the embedder of the "
                            "first run, or --overwrite")
    parts.mark_complete(target, table.num_rows)
    return ExtractResult(
        folder=target, n_inputs=len(listing), counts_by_status=count_statuses(table.column("status")),
        embedder=names.pop(), embedder_reason=reason, plan=plan_used, weights=weights,
        # No first row when a resume had nothing left to do: its timing is left out, not null.
        timings={"extract_embed_write_s": written - started,
                 **({"first_row_s": first_row - started} if first_row else {})},
        work=work,
    )


@dataclass
class SynthResult:
    folder: Location  # `<out>/synthetic`
    n_parents: int
    counts_by_status: dict[str, int]
    seconds: float


def synthesize_fakes(config: Config, out: str | Path | Location, parents: list[dict]) -> SynthResult:
    """Write `<out>/synthetic/`: `synth.variants` embedded fakes for each parent (a training real).

    Args:
        parents: rows with `image_id`, `uri`, `face_box`, `face_confidence`, `keypoints`,
            `donor_uri` and `donor_keypoints` (another training real; "" and NaN for none).
    """
    import ray

    started = time.perf_counter()
    _quiet_ray_data()
    target = location(out) / "synthetic"
    target.delete()  # fakes are remade from the seed: a rerun never mixes two sets
    embedder, _ = resolve_embedder(config.embed.embedder, config.embed.weights)
    plan = plan_pools(connect(config.ray), config.extract, dataclasses.replace(config.embed, embedder=embedder))
    per_block = config.read.files_per_block
    # Capped like read_stage's tasks: each block is driver bookkeeping.
    ds = ray.data.from_items(parents, override_num_blocks=read_tasks(len(parents), config.read))
    ds = ds.map_batches(sources.read_files, batch_size=per_block, batch_format="numpy", num_cpus=plan.read_cpus)
    ds = ds.map_batches(
        FakeSynthesizer, **_actor_pool(plan.extract),
        fn_constructor_kwargs=dict(config=config.synth, extract=config.extract, read=config.read,
                                   keep_regions=embedder == "forensic", seed=config.seed))
    ds = ds.map_batches(FaceEmbedder, **_actor_pool(plan.embed), fn_constructor_kwargs=_embed_kwargs(config, embedder, plan))
    writer = _part_writer(target, config)
    with Progress("synth", len(parents) * config.synth.variants, "fakes", errors=True) as progress:
        _write_parts(ds, writer, config.ray.stall_timeout_s, progress)
    statuses = parts.read_folder(target, ["status"]).column("status").to_pylist() if writer.parts else []
    if len(statuses) != len(parents) * config.synth.variants:
        raise ExactlyOnceError(f"{target} holds {len(statuses)} rows for {len(parents)} parents x "
                               f"{config.synth.variants} variants")
    parts.mark_complete(target, len(statuses))
    return SynthResult(target, len(parents), count_statuses(statuses), time.perf_counter() - started)


@dataclass
class SpliceRowsResult:
    folder: Location  # `<out>/splice_embeddings`
    counts_by_status: dict[str, int]
    seconds: float


def splice_rows(config: Config, out: str | Path | Location, source: Location,
                networks: SpliceNetworks) -> SpliceRowsResult:
    """Write `<out>/splice_embeddings/`: every row of `source` (an embeddings folder) with splice-v1 scores.

    The rows are read from their parts by Ray Data and pass through `SpliceFeatures` actors (the
    embed pool's size and resources); one row out for each row in.
    """
    import ray

    started = time.perf_counter()
    _quiet_ray_data()
    target = location(out) / "splice_embeddings"
    target.delete()  # remade from the network each time: never rows of two networks
    embedder, _ = resolve_embedder(config.embed.embedder, config.embed.weights)
    plan = plan_pools(connect(config.ray), config.extract, dataclasses.replace(config.embed, embedder=embedder))
    files = [p.path for p in parts.committed_parts(source)]
    ds = ray.data.read_parquet(files, filesystem=source.fs)
    pool = plan.embed
    ds = ds.map_batches(SpliceFeatures, **_actor_pool(pool, "pyarrow"),
                        fn_constructor_kwargs=dict(networks=networks, device="GPU:0" if pool.num_gpus else "CPU:0",
                                                   num_threads=max(1, math.ceil(pool.num_cpus))))
    expected = parts.read_folder(source, ["image_id"]).num_rows
    writer = _part_writer(target, config)
    with Progress("splice", expected, "rows", errors=True) as progress:
        _write_parts(ds, writer, config.ray.stall_timeout_s, progress)
    table = parts.read_folder(target, ["image_id", "status"]) if writer.parts else None
    written = 0 if table is None else table.num_rows
    if written != expected:
        raise ExactlyOnceError(f"{target} holds {written} rows for the {expected} rows of {source}")
    parts.mark_complete(target, written)
    return SpliceRowsResult(target, count_statuses(table.column("status")), time.perf_counter() - started)


def check_exactly_once(target: Location, ids: pa.ChunkedArray, listed: pa.ChunkedArray) -> None:
    """Raise ExactlyOnceError unless `ids` (the rows) are `listed` (the inputs), each once."""
    distinct = pc.count_distinct(ids).as_py()
    if len(ids) != len(listed) or distinct != len(ids) or not pc.all(pc.is_in(listed, value_set=ids)).as_py():
        raise ExactlyOnceError(f"{target} holds {len(ids)} rows ({distinct} distinct) for {len(listed)} inputs; "
                               "rerun with --resume to redo what is missing or doubled")


def _quiet_ray_data() -> None:
    """The driver shows its own progress (rows written, errors so far): Ray Data's bars and, where
    stdout is not a terminal, its block-level status dumps every few seconds, would repeat it."""
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False


def _part_writer(target: Location, config: Config) -> parts.PartWriter:
    out = config.output
    return parts.PartWriter(target, max_rows=out.part_rows, max_bytes=out.part_bytes,
                            commit_interval_s=out.commit_interval_s, row_group_rows=out.row_group_rows)


class StalledError(RunError):
    """No rows arrived for `ray.stall_timeout_s`."""


def _write_parts(dataset, writer: parts.PartWriter, stall_timeout_s: float,
                 progress: Progress | None = None) -> float | None:
    """Hand every block of `dataset` to `writer` (counting its rows and errors in `progress`);
    returns when the first one arrived.

    The blocks are drained in one thread and due checkpoints committed in another, while the main
    thread only waits in short joins: Ctrl-C reaches a Python thread only between bytecodes, Ray's
    queue wait would swallow it until the end, and one that landed inside a commit would leave the
    writer half-way through it. The main thread gives up when no block arrives for
    `stall_timeout_s`: Ray Data 2.60 does not shrink an actor pool while it has pending actors, so a
    cluster that lost the capacity for both pools waits forever instead of failing. However the run
    ends, rows already received are committed, unless writing itself failed.
    """
    arrived: list[float] = []
    failure: list[BaseException] = []
    drained = threading.Event()

    def drain() -> None:
        try:
            for block in dataset.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=0):
                writer.write(block)
                arrived.append(time.perf_counter())
                if progress is not None:
                    errors = pc.is_in(block.column("status"), value_set=ERROR_STATUSES)
                    progress.add(block.num_rows, pc.sum(errors).as_py() or 0)
        except BaseException as exc:  # handed to the main thread below
            failure.append(exc)
        finally:
            drained.set()

    def commit_due() -> None:
        try:
            while not drained.wait(0.5):
                writer.commit_if_due()
        except BaseException as exc:  # handed to the main thread below
            failure.append(exc)
            drained.set()

    threads = [threading.Thread(target=drain, name="fakeface-parquet-writer", daemon=True),
               threading.Thread(target=commit_due, name="fakeface-part-committer", daemon=True)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        while not drained.is_set():
            drained.wait(0.5)
            quiet = time.perf_counter() - (arrived[-1] if arrived else started)
            if not drained.is_set() and quiet > stall_timeout_s:
                raise StalledError(
                    f"no rows for {quiet:.0f} s ({writer.rows_committed + writer.buffered_rows} rows committed); the "
                    "cluster may have lost the capacity its actor pools need. Rerun with --resume to carry on")
        threads[1].join()
        if failure:
            raise failure[0]
    except BaseException as exc:
        if not isinstance(exc, WriteError):
            with contextlib.suppress(WriteError):
                writer.close()  # waits for a commit in flight: the writer's lock
        raise
    writer.close()
    return arrived[0] if arrived else None


def status_counts(folder: Location) -> dict[str, int]:
    """Rows per status in an embeddings or predictions folder, sorted by status."""
    return count_statuses(parts.read_folder(folder, ["status"]).column("status"))


def count_statuses(statuses: pa.ChunkedArray | list[str]) -> dict[str, int]:
    """Rows per status, sorted by status."""
    counts = pc.value_counts(pa.chunked_array([statuses]) if isinstance(statuses, list) else statuses)
    return dict(sorted((v["values"], v["counts"]) for v in counts.to_pylist()))


def build_dataset(items: pa.Table, config: Config, embedder: str, plan: Plan,
                  artifact: ClassifierArtifact | None = None, splice: SpliceNetworks | None = None):
    """The lazy Ray Dataset: rows of the embeddings schema (or predictions), one per item.

    Args:
        items: the inputs to process (`sources.LISTING_SCHEMA`), and `done_sha256` where a row of
            the same bytes must not be redone (a `--verify` resume).
        embedder: the concrete embedder (`auto` resolved on the driver, so every actor agrees).
        artifact: a trained classifier; the Predictor stage then turns the rows into predictions.
        splice: the networks, for a classifier that reads splice-v1 scores.
    """
    import ray

    _quiet_ray_data()
    ds = read_stage(items, config.read, plan.read_cpus)
    ds = ds.map_batches(
        FaceExtractor, **_actor_pool(plan.extract),
        fn_constructor_kwargs=dict(config=config.extract, read=config.read, keep_regions=embedder == "forensic",
                                   device="GPU:0" if plan.extract.num_gpus else None,
                                   num_threads=max(1, math.ceil(plan.extract.num_cpus))),
    )
    ds = ds.map_batches(FaceEmbedder, **_actor_pool(plan.embed),
                        fn_constructor_kwargs=_embed_kwargs(config, embedder, plan, splice))
    if artifact is None:
        return ds
    from .learning.predict import Predictor

    return ds.map_batches(Predictor, batch_size=None, batch_format="pyarrow", num_cpus=PREDICT_ACTOR_CPUS,
                          compute=ray.data.ActorPoolStrategy(size=1), fn_constructor_kwargs=dict(artifact=artifact))


def read_stage(items: pa.Table, read: ReadConfig, num_cpus: float):
    """The lazy Ray Dataset of `items` with their bytes read (`sources.read_files`), in read tasks.

    Each task takes a range of row numbers into one shared copy of the listing (slices of the
    listing as blocks would cost the driver a Ray object each) and reads its files
    `read.files_per_block` at a time. Ray Data joins a task's batches into blocks of up to 128 MB,
    so capping the tasks (`read.max_read_tasks`) caps the blocks and the driver's bookkeeping of
    them: about 40 KB a block.
    """
    import ray

    ds = ray.data.range(items.num_rows, override_num_blocks=read_tasks(items.num_rows, read))
    return ds.map_batches(read_listed, batch_size=read.files_per_block, batch_format="numpy", num_cpus=num_cpus,
                          fn_kwargs=dict(listing=ray.put(items)))


def read_listed(batch: dict[str, np.ndarray], listing) -> dict[str, np.ndarray]:
    """Ray Data stage: `sources.read_files` on the listing rows whose numbers are in `batch["id"]`.

    Args:
        listing: the items table, or an ObjectRef to it (shared through the object store).
    """
    import ray

    table = ray.get(listing) if isinstance(listing, ray.ObjectRef) else listing
    rows = table.take(pa.array(batch["id"]))
    return sources.read_files({name: rows.column(name).to_numpy(zero_copy_only=False) for name in rows.column_names})


def _embed_kwargs(config: Config, embedder: str, plan: Plan, splice: SpliceNetworks | None = None) -> dict:
    """The embed actors' constructor arguments: the config section with the embedder resolved."""
    return dict(config=dataclasses.replace(config.embed, embedder=embedder, batch_size=plan.embed.batch_size),
                device="GPU:0" if plan.embed.num_gpus else "CPU:0", num_threads=max(1, math.ceil(plan.embed.num_cpus)),
                splice=splice)


def _actor_pool(pool: PoolPlan, batch_format: str = "numpy") -> dict:
    """map_batches arguments for an autoscaling actor pool."""
    import ray

    return dict(batch_size=pool.batch_size, batch_format=batch_format, num_cpus=pool.num_cpus,
                num_gpus=pool.num_gpus or None,
                compute=ray.data.ActorPoolStrategy(min_size=pool.min_size, max_size=pool.max_size))
