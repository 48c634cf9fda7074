import numpy as np

from fakeface_ray.config import EmbedConfig
from fakeface_ray.stages.embedders import load_embedder, resolve_embedder
from fakeface_ray.stages.embedders.forensic import (
    FEATURE_NAMES,
    ForensicEmbedder,
    face_radius,
    PART_FEATURES,
    PARTS,
    median3,
    part_readings,
    reading_maps,
    region_features,
)

from .photos import face_photo, jpeg_bytes


def _photo(index: int, seed: int) -> np.ndarray:
    """A face photo with camera-like noise, JPEG-compressed once."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = face_photo(index, 320).astype(float) + rng.normal(0, 3, (320, 320, 1))
    data = jpeg_bytes(np.clip(pixels, 0, 255).astype(np.uint8), 92)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


KEYPOINTS = np.array([110, 130, 210, 130, 160, 190, 120, 240, 200, 240], dtype=np.float32)


def test_embed_shape_norm_and_determinism():
    embedder = load_embedder(EmbedConfig(embedder="forensic"))
    faces = np.stack([face_photo(i, 160) for i in range(3)])
    first, second = embedder.embed(faces), embedder.embed(faces)
    assert first.shape == (3, embedder.dims) and first.dtype == np.float32
    assert embedder.dims == len(FEATURE_NAMES) + 1
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(first, second)
    assert np.isfinite(first).all()


def _eye_pasted_resampled(photo: np.ndarray) -> np.ndarray:
    """`photo` with a resampled patch (a half-pixel shift, bilinear) over the left eye, as a splice would."""
    from scipy import ndimage

    spliced = photo.copy()
    patch = ndimage.shift(photo[110:150, 75:145].astype(float), (0.5, 0.5, 0), order=1, mode="nearest")
    spliced[110:150, 75:145] = np.clip(np.round(patch), 0, 255).astype(np.uint8)
    return spliced


def test_a_pasted_smoothed_eye_moves_its_features():
    photo = _photo(4, seed=0)
    spliced = _eye_pasted_resampled(photo)
    clean = region_features(photo, KEYPOINTS, origin=(0, 0))
    fake = region_features(spliced, KEYPOINTS, origin=(0, 0))
    largest, mean = (FEATURE_NAMES.index(f"part_{pool}_noise") for pool in ("max", "mean"))
    assert fake[largest] > clean[largest] + 0.3  # the pasted eye has less fine noise than its skin
    # Only one part of four moved: the mean over the parts rises by a quarter of the largest.
    assert abs((fake[mean] - clean[mean]) - (fake[largest] - clean[largest]) / 4) < 0.03


def test_part_readings_name_the_pasted_part_and_are_what_the_features_pool():
    spliced = _eye_pasted_resampled(_photo(4, seed=0))
    parts = part_readings(reading_maps(spliced, (0, 0)), KEYPOINTS)
    assert parts.shape == (len(PARTS), len(PART_FEATURES))
    noise = PART_FEATURES.index("noise")
    assert int(np.argmax(np.abs(parts[:, noise]))) == PARTS.index("left_eye")
    pooled = region_features(spliced, KEYPOINTS, origin=(0, 0))
    assert np.allclose(pooled[FEATURE_NAMES.index("part_max_noise")], np.abs(parts[:, noise]).max(), atol=1e-5)


def test_a_swapped_smoother_face_moves_the_face_features_and_they_are_magnitudes():
    from scipy import ndimage

    photo = _photo(4, seed=0)
    # Another face, resampled and without the photo's noise, feathered in over the inner face.
    donor = ndimage.gaussian_filter(face_photo(4, 320).astype(float), (1.0, 1.0, 0))
    ys, xs = np.mgrid[0:320, 0:320].astype(np.float32)
    mask = ndimage.gaussian_filter((face_radius(KEYPOINTS, ys, xs) < 1.0).astype(float), 6)[..., None]
    swapped = np.clip(np.round(photo * (1 - mask) + donor * mask), 0, 255).astype(np.uint8)
    clean = region_features(photo, KEYPOINTS, origin=(0, 0))
    fake = region_features(swapped, KEYPOINTS, origin=(0, 0))
    face = [FEATURE_NAMES.index(f"face_{name}") for name in ("noise", "sharpness")]
    assert np.all(fake[face] > clean[face] + 0.3)  # the face is smoother than the head around it
    # Magnitudes: a face noisier than its context would read the same as a smoother one.
    assert np.all(fake[[FEATURE_NAMES.index(n) for n in FEATURE_NAMES if n.startswith("face_")]] >= 0)


def test_regions_without_room_for_rings_give_zeros_not_nans():
    features = region_features(np.zeros((12, 12, 3), np.uint8), np.zeros(10, np.float32), origin=None)
    assert np.isfinite(features).all()


def test_auto_picks_forensic_and_says_where_facenet_weights_would_be_used(tmp_path):
    name, reason = resolve_embedder("auto", str(tmp_path / "missing.h5"))
    assert name == "forensic" and reason.startswith("auto:") and "w.h5" not in reason
    (tmp_path / "w.h5").write_bytes(b"x")
    name, reason = resolve_embedder("auto", str(tmp_path / "w.h5"))
    assert name == "forensic" and f"{tmp_path / 'w.h5'} are used with embed.embedder=facenet" in reason
    assert resolve_embedder("facenet", str(tmp_path / "w.h5"))[0] == "facenet"
    assert isinstance(load_embedder(EmbedConfig(weights=str(tmp_path / "missing.h5"))), ForensicEmbedder)


def test_the_median_network_equals_scipys_median_filter_with_ties_and_tiny_shapes():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for shape in ((61, 47), (7, 5), (1, 9), (2, 2)):
        x = (rng.random(shape) * 255).astype(np.float32)
        x[::2] = np.round(x[::2] / 16) * 16  # ties
        assert np.array_equal(median3(x), ndimage.median_filter(x, size=3)), shape
