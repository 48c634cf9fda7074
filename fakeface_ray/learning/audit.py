"""Shortcut audit: can a classifier tell real from fake by how the files were saved alone?

Each cue (JPEG quality, chroma subsampling, metadata markers, size, mode, ...) gets the ROC AUC of
a small random forest trained on that cue only, out of fold (stratified cross-validation); so does
every cue together. A cue separates the classes when its AUC is above the threshold
(`audit.max_auc`, 0.7 by default) and too far above 0.5 to be chance at this sample size: its 95%
lower bound, by Hanley and McNeil's standard error, must clear 0.5, which with 10 images per class
takes 0.73; from about 20 per class on, the threshold alone decides. A detector's score on such a
corpus may measure the shortcut, not the faces.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from ..errors import UserError
from ..stages.filecues import FileCues
from ..storage.schema import CLASSES, FAKE

MIN_PER_CLASS = 5  # fewer labelled images in a class give no AUC worth reading
CLEAR_AUC = 0.9  # at or above: the cue alone tells the classes apart
Z_95 = 1.96
COMBINED = "all cues together"


class AuditError(UserError):
    """The images cannot be audited (a class has no labelled image)."""


@dataclass(frozen=True)
class Cue:
    name: str
    title: str
    features: Callable[[FileCues], list[float]]  # numbers for the classifier
    describe: Callable[[list[FileCues]], str]  # one class, in words


@dataclass
class CueResult:
    name: str
    title: str
    per_class: dict[str, str]  # class -> what its files show
    auc: float | None  # out-of-fold ROC AUC of a classifier on this cue alone; None: too few images
    auc_se: float | None  # its standard error (Hanley and McNeil)
    constant: bool  # the same value in every file
    separates: bool  # auc above the threshold, and not by chance
    verdict: str


@dataclass
class AuditResult:
    n_per_class: dict[str, int]
    threshold: float
    cues: list[CueResult]  # the single cues, then all cues together

    @property
    def flagged(self) -> list[CueResult]:
        """The cues that separate the classes."""
        return [c for c in self.cues if c.separates]

    def verdict(self) -> str:
        """One sentence for the summary."""
        if all(c.auc is None for c in self.cues):
            return f"too few images to tell (need {MIN_PER_CLASS} per class)"
        if not self.flagged:
            top = max((c for c in self.cues if c.auc is not None), key=lambda c: c.auc)
            if top.auc > self.threshold:
                return (f"no shortcut found: {top.title} reaches AUC {top.auc:.2f}, within chance for "
                        f"{min(self.n_per_class.values())} images in a class")
            return f"no shortcut found: no cue separates real from fake (highest AUC {top.auc:.2f}, {top.title})"
        names = ", ".join(f"{c.title} (AUC {c.auc:.2f})" for c in self.flagged)
        return (f"SHORTCUT: {names} separate real from fake; a score on these images may measure how the "
                "files were saved, not the faces")

    def to_dict(self) -> dict:
        return {"n_per_class": self.n_per_class, "threshold": self.threshold, "verdict": self.verdict(),
                "flagged": [c.name for c in self.flagged], "cues": [asdict(c) for c in self.cues]}


def audit(files: list[FileCues], labels: list[str], threshold: float = 0.7, seed: int = 0) -> AuditResult:
    """Per-class description and out-of-fold AUC of every cue, for labelled files (`real` / `fake`)."""
    y = np.array([CLASSES.index(label) for label in labels], dtype=np.int64)
    counts = np.bincount(y, minlength=len(CLASSES))
    if counts.min() == 0:
        raise AuditError(f"the audit compares real with fake images; found {dict(zip(CLASSES, counts.tolist()))}")
    by_class = {name: [f for f, label in zip(files, labels) if label == name] for name in CLASSES}
    results = []
    for cue in CUES:
        x = _matrix([cue.features(f) for f in files])
        results.append(_judge(cue.name, cue.title, {n: cue.describe(fs) for n, fs in by_class.items()},
                              x, y, threshold, seed))
    x = np.hstack([_matrix([cue.features(f) for f in files]) for cue in CUES])
    results.append(_judge("combined", COMBINED, {n: "" for n in CLASSES}, x, y, threshold, seed))
    return AuditResult(dict(zip(CLASSES, counts.tolist())), threshold, results)


def _judge(name: str, title: str, per_class: dict[str, str], x: np.ndarray, y: np.ndarray,
           threshold: float, seed: int) -> CueResult:
    constant = bool((x == x[0]).all())
    counts = np.bincount(y, minlength=len(CLASSES))
    auc = se = None
    if counts.min() >= MIN_PER_CLASS:
        auc = 0.5 if constant else _out_of_fold_auc(x, y, seed)
        se = auc_standard_error(auc, int(counts[CLASSES.index(FAKE)]), int(counts[1 - CLASSES.index(FAKE)]))
    chance = auc is not None and auc - Z_95 * se <= 0.5
    separates = auc is not None and auc > threshold and not chance
    if auc is None:
        verdict = "too few images to tell"
    elif constant:
        verdict = "the same in every image"
    elif separates:
        verdict = "SEPARATES the classes on its own" if auc >= CLEAR_AUC else "partly separates the classes"
    elif auc > threshold:
        verdict = f"above {threshold:.2f}, but could be chance with {counts.min()} images in a class"
    else:
        verdict = "does not separate the classes"
    return CueResult(name, title, per_class, auc, se, constant, separates, verdict)


def auc_standard_error(auc: float, n_positive: int, n_negative: int) -> float:
    """Hanley and McNeil (1982), Radiology 143:29-36, equation 2."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (n_positive - 1) * (q1 - auc * auc)
                + (n_negative - 1) * (q2 - auc * auc)) / (n_positive * n_negative)
    return math.sqrt(max(variance, 0.0))


def _out_of_fold_auc(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    folds = StratifiedKFold(min(5, int(np.bincount(y).min())), shuffle=True, random_state=seed)
    forest = RandomForestClassifier(n_estimators=50, max_depth=4, random_state=seed)
    scores = cross_val_predict(forest, x, y, cv=folds, method="predict_proba")[:, CLASSES.index(FAKE)]
    return float(roc_auc_score(y, scores))


def _matrix(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


def _one_hot(value: str | None, vocabulary: tuple[str, ...]) -> list[float]:
    return [float(value == v) for v in vocabulary]


def _shares(values: list, none: str = "none") -> str:
    """`4:2:0 80%, 4:4:4 20%`: the two commonest values and their share."""
    counts = Counter(none if v is None else v for v in values)
    shown = [f"{v} {100 * n / len(values):.0f}%" for v, n in counts.most_common(2)]
    return ", ".join(shown) + (", ..." if len(counts) > 2 else "")


def _spread(values: list[float], fmt: Callable[[float], str]) -> str:
    """`92 (88-95)`: the median and the range."""
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})" if values else "-"


def _flag_share(values: list[bool]) -> str:
    return f"{sum(values)} of {len(values)}"


def _quality(files: list[FileCues]) -> str:
    qualities = [f.jpeg_quality for f in files if f.jpeg_quality is not None]
    others = len(files) - len(qualities)
    text = _spread(qualities, lambda q: f"{q:.0f}") if qualities else "no JPEG"
    return text + (f", {others} not JPEG" if qualities and others else "")


# Vocabularies for one-hot features; anything else counts as "other" (all zeros).
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO", "unreadable")
SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0", "4:1:1", "4:4:0", "grey", "other")
MODES = ("RGB", "L", "CMYK", "P", "RGBA", "LA", "I;16", "YCbCr")

CUES = (
    Cue("format", "file format", lambda f: _one_hot(f.format, FORMATS),
        lambda fs: _shares([f.format for f in fs])),
    Cue("jpeg_quality", "JPEG quality", lambda f: [-1.0 if f.jpeg_quality is None else f.jpeg_quality],
        _quality),
    Cue("chroma_subsampling", "chroma subsampling", lambda f: _one_hot(f.subsampling, SUBSAMPLINGS),
        lambda fs: _shares([f.subsampling for f in fs], none="not JPEG")),
    Cue("exif", "EXIF", lambda f: [float(f.exif)], lambda fs: _flag_share([f.exif for f in fs])),
    Cue("icc", "ICC profile", lambda f: [float(f.icc)], lambda fs: _flag_share([f.icc for f in fs])),
    Cue("photoshop", "Photoshop APP13", lambda f: [float(f.photoshop)],
        lambda fs: _flag_share([f.photoshop for f in fs])),
    Cue("xmp", "XMP", lambda f: [float(f.xmp)], lambda fs: _flag_share([f.xmp for f in fs])),
    Cue("image_size", "image size", lambda f: [f.width or -1.0, f.height or -1.0],
        lambda fs: _shares([f"{f.width}x{f.height}" if f.width else None for f in fs])),
    Cue("file_size", "file size", lambda f: [float(f.file_size)],
        lambda fs: _spread([f.file_size / 1024 for f in fs], lambda kb: f"{kb:.0f} KB")),
    Cue("mode", "colour mode", lambda f: _one_hot(f.mode, MODES), lambda fs: _shares([f.mode for f in fs])),
)
