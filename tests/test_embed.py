import numpy as np
import pyarrow as pa

from fakeface_ray.config import EmbedConfig
from fakeface_ray.stages.embed import FaceEmbedder
from fakeface_ray.storage.schema import embeddings_schema


class MeanColour:
    """A tiny embedder: the mean RGB of each crop, L2-normalised."""

    name = "mean-colour-3"
    dims = 3

    def embed(self, faces):
        x = faces.reshape(len(faces), -1, 3).mean(axis=1) + 1
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _extract_batch():
    n = 3
    face = np.zeros((n, 160, 160, 3), np.uint8)
    face[0] = 200
    face[2] = 50
    return {
        "image_id": np.array(["a", "b", "c"], dtype=object),
        "uri": np.array(["/a", "/b", "/c"], dtype=object),
        "label": np.array(["real", None, "fake"], dtype=object),
        "sha256": np.array(["x", "", "z"], dtype=object),
        "width": np.array([600, -1, 600], np.int32), "height": np.array([600, -1, 600], np.int32),
        "status": np.array(["ok", "decode_error", "ok"], dtype=object),
        "error": np.array(["", "broken", ""], dtype=object),
        "n_faces": np.array([1, 0, 2], np.int16),
        "face_box": np.array([[1, 2, 3, 4], [-1] * 4, [5, 6, 7, 8]], np.int32),
        "face_confidence": np.array([0.9, np.nan, 0.8], np.float32),
        "keypoints": np.array([np.arange(10), np.full(10, np.nan), np.arange(10)], np.float32),
        "face": face,
    }


def test_rows_keep_order_and_nulls_where_no_face():
    table = FaceEmbedder(EmbedConfig(), model=MeanColour())(_extract_batch())
    assert isinstance(table, pa.Table)
    assert table.schema == embeddings_schema(3)
    rows = table.to_pylist()
    assert [r["image_id"] for r in rows] == ["a", "b", "c"]
    assert rows[1]["embedding"] is None and rows[1]["face_box"] is None and rows[1]["width"] is None
    assert rows[1]["label"] is None and rows[1]["sha256"] is None and rows[1]["error"] == "broken"
    assert rows[0]["error"] is None
    assert np.allclose(rows[0]["embedding"], np.ones(3) / np.sqrt(3))
    assert rows[2]["face_box"] == [5, 6, 7, 8] and rows[2]["n_faces"] == 2
    assert all(r["embedder"] == "mean-colour-3" for r in rows)


def test_all_rows_without_faces_still_write():
    batch = _extract_batch()
    batch["status"][:] = "no_face"
    table = FaceEmbedder(EmbedConfig(), model=MeanColour())(batch)
    assert table.num_rows == 3 and table.column("embedding").null_count == 3


class RegionMean:
    """Reads native regions: the mean RGB of each region as given, to see which pixels arrive."""

    name = "region-mean-3"
    dims = 3

    def embed(self, faces):
        raise AssertionError("a region embedder gets regions")

    def embed_regions(self, regions, keypoints, origins, scales, tables, windows):
        return np.array([r.reshape(-1, 3).mean(axis=0) for r in regions], np.float32)


def _with_regions(batch, sides):
    """Regions of the given sides (pixels = 10 * row + 1), padded to the batch's largest, as extract emits them."""
    pad = max(sides)
    batch["region"] = np.zeros((len(sides), pad, pad, 3), np.uint8)
    for i, side in enumerate(sides):
        batch["region"][i, :side, :side] = 10 * i + 1
    batch["region_shape"] = np.array([[s, s] for s in sides], np.int32)
    batch["region_window"] = np.array([[0, 0, s, s] for s in sides], np.int32)
    batch["region_keypoints"] = np.zeros((len(sides), 10), np.float32)
    batch["region_origin"] = np.zeros((len(sides), 2), np.int32)
    batch["region_scale"] = np.ones(len(sides), np.float32)
    return batch


def test_regions_arrive_whole_whether_padded_or_joined_from_blocks_of_other_sizes():
    padded = _with_regions(_extract_batch(), [40, 0, 25])
    # Ray Data joins extract blocks whose regions were trimmed to different sizes into an object
    # column of arrays; the same rows must give the same vectors.
    joined = dict(padded, region=np.array([padded["region"][0][:40, :40], np.zeros((5, 5, 3), np.uint8),
                                            padded["region"][2][:30, :30]] + [None], dtype=object)[:3])
    for batch in (padded, joined):
        rows = FaceEmbedder(EmbedConfig(), model=RegionMean())(batch).to_pylist()
        assert rows[0]["embedding"] == [1.0, 1.0, 1.0] and rows[2]["embedding"] == [21.0, 21.0, 21.0]
