"""Score a trained classifier on held-out rows: a typed result, with class names bound to their numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from ..storage.schema import CLASSES
from .artifact import ClassifierArtifact
from .train import Embeddings

LABELS = list(range(len(CLASSES)))  # 0 real, 1 fake: every sklearn call gets these explicitly


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Metrics:
    """Test-split scores; `roc_auc` is None when the split holds one class only."""

    macro_f1: float
    accuracy: float
    roc_auc: float | None
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]  # rows true, columns predicted, in CLASSES order
    n_test: int

    def to_dict(self) -> dict:
        """The metrics.json layout."""
        return {
            "macro_f1": self.macro_f1,
            "accuracy": self.accuracy,
            "roc_auc": self.roc_auc,
            "positive_class": CLASSES[1],
            "per_class": {name: asdict(scores) for name, scores in self.per_class.items()},
            "confusion_matrix": {"rows": "true", "columns": "predicted", "labels": list(CLASSES),
                                 "matrix": self.confusion},
            "n_test": self.n_test,
        }


@dataclass(frozen=True)
class Evaluation:
    """Per-row outcomes on the test split and the metrics they give."""

    ids: np.ndarray
    uris: np.ndarray
    y_true: np.ndarray  # label indices into CLASSES
    scores: np.ndarray  # decision values, larger means fake
    p_fake: np.ndarray
    y_pred: np.ndarray
    metrics: Metrics


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray) -> Metrics:
    """Per-class and macro scores; `scores` are decision values where larger means `fake`."""
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=LABELS, zero_division=0)
    both = len(np.unique(y_true)) == len(CLASSES)
    return Metrics(
        macro_f1=float(np.mean(f1)),
        accuracy=float(accuracy_score(y_true, y_pred)),
        roc_auc=float(roc_auc_score(y_true, scores)) if both else None,
        per_class={name: ClassScores(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
                   for i, name in enumerate(CLASSES)},
        confusion=confusion_matrix(y_true, y_pred, labels=LABELS).tolist(),
        n_test=int(len(y_true)),
    )


def text_report(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """scikit-learn's classification report with the class names in label order."""
    return classification_report(y_true, y_pred, labels=LABELS, target_names=list(CLASSES), digits=3,
                                 zero_division=0)


def evaluate(artifact: ClassifierArtifact, test: Embeddings) -> Evaluation:
    """The artifact's scores, probabilities and labels on `test`, and their metrics."""
    scores = artifact.scores(test.x)
    y_pred = artifact.labels(scores)
    return Evaluation(ids=test.ids, uris=test.uris, y_true=test.y, scores=scores, p_fake=artifact.p_fake(scores),
                      y_pred=y_pred, metrics=compute_metrics(test.y, y_pred, scores))
