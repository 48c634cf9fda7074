"""Face embedders behind one protocol, chosen by name."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ...config import EmbedConfig, EmbedderName, choices
from ...errors import UserError

NAMES = choices(EmbedderName)


class EmbedderError(UserError):
    """An embedder cannot be built from what the user gave (name, weight file)."""


@runtime_checkable
class Embedder(Protocol):
    """Maps uint8 [N, 160, 160, 3] RGB face crops to float32 [N, dims], L2-normalised."""

    name: str
    dims: int

    def embed(self, faces: np.ndarray) -> np.ndarray: ...


def resolve_embedder(name: str, weights: str | None) -> tuple[str, str]:
    """The concrete embedder for `name` (resolving `auto`) and a sentence saying why."""
    if name not in NAMES:
        raise EmbedderError(f"unknown embedder '{name}'; choose one of {', '.join(NAMES)}")
    if name != "auto":
        return name, f"embedder '{name}' requested"
    # FaceNet embeds who is in a 160 px crop, not whether it was edited: 0.58 macro F1 in the original,
    # and the same network's random-weight features scored chance on the stand-in corpora.
    reason = "auto: the forensic embedder, which detects splices where FaceNet does not"
    if weights and Path(weights).is_file():
        reason += f" (the FaceNet weights at {weights} are used with embed.embedder=facenet)"
    return "forensic", reason


def load_embedder(config: EmbedConfig, device: str = "CPU:0", num_threads: int | None = None) -> Embedder:
    """Build the embedder `config` names (`auto` is resolved first).

    Args:
        device: TensorFlow device for embedders that run a network.
        num_threads: TensorFlow's thread pools, capped to the actor's CPUs.
    """
    concrete, _ = resolve_embedder(config.embedder, config.weights)
    if concrete == "forensic":
        from .forensic import ForensicEmbedder

        return ForensicEmbedder()
    from .facenet import FaceNetEmbedder

    return FaceNetEmbedder(config.weights, preprocess=config.preprocess, batch_size=config.batch_size,
                           device=device, num_threads=num_threads)


def describe_weights(path: str) -> dict:
    """Check a FaceNet weight file on the driver (clear errors before any actor starts)."""
    from .facenet_weights import read_weight_file

    found = read_weight_file(path)
    return {"path": str(found.path), "layout": found.layout, "dims": found.dims,
            "parameters": found.n_parameters, "sha256": found.sha256}


def embedder_identity(config: EmbedConfig) -> tuple[str, int]:
    """The name and size the configured embedder writes (`forensic-v11`, 68; `facenet-128`, 128)."""
    from .forensic import ForensicEmbedder

    embedder, _ = resolve_embedder(config.embedder, config.weights)
    if embedder == "forensic":
        return ForensicEmbedder.name, ForensicEmbedder.dims
    dims = describe_weights(config.weights)["dims"]
    return f"facenet-{dims}", dims
