"""Whole runs: wiring of the stages into extract, train, predict, and the `run.json` record of each."""

from __future__ import annotations

import contextlib
import json
import platform
import re
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from .cluster.connect import connect
from .config import Config, ConfigError
from .console import output
from .console.progress import Progress
from .errors import RunError, UserError
from .pipeline import (ExtractResult, count_statuses, extract_embeddings, predict_images, splice_rows, status_counts,
                       synthesize_fakes)
from .stages import sources
from .stages.filecues import UNREADABLE, FileCues, file_cues
from .stages.embedders import embedder_identity
from .stages.embedders.splice import NETWORKS, PATCH, SpliceModel, network_weights
from .stages.splice_features import SpliceNetworks, splice_use, spliced_dims, spliced_name
from .stages.requirements import pipeline_needs, require
from .stages.synth import choose_donors
from .storage import parts
from .storage.locations import READ_ERRORS, Location, WriteError, location, read_bytes
from .storage.lock import RunLock
from .storage.schema import CLASSES, Status

if TYPE_CHECKING:
    from .learning.audit import AuditResult
    from .learning.train import Embeddings

PACKAGES = ("fakeface-ray", "ray", "tensorflow-cpu", "tensorflow", "mtcnn", "scikit-learn", "numpy",
            "pyarrow", "pillow")
MIN_SYNTH_REALS = 2  # a donor needs another face
OUTPUTS = ("embeddings", "synthetic", "splice_embeddings", "splice_train", "model", "plots", "metrics.json",
           "classification_report.txt", "run.json", "test_predictions.parquet", "report.html", "audit.json")
READ_THREADS = 8  # the audit reads files this many at a time (object stores answer slowly, not busily)


class OutputExistsError(UserError):
    """The output folder already holds a run and the user did not say what to do with it."""


class RunFailed(RunError):
    """The run finished writing but failed a check the user asked for (e.g. error fraction)."""


@dataclass
class RunRecord:
    """What `run.json` holds: the config and environment, then what each stage added."""

    config: dict
    environment: dict  # versions, python, host
    extract: dict = field(default_factory=dict)  # embedder, weights, inputs, statuses, pool plan
    train: dict = field(default_factory=dict)  # headline metrics, classifier, best parameters
    timings: dict = field(default_factory=dict)
    audit: dict = field(default_factory=dict)  # the shortcut audit (audit.json)

    @classmethod
    def start(cls, config: Config) -> RunRecord:
        environment = {"versions": _versions(), "python": platform.python_version(), "host": platform.node()}
        return cls(config.to_dict(), environment)

    @classmethod
    def read(cls, out: Location) -> RunRecord:
        """The record an earlier stage wrote to `out/run.json`."""
        data = json.loads((out / "run.json").read_text())
        environment = {k: data.pop(k) for k in ("versions", "python", "host") if k in data}
        train = {k: data.pop(k) for k in TRAIN_KEYS if k in data}
        config, timings, audited = data.pop("config"), data.pop("timings", {}), data.pop("audit", {})
        return cls(config, environment, extract=data, train=train, timings=timings, audit=audited)

    def to_dict(self) -> dict:
        return {"config": self.config, **self.environment, **self.extract, "timings": self.timings, **self.train,
                **({"audit": self.audit} if self.audit else {})}

    def write(self, out: Location) -> None:
        (out / "run.json").write_text(json.dumps(self.to_dict(), indent=2, default=str))


TRAIN_KEYS = ("metrics", "classifier", "best_params", "duplicates", "embeddings", "synthetic", "splice")


@dataclass
class TrainedRun:
    """A finished training: its record and the full metrics.json contents."""

    record: RunRecord
    metrics: dict


def prepare_output(out: Location, overwrite: bool = False, resume: bool = False) -> None:
    """Create `out`. One that holds a run is refused unless `overwrite` (cleared) or `resume` (kept).

    The caller holds the run lock, so temporary files found here are left by runs that died: they go.
    """
    if overwrite and resume:
        raise OutputExistsError("--overwrite and --resume exclude each other")
    embeddings = out / "embeddings"
    if holds_a_run(out):
        if overwrite:
            for name in OUTPUTS:
                (out / name).delete()
        elif not resume:
            state = "a finished run" if parts.is_complete(embeddings) else "an interrupted run"
            raise OutputExistsError(f"{out} already holds {state}; pass --resume to continue it, "
                                    "--overwrite to replace it, or choose another --out")
    out.mkdir()
    swept = out.sweep_temporaries()
    if swept:
        print(f"[fakeface] removed {len(swept)} temporary file(s) interrupted runs left in {out}", flush=True)


@contextlib.contextmanager
def locked(config: Config, break_lock: bool = False) -> Iterator[RunLock]:
    """Hold the run lock on `config.out` for the block: released however the block ends."""
    with RunLock(location(config.out), break_stale=break_lock, heartbeat_s=config.output.lock_heartbeat_s,
                 stale_s=config.output.lock_stale_s) as lock:
        yield lock


def run_extract(config: Config, overwrite: bool = False, resume: bool = False,
                listing: sources.Listing | None = None, verify: bool = False, break_lock: bool = False) -> RunRecord:
    """Sources -> faces -> embeddings -> `<out>/embeddings/`; writes and returns `run.json`.

    Raises RunFailed, after writing everything, when more than `max_error_fraction` of the rows
    are errors (statuses other than ok and no_face).

    Args:
        listing: the inputs, when the caller has listed them already.
        verify: with `resume`, re-hash inputs whose listing is unchanged instead of trusting it.
        break_lock: take over a stale run lock on `config.out`.
    """
    started = time.perf_counter()
    require(*pipeline_needs(config.extract, config.embed))
    if listing is None:
        listing = sources.list_sources(config.infile, config.read.extensions, config.class_map)
    listed = time.perf_counter()
    with locked(config, break_lock):
        return _extract(config, listing, overwrite, resume, verify, {"list_sources_s": listed - started})


def _extract(config: Config, listing: sources.Listing, overwrite: bool, resume: bool, verify: bool,
             timings: dict) -> RunRecord:
    out = location(config.out)
    prepare_output(out, overwrite=overwrite, resume=resume)
    capture_logs(out)
    result = extract_embeddings(config, out, listing, resume=resume, verify=verify)
    record = RunRecord.start(config)
    record.extract = _extract_summary(result)
    record.timings = {**timings, **result.timings}
    record.write(out)
    errors = sum(n for status, n in result.counts_by_status.items() if Status(status).is_error)
    if config.max_error_fraction is not None and errors > config.max_error_fraction * result.n_inputs:
        raise RunFailed(f"{errors} of {result.n_inputs} rows are errors, more than max_error_fraction "
                        f"{config.max_error_fraction:g}; every row is written to {result.folder}")
    return record


def run_train(config: Config, embeddings: str | Location, record: RunRecord | None = None,
              started: float | None = None, break_lock: bool = False) -> TrainedRun:
    """Grid search, test metrics, report and plots from an embeddings folder into `config.out`.

    Args:
        record: the extract stage's record; by default the one in `out/run.json`, if any.
        started: `time.perf_counter()` at the start of a whole run, for its total time.
        break_lock: take over a stale run lock on `config.out`.
    """
    with locked(config, break_lock):
        try:
            return _train(config, location(embeddings), record, started)
        except WriteError as exc:
            raise exc.then("run train again") from None


def _train(config: Config, embeddings: Location, record: RunRecord | None, started: float | None) -> TrainedRun:
    # scikit-learn and matplotlib load here, not at import: `fakeface extract` starts 3 s sooner.
    from .learning.artifact import save_artifact
    from .learning.evaluate import evaluate
    from .learning.train import fit, load_embeddings
    from .reporting.html import build_report
    from .reporting.metrics import metrics_document, write_metrics

    out = location(config.out)
    out.mkdir()
    if record is None:
        record = _record_for_training(config, out, embeddings)
    capture_logs(out)
    began = time.perf_counter()
    data = load_embeddings(embeddings)
    if config.train.backend == "ray" or config.splice.use != "none":
        connect(config.ray)
    check_splice_resources(config)
    data, train_ids, splice_summary = _splice_features(config, out, embeddings, data)
    synthetic, synth_summary = _synthetic_fakes(config, out, embeddings, data)
    result = fit(data, config.train, config.seed, synthetic, train_ids=train_ids)
    trained = time.perf_counter()
    evaluation = evaluate(result.artifact, result.test)
    metrics = metrics_document(evaluation, result,
                               record.extract.get("counts_by_status") or status_counts(embeddings))
    write_metrics(out, metrics, evaluation)
    save_artifact(result.artifact, out / "model", {
        "classifier": result.classifier, "grid": result.grid, "best_params": result.best_params,
        "cv_best_score": result.cv_best_score, "operating_point": result.operating_point.to_dict(),
        "seed": config.seed, "test_split": config.train.test_split})
    record.train = {"metrics": {k: metrics[k] for k in ("macro_f1", "accuracy", "roc_auc")},
                    "classifier": result.classifier, "best_params": result.best_params,
                    "duplicates": metrics["duplicates"], "embeddings": str(embeddings), "synthetic": synth_summary,
                    "splice": splice_summary}
    record.timings["train_s"] = trained - began
    build_report(out, config.report.samples_per_class, run=record.to_dict())
    record.timings["report_s"] = time.perf_counter() - trained
    if started is not None:
        record.timings["total_s"] = time.perf_counter() - started
    record.write(out)
    return TrainedRun(record, metrics)


def _record_for_training(config: Config, out: Location, embeddings: Location) -> RunRecord:
    """The extract's record in `out/run.json` when `embeddings` is that run's folder, now with the config
    that trains and without an earlier training's results; a new record for embeddings from elsewhere."""
    own = out / "embeddings"
    if not (type(embeddings.fs) is type(own.fs) and embeddings.path == own.path and (out / "run.json").exists()):
        return RunRecord.start(config)
    record = RunRecord.read(out)
    record.config, record.train = config.to_dict(), {}
    record.timings = {k: v for k, v in record.timings.items() if k not in ("train_s", "report_s", "total_s")}
    return record


def holds_a_run(out: Location) -> bool:
    """Whether `out` holds a run, finished (its run.json) or interrupted (its embeddings so far)."""
    return (out / "run.json").exists() or (out / "embeddings").exists()


def holds_run_of(out: Location, infile: str) -> bool:
    """Whether `out` holds a run, finished or interrupted, whose inputs came from `infile`."""
    if (out / "run.json").exists():
        return json.loads((out / "run.json").read_text())["config"]["infile"] == infile
    committed = parts.committed_parts(out / "embeddings") if (out / "embeddings").exists() else []
    if not committed:
        return False
    # One run reads one --infile: a row of its first part says where all came from.
    uris = parts.read_parts(committed[:1], ["uri"]).column("uri")
    return len(uris) > 0 and location(uris[0].as_py()).path.startswith(location(infile).path.rstrip("/") + "/")


def run_all(config: Config, overwrite: bool = False, resume: bool = False, verify: bool = False,
            break_lock: bool = False) -> TrainedRun:
    """The whole pipeline into `config.out`; the labels are checked before anything is written."""
    from .learning.train import check_labels

    started = time.perf_counter()
    require(*pipeline_needs(config.extract, config.embed))
    listing = sources.list_sources(config.infile, config.read.extensions, config.class_map)
    check_labels(listing.labels(), config.train.test_split)
    if config.splice.use != "none":
        connect(config.ray)
        check_splice_resources(config)  # before hours of extraction, not after
    began = time.perf_counter()
    shortcut = run_audit(config, listing)
    output.echo(f"[fakeface] audit: {shortcut.verdict()}")
    audited = time.perf_counter()
    with locked(config, break_lock):
        record = _extract(config, listing, overwrite, resume, verify,
                          {"list_sources_s": began - started, "audit_s": audited - began})
        record.audit = shortcut.to_dict()
        try:
            write_audit(shortcut, location(config.out) / "audit.json")
            return _train(config, location(config.out) / "embeddings", record, started)
        except WriteError as exc:
            raise exc.then("run train on the embeddings") from None


def run_audit(config: Config, listing: sources.Listing | None = None) -> AuditResult:
    """The shortcut audit of the labelled images under `config.infile`: how their files were saved,
    class by class, and whether that alone tells real from fake. Reads at most
    `audit.max_per_class` files per class, chosen at random (seeded).
    """
    from .learning.audit import audit  # scikit-learn: loaded when a command audits

    if listing is None:
        listing = sources.list_sources(config.infile, config.read.extensions, config.class_map)
    rng = np.random.default_rng(config.seed)
    labels = np.array(listing.labels(), dtype=object)
    sample = []
    for name in CLASSES:
        members = np.flatnonzero(labels == name)
        if len(members) > config.audit.max_per_class:
            members = np.sort(rng.choice(members, config.audit.max_per_class, replace=False))
        sample += members.tolist()
    uris = listing.table.column("uri").take(sample).to_pylist() if sample else []
    with Progress("audit", len(sample), "images") as progress, ThreadPoolExecutor(READ_THREADS) as pool:
        files = []
        for cues in pool.map(_file_cues, uris):
            files.append(cues)
            progress.add(1)
    return audit(files, labels[sample].tolist(), config.audit.max_auc, config.seed)


def write_audit(result: AuditResult, where: str | Location) -> None:
    """The audit as JSON at a path or URI (missing folders are made)."""
    location(where).write_text(json.dumps(result.to_dict(), indent=2))


def _file_cues(uri: str) -> FileCues:
    try:
        return file_cues(read_bytes(uri))
    except READ_ERRORS:  # vanished since it was listed
        return FileCues(UNREADABLE, 0)


def run_predict(config: Config, model: str, overwrite: bool = False, break_lock: bool = False,
                relabel: bool = False) -> dict:
    """Classify every image under `config.infile` with a trained model into `<out>/predictions/`.

    The model must come from the same embedder (name and size) as this config gives.

    Args:
        relabel: only label the scores already in `<out>/predictions/` again at
            `predict.fake_share` (another share, or a relabel that was stopped midway); no image is read.
    """
    from .learning.artifact import load_artifact
    from .learning.train import TrainError

    out = location(config.out)
    require(*pipeline_needs(config.extract, config.embed))
    listing = sources.list_sources(config.infile, config.read.extensions, config.class_map)
    artifact, saved = load_artifact(model)
    name, dims = embedder_identity(config.embed)
    use = splice_use(artifact.embedder)
    splice = None
    if use != "none":
        weights = network_weights(model)  # before any actor starts: a missing or swapped file is refused here
        name, dims = spliced_name(name, use), spliced_dims(dims, use)
        splice = SpliceNetworks(tuple(weights), use, config.read.max_pixels)
    if (artifact.embedder, artifact.dims) != (name, dims):
        raise TrainError(f"the model in {model} was trained on {artifact.embedder} ({artifact.dims} dims) but "
                         f"this run embeds with {name} ({dims} dims); set embed.embedder / embed.weights to match")
    if relabel and config.predict.fake_share is None:
        raise ConfigError("--relabel labels the scores again at a share of fakes: give --fake-share")
    with locked(config, break_lock):
        try:
            if relabel:
                return _relabel(config, out, listing, artifact, model, name)
            return _predict(config, out, listing, artifact, model, name, overwrite, splice)
        except WriteError as exc:
            raise exc.then("run predict again with --overwrite") from None


def _predict(config: Config, out: Location, listing: sources.Listing, artifact, model: str, name: str,
             overwrite: bool, splice: dict | None) -> dict:
    predictions = out / "predictions"
    if predictions.exists():
        if not overwrite:
            raise OutputExistsError(f"{predictions} exists; pass --overwrite or choose another --out")
        predictions.delete()
        (out / "predict.json").delete()  # an earlier run's, which would otherwise outlive a failed one
    out.sweep_temporaries()
    capture_logs(out)
    started = time.perf_counter()
    result = predict_images(config, out, listing, artifact, splice)
    threshold, rule = artifact.threshold, "the model's"
    if config.predict.fake_share is not None:
        threshold, rule = _call_share_fake(predictions, parts.read_folder(predictions, ["image_id", "score"]),
                                           config.predict.fake_share, config.output.row_group_rows,
                                           artifact.threshold)
    return _predict_summary(out, model, name, artifact, result.counts_by_status, threshold, rule,
                            time.perf_counter() - started)


def _relabel(config: Config, out: Location, listing: sources.Listing, artifact, model: str, name: str) -> dict:
    from .pipeline import ExactlyOnceError, check_exactly_once

    predictions = out / "predictions"
    if not parts.committed_parts(predictions):
        raise UserError(f"{predictions} holds no predictions to label again; run predict without --relabel")
    parts.check_readable(predictions)
    started = time.perf_counter()
    rows = parts.read_folder(predictions, ["image_id", "status", "score"])
    try:
        check_exactly_once(predictions, rows.column("image_id"), listing.table.column("image_id"))
    except ExactlyOnceError:
        raise ExactlyOnceError(f"{predictions} does not hold one row for each image under {config.infile} (a "
                               "predict stopped while scoring?); run predict with --overwrite") from None
    threshold, rule = _call_share_fake(predictions, rows, config.predict.fake_share, config.output.row_group_rows,
                                       artifact.threshold)
    return _predict_summary(out, model, name, artifact, count_statuses(rows.column("status")), threshold, rule,
                            time.perf_counter() - started)


def _predict_summary(out: Location, model: str, name: str, artifact, counts_by_status: dict[str, int],
                     threshold: float | None, rule: str, elapsed: float) -> dict:
    """predict.json, from the labels now in `out/predictions`; returned as written."""
    preds = parts.read_folder(out / "predictions", ["pred"]).column("pred")
    counted = {v["values"]: v["counts"] for v in pc.value_counts(preds).to_pylist()}
    n_inputs = sum(counts_by_status.values())
    summary = {
        "model": str(model), "embedder": name, "n_inputs": n_inputs,
        "counts_by_prediction": {k: counted.get(k, 0) for k in CLASSES} | {"none": preds.null_count},
        "counts_by_status": counts_by_status, "threshold": threshold, "threshold_rule": rule,
        "model_threshold": artifact.threshold, "seconds": elapsed, "images_per_s": n_inputs / elapsed,
    }
    (out / "predict.json").write_text(json.dumps(summary, indent=2))
    return summary


def _call_share_fake(predictions: Location, rows: pa.Table, share: float, row_group_rows: int,
                     model_threshold: float) -> tuple[float | None, str]:
    """Relabel the predictions so that `share` of the scored rows are fake; the lowest score called
    fake (None: none is) and the rule, in words.

    The rows are ranked over the whole batch, so this runs after every row is scored. With no
    scored row (no face anywhere) the model's threshold stays.

    Args:
        rows: the folder's `image_id` and `score` columns, as the caller read them.
    """
    from .learning.predict import labelled_fake
    from .learning.threshold import share_fakes

    scored = rows.filter(pc.is_valid(rows.column("score")))
    if scored.num_rows == 0:
        return model_threshold, f"the model's (fake_share {share:g} asked for, but no image has a face to score)"
    scores = scored.column("score").to_numpy()
    chosen = share_fakes(scores, share, scored.column("image_id").to_numpy(zero_copy_only=False))
    fakes = scored.column("image_id").combine_chunks().filter(pa.array(chosen))
    parts.rewrite_parts(predictions, lambda rows: labelled_fake(rows, fakes), row_group_rows)
    lowest = float(scores[chosen].min()) if chosen.any() else None
    return lowest, f"fake_share {share:g}: the {int(chosen.sum())} highest scores of {len(scores)} called fake"


def capture_logs(out: Location) -> Path | None:
    """Send the process's chatter (Ray, TensorFlow, joblib) to `out/logs/driver.log`, when the console
    captures it (a CLI command without --verbose). An object-store `out` gets a local folder instead.
    """
    if isinstance(out.fs, pafs.LocalFileSystem):
        folder = Path(out.path) / "logs"
    else:
        folder = Path(tempfile.gettempdir()) / "fakeface-logs" / re.sub(r"[^\w.-]+", "_", str(out))[-100:]
    return output.capture(folder)


def _synthetic_fakes(config: Config, out: Location, embeddings: Location, data: Embeddings
                     ) -> tuple[Embeddings | None, dict]:
    """`synth.variants` fakes of each real on the training side, embedded; and what was done.

    Returns no fakes, with the reason, when synthesis is off or there are too few training reals.
    """
    from .learning.train import load_embeddings, split

    if config.synth.variants == 0:
        return None, {"variants": 0, "skipped": "synth.variants is 0"}
    if splice_use(data.embedder) != "none":
        reason = (f"the classifier reads {data.embedder} features, and the synth stage embeds with the base "
                  "embedder only (splice-v1 makes its own synthetic fakes every epoch): trained without synthetic fakes")
        return None, {"variants": config.synth.variants, "skipped": reason}
    name, _ = embedder_identity(config.embed)
    if name != data.embedder:
        reason = f"the embeddings are {data.embedder} but this config embeds with {name}: trained without synthetic fakes"
        return None, {"variants": config.synth.variants, "skipped": reason}
    train_side, _ = split(data, config.train.test_split, config.seed)
    reals = set(train_side.ids[train_side.y == 0].tolist())
    if len(reals) < MIN_SYNTH_REALS:
        reason = f"{len(reals)} training real(s), fewer than {MIN_SYNTH_REALS}: trained without synthetic fakes"
        return None, {"variants": config.synth.variants, "skipped": reason}
    rows = _rows_of(embeddings, ["image_id", "uri", "face_box", "face_confidence", "keypoints"], reals)
    donors = choose_donors(np.array([r["keypoints"] for r in rows], dtype=np.float32), config.seed)
    parents = [{**r, "donor_uri": rows[d]["uri"], "donor_keypoints": rows[d]["keypoints"]} for r, d in zip(rows, donors)]
    made = synthesize_fakes(config, out, parents)
    synthetic = load_embeddings(made.folder)
    return synthetic, {"variants": config.synth.variants, "parents": made.n_parents, "fakes": len(synthetic.ids),
                       "counts_by_status": made.counts_by_status, "seconds": made.seconds}


def _rows_of(embeddings: Location, columns: list[str], image_ids: set[str]) -> list[dict]:
    """The rows of `image_ids`, in image_id order, not the parts' (their names are random): the same
    seed then draws the same donors and folds. Filtered in Arrow: only these rows become Python."""
    table = parts.read_folder(embeddings, columns)
    table = table.filter(pc.is_in(table.column("image_id"), value_set=pa.array(sorted(image_ids), pa.string())))
    return table.take(pc.sort_indices(table, [("image_id", "ascending")])).to_pylist()


def check_splice_resources(config: Config) -> None:
    """Refuse splice training the connected cluster cannot run (GPUs, workers), before it is waited for."""
    import ray

    from .learning.splice_training import check_resources

    if config.splice.use != "none":
        check_resources(config.splice, ray.cluster_resources())


def _splice_features(config: Config, out: Location, embeddings: Location, data: Embeddings
                     ) -> tuple[Embeddings, set | None, dict]:
    """The rows with splice-v1 features (`splice.use`), from a network trained on the training side only.

    Returns the rows to train on, the training side's image_ids (the classifier keeps this split even if
    a file fails the splice pass) and what was done. Too few usable training reals is no error: the
    rows stay as they are, and the fallback and its reason are returned and shown.
    """
    from .learning.splice_training import (SpliceTrainingError, TrainingImage, check_training_set,
                                          check_worker_shares)
    from .learning.train import load_embeddings, split

    use = config.splice.use
    if use == "none":
        return data, None, {"use": "none"}
    train_side, _ = split(data, config.train.test_split, config.seed)
    chosen = set(train_side.ids.tolist())
    rows = _rows_of(embeddings, ["image_id", "uri", "label", "keypoints", "face_box"], chosen)
    big = [r for r in rows if min(r["face_box"][2:]) >= PATCH]  # face_box: x, y, width, height
    images = [TrainingImage(r["image_id"], r["uri"], tuple(r["keypoints"]), CLASSES.index(r["label"])) for r in big]
    small = sum(1 for r in rows if r["label"] == CLASSES[0]) - sum(1 for i in images if i.label == 0)
    # Cross-fitting: each fold's network never sees that fold; the training rows get their fold's
    # scores, every other row (test, predict) the mean of all folds' networks.
    n_folds = max(1, config.splice.cross_fit_folds)
    folds = _cross_fit_folds(images, config.splice.cross_fit_folds, config.seed)
    networks = {f"net-{k}": [i for i, fold in zip(images, folds) if fold != k] for k in range(n_folds)}
    try:
        check_training_set(images, config.splice, small_faces=small)
        check_worker_shares(networks, config.splice, config.synth)
    except SpliceTrainingError as exc:
        reason = f"{exc}: trained on {data.embedder} alone"
        output.echo(f"[fakeface] splice-v1 not trained: {reason}", err=True)
        return data, None, {"use": use, "fallback": data.embedder, "reason": reason}
    folder = out / "model" / "splice"
    metadata, cost = _splice_networks(config, out, folder, networks)
    for stale in folder.glob("net-*"):  # an earlier run's networks, with more folds
        if stale.name not in networks:
            stale.delete()
    (folder / NETWORKS).write_text(json.dumps({"networks": list(networks), "cross_fit_folds":
                                               config.splice.cross_fit_folds}, indent=2))
    histories = [metadata[name].get("history", []) for name in networks]
    trained_in = sum(metadata[name].get("seconds", 0.0) for name in networks)  # when reused, by the run that trained them
    assignment = {i.image_id: int(fold) for i, fold in zip(images, folds) if fold >= 0}
    made = splice_rows(config, out, embeddings, SpliceNetworks(tuple(network_weights(out / "model")), use,
                                                               config.read.max_pixels, assignment))
    spliced = load_embeddings(made.folder)
    summary = {"use": use, "embedder": spliced.embedder, "reused": cost == 0.0, "model": str(folder),
               "training_images": len(images), "training_reals": sum(i.label == 0 for i in images),
               "small_faces_left_out": small, "cross_fit_folds": config.splice.cross_fit_folds,
               "networks": len(networks), "epochs": len(histories[0]), "histories": histories,
               "train_seconds": cost, "train_seconds_per_1000_images": 1000 * trained_in / len(images),
               "features_seconds": made.seconds, "features_counts_by_status": made.counts_by_status}
    return spliced, chosen, summary


def _cross_fit_folds(images: list, n_folds: int, seed: int) -> np.ndarray:
    """A fold for each training image, stratified by label and seeded; all -1 (no fold: every network
    trained on every image) when cross-fitting is off."""
    folds = np.full(len(images), -1)
    if n_folds < 2:
        return folds
    labels = np.array([i.label for i in images])
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        folds[members] = np.arange(len(members)) % n_folds
    return folds


def _splice_networks(config: Config, out: Location, folder: Location, networks: dict[str, list]
                     ) -> tuple[dict[str, dict], float]:
    """The splice networks, each trained on its images in `folder / name`: those trained before on the
    same images and settings are reused, the others trained now, together. Returns each one's
    metadata and the seconds spent training (0 when all were reused)."""
    from .learning.splice_training import train_splice, training_key

    found, todo = {}, {}
    for name, images in networks.items():
        model = SpliceModel(folder / name)
        if model.exists() and model.metadata().get("training_key") == training_key(
                images, config.splice, config.synth, config.seed):
            found[name] = model.metadata()
        else:
            todo[name] = images
    if found:
        output.echo(f"[fakeface] splice-v1: reusing {', '.join(found)} in {folder} (same images and settings)")
    if not todo:
        return found, 0.0
    output.echo(f"[fakeface] splice-v1: training {len(todo)} network(s) on "
                f"{', '.join(str(len(i)) for i in todo.values())} images ({config.splice.epochs} epochs, "
                f"{config.splice.workers} Ray Train worker(s))")
    started = time.perf_counter()
    scratch = out / "splice_train"
    scratch.delete()  # an earlier training's checkpoints: the weights were copied out of them
    storage = Path(scratch.path).resolve() if out.is_local else scratch
    trained = train_splice(todo, config.splice, config.synth, config.seed, folder, str(storage))
    return found | trained, time.perf_counter() - started


def _extract_summary(result: ExtractResult) -> dict[str, Any]:
    return {
        "embedder": result.embedder,
        "embedder_reason": result.embedder_reason,
        "weights": result.weights,
        "n_inputs": result.n_inputs,
        "counts_by_status": result.counts_by_status,
        "work": result.work,
        "plan": None if result.plan is None else {"read_cpus": result.plan.read_cpus,
                                                  "extract": vars(result.plan.extract),
                                                  "embed": vars(result.plan.embed)},
    }


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
