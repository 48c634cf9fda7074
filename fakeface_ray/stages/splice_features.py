"""Splice stage: splice-v1 features for rows of the embeddings schema, read from their files at native resolution.

The rows already hold each face's landmarks, so the stage reads the file again and cuts the part
patches there: no MTCNN, and no pixels ride between stages. It runs after the embed stage (predict)
and over a run's written rows (training, once the network is trained on the training side).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import SpliceUse
from ..storage.locations import READ_ERRORS, read_bytes
from ..storage.schema import Status
from . import imaging
from .embedders.splice import NAME, PATCH, SpliceEmbedder
from .faces import PARTS, part_patches

# What the classifier reads of the network: each part's fake logit and blend-boundary peak. The
# pooled channels are left out: two networks' channels mean different things, so they cannot be
# averaged over cross-fitting's networks, and one network's channels memorise its training rows.
SCORE_DIMS = 2 * len(PARTS)


def spliced_name(base: str, use: SpliceUse) -> str:
    """The embedder the rows are recorded under: `splice-v1`, or `<base>+splice-v1` for concat."""
    return NAME if use == "alone" else f"{base}+{NAME}"


def splice_use(embedder: str) -> SpliceUse:
    """How rows recorded under `embedder` hold splice-v1 features (a classifier's input tells its predict)."""
    if embedder == NAME:
        return "alone"
    return "concat" if embedder.endswith(f"+{NAME}") else "none"


def spliced_dims(base_dims: int, use: SpliceUse) -> int:
    """The length of the rows' vectors: splice-v1's scores alone, or the base embedder's and those."""
    return SCORE_DIMS if use == "alone" else base_dims + SCORE_DIMS


@dataclass(frozen=True)
class SpliceNetworks:
    """What the splice stage needs from a run: its networks and how the classifier reads their scores.

    Args:
        weights: each trained network's weights file (bytes, verified by the caller: actors on
            other nodes need no shared folder).
        use: `alone` or `concat`.
        max_pixels: the read section's cap, as the extract stage applied it.
        assignment: image_id -> index into `weights`, for rows that one network alone must score:
            the training rows, each by the network of its cross-fitting fold, which never saw it.
            Every other row gets the mean of all the networks.
    """

    weights: tuple[bytes, ...]
    use: SpliceUse
    max_pixels: int
    assignment: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.use not in ("alone", "concat"):
            raise ValueError(f"splice networks asked for with use={self.use!r}")
        if not self.weights:
            raise ValueError("splice scores need at least one trained network")


class SpliceFeatures:
    """Maps a table of embedding rows to the same rows with splice-v1 scores, alone or after their features.

    Works as a Ray Data actor and as a plain call. The scores are each part's fake logit and
    boundary peak (`SCORE_DIMS`), from the network `networks.assignment` names or averaged over all
    of them. Rows without an embedding pass through with a null one. A row whose file cannot be
    read or decoded again, or whose bytes changed since the row was made (sha256), becomes an error
    row: it keeps its place, with the reason.

    Args:
        embedders: networks to use instead of loading `networks.weights` (tests pass them).
    """

    def __init__(self, networks: SpliceNetworks, *, device: str = "CPU:0", num_threads: int | None = None,
                 embedders: list | None = None):
        self.embedders = embedders or [SpliceEmbedder(weights=w, device=device, num_threads=num_threads)
                                       for w in networks.weights]
        self.assignment = networks.assignment
        self.use = networks.use
        self.max_pixels = networks.max_pixels

    def __call__(self, rows: pa.Table) -> pa.Table:
        n = rows.num_rows
        base_dims = rows.schema.field("embedding").type.list_size
        status = np.array(rows.column("status").to_pylist(), dtype=object)
        error = np.array(rows.column("error").to_pylist(), dtype=object)
        valid = np.asarray(rows.column("embedding").is_valid()) & (status == Status.OK)
        ids, uris, shas = (rows.column(c).to_pylist() for c in ("image_id", "uri", "sha256"))
        points = rows.column("keypoints")
        found, patches = [], []
        for i in np.flatnonzero(valid):
            cut, status[i], error[i] = self._patches(uris[i], shas[i], points[i].as_py())
            if cut is not None:
                found.append(int(i))
                patches.append(cut)
        scores = np.zeros((n, SCORE_DIMS), dtype=np.float32)
        has = np.zeros(n, dtype=bool)
        has[found] = True
        if found:
            scores[found] = self._scores(np.stack(patches), [self.assignment.get(ids[i], -1) for i in found])
        vectors = scores
        if self.use == "concat":
            base = np.zeros((n, base_dims), dtype=np.float32)
            if found:  # rows with a score have an embedding: no nulls to flatten past
                taken = rows.column("embedding").take(pa.array(found)).combine_chunks()
                base[found] = taken.flatten().to_numpy().reshape(-1, base_dims)
            vectors = np.hstack([base, scores])
        dims = vectors.shape[1]
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dims,
                                                      mask=pa.array(~has))
        names = pc.unique(rows.column("embedder")).to_pylist() or [""]
        replaced = {
            "status": pa.array(status.tolist(), pa.string()),
            "error": pa.array(error.tolist(), pa.string()),
            "embedder": pa.array([spliced_name(names[0], self.use)] * n, pa.string()),
            "embedding": embedding,
        }
        for name, column in replaced.items():
            index = rows.schema.get_field_index(name)
            rows = rows.set_column(index, pa.field(name, column.type), column)
        return rows

    def _scores(self, patches: np.ndarray, networks: list[int]) -> np.ndarray:
        """[N, SCORE_DIMS]: each row by its assigned network, or averaged over all (-1)."""
        networks = np.asarray(networks)
        out = np.zeros((len(patches), SCORE_DIMS), dtype=np.float32)
        shared = networks < 0
        for k, embedder in enumerate(self.embedders):
            mine = (networks == k) | shared
            if mine.any():
                part = embedder.embed_patches(patches[mine])[:, :SCORE_DIMS]
                out[mine] += np.where(shared[mine, None], part / len(self.embedders), part)
        return out

    def _patches(self, uri: str, sha256: str | None, keypoints: list[float]
                 ) -> tuple[np.ndarray | None, str, str | None]:
        """The row's part patches, its status and error: read, checked against its sha256, decoded."""
        try:
            data = read_bytes(uri)
        except READ_ERRORS as exc:
            return None, Status.READ_ERROR, f"splice stage: {exc}"
        if sha256 and hashlib.sha256(data).hexdigest() != sha256:
            return None, Status.READ_ERROR, "splice stage: the file changed since its row was made; rerun extract"
        decoded = imaging.decode_image(data, self.max_pixels)
        if decoded.image is None:
            return None, decoded.status, f"splice stage: {decoded.error}"
        return part_patches(decoded.image, np.asarray(keypoints, np.float32), PATCH), Status.OK, None
