"""The libraries the stages load inside Ray's actors, checked on the driver before Ray starts.

pip cannot make an extra the default: `pip install fakeface-ray` without `[cpu]` or `[gpu]` installs
mtcnn but no TensorFlow, and without this check the first sign is a ModuleNotFoundError raised in
an actor, behind a Ray RPC error.
"""

from __future__ import annotations

import importlib.util

from ..errors import UserError

INSTALL = "pip install 'fakeface-ray[cpu]' (or 'fakeface-ray[gpu]' on a machine with CUDA)"
PURPOSE = {"tensorflow": "MTCNN face detection and FaceNet", "mtcnn": "face detection",
           "h5py": "FaceNet weight files"}
PIPELINE = ("tensorflow", "mtcnn", "h5py")  # what the extract and embed actors load


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
