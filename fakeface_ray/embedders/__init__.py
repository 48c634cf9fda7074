"""Face embedders behind one protocol, chosen by name."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .forensic import ForensicEmbedder

NAMES = ("auto", "facenet", "forensic")


class EmbedderError(ValueError):
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
    if weights and Path(weights).is_file():
        return "facenet", f"auto: FaceNet weights found at {weights}"
    return "forensic", (f"auto: no FaceNet weights at {weights}, using the weight-free forensic embedder "
                        "(see model/README.md to add FaceNet)")


def load_embedder(name: str, **options) -> Embedder:
    """Build an embedder by concrete name (`facenet`, `forensic`); `auto` is resolved first.

    Args:
        options: for `facenet`: `weights` (file), `preprocess` (auto, prewhiten, fixed), `batch_size`,
            `device`, `num_threads`. Embedders ignore options they do not take.
    """
    concrete, _ = resolve_embedder(name, options.get("weights"))
    if concrete == "forensic":
        return ForensicEmbedder()
    from .facenet import FaceNetEmbedder
    from .facenet_weights import WeightFileError

    known = ("weights", "preprocess", "batch_size", "device", "num_threads")
    try:
        return FaceNetEmbedder(**{k: v for k, v in options.items() if k in known and v is not None})
    except WeightFileError as exc:
        raise EmbedderError(str(exc)) from None
