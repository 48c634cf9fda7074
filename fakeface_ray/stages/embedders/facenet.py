"""FaceNet (Inception-ResNet-v1) built in code with the community Keras layer names.

The graph is built here and the weights are read by layer name (see `facenet_weights`), so every
published Keras 2 file loads on Keras 3, including those whose own graph wired the residual wrongly:
the residual here is `x + scale * up`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...cluster.devices import configure_tensorflow
from ...config import ConfigError, Preprocessing, choices
from ..faces import l2_normalize, prewhiten
from .facenet_weights import WeightFile, WeightFileError, read_weight_file

PREPROCESSING = choices(Preprocessing)


def build_inception_resnet_v1(dims: int = 128, input_size: int = 160) -> Any:
    """The Keras model, randomly initialised; 22,808,144 parameters for dims=128."""
    import keras
    from keras import layers

    def conv_bn(x, filters, kernel, name, strides=1, padding="same", activation=True):
        x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=name)(x)
        x = layers.BatchNormalization(axis=3, momentum=0.995, epsilon=0.001, scale=False,
                                      name=f"{name}_BatchNorm")(x)
        return layers.Activation("relu", name=f"{name}_Activation")(x) if activation else x

    def residual_block(x, kind, index, scale, activation=True):
        prefix = f"{kind}_{index}"

        def branch(j, name):
            return f"{prefix}_Branch_{j}_{name}"

        if kind == "Block35":
            b0 = conv_bn(x, 32, 1, branch(0, "Conv2d_1x1"))
            b1 = conv_bn(x, 32, 1, branch(1, "Conv2d_0a_1x1"))
            b1 = conv_bn(b1, 32, 3, branch(1, "Conv2d_0b_3x3"))
            b2 = conv_bn(x, 32, 1, branch(2, "Conv2d_0a_1x1"))
            b2 = conv_bn(b2, 32, 3, branch(2, "Conv2d_0b_3x3"))
            b2 = conv_bn(b2, 32, 3, branch(2, "Conv2d_0c_3x3"))
            branches = [b0, b1, b2]
        elif kind == "Block17":
            b0 = conv_bn(x, 128, 1, branch(0, "Conv2d_1x1"))
            b1 = conv_bn(x, 128, 1, branch(1, "Conv2d_0a_1x1"))
            b1 = conv_bn(b1, 128, (1, 7), branch(1, "Conv2d_0b_1x7"))
            b1 = conv_bn(b1, 128, (7, 1), branch(1, "Conv2d_0c_7x1"))
            branches = [b0, b1]
        else:  # Block8
            b0 = conv_bn(x, 192, 1, branch(0, "Conv2d_1x1"))
            b1 = conv_bn(x, 192, 1, branch(1, "Conv2d_0a_1x1"))
            b1 = conv_bn(b1, 192, (1, 3), branch(1, "Conv2d_0b_1x3"))
            b1 = conv_bn(b1, 192, (3, 1), branch(1, "Conv2d_0c_3x1"))
            branches = [b0, b1]
        mixed = layers.Concatenate(axis=3, name=f"{prefix}_Concatenate")(branches)
        up = layers.Conv2D(x.shape[-1], 1, use_bias=True, name=f"{prefix}_Conv2d_1x1")(mixed)
        up = layers.Rescaling(scale, name=f"{prefix}_ScaleSum")(up)
        x = layers.Add(name=f"{prefix}_Add")([x, up])
        return layers.Activation("relu", name=f"{prefix}_Activation")(x) if activation else x

    inputs = keras.Input(shape=(input_size, input_size, 3), name="input")
    x = conv_bn(inputs, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
    x = conv_bn(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
    x = conv_bn(x, 64, 3, "Conv2d_2b_3x3")
    x = layers.MaxPooling2D(3, strides=2, name="MaxPool_3a_3x3")(x)
    x = conv_bn(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
    x = conv_bn(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
    x = conv_bn(x, 256, 3, "Conv2d_4b_3x3", strides=2, padding="valid")
    for i in range(1, 6):
        x = residual_block(x, "Block35", i, 0.17)

    b0 = conv_bn(x, 384, 3, "Mixed_6a_Branch_0_Conv2d_1a_3x3", strides=2, padding="valid")
    b1 = conv_bn(x, 192, 1, "Mixed_6a_Branch_1_Conv2d_0a_1x1")
    b1 = conv_bn(b1, 192, 3, "Mixed_6a_Branch_1_Conv2d_0b_3x3")
    b1 = conv_bn(b1, 256, 3, "Mixed_6a_Branch_1_Conv2d_1a_3x3", strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name="Mixed_6a_Branch_2_MaxPool_1a_3x3")(x)
    x = layers.Concatenate(axis=3, name="Mixed_6a")([b0, b1, pool])
    for i in range(1, 11):
        x = residual_block(x, "Block17", i, 0.10)

    b0 = conv_bn(x, 256, 1, "Mixed_7a_Branch_0_Conv2d_0a_1x1")
    b0 = conv_bn(b0, 384, 3, "Mixed_7a_Branch_0_Conv2d_1a_3x3", strides=2, padding="valid")
    b1 = conv_bn(x, 256, 1, "Mixed_7a_Branch_1_Conv2d_0a_1x1")
    b1 = conv_bn(b1, 256, 3, "Mixed_7a_Branch_1_Conv2d_1a_3x3", strides=2, padding="valid")
    b2 = conv_bn(x, 256, 1, "Mixed_7a_Branch_2_Conv2d_0a_1x1")
    b2 = conv_bn(b2, 256, 3, "Mixed_7a_Branch_2_Conv2d_0b_3x3")
    b2 = conv_bn(b2, 256, 3, "Mixed_7a_Branch_2_Conv2d_1a_3x3", strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name="Mixed_7a_Branch_3_MaxPool_1a_3x3")(x)
    x = layers.Concatenate(axis=3, name="Mixed_7a")([b0, b1, b2, pool])
    for i in range(1, 6):
        x = residual_block(x, "Block8", i, 0.20)
    x = residual_block(x, "Block8", 6, 1.0, activation=False)

    x = layers.GlobalAveragePooling2D(name="AvgPool")(x)
    x = layers.Dropout(0.2, name="Dropout")(x)
    x = layers.Dense(dims, use_bias=False, name="Bottleneck")(x)
    x = layers.BatchNormalization(momentum=0.995, epsilon=0.001, scale=False, name="Bottleneck_BatchNorm")(x)
    return keras.Model(inputs, x, name="inception_resnet_v1")


def model_weights(model: Any) -> dict[str, dict[str, np.ndarray]]:
    """The model's arrays by layer and short weight name (the inverse of `assign_weights`)."""
    return {layer.name: {_short(v): np.asarray(v.numpy()) for v in layer.weights}
            for layer in model.layers if layer.weights}


def assign_weights(model: Any, weights: WeightFile) -> None:
    """Copy the file's arrays into the model by layer name; refuse the first missing or misfit one."""
    for layer in model.layers:
        if not layer.weights:
            continue
        arrays = weights.weights.get(layer.name)
        if arrays is None:
            raise WeightFileError(f"{weights.path}: layer '{layer.name}' is missing from the file")
        for variable in layer.weights:
            short = _short(variable)
            if short not in arrays:
                raise WeightFileError(f"{weights.path}: weight '{layer.name}/{short}' is missing from the file")
            array = arrays[short]
            if tuple(array.shape) != tuple(variable.shape):
                raise WeightFileError(
                    f"{weights.path}: '{layer.name}/{short}' has shape {tuple(array.shape)}, "
                    f"the model needs {tuple(variable.shape)}")
            variable.assign(array.astype(np.float32))


def _short(variable: Any) -> str:
    return variable.path.rsplit("/", 1)[-1].split(":")[0]


class FaceNetEmbedder:
    """FaceNet embeddings of 160x160 RGB crops: preprocessed per model, L2-normalised."""

    def __init__(self, weights: str | Path, preprocess: str = "auto", batch_size: int = 32,
                 device: str = "CPU:0", num_threads: int | None = None):
        import tensorflow as tf

        configure_tensorflow(device, num_threads)
        if preprocess not in PREPROCESSING:
            raise ConfigError(f"embed.preprocess must be one of {PREPROCESSING}, got {preprocess!r}")
        self.file = read_weight_file(weights)
        self.dims = self.file.dims
        self.name = f"facenet-{self.dims}"
        # The 2017 128-d models were trained on prewhitened crops, the 2018 512-d ones on fixed scaling.
        self.preprocess = preprocess if preprocess != "auto" else ("prewhiten" if self.dims == 128 else "fixed")
        self.batch_size = batch_size
        self.device = device
        with tf.device(device):
            self.model = build_inception_resnet_v1(self.dims)
            assign_weights(self.model, self.file)
        # One graph for every batch size: Keras' eager call dispatches the network's ops one at a
        # time from Python, 3x slower per face on 2 cores (benchmarks/facenet_throughput.py).
        # Traced in the constructor, which the actor runs while the extract actors start up.
        self._forward = tf.function(lambda x: self.model(x, training=False),
                                    input_signature=[tf.TensorSpec([None, 160, 160, 3], tf.float32)])
        with tf.device(device):
            self._forward(tf.zeros([1, 160, 160, 3]))

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """float32 [N, dims] for uint8 [N, 160, 160, 3] RGB crops, in batches of `batch_size`."""
        import tensorflow as tf

        faces = np.asarray(faces)
        out = np.zeros((len(faces), self.dims), dtype=np.float32)
        with tf.device(self.device):
            for start in range(0, len(faces), self.batch_size):
                chunk = preprocess(faces[start:start + self.batch_size], self.preprocess)
                out[start:start + len(chunk)] = self._forward(tf.constant(chunk, tf.float32)).numpy()
        return l2_normalize(out)


def preprocess(faces: np.ndarray, mode: str) -> np.ndarray:
    """`prewhiten`: per-image standardisation; `fixed`: (x - 127.5) / 128. RGB order is kept."""
    if mode == "prewhiten":
        return prewhiten(faces)
    if mode == "fixed":
        return (np.asarray(faces, dtype=np.float32) - 127.5) / 128.0
    raise ValueError(f"unknown preprocessing {mode!r}")
