"""The trained classifier as one typed, versioned object, and its files: `classifier.joblib` + `metadata.json`."""

from __future__ import annotations

import hashlib
import io
import json
import platform
from dataclasses import dataclass

import joblib
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline

from ..errors import UserError
from ..storage.locations import Location, location
from ..storage.schema import CLASSES

# Bump when the pickled object changes shape; a saved artifact of another version is refused.
ARTIFACT_VERSION = 1


class ModelError(UserError):
    """A model folder that is missing, tampered with, or of another artifact version."""


@dataclass
class ClassifierArtifact:
    """What `classifier.joblib` holds: the model, its calibrated twin, the threshold and its input."""

    model: Pipeline  # scaler + classifier; `decision_function` is larger for `fake`
    calibrated: CalibratedClassifierCV  # the same model refit with sigmoid calibration, for p_fake
    threshold: float  # call `fake` when the decision value is >= this (chosen on CV folds)
    embedder: str  # the embeddings it reads, e.g. `forensic-v6`
    dims: int
    version: int = ARTIFACT_VERSION

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Decision values for float32 [N, dims] embeddings."""
        return self.model.decision_function(x)

    def p_fake(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of `fake`."""
        return self.calibrated.predict_proba(x)[:, 1]

    def labels(self, scores: np.ndarray) -> np.ndarray:
        """Label indices into CLASSES (0 real, 1 fake) at the threshold."""
        return (np.asarray(scores) >= self.threshold).astype(np.int64)


def save_artifact(artifact: ClassifierArtifact, folder: Location, extra: dict) -> Location:
    """Write `classifier.joblib` and `metadata.json` (with the pickle's sha256) under `folder`.

    Args:
        extra: more metadata (grid, best parameters, seed...), stored beside the fixed keys.
    """
    import sklearn

    buffer = io.BytesIO()
    joblib.dump(artifact, buffer)
    pickled = buffer.getvalue()
    path = folder / "classifier.joblib"
    path.write_bytes(pickled)
    metadata = {
        "artifact_version": artifact.version,
        "classes": list(CLASSES),
        "positive_class": CLASSES[1],
        "embedder": artifact.embedder,
        "dims": artifact.dims,
        **extra,
        "sha256": hashlib.sha256(pickled).hexdigest(),
        "versions": {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
                     "numpy": np.__version__, "joblib": joblib.__version__},
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    return path


def load_artifact(folder: str | Location) -> tuple[ClassifierArtifact, dict]:
    """The saved artifact and its metadata, unpickled only if its sha256 matches the record.

    The check catches a swapped or corrupted file; a pickle is still code, so load only your own runs.
    """
    folder = location(folder)
    if not (folder / "metadata.json").exists():
        raise ModelError(f"no trained model in {folder} (metadata.json missing)")
    metadata = json.loads((folder / "metadata.json").read_text())
    if metadata.get("artifact_version") != ARTIFACT_VERSION:
        raise ModelError(f"{folder} holds a model of artifact version {metadata.get('artifact_version')}; "
                         f"this fakeface-ray reads version {ARTIFACT_VERSION}: train it again")
    path = folder / "classifier.joblib"
    pickled = path.read_bytes()
    digest = hashlib.sha256(pickled).hexdigest()
    if digest != metadata.get("sha256"):
        raise ModelError(f"{path}: sha256 {digest} does not match {metadata.get('sha256')} recorded in "
                         "metadata.json; refusing to unpickle it")
    artifact = joblib.load(io.BytesIO(pickled))
    if not isinstance(artifact, ClassifierArtifact):
        raise ModelError(f"{path} does not hold a ClassifierArtifact")
    return artifact, metadata
