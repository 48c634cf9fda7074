"""Metrics, the classification report and plots, with class names bound to their numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.metrics import (accuracy_score, classification_report, confusion_matrix,
                             precision_recall_fscore_support, roc_auc_score, roc_curve)

from .sources import CLASSES

LABELS = list(range(len(CLASSES)))  # 0 real, 1 fake: every sklearn call gets these explicitly


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray) -> dict:
    """Per-class and macro scores; `scores` are decision values where larger means `fake`."""
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=LABELS, zero_division=0)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(CLASSES)
    }
    both = len(np.unique(y_true)) == len(CLASSES)
    return {
        "macro_f1": float(np.mean(f1)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "roc_auc": float(roc_auc_score(y_true, scores)) if both else None,
        "positive_class": CLASSES[1],
        "per_class": per_class,
        "confusion_matrix": {
            "rows": "true", "columns": "predicted", "labels": list(CLASSES),
            "matrix": confusion_matrix(y_true, y_pred, labels=LABELS).tolist(),
        },
        "n_test": int(len(y_true)),
    }


def text_report(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """scikit-learn's classification report with the class names in label order."""
    return classification_report(y_true, y_pred, labels=LABELS, target_names=list(CLASSES),
                                 digits=3, zero_division=0)


def write_report(out: Path, metrics: dict, report_text: str) -> None:
    """`metrics.json` and `classification_report.txt` under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    (out / "classification_report.txt").write_text(report_text)


def plot_all(out: Path, metrics: dict, y_true: np.ndarray, scores: np.ndarray,
             samples: dict[str, Sequence[np.ndarray]]) -> list[Path]:
    """Write the PNG plots under `out/plots/`: sample grids per class, confusion matrix, ROC.

    Args:
        samples: class name -> RGB thumbnails to show in that class's grid.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, images in samples.items():
        if not len(images):
            continue
        cols = min(4, len(images))
        rows = int(np.ceil(len(images) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, image in zip(axes.ravel(), images):
            ax.imshow(image)
        fig.suptitle(f"samples: {name}")
        written.append(_save(fig, folder / f"samples_{name}.png"))

    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(LABELS, CLASSES)
    ax.set_yticks(LABELS, CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_title(f"macro F1 {metrics['macro_f1']:.3f}")
    written.append(_save(fig, folder / "confusion_matrix.png"))

    if metrics["roc_auc"] is not None:
        fpr, tpr, _ = roc_curve(y_true, scores, pos_label=1)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(fpr, tpr, label=f"AUC {metrics['roc_auc']:.3f}")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set_xlabel(f"false positive rate ({CLASSES[0]} called {CLASSES[1]})")
        ax.set_ylabel(f"true positive rate ({CLASSES[1]} caught)")
        ax.legend(loc="lower right")
        written.append(_save(fig, folder / "roc.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
