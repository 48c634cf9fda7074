"""The data contract: classes, row statuses, and the embeddings and predictions Parquet schemas."""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pyarrow as pa

REAL, FAKE = "real", "fake"
CLASSES = (REAL, FAKE)  # index = numeric label: 0 real, 1 fake (fake is the positive class)


class Status(StrEnum):
    """What became of one input file; every row of every output carries one."""

    OK = "ok"
    NO_FACE = "no_face"
    READ_ERROR = "read_error"
    EMPTY_FILE = "empty_file"
    UNSUPPORTED = "unsupported"
    DECODE_ERROR = "decode_error"
    TRUNCATED = "truncated"
    TOO_LARGE = "too_large"
    TOO_SMALL = "too_small"
    DETECT_ERROR = "detect_error"
    SYNTH_ERROR = "synth_error"  # a synthetic fake that could not be made from its parent

    @property
    def is_error(self) -> bool:
        """Whether the row is a failure rather than an answer (`ok` and `no_face` are answers)."""
        return self not in (Status.OK, Status.NO_FACE)


PREDICTION_COLUMNS = ("image_id", "uri", "sha256", "status", "error", "n_faces", "face_box")


def embeddings_schema(dims: int) -> pa.Schema:
    """One row per input file (README: Outputs); `embedding` is a fixed-size list of `dims` floats."""
    return pa.schema([
        ("image_id", pa.string()),
        ("uri", pa.string()),
        ("label", pa.string()),
        ("sha256", pa.string()),
        ("file_size", pa.int64()),  # bytes, as listed: with file_mtime_ns what --resume compares
        ("file_mtime_ns", pa.int64()),  # modification time as listed, ns since the epoch
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("n_faces", pa.int16()),
        ("face_box", pa.list_(pa.int32(), 4)),
        ("face_confidence", pa.float32()),
        ("keypoints", pa.list_(pa.float32(), 10)),
        ("embedder", pa.string()),
        ("embedding", pa.list_(pa.float32(), dims)),
    ])


def to_table(batch: dict[str, np.ndarray], embeddings: np.ndarray, embedder: str) -> pa.Table:
    """Rows of the schema from an extract batch and its `[N, dims]` embeddings (NaN rows = null).

    Sentinels from the extract stage become nulls: -1 sizes and boxes, NaN confidences and points.
    Batches without `file_size` / `file_mtime_ns` (a stage called on its own) get nulls there.
    """
    n = len(batch["image_id"])
    dims = embeddings.shape[1]
    status = batch["status"]
    has_face = np.isfinite(batch["face_confidence"])
    has_embedding = np.isfinite(embeddings).all(axis=1) & (status == Status.OK)

    def strings(name: str) -> pa.Array:
        return pa.array([text_or_none(v) for v in batch[name]], type=pa.string())

    def fixed(values: np.ndarray, valid: np.ndarray, type_: pa.DataType, width: int) -> pa.Array:
        flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=type_)
        return pa.FixedSizeListArray.from_arrays(flat, width, mask=pa.array(~valid))

    def listed(name: str) -> pa.Array:
        values = np.asarray(batch.get(name, np.full(n, -1)), dtype=np.int64)
        return pa.array(values, mask=values < 0)

    width, height = batch["width"].astype(np.int32), batch["height"].astype(np.int32)
    columns = {
        "image_id": strings("image_id"),
        "uri": strings("uri"),
        "label": strings("label"),
        "sha256": strings("sha256"),
        "file_size": listed("file_size"),
        "file_mtime_ns": listed("file_mtime_ns"),
        "width": pa.array(width, mask=width < 0),
        "height": pa.array(height, mask=height < 0),
        "status": strings("status"),
        "error": strings("error"),
        "n_faces": pa.array(batch["n_faces"].astype(np.int16)),
        "face_box": fixed(batch["face_box"].astype(np.int32), has_face, pa.int32(), 4),
        "face_confidence": pa.array(batch["face_confidence"].astype(np.float32), mask=~has_face),
        "keypoints": fixed(batch["keypoints"].astype(np.float32), has_face, pa.float32(), 10),
        "embedder": pa.array([embedder] * n, type=pa.string()),
        "embedding": fixed(np.nan_to_num(embeddings.astype(np.float32)), has_embedding, pa.float32(), dims),
    }
    if "parent_image_id" not in batch:
        return pa.Table.from_pydict(columns, schema=embeddings_schema(dims))
    columns.update(synthetic=pa.array(np.ones(n, dtype=bool)), parent_image_id=strings("parent_image_id"),
                   recipe=strings("recipe"))
    return pa.Table.from_pydict(columns, schema=synthetic_schema(dims))


def synthetic_schema(dims: int) -> pa.Schema:
    """Rows of synthetic fakes: the embeddings schema, the real they were made from, and how."""
    return embeddings_schema(dims).append(pa.field("synthetic", pa.bool_())) \
        .append(pa.field("parent_image_id", pa.string())).append(pa.field("recipe", pa.string()))


def predictions_schema() -> pa.Schema:
    """One row per input file; `score`, `p_fake` and `pred` are null where there is no face."""
    base = embeddings_schema(1)
    return pa.schema([base.field(c) for c in PREDICTION_COLUMNS] + [
        ("score", pa.float32()),  # decision value: larger means more likely fake
        ("p_fake", pa.float32()),  # calibrated probability of `fake`
        ("pred", pa.string()),  # `real` / `fake` at the trained threshold, or by `predict.fake_share`
    ])


def text_or_none(value: object) -> str | None:
    """A non-empty string, or None for the stand-ins of "none" between stages ("", None, NaN)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return None
    return str(value)
