"""Synth stage: K synthetic fakes from each real image of the training split, as extract-stage rows.

The parent's face box and landmarks come with each row (the extract stage found them), so the fakes
skip MTCNN: a blend never moves the face. Every fake is seeded by (seed, parent image_id, k), so
the same training reals give the same fakes whatever the batching.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
from PIL import Image

from ..config import ExtractConfig, ReadConfig, SynthConfig
from ..storage.locations import READ_ERRORS, read_bytes
from ..storage.schema import FAKE, Status
from . import blends, faces, imaging
from .extract import empty_columns, fill_face, trim_regions


def synthetic_id(parent_image_id: str, k: int) -> str:
    """The image_id of a parent's k-th synthetic fake."""
    return f"{parent_image_id}#synthetic-{k}"


def variant_rng(seed: int, parent_image_id: str, k: int) -> np.random.Generator:
    """The generator for one fake: independent of batch composition and of other parents."""
    digest = int.from_bytes(hashlib.sha256(parent_image_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest, k])


def normalised_shape(keypoints: np.ndarray) -> np.ndarray:
    """Five landmarks centred, scaled to unit eye distance and turned to level eyes: pose, not place."""
    points = np.asarray(keypoints, np.float64).reshape(5, 2)
    points = points - points.mean(0)
    le, re = points[0], points[1]
    angle = -np.arctan2(re[1] - le[1], re[0] - le[0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ rotation.T / max(float(np.linalg.norm(re - le)), 1e-6)


def choose_donors(keypoints: np.ndarray, seed: int, nearest: int = 5) -> np.ndarray:
    """For each face, another face of similar pose to take parts from (Face X-ray's donor search).

    Args:
        keypoints: [N, 10] landmarks of the candidate reals.
        nearest: the donor is drawn among this many closest shapes.
    Returns: [N] row indices, -1 where there is no other face.
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(keypoints)
    if n < 2:
        return np.full(n, -1)
    shapes = np.stack([normalised_shape(k).reshape(-1) for k in keypoints])
    count = min(nearest, n - 1)
    # A k-d tree finds the closest shapes without an [N, N] distance matrix (8 GB at 10,000 reals).
    _, closest = NearestNeighbors(n_neighbors=count + 1, algorithm="kd_tree").fit(shapes).kneighbors(shapes)
    rng = np.random.default_rng(seed)
    return np.array([int(rng.choice(row[row != face][:count])) for face, row in enumerate(closest)])


class FakeSynthesizer:
    """Maps a batch of real images to K fakes each, in the extract stage's output format.

    Input columns: `image_id`, `uri`, `bytes`, `read_error`, `face_box` [4], `face_confidence`,
    `keypoints` [10], and `donor_uri` / `donor_keypoints` (another training real, or "" / NaN).
    Output: the extract columns plus `parent_image_id` and `recipe` (JSON), label `fake`.
    Works as a Ray Data actor and as a plain call.

    Args:
        config: the `synth` section (variants, JPEG qualities, donor and blend kinds).
        extract: the `extract` section, for the crops the embedder reads.
        read: the `read` section, for its pixel cap on the parents and donors decoded here.
        keep_regions: also emit native-resolution regions (the forensic embedder reads them).
        seed: the run's seed.
    """

    def __init__(self, config: SynthConfig, extract: ExtractConfig, read: ReadConfig = ReadConfig(), *,
                 keep_regions: bool = True, seed: int = 0):
        self.config = config
        self.extract = extract
        self.max_pixels = read.max_pixels
        self.region_max_side = extract.region_max_side if keep_regions else 0
        self.seed = seed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        k_count = self.config.variants
        n = len(batch["image_id"]) * k_count
        out = empty_columns(n, self.extract.face_size, self.region_max_side)
        ids, parents, uris, digests, recipes = ([""] * n for _ in range(5))
        for row in range(len(batch["image_id"])):
            parent = str(batch["image_id"][row])
            image, error = self._decode(batch["bytes"][row], batch["read_error"][row])
            donor = self._donor(batch["donor_uri"][row], batch["donor_keypoints"][row])
            detection = faces.Detection(tuple(int(v) for v in batch["face_box"][row]),
                                        float(batch["face_confidence"][row]),
                                        np.asarray(batch["keypoints"][row], dtype=np.float32))
            for k in range(k_count):
                i = row * k_count + k
                ids[i], parents[i], uris[i] = synthetic_id(parent, k), parent, str(batch["uri"][row])
                if image is None:
                    out["status"][i], out["error"][i] = Status.SYNTH_ERROR, f"parent image: {error}"
                    continue
                if not blends.usable_landmarks(detection.keypoints):
                    out["status"][i], out["error"][i] = Status.SYNTH_ERROR, "landmarks too close or collinear"
                    continue
                try:
                    fake = blends.synthesize(image, detection.keypoints, variant_rng(self.seed, parent, k),
                                             donor=donor, quality=tuple(self.config.jpeg_quality),
                                             donors=self.config.donors, blends=self.config.blends)
                except blends.BlendError as exc:
                    out["status"][i], out["error"][i] = Status.SYNTH_ERROR, str(exc)
                    continue
                out["width"][i], out["height"][i] = image.shape[1], image.shape[0]
                out["n_faces"][i] = 1
                fill_face(out, i, fake.pixels, detection, self.extract, self.region_max_side)
                out["quantisation"][i] = imaging.luma_quantisation(Image.open(io.BytesIO(fake.jpeg))).reshape(-1)
                digests[i] = hashlib.sha256(fake.jpeg).hexdigest()
                recipes[i] = json.dumps(fake.recipe)
        trim_regions(out)
        return {"image_id": np.array(ids, dtype=object), "uri": np.array(uris, dtype=object),
                "label": np.full(n, FAKE, dtype=object), "sha256": np.array(digests, dtype=object),
                "parent_image_id": np.array(parents, dtype=object), "recipe": np.array(recipes, dtype=object),
                **out}

    def _decode(self, data: bytes, read_error: str) -> tuple[np.ndarray | None, str]:
        if read_error:
            return None, read_error
        decoded = imaging.decode_image(data, self.max_pixels)
        return decoded.image, decoded.error or ""

    def _donor(self, uri: str, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Another training real to take parts from; None when there is none or it cannot be read."""
        if not uri or not blends.usable_landmarks(np.asarray(keypoints, dtype=float)):
            return None
        try:
            decoded = imaging.decode_image(read_bytes(str(uri)), self.max_pixels)
        except READ_ERRORS:
            return None  # the donor vanished: this parent's fakes use the other donor kinds
        return None if decoded.image is None else (decoded.image, np.asarray(keypoints, dtype=np.float64))
