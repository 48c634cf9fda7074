import numpy as np
import pytest

from fakeface_ray.stages import faces
from fakeface_ray.stages.faces import Detection


def test_expand_box_adds_half_margin_per_side_and_clamps():
    assert faces.expand_box((10, 20, 100, 50), 0.2, 1000, 1000) == (0, 15, 120, 75)
    assert faces.expand_box((10, 20, 100, 50), 0.0, 1000, 1000) == (10, 20, 110, 70)
    assert faces.expand_box((900, 900, 200, 200), 0.5, 1000, 1000) == (850, 850, 1000, 1000)
    # A box MTCNN places partly outside the frame still gives a non-empty crop.
    assert faces.expand_box((-30, -10, 20, 5), 0.0, 100, 100) == (0, 0, 1, 1)


def test_crop_face_is_square_rgb_of_requested_size():
    image = np.zeros((300, 200, 3), dtype=np.uint8)
    image[100:200, 50:150] = 200
    crop = faces.crop_face(image, (50, 100, 100, 100), margin=0.0, size=160)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    assert crop.min() == 200


def test_choose_face_takes_the_most_confident():
    kp = np.zeros(10, np.float32)
    found = [Detection((0, 0, 1, 1), 0.9, kp), Detection((5, 5, 1, 1), 0.99, kp), Detection((9, 9, 1, 1), 0.5, kp)]
    assert faces.choose_face(found).box == (5, 5, 1, 1)
    assert faces.choose_face([]) is None


def test_detection_from_mtcnn_keeps_keypoint_order():
    det = faces.detection_from_mtcnn({
        "box": [1, 2, 3, 4], "confidence": 0.5,
        "keypoints": {"nose": [5, 6], "mouth_right": [9, 10], "right_eye": [3, 4],
                      "left_eye": [1, 2], "mouth_left": [7, 8]}})
    assert det.keypoints.tolist() == list(range(1, 11))


def test_detection_from_a_scaled_copy_lands_in_native_pixels():
    found = {"box": [30, 60, 90, 120], "confidence": 0.9,
             "keypoints": {"left_eye": [50, 80], "right_eye": [100, 80], "nose": [75, 110],
                           "mouth_left": [55, 150], "mouth_right": [95, 150.5]}}
    det = faces.detection_from_mtcnn(found, scale=(0.5, 0.25))
    assert det.box == (60, 240, 180, 480) and det.confidence == 0.9
    assert det.keypoints.tolist() == [100, 320, 200, 320, 150, 440, 110, 600, 190, 602]
    # Edges are mapped, then rounded: the box still ends where the copy's box ends.
    odd = faces.detection_from_mtcnn({**found, "box": [1, 1, 2, 2]}, scale=(0.4, 0.4))
    assert odd.box == (2, 2, 6, 6)


def test_detection_scale_caps_the_longest_side_but_keeps_a_scannable_short_side():
    assert faces.detection_scale(600, 600, 300, 20) == 0.5
    assert faces.detection_scale(1200, 600, 300, 20) == 0.25
    assert faces.detection_scale(300, 200, 300, 20) == 1.0
    assert faces.detection_scale(6000, 4000, 0, 20) == 1.0  # 0: always full resolution
    assert faces.detection_scale(4000, 100, 400, 20) == 0.2  # not 0.1: the short side stays >= 20 px


def test_detection_copy_round_trips_a_box_within_a_pixel():
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    image[100:300, 200:360] = 255
    copy, scale = faces.detection_copy(image, 320, 20)
    assert copy.shape == (240, 320, 3) and scale == (0.5, 0.5)
    ys, xs = np.nonzero(copy[..., 0] > 127)
    box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    found = {"box": box, "confidence": 1.0, "keypoints": dict.fromkeys(faces.KEYPOINT_NAMES, [0, 0])}
    det = faces.detection_from_mtcnn(found, scale)
    assert np.abs(np.subtract(det.box, (200, 100, 160, 200))).max() <= 1
    same, unscaled = faces.detection_copy(image, 640, 20)
    assert same is image and unscaled == (1.0, 1.0)


def test_native_region_never_upsamples_and_moves_keypoints():
    image = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    det = Detection((100, 100, 100, 100), 0.9, np.array([120, 130] * 5, dtype=np.float32))
    small = faces.native_region(image, det, context=0.5, max_side=512)
    assert small.scale == 1.0 and small.origin == (75, 75)
    assert small.pixels.shape == (150, 150, 3)
    assert np.array_equal(small.pixels, image[75:225, 75:225])
    assert small.keypoints[:2].tolist() == [45, 55]
    capped = faces.native_region(image, det, context=0.5, max_side=75)
    assert capped.scale == 0.5 and capped.pixels.shape == (75, 75, 3)
    assert capped.keypoints[:2].tolist() == [22.5, 27.5]
    assert small.window == (0, 0, 150, 150)  # no window asked for: the whole region


def test_the_face_window_is_the_box_with_its_own_margin_in_region_pixels():
    image = np.zeros((400, 400, 3), dtype=np.uint8)
    det = Detection((100, 100, 100, 100), 0.9, np.array([120, 130] * 5, dtype=np.float32))
    region = faces.native_region(image, det, context=1.0, max_side=512, window_context=0.2)
    assert region.origin == (50, 50) and region.window == (40, 40, 160, 160)  # the image's (90, 90)-(210, 210)
    assert faces.native_region(image, det, 1.0, 100, 0.2).window == (20, 20, 80, 80)  # scaled by 0.5
    edge = Detection((0, 0, 100, 100), 0.9, np.array([20, 30] * 5, dtype=np.float32))
    assert faces.native_region(image, edge, 1.0, 512, 0.2).window == (0, 0, 110, 110)  # clamped like the region


def test_prewhiten_of_a_flat_image_is_finite():
    out = faces.prewhiten(np.full((2, 160, 160, 3), 7, dtype=np.uint8))
    assert np.isfinite(out).all() and np.allclose(out, 0)
    x = np.random.default_rng(1).normal(size=(160, 160, 3)) * 30 + 100
    white = faces.prewhiten(x)
    assert abs(white.mean()) < 1e-4 and abs(white.std() - 1) < 1e-3


def test_l2_normalize_rows_and_zero_rows():
    out = faces.l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])


@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_crop_maths_agree_with_box(margin):
    x0, y0, x1, y1 = faces.expand_box((40, 60, 80, 100), margin, 640, 480)
    assert (x1 - x0) == pytest.approx(80 * (1 + margin), abs=1)
    assert (y1 - y0) == pytest.approx(100 * (1 + margin), abs=1)
