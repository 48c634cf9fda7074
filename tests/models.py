"""Networks with weights drawn from a seeded generator (Keras' own initialisers are not seeded)."""

from __future__ import annotations

import numpy as np


def seed_weights(model, seed: int) -> None:
    """Every weight of `model` from `seed`, with BatchNorm statistics a trained model could have."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        short = variable.path.rsplit("/", 1)[-1]
        shape = tuple(variable.shape)
        if short == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        elif short in ("moving_mean", "beta", "bias"):
            value = rng.normal(0, 0.1, shape)
        else:
            value = rng.normal(0, 1 / np.sqrt(np.prod(shape[:-1])), shape)
        variable.assign(value.astype(np.float32))
