"""Golden outputs: an embedder's name is the version key `--resume` and `predict` trust.

If one of these fails, the features changed: give the embedder a new name (`forensic-v12`, `splice-v2`)
instead of updating the numbers, or old embeddings and models would silently mix with new ones.
"""

import numpy as np
import pytest

from fakeface_ray.stages.embedders.forensic import ForensicEmbedder

from .models import seed_weights
from .photos import face_photo

# LFW face 0 at 400x400, landmarks placed by hand (no detector: MTCNN's own changes stay out).
KEYPOINTS = np.array([140, 165, 260, 165, 200, 235, 150, 300, 250, 300], dtype=np.float32)
# forensic-v11 on it: no JPEG table, so the forty-two double-JPEG features are zero.
FORENSIC_V11 = np.array([
    8.252279e-02, 6.618817e-02, 2.862165e-09, 3.618304e-09, 8.684863e-02, 1.450132e-01,
    1.842752e-01, 2.634948e-02, 4.014145e-02, 1.132079e-09, 1.431156e-09, 3.409499e-02,
    7.427206e-02, 1.068225e-01, 3.104065e-02, 2.066426e-02, 8.646373e-10, 1.093061e-09,
    8.978859e-02, 5.108634e-02, 1.702799e-02, -7.632084e-01, -4.117856e-01, -4.415078e-02,
    1.103813e-01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3.568539e-01])
# splice-v1 with seeded weights on the same face: the four part logits, the four boundary-map peaks and
# the first four pooled features, then the projection of all 136 dims on a fixed random direction.
SPLICE_V1_HEAD = np.array([0.1252379, 0.1264129, 0.1261585, 0.1288765, 0.5040799, 0.5040604,
                           0.5040572, 0.5039686, 0.0608403, 0.2430573, 0.0868380, 0.0955284])
SPLICE_V1_PROJECTION = 2.958256
# First 8 of 128 dims, and the projection of all 128 on a fixed random direction.
FACENET_128_HEAD = np.array([-0.007224, -0.176073, -0.006354, 0.070641, 0.021752, 0.116487, -0.037393, 0.048793])
FACENET_128_PROJECTION = 0.206360


# forensic-v11 on test_double_jpeg's spliced astronaut, with its JPEG table: every feature in play.
FORENSIC_V11_SPLICED = np.array([
    3.056768e-01, 3.185400e-01, 1.991848e-01, 3.100350e-01, 3.401875e-01, 1.277608e-01,
    7.804602e-02, 1.907043e-01, 1.261791e-01, 7.386005e-02, 1.183540e-01, 9.631744e-02,
    7.918898e-02, 3.302981e-02, 6.562150e-02, 1.684331e-01, 1.002204e-01, 1.487998e-01,
    4.937078e-02, 3.907848e-02, 7.182783e-03, 2.672850e-01, -2.320542e-01, 7.093494e-02,
    1.277608e-01, 2.500749e-01, 1.822373e-02, 1.794037e-01, -2.027507e-02, 4.417058e-02,
    7.501612e-04, 1.794037e-01, 1.429000e-01, 4.340771e-04, -5.984991e-03, -5.108105e-03,
    6.792365e-03, -1.698301e-03, 6.792365e-03, 1.492945e-02, 2.285493e-02, 1.436340e-02,
    2.383587e-02, 3.863842e-03, 1.268416e-02, 5.805310e-02, 6.251873e-02, 4.421779e-02,
    1.358455e-02, 1.547914e-02, 1.085490e-02, 7.452813e-09, 2.974875e-02, 9.602243e-05,
    1.625829e-03, 6.354600e-04, 7.619554e-04, 5.855431e-04, 1.852789e-03, -1.989287e-03,
    3.005594e-04, -1.048793e-04, -1.157925e-02, -9.764271e-03, -1.019739e-02, -4.144758e-03,
    -4.248585e-02, 2.500749e-01])


def test_forensic_v11_vectors_are_pinned():
    from .test_double_jpeg import KEYPOINTS as SPLICE_KEYPOINTS
    from .test_double_jpeg import _spliced

    embedder = ForensicEmbedder()
    assert (embedder.name, embedder.dims) == ("forensic-v11", 68)
    got = embedder.embed_regions([face_photo(0, 400)], [KEYPOINTS], origins=[(0, 0)], scales=[1.0])[0]
    # Tolerance for libjpeg builds (error level analysis re-encodes), far below any feature change.
    np.testing.assert_allclose(got, FORENSIC_V11, rtol=0, atol=2e-4)
    pixels, table = _spliced()
    got = embedder.embed_regions([pixels], [SPLICE_KEYPOINTS], origins=[(0, 0)], tables=[table.reshape(-1)])[0]
    np.testing.assert_allclose(got, FORENSIC_V11_SPLICED, rtol=0, atol=2e-4)


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
