"""Whole runs: extract, train, report, and the `run.json` record tying them together."""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata

import numpy as np

from . import cluster, report, sink, sources, train
from .config import Config
from .htmlreport import build_report
from .pipeline import embedder_identity, extract_embeddings, status_counts
from .storage import Location, location

PACKAGES = ("fakeface-ray", "ray", "tensorflow-cpu", "tensorflow", "mtcnn", "scikit-learn", "numpy",
            "pyarrow", "pillow")


class OutputExistsError(ValueError):
    """The output folder already holds a run and the user did not say what to do with it."""


class RunFailed(RuntimeError):
    """The run finished writing but failed a check the user asked for (e.g. error fraction)."""


OUTPUTS = ("embeddings", "model", "plots", "metrics.json", "classification_report.txt", "run.json",
           "test_predictions.parquet", "report.html")
ERROR_FREE = ("ok", "no_face")  # statuses that are answers, not failures


def prepare_output(out: Location, overwrite: bool = False, resume: bool = False) -> None:
    """Create `out`. One that holds a run is refused unless `overwrite` (cleared) or `resume` (kept)."""
    if overwrite and resume:
        raise OutputExistsError("--overwrite and --resume exclude each other")
    embeddings = out / "embeddings"
    if (out / "run.json").exists() or embeddings.exists():
        if overwrite:
            for name in OUTPUTS:
                (out / name).delete()
        elif not resume:
            state = "a finished run" if sink.is_complete(embeddings) else "an interrupted run"
            raise OutputExistsError(f"{out} already holds {state}; pass --resume to continue it, "
                                    "--overwrite to replace it, or choose another --out")
    out.mkdir()


def run_extract(config: Config, overwrite: bool = False, resume: bool = False,
                listing: list[sources.Source] | None = None) -> dict:
    """Sources -> faces -> embeddings -> `<out>/embeddings/`; writes and returns `run.json`.

    Raises RunFailed, after writing everything, when more than `max_error_fraction` of the rows
    are errors (statuses other than ok and no_face).

    Args:
        listing: the inputs, when the caller has listed them already.
    """
    out = location(config.out)
    started = time.perf_counter()
    if listing is None:
        listing = sources.list_sources(config.infile, config.read.extensions, config.class_map)
    listed = time.perf_counter()
    prepare_output(out, overwrite=overwrite, resume=resume)
    result = extract_embeddings(config, out, listing, resume=resume)
    result.timings = {"list_sources_s": listed - started, **result.timings}
    record = _record(config, result)
    _write_record(out, record)
    errors = sum(n for status, n in result.counts_by_status.items() if status not in ERROR_FREE)
    if config.max_error_fraction is not None and errors > config.max_error_fraction * result.n_inputs:
        raise RunFailed(f"{errors} of {result.n_inputs} rows are errors, more than max_error_fraction "
                        f"{config.max_error_fraction:g}; every row is written to {out / 'embeddings'}")
    return record


def run_predict(config: Config, model: str, overwrite: bool = False) -> dict:
    """Classify every image under `config.infile` with a trained model into `<out>/predictions/`.

    The model must come from the same embedder (name and size) as this config gives.
    """
    out = location(config.out)
    listing = sources.list_sources(config.infile, config.read.extensions, config.class_map)
    pickled, metadata = train.read_model(model)
    name, dims = embedder_identity(config)
    if (metadata.get("embedder"), metadata.get("dims")) != (name, dims):
        raise train.TrainError(f"the model in {model} was trained on {metadata.get('embedder')} "
                               f"({metadata.get('dims')} dims) but this run embeds with {name} ({dims} dims); "
                               "set embed.embedder / embed.weights to match")
    predictions = out / "predictions"
    if predictions.exists():
        if not overwrite:
            raise OutputExistsError(f"{predictions} exists; pass --overwrite or choose another --out")
        predictions.delete()
    started = time.perf_counter()
    result = extract_embeddings(config, out, listing, classifier=pickled, folder="predictions")
    elapsed = time.perf_counter() - started
    preds = sink.read_folder(predictions, ["pred"]).column("pred").to_pylist()
    summary = {
        "model": str(model), "embedder": name, "n_inputs": result.n_inputs,
        "counts_by_prediction": {k: preds.count(k) for k in ("real", "fake")} | {"none": preds.count(None)},
        "counts_by_status": result.counts_by_status, "threshold": metadata["operating_point"]["threshold"],
        "seconds": elapsed, "images_per_s": result.n_inputs / elapsed,
    }
    (out / "predict.json").write_text(json.dumps(summary, indent=2))
    return summary


def run_train(config: Config, embeddings: str | Location) -> dict:
    """Grid search, test metrics, report and plots from an embeddings folder into `config.out`."""
    out = location(config.out)
    embeddings = location(embeddings)
    out.mkdir()
    record = _read_record(out) if (out / "run.json").exists() else _record(config, None)
    timings = record.setdefault("timings", {})
    started = time.perf_counter()
    data = train.load_embeddings(embeddings)
    if config.train.backend == "ray":
        cluster.connect(config.ray)
    result = train.fit(data, config.train, config.seed)
    trained = time.perf_counter()
    test = result.test
    scores = result.model.decision_function(test.x)
    point = result.operating_point
    y_pred = (scores >= point.threshold).astype(np.int64)
    p_fake = result.calibrated.predict_proba(test.x)[:, 1]
    metrics = report.compute_metrics(test.y, y_pred, scores)
    metrics.update({
        "embedder": data.embedder,
        "classifier": result.classifier,
        "best_params": result.best_params,
        "cv_best_macro_f1": result.cv_best_score,
        "operating_point": point.to_dict(),
        "n_train": result.train_size,
        "counts_by_status": record.get("counts_by_status") or status_counts(embeddings),
    })
    report.write_report(out, metrics, report.text_report(test.y, y_pred))
    report.write_test_predictions(out, test.ids, test.uris, test.y, scores, p_fake, y_pred)
    train.save_model(result, out / "model", {"seed": config.seed, "test_split": config.train.test_split})
    timings.update({"train_s": trained - started})
    record.update({"metrics": {k: metrics[k] for k in ("macro_f1", "accuracy", "roc_auc")},
                   "classifier": result.classifier, "best_params": result.best_params,
                   "embeddings": str(embeddings)})
    _write_record(out, record)
    build_report(out, config.report.samples_per_class)
    timings["report_s"] = time.perf_counter() - trained
    _write_record(out, record)
    return {**record, "metrics_full": metrics}


def run_all(config: Config, overwrite: bool = False, resume: bool = False) -> dict:
    """The whole pipeline into `config.out`; the labels are checked before anything is written."""
    started = time.perf_counter()
    listing = sources.list_sources(config.infile, config.read.extensions, config.class_map)
    train.check_labels([s.label for s in listing], config.train.test_split)
    run_extract(config, overwrite=overwrite, resume=resume, listing=listing)
    record = run_train(config, location(config.out) / "embeddings")
    record["timings"]["total_s"] = time.perf_counter() - started
    _write_record(location(config.out), {k: v for k, v in record.items() if k != "metrics_full"})
    return record


def _record(config: Config, result) -> dict:
    record = {
        "config": config.to_dict(),
        "versions": _versions(),
        "python": platform.python_version(),
        "host": platform.node(),
    }
    if result is not None:
        record.update({
            "embedder": result.embedder,
            "embedder_reason": result.embedder_reason,
            "weights": result.weights,
            "n_inputs": result.n_inputs,
            "counts_by_status": result.counts_by_status,
            "plan": {"read_cpus": result.plan.read_cpus, "extract": vars(result.plan.extract),
                     "embed": vars(result.plan.embed)},
            "timings": dict(result.timings),
        })
    return record


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _write_record(out: Location, record: dict) -> None:
    (out / "run.json").write_text(json.dumps(record, indent=2, default=str))


def _read_record(out: Location) -> dict:
    return json.loads((out / "run.json").read_text())
