"""Grid-search a scaler + classifier on the embeddings, in parallel through Ray's joblib backend."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import joblib
import numpy as np
import pyarrow.dataset as pads
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold, cross_val_predict, train_test_split

from ..config import TrainConfig
from ..errors import UserError
from ..storage.locations import Location, location
from ..storage.schema import CLASSES, Status
from . import classifiers
from .artifact import ClassifierArtifact
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
    parents: np.ndarray | None = None  # image_id of the real each synthetic row was made from

    def groups(self) -> np.ndarray:
        """Rows that must share a side of any split: each synthetic row with its parent."""
        if self.parents is None:
            return self.ids
        return np.array([p if p is not None else i for i, p in zip(self.ids, self.parents)], dtype=object)

    def labelled(self) -> np.ndarray:
        """Boolean mask of the rows that are inputs, not synthetic fakes."""
        if self.parents is None:
            return np.ones(len(self.ids), dtype=bool)
        return np.array([p is None for p in self.parents], dtype=bool)

    def take(self, rows: np.ndarray) -> Embeddings:
        """The rows selected by an index or boolean array."""
        parents = self.parents[rows] if self.parents is not None else None
        return Embeddings(self.ids[rows], self.uris[rows], self.x[rows], self.y[rows], self.embedder, parents)


def concat(first: Embeddings, second: Embeddings) -> Embeddings:
    """The rows of both (same embedder); synthetic parents are kept, real rows get none."""
    def parents(e: Embeddings) -> np.ndarray:
        return e.parents if e.parents is not None else np.full(len(e.ids), None, dtype=object)

    return Embeddings(np.concatenate([first.ids, second.ids]), np.concatenate([first.uris, second.uris]),
                      np.concatenate([first.x, second.x]), np.concatenate([first.y, second.y]), first.embedder,
                      np.concatenate([parents(first), parents(second)]))


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
    """Labelled rows with status ok from an embeddings (or synthetic) Parquet folder (path or URI)."""
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
    parents = (np.array(table.column("parent_image_id").to_pylist(), dtype=object)
               if "parent_image_id" in table.schema.names else None)
    return Embeddings(
        ids=np.array(table.column("image_id").to_pylist(), dtype=object),
        uris=np.array(table.column("uri").to_pylist(), dtype=object),
        x=x.astype(np.float32),
        y=np.array([CLASSES.index(v) for v in table.column("label").to_pylist()], dtype=np.int64),
        embedder=",".join(sorted(names)),
        parents=parents,
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

    return data.take(np.sort(train_idx)), data.take(np.sort(test_idx))


def fit(data: Embeddings, config: TrainConfig, seed: int, synthetic: Embeddings | None = None) -> TrainResult:
    """Split, grid-search on the training part (macro F1, stratified folds), refit the best.

    Args:
        synthetic: synthetic fakes; those whose parent lands on the training side join it, the
            others are dropped, so nothing made from a test image is ever trained on.
    """
    train, test = split(data, config.test_split, seed)
    if synthetic is not None:
        train = with_synthetic(train, synthetic)
    return tune(train, test, config, seed)


def with_synthetic(train: Embeddings, synthetic: Embeddings) -> Embeddings:
    """The training rows plus the synthetic rows made from them; the others are left out."""
    return concat(train, synthetic.take(np.isin(synthetic.parents, train.ids)))


def tune(train: Embeddings, test: Embeddings, config: TrainConfig, seed: int) -> TrainResult:
    """Grid-search on `train` (macro F1, stratified folds), refit the best; `test` rides along."""
    folds = min(config.cv_folds, int(np.bincount(train.y).min()))
    if folds < 2:
        raise TrainError("too few training images per class for cross-validation (need at least 2)")
    kind = classifiers.resolve(config.classifier, len(train.y))
    model, grid = classifiers.build(kind, config, len(train.y), train.x.shape[1], seed)
    # A synthetic fake and its parent always share a fold: CV must not score a fake whose real it trained on.
    groups = train.groups()
    if len(set(groups)) == len(groups):
        cv = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(train.x, train.y))
    else:
        cv = list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(train.x, train.y, groups))
    search = GridSearchCV(model, grid, scoring=config.scoring, n_jobs=config.n_jobs, refit=True, cv=cv,
                          error_score="raise")
    with _joblib_backend(config.backend):
        search.fit(train.x, train.y)
        # Out-of-fold decision values of the chosen model: the threshold is set on these, never on test.
        oof = cross_val_predict(clone(search.best_estimator_), train.x, train.y, cv=cv,
                                method="decision_function", n_jobs=config.n_jobs)
        calibrated = CalibratedClassifierCV(clone(search.best_estimator_), method="sigmoid", cv=cv)
        calibrated.fit(train.x, train.y)
    # The threshold is set where the classes keep their real proportions: on the labelled rows when
    # synthetic fakes (K per real) would otherwise drag it towards calling everything fake.
    labelled = train.labelled()
    if len(np.unique(train.y[labelled])) == len(CLASSES):
        point = choose_threshold(train.y[labelled], oof[labelled], config.min_fake_recall)
    else:
        point = choose_threshold(train.y, oof, config.min_fake_recall)
    artifact = ClassifierArtifact(model=search.best_estimator_, calibrated=calibrated, threshold=point.threshold,
                                  embedder=train.embedder, dims=int(train.x.shape[1]))
    return TrainResult(artifact, classifiers.plain_params(search.best_params_), float(search.best_score_), test,
                       len(train.y), grid, point, kind)


@contextlib.contextmanager
def _joblib_backend(name: str):
    """`ray`: joblib tasks on the Ray cluster (the caller connects first); `loky`: local processes."""
    if name == "ray":
        from ray.util.joblib import register_ray

        register_ray()
    with joblib.parallel_backend(name):
        yield
