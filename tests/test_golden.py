"""Golden outputs: an embedder's name is the version key `--resume` and `predict` trust.

If one of these fails, the features changed: give the embedder a new name (`forensic-v10`, `splice-v2`)
instead of updating the numbers, or old embeddings and models would silently mix with new ones.
"""

import numpy as np
import pytest

from fakeface_ray.stages.embedders.forensic import ForensicEmbedder

from .models import seed_weights
from .photos import face_photo

# LFW face 0 at 400x400, landmarks placed by hand (no detector: MTCNN's own changes stay out).
KEYPOINTS = np.array([140, 165, 260, 165, 200, 235, 150, 300, 250, 300], dtype=np.float32)
# forensic-v10 on it: no JPEG table, so the forty-two double-JPEG features are zero.
FORENSIC_V10 = np.array([
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


# forensic-v10 on test_double_jpeg's spliced astronaut, with its JPEG table: every feature in play.
FORENSIC_V10_SPLICED = np.array([
    3.074413e-01, 3.203788e-01, 2.003346e-01, 3.118247e-01, 3.421512e-01, 1.284983e-01,
    7.849653e-02, 1.918052e-01, 1.269075e-01, 7.428639e-02, 1.190372e-01, 9.687342e-02,
    7.964609e-02, 3.322047e-02, 6.600028e-02, 1.694054e-01, 1.007989e-01, 1.496587e-01,
    4.965577e-02, 3.930406e-02, 7.224245e-03, 2.688279e-01, -2.333937e-01, 7.134441e-02,
    1.284983e-01, 2.515185e-01, 1.933073e-02, 1.729259e-01, -3.110760e-02, 4.541302e-02,
    -2.040986e-03, 1.729259e-01, 1.437248e-01, 4.365828e-04, -6.019539e-03, -5.137592e-03,
    6.831573e-03, -1.708105e-03, 6.831573e-03, 1.482708e-02, 2.249804e-02, 1.443121e-02,
    2.506516e-02, 3.184543e-03, 1.215650e-02, 3.493312e-02, 3.493312e-02, 2.446086e-02,
    -1.257592e-02, -1.257592e-02, -1.257592e-02, 7.495834e-09, 1.776204e-02, 9.657670e-05,
    1.635214e-03, 6.391281e-04, 7.663537e-04, 5.889231e-04, 1.863484e-03, -2.000769e-03,
    3.022944e-04, -1.054847e-04, -1.164609e-02, -9.820634e-03, -1.025625e-02, -4.168684e-03,
    -4.273109e-02, 2.515185e-01])


def test_forensic_v10_vectors_are_pinned():
    from .test_double_jpeg import KEYPOINTS as SPLICE_KEYPOINTS
    from .test_double_jpeg import _spliced

    embedder = ForensicEmbedder()
    assert (embedder.name, embedder.dims) == ("forensic-v10", 68)
    got = embedder.embed_regions([face_photo(0, 400)], [KEYPOINTS], origins=[(0, 0)], scales=[1.0])[0]
    # Tolerance for libjpeg builds (error level analysis re-encodes), far below any feature change.
    np.testing.assert_allclose(got, FORENSIC_V10, rtol=0, atol=2e-4)
    pixels, table = _spliced()
    got = embedder.embed_regions([pixels], [SPLICE_KEYPOINTS], origins=[(0, 0)], tables=[table.reshape(-1)])[0]
    np.testing.assert_allclose(got, FORENSIC_V10_SPLICED, rtol=0, atol=2e-4)


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
