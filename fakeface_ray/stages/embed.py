"""Embed stage: turn extracted faces into vectors and the batch into rows of the Parquet schema."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ..config import EmbedConfig
from ..storage.schema import Status, to_table
from .embedders import Embedder, load_embedder
from .splice_features import SpliceFeatures, SpliceNetworks


class FaceEmbedder:
    """Maps an extract batch to a `pyarrow.Table` of the embeddings schema.

    Works as a Ray Data actor and as a plain call. Rows without a face keep a null embedding.
    Embedders with `embed_regions` get the native-resolution regions; others get the 160x160 crops.

    Args:
        config: the `embed` section; its `embedder` must be concrete (the driver resolves `auto`).
        model: an embedder to use instead of building one from `config` (tests pass tiny ones).
        splice: splice networks whose scores the rows get in the same actor (predicting with a
            classifier that reads them): no third actor pool, no pixels between actors.
    """

    def __init__(self, config: EmbedConfig, *, device: str = "CPU:0", num_threads: int | None = None,
                 model: Embedder | None = None, splice: SpliceNetworks | None = None):
        self.model = model if model is not None else load_embedder(config, device=device,
                                                                   num_threads=num_threads)
        self.splice = (SpliceFeatures(splice, device=device, num_threads=num_threads)
                       if splice is not None else None)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        n = len(batch["image_id"])
        vectors = np.full((n, self.model.dims), np.nan, dtype=np.float32)
        rows = np.flatnonzero(batch["status"] == Status.OK)
        if len(rows):
            vectors[rows] = self._embed(batch, rows)
        table = to_table(batch, vectors, self.model.name)
        return self.splice(table) if self.splice is not None else table

    def _embed(self, batch: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        embed_regions: Any = getattr(self.model, "embed_regions", None)
        if embed_regions is None:
            return self.model.embed(batch["face"][rows])
        # Per row: Ray Data hands batches joined from extract blocks of different region sizes
        # as an object array of arrays, a single block as one padded array.
        regions = [batch["region"][i][: batch["region_shape"][i, 0], : batch["region_shape"][i, 1]]
                   for i in rows]
        return embed_regions(regions, [batch["region_keypoints"][i] for i in rows],
                             origins=[tuple(batch["region_origin"][i]) for i in rows],
                             scales=[float(batch["region_scale"][i]) for i in rows],
                             windows=[tuple(batch["region_window"][i]) for i in rows],
                             tables=[batch["quantisation"][i] for i in rows] if "quantisation" in batch else None)
