"""Grid-search a scaler + classifier on the embeddings, in parallel through Ray's joblib backend."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import platform
from dataclasses import dataclass

import joblib
import numpy as np
import pyarrow.dataset as pads
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import Pipeline

from . import classifiers
from .config import TrainConfig
from .schema import OK
from .sources import CLASSES
from .storage import Location, location
from .threshold import OperatingPoint, choose_threshold


class TrainError(ValueError):
    """The embeddings cannot support the requested training (too few rows, one class...)."""


@dataclass
class Embeddings:
    ids: np.ndarray  # image_id per row
    uris: np.ndarray
    x: np.ndarray  # float32 [N, dims]
    y: np.ndarray  # int: index into CLASSES (0 real, 1 fake)
    embedder: str


@dataclass
class TrainResult:
    model: Pipeline
    best_params: dict
    cv_best_score: float
    test: Embeddings
    train_size: int
    grid: list[dict]
    operating_point: OperatingPoint
    calibrated: CalibratedClassifierCV  # the same model, refit with sigmoid calibration for p_fake
    classifier: str  # what `train.classifier` resolved to: svc, linear, sgd or nystroem

    def artifact(self) -> dict:
        """What `classifier.joblib` holds."""
        return {"svm": self.model, "calibrated": self.calibrated, "threshold": self.operating_point.threshold}


def load_embeddings(path: str | Location) -> Embeddings:
    """Labelled rows with status ok from an embeddings Parquet folder (path or URI)."""
    folder = location(path)
    table = pads.dataset(folder.path, filesystem=folder.fs, format="parquet").to_table()
    status = np.array(table.column("status").to_pylist(), dtype=object)
    labels = np.array(table.column("label").to_pylist(), dtype=object)
    keep = (status == OK) & np.isin(labels, CLASSES)
    table = table.filter(keep)
    order = np.argsort(np.array(table.column("image_id").to_pylist(), dtype=object), kind="stable")
    table = table.take(order)
    dims = table.schema.field("embedding").type.list_size
    x = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, dims)
    names = set(table.column("embedder").to_pylist())
    return Embeddings(
        ids=np.array(table.column("image_id").to_pylist(), dtype=object),
        uris=np.array(table.column("uri").to_pylist(), dtype=object),
        x=x.astype(np.float32),
        y=np.array([CLASSES.index(v) for v in table.column("label").to_pylist()], dtype=np.int64),
        embedder=",".join(sorted(names)),
    )


def check_labels(labels: list[str | None], test_split: float) -> None:
    """Refuse labels that cannot give a stratified split with both classes on each side."""
    y = np.array([CLASSES.index(v) for v in labels if v in CLASSES], dtype=np.int64)
    _check_counts(np.bincount(y, minlength=len(CLASSES)), test_split)


def _check_counts(counts: np.ndarray, test_split: float) -> None:
    named = dict(zip(CLASSES, counts.tolist()))
    missing = [CLASSES[i] for i, c in enumerate(counts) if c == 0]
    if missing:
        raise TrainError(f"no usable '{'/'.join(missing)}' images: training needs both classes "
                         f"(counts: {named})")
    # Each class needs one test image and two training images (for stratified CV folds).
    if np.floor(test_split * counts + 1e-9).min() < 1 or np.floor((1 - test_split) * counts + 1e-9).min() < 2:
        raise TrainError(f"test split {test_split} is too large or too small for the smallest class "
                         f"(counts: {named}): each class needs 1 test and 2 training images")


def split(data: Embeddings, test_split: float, seed: int) -> tuple[Embeddings, Embeddings]:
    """Stratified train/test split with a fixed seed."""
    _check_counts(np.bincount(data.y, minlength=len(CLASSES)), test_split)
    index = np.arange(len(data.y))
    train_idx, test_idx = train_test_split(index, test_size=test_split, stratify=data.y, random_state=seed)

    def take(idx: np.ndarray) -> Embeddings:
        return Embeddings(data.ids[idx], data.uris[idx], data.x[idx], data.y[idx], data.embedder)

    return take(np.sort(train_idx)), take(np.sort(test_idx))


def fit(data: Embeddings, config: TrainConfig, seed: int) -> TrainResult:
    """Split, grid-search on the training part (macro F1, stratified folds), refit the best."""
    train, test = split(data, config.test_split, seed)
    folds = min(config.cv_folds, int(np.bincount(train.y).min()))
    if folds < 2:
        raise TrainError("too few training images per class for cross-validation (need at least 2)")
    kind = classifiers.resolve(config.classifier, len(train.y))
    model, grid = classifiers.build(kind, config, len(train.y), train.x.shape[1], seed)
    search = GridSearchCV(model, grid, scoring=config.scoring, n_jobs=config.n_jobs, refit=True,
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed), error_score="raise")
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with _joblib_backend(config.backend):
        search.fit(train.x, train.y)
        # Out-of-fold decision values of the chosen model: the threshold is set on these, never on test.
        oof = cross_val_predict(clone(search.best_estimator_), train.x, train.y, cv=cv,
                                method="decision_function", n_jobs=config.n_jobs)
        calibrated = CalibratedClassifierCV(clone(search.best_estimator_), method="sigmoid", cv=cv)
        calibrated.fit(train.x, train.y)
    point = choose_threshold(train.y, oof, config.min_fake_recall)
    best = classifiers.plain_params(search.best_params_)
    return TrainResult(search.best_estimator_, best, float(search.best_score_), test, len(train.y), grid,
                       point, calibrated, kind)


@contextlib.contextmanager
def _joblib_backend(name: str):
    """`ray`: joblib tasks on the Ray cluster (the caller connects first); `loky`: local processes."""
    if name == "ray":
        from ray.util.joblib import register_ray

        register_ray()
    with joblib.parallel_backend(name):
        yield


def save_model(result: TrainResult, folder: Location, extra: dict) -> Location:
    """Write `classifier.joblib` and `metadata.json` (with the pickle's sha256) under `folder`."""
    import sklearn

    buffer = io.BytesIO()
    joblib.dump(result.artifact(), buffer)
    pickled = buffer.getvalue()
    path = folder / "classifier.joblib"
    path.write_bytes(pickled)
    metadata = {
        "classes": list(CLASSES),
        "positive_class": CLASSES[1],
        "embedder": result.test.embedder,
        "dims": int(result.test.x.shape[1]),
        "classifier": result.classifier,
        "grid": result.grid,
        "best_params": result.best_params,
        "cv_best_score": result.cv_best_score,
        "operating_point": result.operating_point.to_dict(),
        "sha256": hashlib.sha256(pickled).hexdigest(),
        "versions": {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
                     "numpy": np.__version__, "joblib": joblib.__version__},
        **extra,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    return path


def read_model(folder: str | Location) -> tuple[bytes, dict]:
    """The bytes of `classifier.joblib` and its metadata, after checking the recorded sha256."""
    folder = location(folder)
    if not (folder / "metadata.json").exists():
        raise TrainError(f"no trained model in {folder} (metadata.json missing)")
    metadata = json.loads((folder / "metadata.json").read_text())
    path = folder / "classifier.joblib"
    pickled = path.read_bytes()
    digest = hashlib.sha256(pickled).hexdigest()
    if digest != metadata.get("sha256"):
        raise TrainError(f"{path}: sha256 {digest} does not match {metadata.get('sha256')} recorded in "
                         "metadata.json; refusing to unpickle it")
    return pickled, metadata


def load_model(folder: str | Location) -> tuple[dict, dict]:
    """The saved classifier (`svm`, `calibrated`, `threshold`) and its metadata.

    Unpickled only if its sha256 matches the record. The check catches a swapped or corrupted
    file; a pickle is still code, so load only your own runs.
    """
    pickled, metadata = read_model(folder)
    return joblib.load(io.BytesIO(pickled)), metadata
