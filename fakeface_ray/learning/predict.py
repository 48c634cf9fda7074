"""Predict stage: apply a trained classifier to rows of the embeddings schema."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..storage.schema import CLASSES, FAKE, PREDICTION_COLUMNS, REAL, predictions_schema
from .artifact import ClassifierArtifact


class Predictor:
    """Maps a `pyarrow.Table` of embedding rows to one of prediction rows, one for one.

    Works as a Ray Data actor after the embed stage and as a plain call. Rows without an
    embedding (no face, errors) keep their status and get null `score`, `p_fake` and `pred`.
    """

    def __init__(self, artifact: ClassifierArtifact):
        self.artifact = artifact

    def __call__(self, rows: pa.Table) -> pa.Table:
        n = rows.num_rows
        score = np.full(n, np.nan, dtype=np.float32)
        p_fake = np.full(n, np.nan, dtype=np.float32)
        embedding = rows.column("embedding")
        valid = np.asarray(embedding.is_valid())
        if valid.any():
            dims = rows.schema.field("embedding").type.list_size
            x = embedding.filter(pa.array(valid)).combine_chunks().flatten().to_numpy().reshape(-1, dims)
            scores = self.artifact.scores(x)
            score[valid], p_fake[valid] = scores, self.artifact.p_fake(scores)
        labels = self.artifact.labels(np.nan_to_num(score))
        pred = [CLASSES[k] if ok else None for k, ok in zip(labels, valid)]
        columns = [rows.column(c) for c in PREDICTION_COLUMNS] + [
            pa.array(score, mask=~valid), pa.array(p_fake, mask=~valid), pa.array(pred, pa.string())]
        return pa.Table.from_arrays(columns, schema=predictions_schema())


def labelled_fake(rows: pa.Table, fakes: pa.Array) -> pa.Table:
    """Prediction rows with `pred` set again: `fake` for the image_ids in `fakes`, `real` for every
    other row with a score; rows without a score keep a null one."""
    fake = pc.is_in(rows.column("image_id"), value_set=fakes)
    pred = pc.if_else(pc.is_valid(rows.column("score")), pc.if_else(fake, FAKE, REAL), pa.scalar(None, pa.string()))
    return rows.set_column(rows.schema.get_field_index("pred"), rows.schema.field("pred"), pred)
