"""Whole runs: extract, train, report, and the `run.json` record tying them together."""

from __future__ import annotations

import json
import platform
import shutil
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from . import cluster, imaging, report, sink, sources, train
from .config import Config
from .pipeline import extract_embeddings, status_counts

PACKAGES = ("fakeface-ray", "ray", "tensorflow-cpu", "tensorflow", "mtcnn", "scikit-learn", "numpy",
            "pyarrow", "pillow")


class OutputExistsError(ValueError):
    """The output folder already holds a run and the user did not say what to do with it."""


class RunFailed(RuntimeError):
    """The run finished writing but failed a check the user asked for (e.g. error fraction)."""


OUTPUTS = ("embeddings", "model", "plots", "metrics.json", "classification_report.txt", "run.json")
ERROR_FREE = ("ok", "no_face")  # statuses that are answers, not failures


def prepare_output(out: Path, overwrite: bool = False, resume: bool = False) -> None:
    """Create `out`. One that holds a run is refused unless `overwrite` (cleared) or `resume` (kept)."""
    if overwrite and resume:
        raise OutputExistsError("--overwrite and --resume exclude each other")
    embeddings = out / "embeddings"
    if (out / "run.json").exists() or embeddings.exists():
        if overwrite:
            for name in OUTPUTS:
                target = out / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        elif not resume:
            state = "a finished run" if sink.is_complete(embeddings) else "an interrupted run"
            raise OutputExistsError(f"{out} already holds {state}; pass --resume to continue it, "
                                    "--overwrite to replace it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)


def run_extract(config: Config, overwrite: bool = False, resume: bool = False) -> dict:
    """Sources -> faces -> embeddings -> `<out>/embeddings/`; writes and returns `run.json`.

    Raises RunFailed, after writing everything, when more than `max_error_fraction` of the rows
    are errors (statuses other than ok and no_face).
    """
    out = Path(config.out)
    started = time.perf_counter()
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


def run_train(config: Config, embeddings: Path) -> dict:
    """Grid search, test metrics, report and plots from an embeddings folder into `config.out`."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    record = _read_record(out) if (out / "run.json").exists() else _record(config, None)
    timings = record.setdefault("timings", {})
    started = time.perf_counter()
    data = train.load_embeddings(embeddings)
    if config.train.backend == "ray":
        cluster.connect(config.ray)
    result = train.fit(data, config.train, config.seed)
    trained = time.perf_counter()
    test = result.test
    y_pred = result.model.predict(test.x)
    scores = result.model.decision_function(test.x)
    metrics = report.compute_metrics(test.y, y_pred, scores)
    metrics.update({
        "embedder": data.embedder,
        "best_params": result.best_params,
        "cv_best_macro_f1": result.cv_best_score,
        "n_train": result.train_size,
        "counts_by_status": record.get("counts_by_status") or status_counts(embeddings),
    })
    report.write_report(out, metrics, report.text_report(test.y, y_pred))
    report.plot_all(out, metrics, test.y, scores, _samples(test, config.report.samples_per_class))
    train.save_model(result, out / "model", {"seed": config.seed, "test_split": config.train.test_split})
    timings.update({"train_s": trained - started, "report_s": time.perf_counter() - trained})
    record.update({"metrics": {k: metrics[k] for k in ("macro_f1", "accuracy", "roc_auc")},
                   "best_params": result.best_params, "embeddings": str(embeddings)})
    _write_record(out, record)
    return {**record, "metrics_full": metrics}


def run_all(config: Config, overwrite: bool = False, resume: bool = False) -> dict:
    """The whole pipeline into `config.out`; the labels are checked before anything is written."""
    started = time.perf_counter()
    listing = sources.list_sources(config.infile, config.read.extensions, config.class_map)
    train.check_labels([s.label for s in listing], config.train.test_split)
    run_extract(config, overwrite=overwrite, resume=resume)
    record = run_train(config, Path(config.out) / "embeddings")
    record["timings"]["total_s"] = time.perf_counter() - started
    _write_record(Path(config.out), {k: v for k, v in record.items() if k != "metrics_full"})
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


def _write_record(out: Path, record: dict) -> None:
    staging = out / "run.json.tmp"
    staging.write_text(json.dumps(record, indent=2, default=str))
    staging.replace(out / "run.json")


def _read_record(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def _samples(test: train.Embeddings, per_class: int) -> dict[str, list[np.ndarray]]:
    """Thumbnails of the first test images of each class, read back from their files."""
    from PIL import Image

    samples: dict[str, list[np.ndarray]] = {}
    for index, name in enumerate(sources.CLASSES):
        thumbs = []
        for uri in test.uris[test.y == index][:per_class]:
            decoded = imaging.decode_image(sources.read_bytes(uri), max_pixels=10**9)
            if decoded.image is not None:
                image = Image.fromarray(decoded.image)
                image.thumbnail((160, 160))
                thumbs.append(np.asarray(image))
        samples[name] = thumbs
    return samples
