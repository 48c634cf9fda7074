"""Golden outputs: an embedder's name is the version key `--resume` and `predict` trust.

If one of these fails, the features changed: give the embedder a new name (`forensic-v8`, `splice-v2`)
instead of updating the numbers, or old embeddings and models would silently mix with new ones.
"""

import numpy as np
import pytest

from fakeface_ray.stages.embedders.forensic import ForensicEmbedder

from .models import seed_weights
from .photos import face_photo

# LFW face 0 at 400x400, landmarks placed by hand (no detector: MTCNN's own changes stay out).
KEYPOINTS = np.array([140, 165, 260, 165, 200, 235, 150, 300, 250, 300], dtype=np.float32)
# forensic-v7 on it: no JPEG table, so the twenty double-JPEG features are zero.
FORENSIC_V7 = np.array([
    8.252286e-02, 6.618817e-02, 2.862164e-09, 3.618303e-09, 8.684863e-02, 1.450131e-01,
    1.842754e-01, 2.634949e-02, 4.014145e-02, 1.132078e-09, 1.431156e-09, 3.409499e-02,
    7.427209e-02, 1.068219e-01, 3.104065e-02, 2.066426e-02, 8.646366e-10, 1.093062e-09,
    8.978859e-02, 5.108656e-02, 1.702782e-02, -7.632084e-01, -4.117856e-01, -4.415078e-02,
    1.103813e-01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3.568539e-01])
# splice-v1 with seeded weights on the same face: the four part logits, the four boundary-map peaks and
# the first four pooled features, then the projection of all 136 dims on a fixed random direction.
SPLICE_V1_HEAD = np.array([0.1252379, 0.1264129, 0.1261585, 0.1288765, 0.5040799, 0.5040604,
                           0.5040572, 0.5039686, 0.0608403, 0.2430573, 0.0868380, 0.0955284])
SPLICE_V1_PROJECTION = 2.958256
# First 8 of 128 dims, and the projection of all 128 on a fixed random direction.
FACENET_128_HEAD = np.array([-0.007224, -0.176073, -0.006354, 0.070641, 0.021752, 0.116487, -0.037393, 0.048793])
FACENET_128_PROJECTION = 0.206360


# forensic-v7 on test_double_jpeg's spliced astronaut, with its JPEG table: every feature in play.
FORENSIC_V7_SPLICED = np.array([
    3.085507e-01, 3.215348e-01, 2.010575e-01, 3.129499e-01, 3.433858e-01, 1.289620e-01, 7.877979e-02,
    1.924973e-01, 1.273654e-01, 7.455446e-02, 1.194667e-01, 9.722299e-02, 7.993349e-02, 3.334035e-02,
    6.623845e-02, 1.700167e-01, 1.011627e-01, 1.501988e-01, 4.983495e-02, 3.944588e-02, 7.250314e-03,
    2.697979e-01, -2.342359e-01, 7.160185e-02, 1.289620e-01, 2.524261e-01, 2.012057e-02, 1.742816e-01,
    -3.183021e-02, 3.310790e-02, -5.730748e-03, 1.742816e-01, 1.442435e-01, 4.381582e-04, -6.041260e-03,
    -5.156131e-03, 6.856224e-03, -1.714268e-03, 6.856224e-03, 1.488059e-02, 2.257922e-02, 1.448328e-02,
    9.692520e-05, 1.641115e-03, 6.414344e-04, 2.524261e-01])


def test_forensic_v7_vectors_are_pinned():
    from .test_double_jpeg import KEYPOINTS as SPLICE_KEYPOINTS
    from .test_double_jpeg import _spliced

    embedder = ForensicEmbedder()
    assert (embedder.name, embedder.dims) == ("forensic-v7", 46)
    got = embedder.embed_regions([face_photo(0, 400)], [KEYPOINTS], origins=[(0, 0)], scales=[1.0])[0]
    # Tolerance for libjpeg builds (error level analysis re-encodes), far below any feature change.
    np.testing.assert_allclose(got, FORENSIC_V7, rtol=0, atol=2e-4)
    pixels, table = _spliced()
    got = embedder.embed_regions([pixels], [SPLICE_KEYPOINTS], origins=[(0, 0)], tables=[table.reshape(-1)])[0]
    np.testing.assert_allclose(got, FORENSIC_V7_SPLICED, rtol=0, atol=2e-4)


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


@pytest.mark.slow
def test_splice_output_is_pinned(tmp_path):
    from fakeface_ray.learning.splice_training import save_splice
    from fakeface_ray.stages.embedders.splice import DIMS, SpliceEmbedder, build_patch_net

    net = build_patch_net()
    seed_weights(net, 11)
    save_splice(net, tmp_path, history=[], extra={})
    got = SpliceEmbedder(tmp_path).embed_images([face_photo(0, 400)], [KEYPOINTS])[0]  # loads what was saved
    np.testing.assert_allclose(got[:12], SPLICE_V1_HEAD, rtol=0, atol=1e-4)
    assert got @ np.random.default_rng(0).normal(size=DIMS) == pytest.approx(SPLICE_V1_PROJECTION, abs=1e-3)
