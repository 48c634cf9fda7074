"""Read FaceNet weights from Keras 2 HDF5 files by layer name, as data: nothing is deserialised.

Two layouts exist: the full-model file (`facenet_keras.h5`: weights under `model_weights/`, a model
config whose Lambda layers hold pickled bytecode, which is never read) and the weights-only file
(`*-weights.h5`: the same groups at the root). In both, a group's `layer_names` attribute lists the
layers; each layer group's `weight_names` lists datasets such as `Conv2d_1a_3x3/kernel:0`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import EmbedderError

BOTTLENECK = "Bottleneck"
BOTTLENECK_INPUTS = 1792  # channels after the last Inception-ResNet block


class WeightFileError(EmbedderError):
    """A FaceNet weight file is missing, unreadable, or does not fit the model."""


@dataclass(frozen=True)
class WeightFile:
    path: Path
    layout: str  # "keras2-full-model" or "keras2-weights"
    dims: int
    sha256: str
    weights: dict[str, dict[str, np.ndarray]]  # layer name -> {"kernel": ..., "beta": ...}

    @property
    def n_parameters(self) -> int:
        return int(sum(a.size for layer in self.weights.values() for a in layer.values()))


def read_weight_file(path: str | Path) -> WeightFile:
    """Every layer's arrays, keyed by layer and short weight name (`kernel`, `moving_mean`, ...)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise WeightFileError(
            f"FaceNet weight file not found: {path}. Put the community Keras FaceNet there "
            "(facenet_keras.h5, 128-d) or a keras-facenet weights file (20170512-110547-weights.h5, "
            "128-d; 20180402-114759-weights.h5, 512-d); see model/README.md")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise WeightFileError(f"{path} is not a readable HDF5 file (truncated or another format): {exc}") from None
    with handle:
        if "model_weights" in handle and "layer_names" in handle["model_weights"].attrs:
            root, layout = handle["model_weights"], "keras2-full-model"
        elif "layer_names" in handle.attrs:
            root, layout = handle, "keras2-weights"
        else:
            raise WeightFileError(f"{path}: no Keras 2 weights found (neither 'model_weights/' "
                                  "with layer_names nor layer_names at the root)")
        try:
            weights = {_text(layer): _layer_arrays(root, _text(layer)) for layer in root.attrs["layer_names"]}
        except (KeyError, OSError) as exc:
            raise WeightFileError(f"{path}: cannot read a weight ({exc}); the file may be truncated") from None
    weights = {name: arrays for name, arrays in weights.items() if arrays}
    if BOTTLENECK not in weights or "kernel" not in weights[BOTTLENECK]:
        raise WeightFileError(f"{path}: layer '{BOTTLENECK}' (the embedding layer) is missing")
    kernel = weights[BOTTLENECK]["kernel"]
    if kernel.ndim != 2 or kernel.shape[0] != BOTTLENECK_INPUTS:
        raise WeightFileError(f"{path}: '{BOTTLENECK}/kernel' has shape {tuple(kernel.shape)}, "
                              f"the model needs ({BOTTLENECK_INPUTS}, dims)")
    return WeightFile(path, layout, int(kernel.shape[1]), file_sha256(path), weights)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_weight_file(path: str | Path, layers: dict[str, dict[str, np.ndarray]], layout: str,
                      layer_order: list[str] | None = None) -> None:
    """Write arrays in a Keras 2 layout (as the published files store them); for tests and tools.

    Args:
        layers: layer name -> {short weight name: array}; layers without weights may map to {}.
        layout: "keras2-full-model" or "keras2-weights".
    """
    import h5py

    order = layer_order or list(layers)
    with h5py.File(path, "w") as handle:
        if layout == "keras2-full-model":
            handle.attrs["keras_version"] = b"2.2.4"
            handle.attrs["backend"] = b"tensorflow"
            # Stands in for the real config, whose Lambda layers hold marshalled bytecode.
            handle.attrs["model_config"] = b'{"class_name": "Model", "config": {"layers": [{"class_name": "Lambda"}]}}'
            root = handle.create_group("model_weights")
        elif layout == "keras2-weights":
            root = handle
        else:
            raise ValueError(f"unknown layout {layout}")
        root.attrs["layer_names"] = np.array([n.encode() for n in order])
        for name in order:
            group = root.create_group(name)
            arrays = layers.get(name, {})
            names = [f"{name}/{short}:0" for short in arrays]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            for full, array in zip(names, arrays.values()):
                group.create_dataset(full, data=array)


def _layer_arrays(root, layer: str) -> dict[str, np.ndarray]:
    group = root[layer]
    arrays = {}
    for full in group.attrs.get("weight_names", []):
        full = _text(full)
        short = full.rsplit("/", 1)[-1].split(":")[0]
        arrays[short] = np.asarray(group[full])
    return arrays


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
