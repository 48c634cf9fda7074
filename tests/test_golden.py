"""Golden outputs: an embedder's name is the version key `--resume` and `predict` trust.

If one of these fails, the features changed: give the embedder a new name (`forensic-v3`) instead of
updating the numbers, or old embeddings and models would silently mix with new ones.
"""

import numpy as np
import pytest

from fakeface_ray.stages.embedders.forensic import ForensicEmbedder

from .models import seed_weights
from .photos import face_photo

# LFW face 0 at 400x400, landmarks placed by hand (no detector: MTCNN's own changes stay out).
KEYPOINTS = np.array([140, 165, 260, 165, 200, 235, 150, 300, 250, 300], dtype=np.float32)
# forensic-v2 on it: no JPEG table, so the seven double-JPEG features are zero.
FORENSIC_V2 = np.array([
    1.692359e-02, 4.015348e-02, -1.301614e-09, -1.645481e-09, 1.838962e-02, -2.869705e-02,
    -7.969815e-02, -4.068439e-03, -3.529452e-02, -2.827287e-10, -3.574212e-10, 2.250701e-02,
    -1.438753e-01, 8.740325e-02, -1.703514e-03, 1.818901e-02, -6.873228e-11, -8.689069e-11,
    8.246008e-03, 1.266952e-02, -7.400553e-02, -8.187525e-02, 6.566877e-02, 2.839704e-09,
    3.589910e-09, -8.616710e-02, 1.095151e-01, -1.828290e-01, -7.572193e-01, -4.085542e-01,
    -4.380431e-02, 8.187525e-02, 6.566877e-02, 1.095151e-01,
    0, 0, 0, 0, 0, 0, 0, 3.540536e-01])
# First 8 of 128 dims, and the projection of all 128 on a fixed random direction.
FACENET_128_HEAD = np.array([-0.007224, -0.176073, -0.006354, 0.070641, 0.021752, 0.116487, -0.037393, 0.048793])
FACENET_128_PROJECTION = 0.206360


# forensic-v2 on test_double_jpeg's spliced astronaut, with its JPEG table: every feature in play.
FORENSIC_V2_SPLICED = np.array([
    -2.643578e-01, -2.960774e-01, 1.666687e-02, -5.727105e-02, -3.162021e-01, -8.242102e-02, -1.389691e-02,
    2.840245e-01, 1.487447e-01, 2.802840e-02, -4.949284e-02, -1.873144e-02, 1.186811e-01, 7.253031e-02,
    1.334100e-01, 2.391977e-02, 1.852238e-01, -2.883204e-01, 7.913350e-03, 8.841816e-02, 2.758195e-02,
    2.701868e-02, -2.166683e-04, -4.479484e-02, -4.512851e-02, 1.520033e-02, -4.750366e-03, -8.772820e-03,
    2.483975e-01, -2.156563e-01, 6.592237e-02, 2.840245e-01, 2.960774e-01, 1.186811e-01, 2.324035e-01,
    1.852460e-02, 1.604575e-01, -2.930543e-02, 3.048177e-02, -5.276184e-03, 1.604575e-01, 2.324035e-01])


def test_forensic_v2_vectors_are_pinned():
    from .test_double_jpeg import KEYPOINTS as SPLICE_KEYPOINTS
    from .test_double_jpeg import _spliced

    embedder = ForensicEmbedder()
    assert (embedder.name, embedder.dims) == ("forensic-v2", 42)
    got = embedder.embed_regions([face_photo(0, 400)], [KEYPOINTS], origins=[(0, 0)], scales=[1.0])[0]
    # Tolerance for libjpeg builds (error level analysis re-encodes), far below any feature change.
    np.testing.assert_allclose(got, FORENSIC_V2, rtol=0, atol=2e-4)
    pixels, table = _spliced()
    got = embedder.embed_regions([pixels], [SPLICE_KEYPOINTS], origins=[(0, 0)], tables=[table.reshape(-1)])[0]
    np.testing.assert_allclose(got, FORENSIC_V2_SPLICED, rtol=0, atol=2e-4)


def _seeded_facenet():
    from fakeface_ray.stages.embedders.facenet import build_inception_resnet_v1

    model = build_inception_resnet_v1(128)
    seed_weights(model, 7)
    return model


@pytest.mark.slow
def test_facenet_output_is_pinned(tmp_path):
    from fakeface_ray.stages.embedders.facenet import FaceNetEmbedder, model_weights
    from fakeface_ray.stages.embedders.facenet_weights import write_weight_file

    weights = tmp_path / "golden.h5"
    write_weight_file(weights, model_weights(_seeded_facenet()), "keras2-weights")
    got = FaceNetEmbedder(weights).embed(face_photo(0, 160)[None])[0]
    np.testing.assert_allclose(got[:8], FACENET_128_HEAD, rtol=0, atol=1e-4)
    assert got @ np.random.default_rng(0).normal(size=128) == pytest.approx(FACENET_128_PROJECTION, abs=1e-4)
