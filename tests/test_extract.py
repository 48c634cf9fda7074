"""Golden tests of the extract stage against `mtcnn` called directly, on real face photos."""

import numpy as np
import pytest

from fakeface_ray.stages import faces
from fakeface_ray.config import ExtractConfig
from fakeface_ray.stages.extract import FaceExtractor

from .photos import face_photo, jpeg_bytes

pytestmark = pytest.mark.slow


def _batch(blobs: list[bytes]) -> dict[str, np.ndarray]:
    n = len(blobs)
    return {
        "image_id": np.array([f"img{i}.jpg" for i in range(n)], dtype=object),
        "uri": np.array([f"/data/img{i}.jpg" for i in range(n)], dtype=object),
        "label": np.array(["real"] * n, dtype=object),
        "sha256": np.array(["0" * 64] * n, dtype=object),
        "bytes": np.array(blobs + [b""], dtype=object)[:n],
        "read_error": np.array([""] * n, dtype=object),
    }


def _decoded(blob: bytes) -> np.ndarray:
    from fakeface_ray.stages.imaging import decode_image

    return decode_image(blob, 10**8).image


def _mosaic(indices: list[int], side: int = 220) -> np.ndarray:
    tiles = [face_photo(i, side) for i in indices]
    return np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)


def test_chosen_box_equals_mtcnn_called_directly(detector):
    from skimage import data

    blobs = [jpeg_bytes(face_photo(i, 400)) for i in (0, 7, 21)] + [jpeg_bytes(data.astronaut())]
    out = FaceExtractor(ExtractConfig(), detector=detector)(_batch(blobs))
    assert out["status"].tolist() == ["ok"] * 4
    for i, blob in enumerate(blobs):
        direct = detector.detect_faces(_decoded(blob))
        best = max(direct, key=lambda d: d["confidence"])
        assert out["face_box"][i].tolist() == [int(v) for v in best["box"]]
        assert out["face_confidence"][i] == pytest.approx(best["confidence"], abs=1e-5)
        expected = faces.detection_from_mtcnn(best).keypoints
        assert np.allclose(out["keypoints"][i], expected)
        assert out["n_faces"][i] == len(direct)
        assert out["face"][i].shape == (160, 160, 3) and out["face"][i].std() > 5


def test_no_face_and_many_faces(detector):
    ramp = np.tile(np.linspace(0, 255, 300, dtype=np.uint8)[None, :, None], (300, 1, 3))
    mosaic = _mosaic([0, 7, 21, 42])
    out = FaceExtractor(ExtractConfig(), detector=detector)(_batch([jpeg_bytes(ramp), jpeg_bytes(mosaic)]))
    assert out["status"].tolist() == ["no_face", "ok"]
    assert out["n_faces"].tolist() == [0, 4]
    assert np.isnan(out["face_confidence"][0]) and out["face_box"][0].tolist() == [-1] * 4
    direct = detector.detect_faces(_decoded(jpeg_bytes(mosaic)))
    assert out["face_confidence"][1] == pytest.approx(max(d["confidence"] for d in direct), abs=1e-5)


def test_bad_inputs_become_rows_beside_good_ones(detector):
    blobs = [b"", b"not an image", jpeg_bytes(face_photo(3, 400)), jpeg_bytes(face_photo(3, 10))]
    batch = _batch(blobs)
    batch["read_error"][0] = "cannot read file: gone"
    out = FaceExtractor(ExtractConfig(), detector=detector)(batch)
    assert out["status"].tolist() == ["read_error", "unsupported", "ok", "too_small"]
    assert all(out["error"][i] for i in (0, 1, 3)) and out["error"][2] == ""
    assert out["image_id"].tolist() == batch["image_id"].tolist()


def test_native_region_holds_the_face_at_full_resolution(detector):
    photo = face_photo(5, 500)
    out = FaceExtractor(ExtractConfig(), detector=detector)(_batch([jpeg_bytes(photo)]))
    h, w = out["region_shape"][0]
    x0, y0 = out["region_origin"][0]
    assert out["region_scale"][0] == 1.0
    decoded = _decoded(jpeg_bytes(photo))
    assert np.array_equal(out["region"][0, :h, :w], decoded[y0:y0 + h, x0:x0 + w])
    shifted = out["keypoints"][0].reshape(5, 2) - [x0, y0]
    assert np.allclose(out["region_keypoints"][0].reshape(5, 2), shifted)


def test_batches_carry_only_the_region_pixels_they_use(detector):
    blobs = [jpeg_bytes(face_photo(i, side)) for i, side in ((5, 500), (9, 300))]
    out = FaceExtractor(ExtractConfig(), detector=detector)(_batch(blobs))
    assert out["region"].shape[1:3] == tuple(out["region_shape"].max(axis=0)) != (640, 640)
    without = FaceExtractor(ExtractConfig(), keep_regions=False, detector=detector)(_batch(blobs))
    assert without["status"].tolist() == ["ok", "ok"] and without["region"].shape == (2, 0, 0, 3)
    assert np.array_equal(without["face"], out["face"]) and np.array_equal(without["face_box"], out["face_box"])
