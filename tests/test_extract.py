"""Golden tests of the extract stage against `mtcnn` called directly, on real face photos."""

import io

import numpy as np
import pytest
from PIL import Image

from fakeface_ray.stages import faces
from fakeface_ray.config import ExtractConfig
from fakeface_ray.stages.extract import FaceExtractor

from .photos import face_photo, jpeg_bytes

pytestmark = pytest.mark.slow

FULL = ExtractConfig(detect_max_side=0)  # MTCNN on the image itself, as the original called it


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
    out = FaceExtractor(FULL, detector=detector)(_batch(blobs))
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
    out = FaceExtractor(FULL, detector=detector)(_batch([jpeg_bytes(ramp), jpeg_bytes(mosaic)]))
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


class _Scans:
    """MTCNN that records the size of every image it scans."""

    def __init__(self, detector):
        self.detector, self.shapes = detector, []

    def detect_faces(self, images, **kwargs):
        self.shapes += [image.shape[:2] for image in images]
        return self.detector.detect_faces(images, **kwargs)


def _framed(index: int, face: int = 240, width: int = 480, height: int = 720) -> np.ndarray:
    """A face of `face` px in a larger frame (edge-padded), as in most photos; not one that fills it."""
    top, left = (height - face) // 3, (width - face) // 2
    return np.pad(face_photo(index, face), ((top, height - face - top), (left, width - face - left), (0, 0)),
                  mode="edge")


# A pixel of the 320 px copy is 2.25 of the 720 px image: three of them are "a few".
FEW_PIXELS = 3 * 720 / 320


def test_scaled_detection_lands_within_pixels_of_the_full_resolution_one(detector):
    blobs = [jpeg_bytes(_framed(i)) for i in (0, 7, 21)]
    scans = _Scans(detector)
    out = FaceExtractor(ExtractConfig(detect_max_side=320), detector=scans)(_batch(blobs))
    full = FaceExtractor(FULL, detector=detector)(_batch(blobs))
    assert scans.shapes == [(320, 213)] * 3  # found on the copies: no full-resolution pass
    assert out["status"].tolist() == full["status"].tolist() == ["ok"] * 3
    # Most landmarks land within a few pixels; the blurry upscaled faces' mouths move most (face 21:
    # 13 px on a 233 px face), as do box sizes, so the bound on every value is a tenth of the face.
    assert np.median(np.abs(out["keypoints"] - full["keypoints"])) <= FEW_PIXELS
    side = full["face_box"][:, 2:4].max(axis=1, keepdims=True)
    assert (np.abs(out["keypoints"] - full["keypoints"]) <= 0.1 * side).all()
    assert (np.abs(out["face_box"] - full["face_box"]) <= 0.1 * side).all()
    # The crop is cut from the native pixels around the mapped box.
    assert np.abs(out["face"].astype(int) - full["face"].astype(int)).mean() < 12


def test_a_small_face_in_a_large_photo_is_found_by_the_full_resolution_pass(detector):
    canvas = np.random.default_rng(0).integers(100, 140, (2000, 2000, 3), dtype=np.uint8)
    canvas[900:990, 1200:1290] = face_photo(11, 90)  # 11 px on the 240 px copy: too small to find there
    blob = jpeg_bytes(canvas)
    scans = _Scans(detector)
    out = FaceExtractor(ExtractConfig(detect_max_side=240), detector=scans)(_batch([blob]))
    assert scans.shapes == [(240, 240), (2000, 2000)]
    assert out["status"].tolist() == ["ok"] and out["n_faces"][0] >= 1
    direct = max(detector.detect_faces(_decoded(blob)), key=lambda d: d["confidence"])
    assert out["face_box"][0].tolist() == [int(v) for v in direct["box"]]


def _exif_rotated(photo: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 8  # stored on its side; the decoder turns it upright
    buffer = io.BytesIO()
    Image.fromarray(photo).transpose(Image.Transpose.ROTATE_270).save(buffer, format="JPEG", quality=92, exif=exif)
    return buffer.getvalue()


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["exif_rotated", "grey", "sixteen_bit"])
def test_awkward_inputs_give_the_full_resolution_boxes(detector, kind):
    photo = _framed(7)
    grey = Image.fromarray(photo).convert("L")
    blob = {"exif_rotated": lambda: _exif_rotated(photo), "grey": lambda: _png(grey),
            "sixteen_bit": lambda: _png(Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257))}[kind]()
    out = FaceExtractor(ExtractConfig(detect_max_side=320), detector=detector)(_batch([blob]))
    full = FaceExtractor(FULL, detector=detector)(_batch([blob]))
    assert (out["width"][0], out["height"][0]) == (480, 720)
    assert out["status"].tolist() == full["status"].tolist() == ["ok"]
    assert np.abs(out["face_box"][0] - full["face_box"][0]).max() <= FEW_PIXELS
    assert np.abs(out["keypoints"][0] - full["keypoints"][0]).max() <= FEW_PIXELS
