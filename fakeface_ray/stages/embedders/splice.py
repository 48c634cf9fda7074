"""splice-v1: a small CNN, trained by the project, on native-resolution patches around each part.

Its first layer is fixed high-pass filters (SRM noise residuals, clipped), so it sees the noise and
compression traces a blend disturbs, not the face. Each patch gives a fake logit and a coarse
blend-boundary map (the Face X-ray target); an image is as fake as its most suspicious patch.
`embed_patches` gives per-patch logits and boundary peaks, then the pooled features; a run's
classifier reads the first two (`stages/splice_features.py`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...cluster.devices import configure_tensorflow
from ...storage.locations import Location, location
from ..faces import PARTS, part_patches
from . import EmbedderError

NAME = "splice-v1"
PATCH = 96  # native pixels per patch side
MAP = PATCH // 8  # side of the boundary map
FEATURES = 64  # channels of the last block; pooled by mean and max
DIMS = 2 * len(PARTS) + 2 * FEATURES
WEIGHTS = "splice.weights.h5"
METADATA = "splice.json"
NETWORKS = "networks.json"  # in a run's model/splice/: the networks a classifier's splice scores come from
CLIP = 3.0  # residuals beyond +-3 grey levels are scene content, not noise


def srm_kernels() -> np.ndarray:
    """[5, 5, 3, 9] fixed high-pass filters: three SRM residuals for each colour channel."""
    k1 = np.array([[0, 0, 0, 0, 0], [0, -1, 2, -1, 0], [0, 2, -4, 2, 0], [0, -1, 2, -1, 0], [0, 0, 0, 0, 0]]) / 4
    k2 = np.array([[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2],
                   [-1, 2, -2, 2, -1]]) / 12
    k3 = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]) / 2
    kernels = np.zeros((5, 5, 3, 9), dtype=np.float32)
    for k, kernel in enumerate((k1, k2, k3)):
        for c in range(3):
            kernels[:, :, c, 3 * k + c] = kernel
    return kernels


def build_patch_net() -> Any:
    """The per-patch network: uint8-range RGB patch -> (fake logit, boundary map, pooled features)."""
    import keras
    from keras import layers

    patch = keras.Input((PATCH, PATCH, 3), name="patch")
    srm = layers.Conv2D(9, 5, padding="same", use_bias=False, trainable=False, name="srm")
    x = srm(patch)
    srm.set_weights([srm_kernels()])
    x = layers.ReLU(max_value=2 * CLIP)(x + CLIP) - CLIP  # truncation: clip to [-CLIP, CLIP]
    for i, (filters, stride) in enumerate(((16, 1), (32, 2), (32, 1), (64, 2), (FEATURES, 2))):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU()(x)
    boundary = layers.Conv2D(1, 1, activation="sigmoid", name="boundary")(x)
    pooled = layers.Concatenate(name="pooled")([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    logit = layers.Dense(1, name="logit")(pooled)
    return keras.Model(patch, [logit, boundary, pooled], name="splice_patch")


def boundary_targets(mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """float32 [4, MAP, MAP, 1]: the blend boundary 4*M*(1-M) under each patch, averaged to MAP cells."""
    maps = part_patches((4.0 * mask * (1.0 - mask))[..., None], keypoints, PATCH).astype(np.float32)
    cells = maps.reshape(len(PARTS), MAP, PATCH // MAP, MAP, PATCH // MAP, 1).mean(axis=(2, 4))
    return np.clip(cells / max(float(cells.max()), 1e-6), 0, 1) if cells.max() > 0 else cells


@dataclass(frozen=True)
class SpliceModel:
    """Where a trained splice network lives: its weights file and metadata (with the weights' sha256).

    Args:
        folder: a path or URI (one network of a run: `model/splice/net-K`).
    """

    folder: str | Path | Location

    @property
    def place(self) -> Location:
        return location(self.folder)

    def exists(self) -> bool:
        return (self.place / METADATA).exists()

    def metadata(self) -> dict:
        path = self.place / METADATA
        if not path.exists():
            raise EmbedderError(f"no trained splice model in {self.folder} ({METADATA} missing)")
        return json.loads(path.read_text())

    def verified(self) -> bytes:
        """The weights file's bytes, after checking their sha256 against the metadata."""
        expected = self.metadata().get("sha256")
        path = self.place / WEIGHTS
        if not path.exists():
            raise EmbedderError(f"{path} is missing")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise EmbedderError(f"{path}: sha256 {digest} does not match {expected} in {METADATA}")
        return data


def network_weights(model: str | Path | Location) -> list[bytes]:
    """The verified weights of every network a run's classifier reads (`<model>/splice/networks.json`)."""
    folder = location(model) / "splice"
    if not (folder / NETWORKS).exists():
        raise EmbedderError(f"{folder / NETWORKS} is missing: the classifier in {model} reads splice-v1 scores, "
                            "but its networks are not beside it")
    names = json.loads((folder / NETWORKS).read_text())["networks"]
    return [SpliceModel(folder / name).verified() for name in names]


class SpliceEmbedder:
    """splice-v1 features of faces: `embed_patches` on native part patches (the pipeline's call).

    Args:
        model: the folder holding `splice.weights.h5` and `splice.json` (one network of a run: `model/splice/net-K`).
        weights: the weights file's bytes, already verified (actors get these, not a path the
            driver's machine alone can read).
        net: a patch network to use as it is (tests, and training's own scoring).
    """

    name = NAME
    dims = DIMS

    def __init__(self, model: str | Path | Location | None = None, device: str = "CPU:0",
                 num_threads: int | None = None, net: Any = None, weights: bytes | None = None):
        configure_tensorflow(device, num_threads)
        if net is None:
            net = build_patch_net()
            data = weights if weights is not None else SpliceModel(model).verified()
            with tempfile.TemporaryDirectory() as folder:  # Keras loads .h5 weights from a file only
                path = Path(folder) / WEIGHTS
                path.write_bytes(data)
                net.load_weights(path)
        self.net = net
        self.device = device

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """Not offered: 160x160 crops are resampled, and splice-v1 reads native pixels only."""
        raise EmbedderError("splice-v1 reads native-resolution patches; it cannot embed 160x160 crops")

    def embed_images(self, images: list[np.ndarray], keypoints: list[np.ndarray]) -> np.ndarray:
        """Features of whole decoded images and their landmarks."""
        return self.embed_patches(np.stack([part_patches(i, k, PATCH) for i, k in zip(images, keypoints)]))

    def embed_patches(self, patches: np.ndarray, batch: int = 16) -> np.ndarray:
        """float32 [N, DIMS] for uint8 [N, 4, PATCH, PATCH, 3] patches."""
        import tensorflow as tf

        n = len(patches)
        out = np.zeros((n, DIMS), dtype=np.float32)
        flat = np.asarray(patches, dtype=np.float32).reshape(-1, PATCH, PATCH, 3)
        parts = len(PARTS)
        with tf.device(self.device):
            for start in range(0, len(flat), batch * parts):
                chunk = flat[start:start + batch * parts]
                logits, maps, pooled = (np.asarray(t) for t in self.net(chunk, training=False))
                rows = slice(start // parts, (start + len(chunk)) // parts)
                out[rows, :parts] = logits.reshape(-1, parts)
                out[rows, parts:2 * parts] = maps.reshape(-1, parts, MAP * MAP).max(axis=2)
                pooled = pooled.reshape(-1, parts, 2 * FEATURES)
                out[rows, 2 * parts:] = pooled.max(axis=1)
        return out
