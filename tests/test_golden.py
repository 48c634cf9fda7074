"""Golden outputs: an embedder's name is the version key `--resume` and `predict` trust.

If one of these fails, the features changed: give the embedder a new name (`forensic-v5`) instead of
updating the numbers, or old embeddings and models would silently mix with new ones.
"""

import numpy as np
import pytest

from fakeface_ray.stages.embedders.forensic import ForensicEmbedder

from .models import seed_weights
from .photos import face_photo

# LFW face 0 at 400x400, landmarks placed by hand (no detector: MTCNN's own changes stay out).
KEYPOINTS = np.array([140, 165, 260, 165, 200, 235, 150, 300, 250, 300], dtype=np.float32)
# forensic-v4 on it: no JPEG table, so the fourteen double-JPEG features are zero.
FORENSIC_V4 = np.array([
    1.692359e-02, 4.015348e-02, -1.301614e-09, -1.645481e-09, 1.838962e-02, -2.869705e-02,
    -7.969815e-02, -4.068439e-03, -3.529452e-02, -2.827287e-10, -3.574212e-10, 2.250701e-02,
    -1.438753e-01, 8.740325e-02, -1.703514e-03, 1.818901e-02, -6.873228e-11, -8.689069e-11,
    8.246008e-03, 1.266952e-02, -7.400553e-02, -8.187525e-02, 6.566877e-02, 2.839704e-09,
    3.589910e-09, -8.616710e-02, 1.095151e-01, -1.828290e-01, -7.572193e-01, -4.085542e-01,
    -4.380431e-02, 8.187525e-02, 6.566877e-02, 1.095151e-01,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3.540536e-01])
# First 8 of 128 dims, and the projection of all 128 on a fixed random direction.
FACENET_128_HEAD = np.array([-0.007224, -0.176073, -0.006354, 0.070641, 0.021752, 0.116487, -0.037393, 0.048793])
FACENET_128_PROJECTION = 0.206360


# forensic-v4 on test_double_jpeg's spliced astronaut, with its JPEG table: every feature in play.
FORENSIC_V4_SPLICED = np.array([
    -2.620396e-01, -2.934810e-01, 1.652071e-02, -5.676882e-02, -3.134291e-01, -8.169823e-02, -1.377504e-02,
    2.815338e-01, 1.474403e-01, 2.778261e-02, -4.905881e-02, -1.856717e-02, 1.176403e-01, 7.189427e-02,
    1.322401e-01, 2.371001e-02, 1.835995e-01, -2.857920e-01, 7.843954e-03, 8.764278e-02, 2.734007e-02,
    2.678174e-02, -2.147683e-04, -4.440201e-02, -4.473276e-02, 1.506703e-02, -4.708708e-03, -8.695887e-03,
    2.462192e-01, -2.137651e-01, 6.534427e-02, 2.815338e-01, 2.934810e-01, 1.176403e-01, 2.303655e-01,
    1.836215e-02, 1.590504e-01, -2.904844e-02, 3.021446e-02, -5.229915e-03, 1.590504e-01, 1.316374e-01,
    3.998658e-04, -5.513290e-03, -4.705515e-03, 6.257031e-03, -1.564451e-03, 6.257031e-03, 2.303655e-01])


def test_forensic_v4_vectors_are_pinned():
    from .test_double_jpeg import KEYPOINTS as SPLICE_KEYPOINTS
    from .test_double_jpeg import _spliced

    embedder = ForensicEmbedder()
    assert (embedder.name, embedder.dims) == ("forensic-v4", 49)
    got = embedder.embed_regions([face_photo(0, 400)], [KEYPOINTS], origins=[(0, 0)], scales=[1.0])[0]
    # Tolerance for libjpeg builds (error level analysis re-encodes), far below any feature change.
    np.testing.assert_allclose(got, FORENSIC_V4, rtol=0, atol=2e-4)
    pixels, table = _spliced()
    got = embedder.embed_regions([pixels], [SPLICE_KEYPOINTS], origins=[(0, 0)], tables=[table.reshape(-1)])[0]
    np.testing.assert_allclose(got, FORENSIC_V4_SPLICED, rtol=0, atol=2e-4)


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
