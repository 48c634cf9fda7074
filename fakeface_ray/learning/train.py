"""Grid-search a scaler + classifier on the embeddings, in parallel through Ray's joblib backend."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid, cross_val_predict

from ..config import TrainConfig
from ..console.progress import Progress
from ..errors import UserError
from ..storage import parts
from ..storage.locations import Location, location
from ..storage.schema import CLASSES, Status
from . import classifiers
from .artifact import ClassifierArtifact, fit_sigmoid
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
    groups: np.ndarray | None = None  # int per row, equal for identical bytes; None: every row alone
    parents: np.ndarray | None = None  # image_id of the real each synthetic row was made from

    def __post_init__(self) -> None:
        if self.groups is None:
            self.groups = np.arange(len(self.y))

    def labelled(self) -> np.ndarray:
        """Boolean mask of the rows that are inputs, not synthetic fakes."""
        if self.parents is None:
            return np.ones(len(self.ids), dtype=bool)
        return np.array([p is None for p in self.parents], dtype=bool)

    def take(self, index: np.ndarray) -> Embeddings:
        """The rows selected by an index or boolean array."""
        parents = self.parents[index] if self.parents is not None else None
        return Embeddings(self.ids[index], self.uris[index], self.x[index], self.y[index], self.embedder,
                          self.groups[index], parents)


def concat(first: Embeddings, second: Embeddings) -> Embeddings:
    """The rows of both (same embedder).

    A synthetic row of `second` joins its parent's group in `first`, so a fake and the real it was
    made from are never on two sides of a fold.
    """
    def parents(e: Embeddings) -> np.ndarray:
        return e.parents if e.parents is not None else np.full(len(e.ids), None, dtype=object)

    offset = int(first.groups.max()) + 1 if len(first.groups) else 0
    group_of = dict(zip(first.ids.tolist(), first.groups.tolist()))
    second_groups = np.array([group_of.get(p, offset + int(g)) for p, g in zip(parents(second), second.groups)],
                             dtype=np.int64)
    return Embeddings(np.concatenate([first.ids, second.ids]), np.concatenate([first.uris, second.uris]),
                      np.concatenate([first.x, second.x]), np.concatenate([first.y, second.y]), first.embedder,
                      np.concatenate([first.groups, second_groups]), np.concatenate([parents(first), parents(second)]))


@dataclass(frozen=True)
class Duplicates:
    """Rows that share their bytes (sha256): they stay on one side of every split."""

    groups: int  # sets of two or more rows with the same bytes
    rows: int  # rows in those sets
    mixed_labels: int  # sets whose rows carry both labels

    def to_dict(self) -> dict:
        return {"groups": self.groups, "rows": self.rows, "mixed_labels": self.mixed_labels}


@dataclass
class TrainResult:
    artifact: ClassifierArtifact  # the refit best model, its calibrated twin and threshold
    best_params: dict
    cv_best_score: float
    test: Embeddings
    train_size: int
    grid: list[dict]
    operating_point: OperatingPoint
    classifier: str  # what `train.classifier` resolved to: trees, svc, linear, sgd or nystroem
    duplicates: Duplicates
    oof_scores: np.ndarray  # the chosen model's out-of-fold decision values on the training rows


LOAD_COLUMNS = ["image_id", "uri", "label", "sha256", "status", "embedder", "embedding"]


def load_embeddings(path: str | Location) -> Embeddings:
    """Labelled rows with status ok from an embeddings Parquet folder (path or URI).

    Refuses a folder with unreadable parts, and one that holds an image_id twice (two runs wrote
    it): either would train on something other than the inputs, once each.
    """
    folder = location(path)
    parts.check_readable(folder)
    names = pads.dataset(folder.path, filesystem=folder.fs, format="parquet").schema.names
    table = parts.read_folder(folder, LOAD_COLUMNS + [c for c in ("parent_image_id",) if c in names])
    ids = table.column("image_id")
    distinct = pc.count_distinct(ids).as_py()
    if distinct != len(ids):
        raise TrainError(f"{folder} holds {len(ids)} rows for {distinct} image_ids: some images would be "
                         "trained on twice; run extract with --resume on its --out to keep one row each")
    keep = pc.and_(pc.equal(table.column("status"), str(Status.OK)), pc.is_in(table.column("label"),
                                                                              value_set=pa.array(CLASSES)))
    table = table.filter(pc.fill_null(keep, False))
    table = table.take(pc.sort_indices(table, [("image_id", "ascending")]))
    dims = table.schema.field("embedding").type.list_size
    x = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, dims)
    # Identical bytes share a group; a row without sha256 is a group of its own.
    sha = pc.coalesce(table.column("sha256"), table.column("image_id"))
    groups = pc.dictionary_encode(sha).combine_chunks().indices.to_numpy()
    labels = table.column("label")
    parents = (np.array(table.column("parent_image_id").to_pylist(), dtype=object)
               if "parent_image_id" in table.schema.names else None)
    return Embeddings(
        ids=np.array(table.column("image_id").to_pylist(), dtype=object),
        uris=np.array(table.column("uri").to_pylist(), dtype=object),
        x=x.astype(np.float32),
        y=pc.equal(labels, CLASSES[1]).to_numpy(zero_copy_only=False).astype(np.int64),
        embedder=",".join(sorted(pc.unique(table.column("embedder")).to_pylist())),
        groups=groups.astype(np.int64),
        parents=parents,
    )


def find_duplicates(data: Embeddings) -> Duplicates:
    """How many sets of rows share their bytes, and how many of those carry both labels."""
    _, inverse, sizes = np.unique(data.groups, return_inverse=True, return_counts=True)
    fakes = np.bincount(inverse, weights=data.y, minlength=len(sizes))
    shared = sizes > 1
    mixed = shared & (fakes > 0) & (fakes < sizes)
    return Duplicates(int(shared.sum()), int(sizes[shared].sum()), int(mixed.sum()))


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


def grouped_positions(groups: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Lay each stratum's groups end to end in a seeded order: where each row's group starts, and of how many.

    A group's stratum is its majority class. Splits cut this line at fractions of each stratum, so
    they are stratified, keep every group whole, and reduce to a plain stratified shuffle split
    when each row is its own group. Returns (first row of the row's group, rows in its stratum).
    """
    _, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    stratum = (np.bincount(inverse, weights=y, minlength=len(sizes)) * 2 >= sizes).astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(sizes))
    start, total = np.zeros(len(sizes), dtype=np.int64), np.zeros(len(sizes), dtype=np.int64)
    for s in np.unique(stratum):
        members = order[stratum[order] == s]
        start[members] = np.cumsum(sizes[members]) - sizes[members]
        total[members] = sizes[members].sum()
    return start[inverse], total[inverse]


def split(data: Embeddings, test_split: float, seed: int) -> tuple[Embeddings, Embeddings]:
    """Train/test split stratified by class, with a fixed seed; identical bytes never straddle it."""
    _check_counts(np.bincount(data.y, minlength=len(CLASSES)), test_split)
    start, total = grouped_positions(data.groups, data.y, seed)
    return _checked_sides(data, start < test_split * total)


def split_by_ids(data: Embeddings, train_ids: set) -> tuple[Embeddings, Embeddings]:
    """The rows whose image_id is in `train_ids`, and the others (test)."""
    return _checked_sides(data, ~np.isin(data.ids, list(train_ids)))


def _checked_sides(data: Embeddings, in_test: np.ndarray) -> tuple[Embeddings, Embeddings]:
    train, test = data.take(np.flatnonzero(~in_test)), data.take(np.flatnonzero(in_test))
    for side, part, least in (("training", train, 2), ("test", test, 1)):
        counts = np.bincount(part.y, minlength=len(CLASSES))
        if counts.min() < least:
            raise TrainError(f"groups of identical images leave the {side} split with "
                             f"{dict(zip(CLASSES, counts.tolist()))} images, and each class needs {least} there; "
                             "change --testsplit or the seed")
    return train, test


def grouped_folds(data: Embeddings, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified cross-validation folds, (train, validation) index pairs, that keep groups whole."""
    start, total = grouped_positions(data.groups, data.y, seed)
    fold = start * n_folds // total
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_folds)]


def fit(data: Embeddings, config: TrainConfig, seed: int, synthetic: Embeddings | None = None,
        train_ids: set | None = None) -> TrainResult:
    """Split, grid-search on the training part (macro F1, stratified folds), refit the best.

    The split and the folds keep rows with identical bytes together (`Embeddings.groups`).

    Args:
        synthetic: synthetic fakes; those whose parent lands on the training side join it, the
            others are dropped, so nothing made from a test image is ever trained on.
        train_ids: the training side, when an earlier step (the splice network) was trained on a
            split of these rows already; every other row is test.
    """
    train, test = split(data, config.test_split, seed) if train_ids is None else split_by_ids(data, train_ids)
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
    cv = grouped_folds(train, folds, seed)
    search = GridSearchCV(model, grid, scoring=config.scoring, n_jobs=config.n_jobs, refit=True, cv=cv,
                          error_score="raise")
    # Fits that go through joblib: the grid's, then the out-of-fold scores, one per fold.
    # The refit of the best candidate runs in the driver.
    fits = (len(ParameterGrid(grid)) + 1) * folds
    with Progress("train", fits, "fits") as progress, _joblib_backend(config.backend, progress.add):
        search.fit(train.x, train.y)
        # Out-of-fold decision values of the chosen model: the threshold and the sigmoid for p_fake
        # are set on these, never on test.
        oof = cross_val_predict(clone(search.best_estimator_), train.x, train.y, cv=cv,
                                method="decision_function", n_jobs=config.n_jobs)
    # The threshold is set where the classes keep their real proportions: on the labelled rows when
    # synthetic fakes (K per real) would otherwise drag it towards calling everything fake; on all
    # rows when the labelled ones hold one class only (reals, with synthetic fakes as the other).
    labelled = train.labelled()
    if len(np.unique(train.y[labelled])) < len(CLASSES):
        labelled = np.ones_like(labelled)
    point = choose_threshold(train.y[labelled], oof[labelled], config.threshold, config.min_fake_recall,
                             config.false_alarm_allowance)
    artifact = ClassifierArtifact(model=search.best_estimator_, calibration=fit_sigmoid(train.y, oof),
                                  threshold=point.threshold,
                                  embedder=train.embedder, dims=int(train.x.shape[1]))
    inputs = concat(train.take(train.labelled()), test)
    return TrainResult(artifact, classifiers.plain_params(search.best_params_), float(search.best_score_), test,
                       len(train.y), grid, point, kind, find_duplicates(inputs), oof)


@contextlib.contextmanager
def _joblib_backend(name: str, on_done: Callable[[int], None]):
    """`ray`: joblib tasks on the Ray cluster (the caller connects first); `loky`: local processes."""
    from .backends import make_backend  # imports Ray: not needed to split, load or score

    with joblib.parallel_backend(make_backend(name, on_done)):
        yield
