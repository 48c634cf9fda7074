"""PNG plots of a finished run: sample grids, confusion matrix, ROC and precision-recall curves."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from ..learning.evaluate import LABELS
from ..storage.locations import Location
from ..storage.schema import CLASSES

SAMPLE_GRIDS = (*CLASSES, "true_positive", "false_positive", "true_negative", "false_negative")


def plot_all(out: Location, metrics: dict, y_true: np.ndarray, scores: np.ndarray,
             samples: dict[str, Sequence[tuple[np.ndarray, str]]],
             splice_histories: list[list[dict]] | None = None) -> dict[str, Location]:
    """Write the PNG plots under `out/plots/`; returns them by name.

    Sample grids (each class, as the original showed, and the four outcomes of the test split),
    the confusion matrix, ROC and precision-recall curves with the operating point marked, and
    the splice network's training curves when one was trained.

    Args:
        samples: grid name -> (RGB thumbnail, caption) pairs.
        splice_histories: each splice-v1 network's epochs (`loss`, `train_auc`), first to last.
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

    if splice_histories:
        fig, ax = plt.subplots(figsize=(4, 4))
        twin = ax.twinx()
        for k, history in enumerate(splice_histories):
            epochs = [h["epoch"] for h in history]
            ax.plot(epochs, [h["loss"] for h in history], "o-", color=f"C{k}", label=f"network {k + 1} loss")
            twin.plot(epochs, [np.nan if h.get("train_auc") is None else h["train_auc"] for h in history], "s:",
                      color=f"C{k}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (solid)")
        twin.set_ylabel("training ROC AUC (dotted)")
        twin.set_ylim(0, 1)
        ax.legend(loc="lower left", fontsize=7)
        ax.set_title("splice-v1 training")
        written["splice_training"] = _save(fig, folder / "splice_training.png")
    return written


def _save(fig, path: Location) -> Location:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    path.write_bytes(buffer.getvalue())
    return path
