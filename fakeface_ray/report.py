"""Metrics, the classification report and plots, with class names bound to their numbers."""

from __future__ import annotations

import io
import json
from typing import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from .sources import CLASSES
from .storage import Location

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


def write_report(out: Location, metrics: dict, report_text: str) -> None:
    """`metrics.json` and `classification_report.txt` under `out`."""
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    (out / "classification_report.txt").write_text(report_text)


def write_test_predictions(out: Location, ids, uris, y_true, scores, p_fake, y_pred) -> None:
    """`test_predictions.parquet`: the held-out images with label, score, p_fake and prediction."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "image_id": pa.array(list(ids), pa.string()),
        "uri": pa.array(list(uris), pa.string()),
        "label": pa.array([CLASSES[i] for i in y_true], pa.string()),
        "score": pa.array(np.asarray(scores, np.float32)),
        "p_fake": pa.array(np.asarray(p_fake, np.float32)),
        "pred": pa.array([CLASSES[i] for i in y_pred], pa.string()),
    })
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    (out / "test_predictions.parquet").write_bytes(buffer.getvalue())


SAMPLE_GRIDS = ("real", "fake", "true_positive", "false_positive", "true_negative", "false_negative")


def plot_all(out: Location, metrics: dict, y_true: np.ndarray, scores: np.ndarray,
             samples: dict[str, Sequence[tuple[np.ndarray, str]]]) -> dict[str, Location]:
    """Write the PNG plots under `out/plots/`; returns them by name.

    Sample grids (each class, as the original showed, and the four outcomes of the test split),
    the confusion matrix, and ROC and precision-recall curves with the operating point marked.

    Args:
        samples: grid name -> (RGB thumbnail, caption) pairs.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = out / "plots"
    written = {}
    for name, items in samples.items():
        if not len(items):
            continue
        cols = min(4, len(items))
        rows = int(np.ceil(len(items) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, (image, caption) in zip(axes.ravel(), items):
            ax.imshow(image)
            ax.set_title(caption, fontsize=7)
        fig.suptitle(name.replace("_", " "))
        written[f"samples_{name}"] = _save(fig, folder / f"samples_{name}.png")

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
    written["confusion_matrix"] = _save(fig, folder / "confusion_matrix.png")

    if metrics["roc_auc"] is not None:
        point = metrics.get("operating_point", {})
        threshold = point.get("threshold", 0.0)
        chosen = scores >= threshold
        fpr, tpr, _ = roc_curve(y_true, scores, pos_label=1)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(fpr, tpr, label=f"AUC {metrics['roc_auc']:.3f}")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.plot([np.mean(chosen[y_true == 0])], [np.mean(chosen[y_true == 1])], "o", color="red",
                label=f"threshold {threshold:.2f}")
        ax.set_xlabel(f"false positive rate ({CLASSES[0]} called {CLASSES[1]})")
        ax.set_ylabel(f"true positive rate ({CLASSES[1]} caught)")
        ax.legend(loc="lower right")
        written["roc"] = _save(fig, folder / "roc.png")

        precision, recall, _ = precision_recall_curve(y_true, scores, pos_label=1)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(recall, precision)
        caught = np.mean(chosen[y_true == 1])
        right = np.mean(y_true[chosen] == 1) if chosen.any() else 0.0
        ax.plot([caught], [right], "o", color="red", label=point.get("rule", "threshold"))
        ax.set_xlabel(f"recall ({CLASSES[1]} caught)")
        ax.set_ylabel(f"precision (called {CLASSES[1]} and is)")
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower left")
        written["precision_recall"] = _save(fig, folder / "precision_recall.png")
    return written


def _save(fig, path: Location) -> Location:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    path.write_bytes(buffer.getvalue())
    return path
