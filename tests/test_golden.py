"""Golden outputs: an embedder's name is the version key `--resume` and `predict` trust.

If one of these fails, the features changed: give the embedder a new name (`forensic-v6`) instead of
updating the numbers, or old embeddings and models would silently mix with new ones.
"""

import numpy as np
import pytest

from fakeface_ray.stages.embedders.forensic import ForensicEmbedder

from .models import seed_weights
from .photos import face_photo

# LFW face 0 at 400x400, landmarks placed by hand (no detector: MTCNN's own changes stay out).
KEYPOINTS = np.array([140, 165, 260, 165, 200, 235, 150, 300, 250, 300], dtype=np.float32)
# forensic-v5 on it: no JPEG table, so the fourteen double-JPEG features are zero.
FORENSIC_V5 = np.array([
    1.682163e-02, 3.991157e-02, -1.293772e-09, -1.635567e-09, 1.827883e-02, -2.852416e-02,
    -7.921799e-02, -4.043928e-03, -3.508188e-02, -2.810254e-10, -3.552678e-10, 2.237141e-02,
    -1.430085e-01, 8.687668e-02, -1.693251e-03, 1.807943e-02, -6.831818e-11, -8.636721e-11,
    8.196329e-03, 1.259319e-02, -7.355967e-02, -8.138198e-02, 6.527314e-02, 2.822596e-09,
    3.568282e-09, -8.564797e-02, 1.088553e-01, -1.817275e-01, 3.061152e-02, 2.037858e-02,
    8.526840e-10, 1.077950e-09, 8.854729e-02, 5.038006e-02, 1.679233e-02, -7.526572e-01,
    -4.060928e-01, -4.354041e-02, 8.138198e-02, 6.527314e-02, 1.088553e-01,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3.519205e-01])
# First 8 of 128 dims, and the projection of all 128 on a fixed random direction.
FACENET_128_HEAD = np.array([-0.007224, -0.176073, -0.006354, 0.070641, 0.021752, 0.116487, -0.037393, 0.048793])
FACENET_128_PROJECTION = 0.206360


# forensic-v5 on test_double_jpeg's spliced astronaut, with its JPEG table: every feature in play.
FORENSIC_V5_SPLICED = np.array([
    -2.547019e-01, -2.852628e-01, 1.605809e-02, -5.517916e-02, -3.046524e-01, -7.941049e-02, -1.338931e-02,
    2.736502e-01, 1.433116e-01, 2.700463e-02, -4.768505e-02, -1.804725e-02, 1.143461e-01, 6.988106e-02,
    1.285371e-01, 2.304608e-02, 1.784582e-01, -2.777891e-01, 7.624305e-03, 8.518858e-02, 2.657449e-02,
    2.603179e-02, -2.087542e-04, -4.315865e-02, -4.348014e-02, 1.464512e-02, -4.576853e-03, -8.452382e-03,
    5.875678e-02, 1.508134e-01, 8.973656e-02, 1.332338e-01, 4.420605e-02, 3.499059e-02, 6.431436e-03,
    2.393245e-01, -2.077791e-01, 6.351448e-02, 2.736502e-01, 2.852628e-01, 1.143461e-01, 2.239147e-01,
    1.784797e-02, 1.545966e-01, -2.823501e-02, 2.936838e-02, -5.083465e-03, 1.545966e-01, 1.279513e-01,
    3.886686e-04, -5.358905e-03, -4.573750e-03, 6.081820e-03, -1.520643e-03, 6.081820e-03, 2.239147e-01])


def test_forensic_v5_vectors_are_pinned():
    from .test_double_jpeg import KEYPOINTS as SPLICE_KEYPOINTS
    from .test_double_jpeg import _spliced

    embedder = ForensicEmbedder()
    assert (embedder.name, embedder.dims) == ("forensic-v5", 56)
    got = embedder.embed_regions([face_photo(0, 400)], [KEYPOINTS], origins=[(0, 0)], scales=[1.0])[0]
    # Tolerance for libjpeg builds (error level analysis re-encodes), far below any feature change.
    np.testing.assert_allclose(got, FORENSIC_V5, rtol=0, atol=2e-4)
    pixels, table = _spliced()
    got = embedder.embed_regions([pixels], [SPLICE_KEYPOINTS], origins=[(0, 0)], tables=[table.reshape(-1)])[0]
    np.testing.assert_allclose(got, FORENSIC_V5_SPLICED, rtol=0, atol=2e-4)


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
