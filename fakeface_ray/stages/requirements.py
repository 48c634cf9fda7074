"""The libraries the stages load inside Ray's actors, checked on the driver before Ray starts.

pip cannot make an extra the default: `pip install fakeface-ray` without `[cpu]` or `[gpu]` installs
mtcnn but no TensorFlow. That is enough for MTCNN on CPUs and the forensic embedder; for FaceNet
or MTCNN on GPUs, without this check the first sign would be a ModuleNotFoundError raised in an
actor, behind a Ray RPC error.
"""

from __future__ import annotations

import importlib.util

from ..config import EmbedConfig, ExtractConfig, detector_runtime
from ..errors import UserError

INSTALL = "pip install 'fakeface-ray[cpu]' (or 'fakeface-ray[gpu]' on a machine with CUDA)"
PURPOSE = {"tensorflow": "FaceNet and MTCNN on GPUs", "mtcnn": "the face detector's weights",
           "h5py": "FaceNet weight files"}


def pipeline_needs(extract: ExtractConfig, embed: EmbedConfig) -> tuple[str, ...]:
    """The libraries the extract and embed actors of this config load.

    MTCNN on CPUs and the forensic embedder need no TensorFlow; FaceNet and MTCNN on GPUs do.
    """
    from .embedders import resolve_embedder

    needs = ["mtcnn"]
    if detector_runtime(extract.detector, extract.on_gpu) == "tensorflow":
        needs.append("tensorflow")
    if resolve_embedder(embed.embedder, embed.weights)[0] == "facenet":
        needs += ["tensorflow", "h5py"]
    return tuple(dict.fromkeys(needs))


class MissingLibrary(UserError):
    """A library a command needs is not importable in this Python."""


def require(*modules: str) -> None:
    """Raise MissingLibrary, naming the install command, unless every module can be imported.

    Looks the modules up without importing them (TensorFlow takes seconds to import).
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        needs = "; ".join(f"{name} for {PURPOSE[name]}" for name in missing)
        raise MissingLibrary(f"not installed: {needs}. Install fakeface-ray with a TensorFlow build: {INSTALL}")
