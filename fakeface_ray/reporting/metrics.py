"""The metrics files of a trained run: `metrics.json`, `classification_report.txt`, `test_predictions.parquet`."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..learning.evaluate import Evaluation, text_report
from ..learning.train import TrainResult
from ..storage.locations import Location
from ..storage.schema import CLASSES


def metrics_document(evaluation: Evaluation, result: TrainResult, counts_by_status: dict[str, int]) -> dict:
    """What `metrics.json` holds: the test metrics, then how the model was chosen."""
    return {
        **evaluation.metrics.to_dict(),
        "embedder": result.artifact.embedder,
        "classifier": result.classifier,
        "best_params": result.best_params,
        "cv_best_macro_f1": result.cv_best_score,
        "operating_point": result.operating_point.to_dict(),
        "n_train": result.train_size,
        # Sets of identical files (same sha256) among the labelled rows: each stayed on one side.
        "duplicates": result.duplicates.to_dict(),
        "counts_by_status": counts_by_status,
    }


def write_metrics(out: Location, metrics: dict, evaluation: Evaluation) -> None:
    """`metrics.json`, `classification_report.txt` and `test_predictions.parquet` under `out`."""
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    (out / "classification_report.txt").write_text(text_report(evaluation.y_true, evaluation.y_pred))
    table = pa.table({
        "image_id": pa.array(list(evaluation.ids), pa.string()),
        "uri": pa.array(list(evaluation.uris), pa.string()),
        "label": pa.array([CLASSES[i] for i in evaluation.y_true], pa.string()),
        "score": pa.array(np.asarray(evaluation.scores, np.float32)),
        "p_fake": pa.array(np.asarray(evaluation.p_fake, np.float32)),
        "pred": pa.array([CLASSES[i] for i in evaluation.y_pred], pa.string()),
    })
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    (out / "test_predictions.parquet").write_bytes(buffer.getvalue())
