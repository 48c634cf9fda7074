"""Golden outputs: an embedder's name is the version key `--resume` and `predict` trust.

If one of these fails, the features changed: give the embedder a new name (`forensic-v7`, `splice-v2`)
instead of updating the numbers, or old embeddings and models would silently mix with new ones.
"""

import numpy as np
import pytest

from fakeface_ray.stages.embedders.forensic import ForensicEmbedder

from .models import seed_weights
from .photos import face_photo

# LFW face 0 at 400x400, landmarks placed by hand (no detector: MTCNN's own changes stay out).
KEYPOINTS = np.array([140, 165, 260, 165, 200, 235, 150, 300, 250, 300], dtype=np.float32)
# forensic-v6 on it: no JPEG table, so the twenty double-JPEG features are zero.
FORENSIC_V6 = np.array([
    1.682167e-02, 3.991156e-02, -1.293772e-09, -1.635567e-09, 1.827883e-02, -2.852416e-02,
    -7.921809e-02, -4.043970e-03, -3.508187e-02, -2.810252e-10, -3.552678e-10, 2.237141e-02,
    -1.430084e-01, 8.687690e-02, -1.693251e-03, 1.807943e-02, -6.831795e-11, -8.636689e-11,
    8.196329e-03, 1.259319e-02, -7.356008e-02, -8.138192e-02, 6.527313e-02, 2.822596e-09,
    3.568281e-09, -8.564796e-02, 1.088553e-01, -1.817276e-01, 3.061152e-02, 2.037858e-02,
    8.526838e-10, 1.077950e-09, 8.854728e-02, 5.038008e-02, 1.679258e-02, -7.526572e-01,
    -4.060928e-01, -4.354040e-02, 8.138192e-02, 6.527313e-02, 1.088553e-01,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3.519205e-01])
# splice-v1 with seeded weights on the same face: the four part logits, the four boundary-map peaks and
# the first four pooled features, then the projection of all 136 dims on a fixed random direction.
SPLICE_V1_HEAD = np.array([0.1252379, 0.1264129, 0.1261585, 0.1288765, 0.5040799, 0.5040604,
                           0.5040572, 0.5039686, 0.0608403, 0.2430573, 0.0868380, 0.0955284])
SPLICE_V1_PROJECTION = 2.958256
# First 8 of 128 dims, and the projection of all 128 on a fixed random direction.
FACENET_128_HEAD = np.array([-0.007224, -0.176073, -0.006354, 0.070641, 0.021752, 0.116487, -0.037393, 0.048793])
FACENET_128_PROJECTION = 0.206360


# forensic-v6 on test_double_jpeg's spliced astronaut, with its JPEG table: every feature in play.
FORENSIC_V6_SPLICED = np.array([
    -2.545726e-01, -2.851305e-01, 1.603946e-02, -5.514316e-02, -3.045075e-01, -7.933520e-02, -1.338490e-02,
    2.736164e-01, 1.433093e-01, 2.697500e-02, -4.763561e-02, -1.798996e-02, 1.143608e-01, 6.986030e-02,
    1.285978e-01, 2.313169e-02, 1.782937e-01, -2.775176e-01, 7.723285e-03, 8.526205e-02, 2.656713e-02,
    2.602383e-02, -2.085836e-04, -4.314532e-02, -4.346631e-02, 1.464067e-02, -4.575440e-03, -8.449811e-03,
    5.873890e-02, 1.507673e-01, 8.970898e-02, 1.331932e-01, 4.419261e-02, 3.497980e-02, 6.429430e-03,
    2.392513e-01, -2.077156e-01, 6.349505e-02, 2.736164e-01, 2.851305e-01, 1.143608e-01, 2.238463e-01,
    1.784251e-02, 1.545493e-01, -2.822638e-02, 2.935940e-02, -5.081910e-03, 1.545493e-01, 1.279121e-01,
    3.885497e-04, -5.357266e-03, -4.572351e-03, 6.079960e-03, -1.520178e-03, 6.079960e-03, 1.319580e-02,
    2.002279e-02, 1.284348e-02, 8.595129e-05, 1.455307e-03, 5.688109e-04, 2.238463e-01])


def test_forensic_v6_vectors_are_pinned():
    from .test_double_jpeg import KEYPOINTS as SPLICE_KEYPOINTS
    from .test_double_jpeg import _spliced

    embedder = ForensicEmbedder()
    assert (embedder.name, embedder.dims) == ("forensic-v6", 62)
    got = embedder.embed_regions([face_photo(0, 400)], [KEYPOINTS], origins=[(0, 0)], scales=[1.0])[0]
    # Tolerance for libjpeg builds (error level analysis re-encodes), far below any feature change.
    np.testing.assert_allclose(got, FORENSIC_V6, rtol=0, atol=2e-4)
    pixels, table = _spliced()
    got = embedder.embed_regions([pixels], [SPLICE_KEYPOINTS], origins=[(0, 0)], tables=[table.reshape(-1)])[0]
    np.testing.assert_allclose(got, FORENSIC_V6_SPLICED, rtol=0, atol=2e-4)


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
