"""MTCNN in numpy: the `mtcnn` package's three networks, weights and stages, without TensorFlow.

`mtcnn` 1.0.0 runs its networks through Keras and its image resampling through TensorFlow ops, so
a detector process imports TensorFlow (3-6 s on two cores) before it can find a face. This module
runs the same weights (read from the package's files, whose `__init__` is never imported) and the
same steps: the image pyramid resampled by area, P-Net proposals with its per-scale and cross-scale
non-maximum suppression, R-Net and O-Net on bilinear crops, box regression and landmarks. It gives
the package's `detect_faces` JSON. Float rounding differs from TensorFlow's kernels, so a score at
a threshold's edge can fall the other way (see tests/test_mtcnn_numpy.py for the agreement).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from .faces import KEYPOINT_NAMES


def weights_path(name: str) -> Path:
    """The `mtcnn` package's weight file `name` ("pnet", "rnet", "onet"), found without importing it."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the mtcnn package (it ships the detector's weights) is not installed")
    return Path(spec.submodule_search_locations[0]) / "assets" / "weights" / f"{name}.lz4"


def load_weights(name: str) -> list[np.ndarray]:
    """The Keras weight list of one network, in its layers' order."""
    import joblib  # the package stores them as joblib lz4 pickles of float32 arrays

    return [np.asarray(w, dtype=np.float32) for w in joblib.load(weights_path(name))]


# Layers, NHWC float32, with Keras' semantics.

def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'valid' convolution, stride 1; `kernel` is Keras' [kh, kw, in, out].

    One matrix product per kernel tap, summed: with 3-32 input channels this beats an im2col copy.
    """
    kh, kw, _, cout = kernel.shape
    n, h, w, _ = x.shape
    oh, ow = h - kh + 1, w - kw + 1
    out = np.empty((n, oh, ow, cout), dtype=np.float32)
    out[...] = bias
    for dy in range(kh):
        for dx in range(kw):
            out += x[:, dy: dy + oh, dx: dx + ow] @ kernel[dy, dx]
    return out


def prelu(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Parametric ReLU: negatives times their channel's slope, positives as they are."""
    out = np.minimum(x, 0)
    out *= alpha.reshape(-1)
    out += np.maximum(x, 0)
    return out


def max_pool(x: np.ndarray, size: int, stride: int, same: bool) -> np.ndarray:
    """Keras MaxPooling2D; 'same' pads with -inf, the extra row or column at the end."""
    n, h, w, c = x.shape
    if same:
        oh, ow = -(-h // stride), -(-w // stride)
        ph, pw = max((oh - 1) * stride + size - h, 0), max((ow - 1) * stride + size - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), constant_values=-np.inf)
    else:
        oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    out = None
    for dy in range(size):
        for dx in range(size):
            window = x[:, dy: dy + (oh - 1) * stride + 1: stride, dx: dx + (ow - 1) * stride + 1: stride]
            out = window.copy() if out is None else np.maximum(out, window, out=out)
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def flatten_transposed(x: np.ndarray) -> np.ndarray:
    """Keras' Permute((2, 1, 3)) then Flatten: the networks were converted from Caffe's layout."""
    return x.transpose(0, 2, 1, 3).reshape(len(x), -1)


def pnet(w: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box offsets [n, h, w, 4] and face probability [n, h, w] per 12x12 window, stride 2."""
    x = prelu(conv2d(x, w[0], w[1]), w[2])
    x = max_pool(x, 2, 2, same=True)
    x = prelu(conv2d(x, w[3], w[4]), w[5])
    x = prelu(conv2d(x, w[6], w[7]), w[8])
    return conv2d(x, w[9], w[10]), softmax(conv2d(x, w[11], w[12]))[..., 1]


def rnet(w: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box offsets [n, 4] and face probability [n] of 24x24 crops."""
    x = max_pool(prelu(conv2d(x, w[0], w[1]), w[2]), 3, 2, same=True)
    x = max_pool(prelu(conv2d(x, w[3], w[4]), w[5]), 3, 2, same=False)
    x = prelu(conv2d(x, w[6], w[7]), w[8])
    x = prelu(flatten_transposed(x) @ w[9] + w[10], w[11])
    return x @ w[12] + w[13], softmax(x @ w[14] + w[15])[:, 1]


def onet(w: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box offsets [n, 4], landmarks [n, 10] (x0..x4, y0..y4 in the box) and face probability [n]."""
    x = max_pool(prelu(conv2d(x, w[0], w[1]), w[2]), 3, 2, same=True)
    x = max_pool(prelu(conv2d(x, w[3], w[4]), w[5]), 3, 2, same=False)
    x = max_pool(prelu(conv2d(x, w[6], w[7]), w[8]), 2, 2, same=True)
    x = prelu(conv2d(x, w[9], w[10]), w[11])
    x = prelu(flatten_transposed(x) @ w[12] + w[13], w[14])
    return x @ w[15] + w[16], x @ w[17] + w[18], softmax(x @ w[19] + w[20])[:, 1]


# Resampling, with TensorFlow's semantics.

def area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """`tf.image.resize(method=AREA)` along one axis: each output averages the inputs it covers.

    Returns [n_out, taps] input indices and weights (a weight of 0 pads the shorter rows).
    """
    scale = n_in / n_out
    starts = np.floor(np.arange(n_out) * scale).astype(int)
    taps = int(np.ceil(scale)) + 1
    index = starts[:, None] + np.arange(taps)
    lo = np.maximum(index, np.arange(n_out)[:, None] * scale)
    hi = np.minimum(index + 1, (np.arange(n_out)[:, None] + 1) * scale)
    weights = np.clip(hi - lo, 0, None) / scale
    return np.minimum(index, n_in - 1), weights.astype(np.float32)


def resize_area(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """[n, h, w, c] resampled to [n, height, width, c] by area, one axis after the other."""
    index, weights = area_taps(images.shape[1], height)
    rows = sum(images[:, index[:, j]] * weights[:, j, None, None] for j in range(index.shape[1]))
    index, weights = area_taps(images.shape[2], width)
    return sum(rows[:, :, index[:, j]] * weights[:, j, None] for j in range(index.shape[1]))


def crop_and_resize(images: np.ndarray, boxes: np.ndarray, image_index: np.ndarray, size: int) -> np.ndarray:
    """`tf.image.crop_and_resize`, bilinear, 0 outside the image: [k, size, size, c] crops.

    Args:
        boxes: [k, 4] (y1, x1, y2, x2) as fractions of the image's height and width.
    """
    _, h, w, _ = images.shape
    steps = np.arange(size, dtype=np.float64) / (size - 1)
    ys = boxes[:, 0:1] * (h - 1) + steps * (boxes[:, 2:3] - boxes[:, 0:1]) * (h - 1)  # k, size
    xs = boxes[:, 1:2] * (w - 1) + steps * (boxes[:, 3:4] - boxes[:, 1:2]) * (w - 1)
    y0, x0 = np.floor(ys), np.floor(xs)
    fy, fx = (ys - y0)[:, :, None, None], (xs - x0)[:, None, :, None]
    y0i, y1i = np.clip(y0, 0, h - 1).astype(int), np.clip(np.ceil(ys), 0, h - 1).astype(int)
    x0i, x1i = np.clip(x0, 0, w - 1).astype(int), np.clip(np.ceil(xs), 0, w - 1).astype(int)
    b = image_index[:, None, None]

    def at(yi, xi):
        return images[b, yi[:, :, None], xi[:, None, :]]

    top = at(y0i, x0i) + (at(y0i, x1i) - at(y0i, x0i)) * fx
    bottom = at(y1i, x0i) + (at(y1i, x1i) - at(y1i, x0i)) * fx
    out = top + (bottom - top) * fy
    inside = ((ys >= 0) & (ys <= h - 1))[:, :, None] & ((xs >= 0) & (xs <= w - 1))[:, None, :]
    return np.where(inside[..., None], out, 0).astype(np.float32)


# Boxes: rows of [image, x1, y1, x2, y2, score] (+ 10 landmark columns after O-Net).

def iou(boxes: np.ndarray, method: str) -> np.ndarray:
    """Pairwise overlap of [k, 4] (x1, y1, x2, y2): over the union, or over the smaller box ("min")."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:4], boxes[None, :, 2:4])
    inter = np.prod(np.maximum(0, hi - lo), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):  # empty boxes: NaN, which suppresses nothing
        if method == "min":
            return inter / np.minimum(area[:, None], area[None, :])
        return inter / (area[:, None] + area[None, :] - inter)


def nms(boxes: np.ndarray, threshold: float, method: str = "union", sort: bool = True) -> np.ndarray:
    """The package's suppression, per image: a box goes if it overlaps any box scored above it
    (suppressed or not) by more than `threshold`."""
    if sort:
        boxes = boxes[np.argsort(boxes[:, 5])[::-1]]
    kept = []
    for image in np.unique(boxes[:, 0]):
        own = boxes[boxes[:, 0] == image]
        overlap = np.triu(iou(own[:, 1:5], method) > threshold, k=1)
        kept.append(own[~overlap.any(axis=0)])
    return np.concatenate(kept) if kept else boxes[:0]


def to_square(boxes: np.ndarray) -> np.ndarray:
    """[image, x1, y1, x2, y2, score] boxes made square on their longer side, about the same centre."""
    boxes = boxes.copy()
    w, h = boxes[:, 3] - boxes[:, 1], boxes[:, 4] - boxes[:, 2]
    side = np.maximum(w, h)
    boxes[:, 1] += w * 0.5 - side * 0.5
    boxes[:, 2] += h * 0.5 - side * 0.5
    boxes[:, 3], boxes[:, 4] = boxes[:, 1] + side, boxes[:, 2] + side
    return boxes


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes moved by a network's [N, 4] offsets, in units of each box's width and height."""
    boxes = boxes.copy()
    w, h = boxes[:, 3] - boxes[:, 1] + 1, boxes[:, 4] - boxes[:, 2] + 1
    boxes[:, 1:5] += offsets * np.stack([w, h, w, h], axis=-1)
    return boxes


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float = 0.709, window: int = 12) -> np.ndarray:
    """The package's pyramid: from window/min_face_size down by `factor` until the short side nears `window`.

    Its level count ignores `min_face_size`, so with a large one the last levels fall under the window: the
    package finds nothing there, and they are dropped here (a convolution over them has no output).
    """
    count = round(-(np.log(min(height, width) / window) / np.log(factor) + 1))
    scales = window / min_face_size * factor ** np.arange(count)
    short_sides = np.minimum((height * scales).astype(int), (width * scales).astype(int))  # as `_detect` resizes
    return scales[short_sides >= window]


def proposals(prob: np.ndarray, offsets: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-Net windows over `threshold` as boxes in image pixels, the best first (the package's cell
    geometry: a window at (2x + 1, 2y + 1) to (2x + 12, 2y + 12), offsets applied at once)."""
    b, y, x = np.nonzero(prob > threshold)
    reg = offsets[b, y, x]
    x1, y1 = 2 * x + 1 + reg[:, 0] * 11, 2 * y + 1 + reg[:, 1] * 11
    x2, y2 = 2 * x + 12 + reg[:, 2] * 11, 2 * y + 12 + reg[:, 3] * 11
    boxes = np.stack([b, x1 / scale, y1 / scale, x2 / scale, y2 / scale, prob[b, y, x]], axis=1)
    return boxes[np.argsort(boxes[:, 5])[::-1]]


def crops(images: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box of each image resampled to `size` x `size` (the next network's input)."""
    _, h, w, _ = images.shape
    fractions = boxes[:, [2, 1, 4, 3]] / np.array([h, w, h, w])
    return crop_and_resize(images, fractions, boxes[:, 0].astype(int), size)


class NumpyMTCNN:
    """Drop-in for `mtcnn.MTCNN` on CPU: `detect_faces(images, min_face_size=20, ...)` -> JSON faces.

    Images of different shapes are scanned apart (the package pads a mixed batch to one shape,
    which shifts its pyramid); a batch of one shape gives the package's result.
    """

    def __init__(self) -> None:
        self.weights = {name: load_weights(name) for name in ("pnet", "rnet", "onet")}

    def detect_faces(self, images: np.ndarray | Sequence[np.ndarray], min_face_size: float = 20,
                     threshold_pnet: float = 0.6, threshold_rnet: float = 0.7, threshold_onet: float = 0.8,
                     nms_pnet1: float = 0.5, nms_pnet2: float = 0.7, nms_rnet: float = 0.7,
                     nms_onet: float = 0.7, scale_factor: float = 0.709) -> list:
        """One list of {"box": [x, y, w, h], "confidence", "keypoints"} per image (a list for a list)."""
        single = not isinstance(images, (list, tuple))
        batch = [np.asarray(images)] if single else [np.asarray(i) for i in images]
        by_shape: dict[tuple, list[int]] = {}
        for i, image in enumerate(batch):
            by_shape.setdefault(image.shape, []).append(i)
        results: list = [[] for _ in batch]
        for shape, rows in by_shape.items():
            stacked = (np.stack([batch[i] for i in rows]).astype(np.float32) - 127.5) / 128
            found = self._detect(stacked, min_face_size, scale_factor, (threshold_pnet, threshold_rnet, threshold_onet),
                                 (nms_pnet1, nms_pnet2, nms_rnet, nms_onet))
            for k, i in enumerate(rows):
                results[i] = to_json(found[found[:, 0] == k], shape)
        return results[0] if single else results

    def _detect(self, images: np.ndarray, min_face_size: float, factor: float, thresholds: tuple,
                nms_thresholds: tuple) -> np.ndarray:
        n, h, w, _ = images.shape
        per_scale = []
        for scale in pyramid_scales(h, w, min_face_size, factor):
            scaled = resize_area(images, int(h * scale), int(w * scale))
            offsets, prob = pnet(self.weights["pnet"], scaled)
            per_scale.append(nms(proposals(prob, offsets, scale, thresholds[0]), nms_thresholds[0], sort=False))
        boxes = np.concatenate(per_scale) if per_scale else np.empty((0, 6))
        boxes = to_square(nms(boxes, nms_thresholds[1]))
        if len(boxes):
            offsets, prob = rnet(self.weights["rnet"], crops(images, boxes, 24))
            boxes[:, 5] = prob
            boxes = regress(boxes, offsets)[prob > thresholds[1]]
            boxes = to_square(nms(boxes, nms_thresholds[2]))
        if not len(boxes):
            return np.empty((0, 16))
        offsets, marks, prob = onet(self.weights["onet"], crops(images, boxes, 48))
        w_box, h_box = boxes[:, 3:4] - boxes[:, 1:2] + 1, boxes[:, 4:5] - boxes[:, 2:3] + 1
        marks = np.concatenate([w_box * marks[:, :5] + boxes[:, 1:2] - 1, h_box * marks[:, 5:] + boxes[:, 2:3] - 1], axis=1)
        boxes[:, 5] = prob
        boxes = np.concatenate([regress(boxes, offsets), marks], axis=1)[prob > thresholds[2]]
        return nms(boxes, nms_thresholds[3], method="min")


def to_json(found: np.ndarray, shape: tuple) -> list[dict]:
    """The package's JSON for one image: boxes clamped to the image, rounded to whole pixels."""
    h, w = shape[:2]
    faces = []
    for row in found:
        x1, x2 = np.clip(row[[1, 3]], 0, w - 1)
        y1, y2 = np.clip(row[[2, 4]], 0, h - 1)
        marks = row[6:16].round().astype(int)
        faces.append({
            "box": np.asarray([x1, y1, x2 - x1, y2 - y1]).round().astype(int).tolist(),
            "confidence": float(row[5]),
            "keypoints": {name: [int(marks[k]), int(marks[k + 5])] for k, name in enumerate(KEYPOINT_NAMES)},
        })
    return faces
