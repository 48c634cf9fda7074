"""Apply a trained classifier to rows of the embeddings schema, giving rows of predictions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .sources import CLASSES

PREDICTION_COLUMNS = ("image_id", "uri", "sha256", "status", "error", "n_faces", "face_box")


def predictions_schema() -> pa.Schema:
    """One row per input file; `score`, `p_fake` and `pred` are null where there is no face."""
    from .schema import embeddings_schema

    base = embeddings_schema(1)
    return pa.schema([base.field(c) for c in PREDICTION_COLUMNS] + [
        ("score", pa.float32()),  # SVC decision value: larger means more likely fake
        ("p_fake", pa.float32()),  # calibrated probability of `fake`
        ("pred", pa.string()),  # `real` / `fake` at the trained threshold
    ])


def predictions_table(rows: pa.Table, artifact: dict) -> pa.Table:
    """Predictions for a table of embedding rows, using `classifier.joblib`'s contents."""
    n = rows.num_rows
    score = np.full(n, np.nan, dtype=np.float32)
    p_fake = np.full(n, np.nan, dtype=np.float32)
    embedding = rows.column("embedding")
    valid = np.asarray(embedding.is_valid())
    if valid.any():
        dims = rows.schema.field("embedding").type.list_size
        x = embedding.filter(pa.array(valid)).combine_chunks().flatten().to_numpy().reshape(-1, dims)
        score[valid] = artifact["svm"].decision_function(x)
        p_fake[valid] = artifact["calibrated"].predict_proba(x)[:, 1]
    pred = [CLASSES[int(s >= artifact["threshold"])] if ok else None for s, ok in zip(score, valid)]
    columns = [rows.column(c) for c in PREDICTION_COLUMNS] + [
        pa.array(score, mask=~valid), pa.array(p_fake, mask=~valid), pa.array(pred, pa.string())]
    return pa.Table.from_arrays(columns, schema=predictions_schema())
