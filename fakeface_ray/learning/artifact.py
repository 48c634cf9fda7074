"""The trained classifier as one typed, versioned object, and its files: `classifier.joblib` + `metadata.json`."""

from __future__ import annotations

import hashlib
import io
import json
import platform
from dataclasses import dataclass

import joblib
import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.pipeline import Pipeline

from ..errors import UserError
from ..storage.locations import Location, location
from ..storage.schema import CLASSES

# Bump when the pickled object changes shape; a saved artifact of another version is refused.
# 2: p_fake is a sigmoid of the model's own decision value, no longer a calibrated twin model.
ARTIFACT_VERSION = 2


class ModelError(UserError):
    """A model folder that is missing, tampered with, or of another artifact version."""


@dataclass(frozen=True)
class Sigmoid:
    """Platt scaling of decision values: p = 1 / (1 + exp(-(slope * score + intercept)))."""

    slope: float
    intercept: float

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return expit(self.slope * np.asarray(scores, dtype=np.float64) + self.intercept)


def fit_sigmoid(y: np.ndarray, scores: np.ndarray) -> Sigmoid:
    """Platt's sigmoid on out-of-fold decision values, with his smoothed targets.

    The targets (N+ + 1) / (N+ + 2) and 1 / (N- + 2) keep the slope finite when the scores separate
    the classes, as scikit-learn's sigmoid calibration does.
    """
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    target = np.where(y == 1, (positives + 1.0) / (positives + 2.0), 1.0 / (len(y) - positives + 2.0))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * scores + params[1]
        value = np.sum(np.logaddexp(0.0, z) - target * z)
        gradient = expit(z) - target
        return float(value), np.array([np.dot(gradient, scores), gradient.sum()])

    start = np.array([1.0, np.log((positives + 1.0) / (len(y) - positives + 1.0))])
    slope, intercept = minimize(loss, start, jac=True, method="L-BFGS-B").x
    return Sigmoid(float(slope), float(intercept))


@dataclass
class ClassifierArtifact:
    """What `classifier.joblib` holds: the model, the sigmoid for p_fake, the threshold and its input."""

    model: Pipeline  # scaler + classifier; `decision_function` is larger for `fake`
    calibration: Sigmoid  # fitted on the model's out-of-fold decision values, for p_fake
    threshold: float  # call `fake` when the decision value is >= this (chosen on CV folds)
    embedder: str  # the embeddings it reads, e.g. `forensic-v11`
    dims: int
    version: int = ARTIFACT_VERSION

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Decision values for float32 [N, dims] embeddings."""
        return self.model.decision_function(x)

    def p_fake(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of `fake` for decision values from `scores`."""
        return self.calibration(scores)

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
