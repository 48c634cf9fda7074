"""Face geometry and pixel maths, pure numpy: choose a face, crop it, cut out its native region."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Detection:
    box: tuple[int, int, int, int]  # x, y, w, h in the image
    confidence: float
    keypoints: np.ndarray  # float32 [10]: (x, y) for each of KEYPOINT_NAMES


@dataclass(frozen=True)
class Region:
    pixels: np.ndarray  # uint8 HxWx3 at native resolution (or smaller, never larger)
    keypoints: np.ndarray  # float32 [10] in region pixel coordinates
    origin: tuple[int, int]  # x, y of the region's top-left corner in the image
    scale: float  # region pixels per image pixel (<= 1)
    window: tuple[int, int, int, int]  # x0, y0, x1, y1 of the face's own window, in region pixels


def detection_from_mtcnn(face: dict, scale: tuple[float, float] = (1.0, 1.0)) -> Detection:
    """A Detection in native pixels from one item of `mtcnn.MTCNN.detect_faces` JSON output.

    Args:
        scale: (x, y) pixels of the image MTCNN saw per native pixel (see `detection_copy`).
    """
    kp = face["keypoints"]
    points = np.array([kp[name] for name in KEYPOINT_NAMES], dtype=np.float64) / scale
    x, y, w, h = face["box"]
    sx, sy = scale
    # Map the box's edges, not its size, so a box that ends at the copy's border ends at the image's.
    x0, y0, x1, y1 = (round(v) for v in (x / sx, y / sy, (x + w) / sx, (y + h) / sy))
    return Detection((x0, y0, x1 - x0, y1 - y0), float(face["confidence"]), points.reshape(-1).astype(np.float32))


def detection_scale(width: int, height: int, max_side: int, min_face_size: int) -> float:
    """Factor bringing the longest side down to `max_side` (1.0 when it fits or `max_side` is 0).

    Never so small that the short side drops under `min_face_size`: MTCNN cannot scan such an image.
    """
    if max_side <= 0 or max(width, height) <= max_side:
        return 1.0
    return min(1.0, max(max_side / max(width, height), min_face_size / min(width, height)))


def detection_copy(image: np.ndarray, max_side: int, min_face_size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The image as MTCNN should scan it first, and its (x, y) pixels per native pixel.

    Faces that fill a good part of the frame are found as well on a small copy, and the image
    pyramid of a small copy costs a fraction of the full one (see `extract.detect_max_side`).
    """
    height, width = image.shape[:2]
    factor = detection_scale(width, height, max_side, min_face_size)
    if factor == 1.0:
        return image, (1.0, 1.0)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    copy = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR), dtype=np.uint8)
    return copy, (size[0] / width, size[1] / height)


def choose_face(detections: Sequence[Detection]) -> Detection | None:
    """The most confident detection (the first on ties), or None."""
    if not detections:
        return None
    return max(detections, key=lambda d: d.confidence)


def expand_box(box: Sequence[int], margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Box grown by `margin` x its size on each axis (half per side), clamped to the image.

    Returns (x0, y0, x1, y1), exclusive end; never empty for a box inside the image.
    """
    x, y, w, h = box
    dx, dy = margin * w / 2.0, margin * h / 2.0
    x0 = int(np.clip(np.floor(x - dx), 0, width - 1))
    y0 = int(np.clip(np.floor(y - dy), 0, height - 1))
    x1 = int(np.clip(np.ceil(x + w + dx), x0 + 1, width))
    y1 = int(np.clip(np.ceil(y + h + dy), y0 + 1, height))
    return x0, y0, x1, y1


def crop_face(image: np.ndarray, box: Sequence[int], margin: float, size: int) -> np.ndarray:
    """The face box plus margin, clamped to the image and resized to `size` x `size` RGB uint8."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = expand_box(box, margin, width, height)
    crop = Image.fromarray(image[y0:y1, x0:x1])
    return np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def native_region(image: np.ndarray, detection: Detection, context: float, max_side: int,
                  window_context: float | None = None) -> Region:
    """The face with `context` margin at native resolution, downscaled only if over `max_side`.

    Args:
        window_context: the margin of the face's own window inside the region (`Region.window`);
            None: the whole region.
    """
    height, width = image.shape[:2]
    x0, y0, x1, y1 = expand_box(detection.box, context, width, height)
    pixels = image[y0:y1, x0:x1]
    scale = min(1.0, max_side / max(pixels.shape[:2]))
    points = detection.keypoints.reshape(5, 2) - np.array([x0, y0], dtype=np.float32)
    inner = expand_box(detection.box, window_context, width, height) if window_context is not None else (x0, y0, x1, y1)
    if scale < 1.0:
        new_size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
        pixels = np.asarray(Image.fromarray(pixels).resize(new_size, Image.LANCZOS), dtype=np.uint8)
        points = points * scale
    h, w = pixels.shape[:2]
    shifted = np.round((np.array(inner) - [x0, y0, x0, y0]) * scale)
    window = tuple(int(v) for v in np.clip(shifted, 0, [w, h, w, h]))
    return Region(np.ascontiguousarray(pixels), points.reshape(-1).astype(np.float32), (x0, y0), scale, window)


def prewhiten(x: np.ndarray) -> np.ndarray:
    """Per-image standardisation `(x - mean) / max(std, 1/sqrt(size))` over the last three axes."""
    x = np.asarray(x, dtype=np.float32)
    axes = tuple(range(x.ndim - 3, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    size = np.prod([x.shape[a] for a in axes])
    std = np.maximum(x.std(axis=axes, keepdims=True), 1.0 / np.sqrt(size))
    return (x - mean) / std


def l2_normalize(x: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Rows scaled to unit Euclidean norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, eps)


# The face parts, in landmark order, that patches, masks and the forensic features are read around.
PARTS = ("left_eye", "right_eye", "nose", "mouth")


def patch_centres(keypoints: np.ndarray) -> np.ndarray:
    """[4, 2] centres (x, y) of the part patches: each eye, the nose, the mouth's middle."""
    le, re, nose, ml, mr = np.asarray(keypoints, dtype=np.float32).reshape(5, 2)
    return np.stack([le, re, nose, (ml + mr) / 2])


def part_patches(image: np.ndarray, keypoints: np.ndarray, size: int) -> np.ndarray:
    """uint8 [4, size, size, C] native-resolution squares around each part (PARTS order).

    Never resampled: a patch that reaches past the image is padded by edge replication.
    """
    height, width = image.shape[:2]
    half = size // 2
    pad = ((size, size), (size, size)) + ((0, 0),) * (image.ndim - 2)
    padded = np.pad(image, pad, mode="edge")
    out = []
    for x, y in patch_centres(keypoints):
        cx = int(np.clip(round(float(x)), 0, width - 1)) + size
        cy = int(np.clip(round(float(y)), 0, height - 1)) + size
        out.append(padded[cy - half: cy - half + size, cx - half: cx - half + size])
    return np.stack(out)
