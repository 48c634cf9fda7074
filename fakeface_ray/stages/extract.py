"""Extract stage: decode each file, find faces with MTCNN, keep the most confident one."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ..cluster.devices import configure_tensorflow
from ..config import DetectorName, ExtractConfig, ReadConfig, detector_runtime
from ..storage.schema import Status
from . import faces, imaging

# The native region: the box doubled, so that it holds the head and background around the face
# (forensic-v6 and later read the JPEG history of the face against them) ...
REGION_CONTEXT = 1.0
# ... and inside it the face's own window, the box with a margin: skin around the parts.
FACE_WINDOW_CONTEXT = 0.2
# Columns handed on from the read stage as they are; the listing's two are absent when called alone.
PASSTHROUGH = ("image_id", "uri", "label", "sha256", "file_size", "file_mtime_ns")


def load_detector(name: DetectorName = "auto", device: str = "CPU:0", num_threads: int | None = None) -> Any:
    """MTCNN with `detect_faces`: in numpy (`mtcnn_numpy`, no TensorFlow) or the `mtcnn` package.

    Args:
        name: `extract.detector` (see `detector_runtime`).
        num_threads: caps the BLAS or TensorFlow threads to the CPUs Ray gave this actor.
    """
    if detector_runtime(name, device.upper().startswith("GPU")) == "numpy":
        if num_threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(num_threads)
        from .mtcnn_numpy import NumpyMTCNN

        return NumpyMTCNN()
    configure_tensorflow(device, num_threads)
    from mtcnn import MTCNN

    return MTCNN(device=device)


class FaceExtractor:
    """Maps a batch with `bytes` to decoded faces: 160x160 crops, native regions, boxes, landmarks.

    Works as a Ray Data actor (`fn_constructor_kwargs`) and as a plain call. `detector` is any object
    with MTCNN's `detect_faces(list_of_rgb_arrays, **kwargs) -> list[list[dict]]`.

    Args:
        config: the `extract` section (margin, face size, smallest face, region cap, device).
        read: the `read` section, for the decoder's pixel cap.
        keep_regions: also emit the native-resolution face regions (the forensic embedder reads
            them; FaceNet does not, and they are most of a batch's bytes).
        device: overrides `config.device` (the pipeline passes `GPU:0` to actors given a GPU).
    """

    def __init__(self, config: ExtractConfig, read: ReadConfig = ReadConfig(), *, keep_regions: bool = True,
                 device: str | None = None, num_threads: int | None = None, detector: Any = None):
        self.config = config
        self.max_pixels = read.max_pixels
        self.region_max_side = config.region_max_side if keep_regions else 0
        self.detector = detector if detector is not None else load_detector(config.detector, device or config.device, num_threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["uri"])
        out = empty_columns(n, self.config.face_size, self.region_max_side)
        images: dict[int, np.ndarray] = {}
        for i in range(n):
            if batch["read_error"][i]:
                out["status"][i], out["error"][i] = Status.READ_ERROR, batch["read_error"][i]
                continue
            decoded = imaging.decode_image(batch["bytes"][i], self.max_pixels)
            out["status"][i], out["error"][i] = decoded.status, decoded.error or ""
            out["width"][i] = decoded.width if decoded.width is not None else -1
            out["height"][i] = decoded.height if decoded.height is not None else -1
            if decoded.image is None:
                continue
            if min(decoded.image.shape[:2]) < self.config.min_face_size:
                out["status"][i] = Status.TOO_SMALL
                out["error"][i] = (f"{decoded.width}x{decoded.height} is smaller than a "
                                   f"{self.config.min_face_size}px face")
                continue
            images[i] = decoded.image
            if decoded.quantisation is not None:
                out["quantisation"][i] = decoded.quantisation.reshape(-1)
        for i, detections in self._detect(images, out).items():
            self._fill(out, i, images[i], detections)
        trim_regions(out)
        passthrough = {k: batch[k] for k in PASSTHROUGH if k in batch}
        return {**passthrough, **out}

    def _detect(self, images: dict[int, np.ndarray], out: dict[str, np.ndarray]) -> dict[int, list]:
        """Detections per row in native pixels: on copies capped at `detect_max_side` first, then at
        full resolution for the rows whose copy showed no face (small faces in large photos)."""
        copies = {i: faces.detection_copy(image, self.config.detect_max_side, self.config.min_face_size)
                  for i, image in images.items()}
        found = self._run_detector({i: pixels for i, (pixels, _) in copies.items()}, out)
        detections = {i: [faces.detection_from_mtcnn(f, copies[i][1]) for f in found[i]] for i in found}
        retry = {i: images[i] for i in images if not detections.get(i) and copies[i][1] != (1.0, 1.0)}
        for i in retry:
            detections.pop(i, None)  # the full pass decides: a face, none, or a detector error
        for i, full in self._run_detector(retry, out).items():
            detections[i] = [faces.detection_from_mtcnn(f) for f in full]
        return detections

    def _run_detector(self, images: dict[int, np.ndarray], out: dict[str, np.ndarray]) -> dict[int, list]:
        """MTCNN's output per row; images of one shape go to MTCNN together (no padding needed)."""
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for i, image in images.items():
            by_shape[image.shape].append(i)
        found: dict[int, list] = {}
        for rows in by_shape.values():
            try:
                results = self.detector.detect_faces([images[i] for i in rows], min_face_size=self.config.min_face_size)
            except Exception:
                results = None  # retry one by one so one bad image cannot sink its neighbours
            for k, i in enumerate(rows):
                if results is not None:
                    found[i] = results[k]
                    continue
                try:
                    found[i] = self.detector.detect_faces([images[i]], min_face_size=self.config.min_face_size)[0]
                except Exception as exc:
                    out["status"][i], out["error"][i] = Status.DETECT_ERROR, f"face detector failed: {exc}"
        return found

    def _fill(self, out: dict[str, np.ndarray], i: int, image: np.ndarray, detections: list) -> None:
        out["n_faces"][i] = len(detections)
        best = faces.choose_face(detections)
        if best is None:
            out["status"][i], out["error"][i] = Status.NO_FACE, "no face found"
            return
        fill_face(out, i, image, best, self.config, self.region_max_side)


def fill_face(out: dict[str, np.ndarray], i: int, image: np.ndarray, detection: faces.Detection,
              config: ExtractConfig, region_max_side: int) -> None:
    """Row `i` of `out` (from `empty_columns`): the face's box, landmarks, crop and native region.

    Args:
        region_max_side: 0 leaves the native region out.
    """
    out["face_box"][i] = detection.box
    out["face_confidence"][i] = detection.confidence
    out["keypoints"][i] = detection.keypoints
    out["face"][i] = faces.crop_face(image, detection.box, config.margin, config.face_size)
    out["status"][i], out["error"][i] = Status.OK, ""
    if not region_max_side:
        return
    region = faces.native_region(image, detection, REGION_CONTEXT, region_max_side, FACE_WINDOW_CONTEXT)
    h, w = region.pixels.shape[:2]
    out["region"][i, :h, :w] = region.pixels
    out["region_shape"][i] = (h, w)
    out["region_window"][i] = region.window
    out["region_keypoints"][i] = region.keypoints
    out["region_origin"][i] = region.origin
    out["region_scale"][i] = region.scale


def trim_regions(out: dict[str, np.ndarray]) -> None:
    """Regions were allocated at the largest possible side; keep only what the batch uses."""
    h, w = out["region_shape"].max(axis=0) if len(out["region_shape"]) else (0, 0)
    out["region"] = np.ascontiguousarray(out["region"][:, :h, :w])


def empty_columns(n: int, face_size: int, region_side: int) -> dict[str, np.ndarray]:
    """Columns for n rows with sentinels (-1, NaN, zeros) that `schema.to_table` turns into nulls."""
    return {
        "width": np.full(n, -1, dtype=np.int32),
        "height": np.full(n, -1, dtype=np.int32),
        "status": np.full(n, "", dtype=object),
        "error": np.full(n, "", dtype=object),  # "" = none (see sources.read_files)
        "n_faces": np.zeros(n, dtype=np.int16),
        "face_box": np.full((n, 4), -1, dtype=np.int32),
        "face_confidence": np.full(n, np.nan, dtype=np.float32),
        "keypoints": np.full((n, 10), np.nan, dtype=np.float32),
        "face": np.zeros((n, face_size, face_size, 3), dtype=np.uint8),
        "region": np.zeros((n, region_side, region_side, 3), dtype=np.uint8),
        "region_shape": np.zeros((n, 2), dtype=np.int32),
        "region_window": np.zeros((n, 4), dtype=np.int32),  # x0, y0, x1, y1 of the face's window
        "region_keypoints": np.full((n, 10), np.nan, dtype=np.float32),
        "region_origin": np.zeros((n, 2), dtype=np.int32),
        "region_scale": np.zeros(n, dtype=np.float32),
        "quantisation": np.zeros((n, 64), dtype=np.int32),  # the JPEG's luma table; zeros: none
    }
