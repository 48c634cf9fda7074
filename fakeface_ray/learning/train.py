"""Grid-search a scaler + classifier on the embeddings, in parallel through Ray's joblib backend."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import joblib
import numpy as np
import pyarrow.dataset as pads
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import (GridSearchCV, ParameterGrid, StratifiedKFold, cross_val_predict,
                                     train_test_split)

from ..config import TrainConfig
from ..console.progress import Progress
from ..errors import UserError
from ..storage.locations import Location, location
from ..storage.schema import CLASSES, Status
from . import classifiers
from .artifact import ClassifierArtifact
from .backends import OnDone, make_backend
from .threshold import OperatingPoint, choose_threshold


class TrainError(UserError):
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
    artifact: ClassifierArtifact  # the refit best model, its calibrated twin and threshold
    best_params: dict
    cv_best_score: float
    test: Embeddings
    train_size: int
    grid: list[dict]
    operating_point: OperatingPoint
    classifier: str  # what `train.classifier` resolved to: svc, linear, sgd or nystroem


def load_embeddings(path: str | Location) -> Embeddings:
    """Labelled rows with status ok from an embeddings Parquet folder (path or URI)."""
    folder = location(path)
    table = pads.dataset(folder.path, filesystem=folder.fs, format="parquet").to_table()
    status = np.array(table.column("status").to_pylist(), dtype=object)
    labels = np.array(table.column("label").to_pylist(), dtype=object)
    keep = (status == Status.OK) & np.isin(labels, CLASSES)
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
    # Fits that go through joblib: the grid's, then out-of-fold scores and calibration, one per fold.
    # The refit of the best candidate runs in the driver.
    fits = (len(ParameterGrid(grid)) + 2) * folds
    with Progress("train", fits, "fits") as progress, _joblib_backend(config.backend, progress.add):
        search.fit(train.x, train.y)
        # Out-of-fold decision values of the chosen model: the threshold is set on these, never on test.
        oof = cross_val_predict(clone(search.best_estimator_), train.x, train.y, cv=cv,
                                method="decision_function", n_jobs=config.n_jobs)
        calibrated = CalibratedClassifierCV(clone(search.best_estimator_), method="sigmoid", cv=cv)
        calibrated.fit(train.x, train.y)
    point = choose_threshold(train.y, oof, config.min_fake_recall)
    artifact = ClassifierArtifact(model=search.best_estimator_, calibrated=calibrated, threshold=point.threshold,
                                  embedder=data.embedder, dims=int(data.x.shape[1]))
    return TrainResult(artifact, classifiers.plain_params(search.best_params_), float(search.best_score_), test,
                       len(train.y), grid, point, kind)


@contextlib.contextmanager
def _joblib_backend(name: str, on_done: OnDone):
    """`ray`: joblib tasks on the Ray cluster (the caller connects first); `loky`: local processes."""
    with joblib.parallel_backend(make_backend(name, on_done)):
        yield
