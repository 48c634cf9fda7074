"""MTCNN in numpy: its resampling and box rules by definition, and agreement with the mtcnn package."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fakeface_ray.config import ConfigError, ExtractConfig
from fakeface_ray.stages import mtcnn_numpy as net


def test_area_resize_is_the_mean_of_the_covered_input():
    # 5 -> 3 by area is 5 -> 15 by repetition, then the mean of each block of 5.
    rng = np.random.default_rng(0)
    image = rng.random((2, 5, 10, 3), dtype=np.float32)
    fine = image.repeat(3, axis=1).repeat(3, axis=2)  # 15 x 30
    expected = fine.reshape(2, 3, 5, 6, 5, 3).mean(axis=(2, 4))  # 3 x 6
    np.testing.assert_allclose(net.resize_area(image, 3, 6), expected, atol=1e-6)


def test_area_resize_keeps_a_flat_image_flat():
    image = np.full((1, 320, 300, 3), 0.25, dtype=np.float32)
    out = net.resize_area(image, 136, 127)
    assert out.shape == (1, 136, 127, 3)
    np.testing.assert_allclose(out, 0.25, atol=1e-6)


def test_crop_and_resize_samples_bilinearly_and_is_zero_outside():
    ys, xs = np.mgrid[0:11, 0:21].astype(np.float32)
    image = np.stack([xs + 100 * ys] * 3, axis=-1)[None]  # a plane: bilinear sampling is exact
    # y from 0.2 to 0.6 of (h - 1) = 10, x from 0.25 to 0.75 of (w - 1) = 20.
    crop = net.crop_and_resize(image, np.array([[0.2, 0.25, 0.6, 0.75]]), np.array([0]), 5)
    expected_y, expected_x = np.linspace(2, 6, 5), np.linspace(5, 15, 5)
    np.testing.assert_allclose(crop[0, :, :, 0], expected_x[None, :] + 100 * expected_y[:, None], atol=1e-4)
    outside = net.crop_and_resize(image, np.array([[-0.5, 0.0, 0.5, 1.0]]), np.array([0]), 3)
    assert np.all(outside[0, 0] == 0) and np.all(outside[0, 2] != 0)


def test_nms_drops_every_box_overlapping_a_better_one():
    # [image, x1, y1, x2, y2, score]: IoU(a, b) = IoU(b, c) = 0.67, IoU(a, c) = 0.43; d is on another image.
    a, b, c = [0, 0, 0, 10, 10, 0.9], [0, 2, 0, 12, 10, 0.8], [0, 4, 0, 14, 10, 0.7]
    d = [1, 0, 0, 10, 10, 0.5]
    kept = net.nms(np.array([c, d, a, b], dtype=np.float64), 0.5)
    # The package's rule: c goes because b, itself suppressed, overlaps it by more than 0.5.
    assert sorted(map(tuple, kept[:, [0, 5]])) == [(0.0, 0.9), (1.0, 0.5)]
    # Over the smaller box, a box inside another goes even when the union ratio is small.
    inner = np.array([[0, 0, 0, 20, 20, 0.9], [0, 5, 5, 10, 10, 0.8]])
    assert len(net.nms(inner, 0.7, method="union")) == 2
    assert len(net.nms(inner, 0.7, method="min")) == 1


def test_pyramid_scales_stop_at_the_networks_window():
    scales = net.pyramid_scales(320, 320, 20)
    assert scales[0] == pytest.approx(0.6) and len(scales) == 9
    assert 12 <= 320 * scales[-1] < 12 / 0.709
    assert len(net.pyramid_scales(20, 600, 20)) == 0


def test_a_large_min_face_size_scans_only_levels_the_window_fits():
    # The package's level count ignores min_face_size: at 40 px its last two levels of a 200 px image
    # are 10.7 and 7.6 px, under P-Net's 12 px window, where the package finds nothing.
    scales = net.pyramid_scales(200, 200, 40)
    assert scales[0] == pytest.approx(0.3) and len(scales) == 5 and (200 * scales).astype(int).min() >= 12
    detector = net.NumpyMTCNN()
    for min_face_size in (40, 80, 200):
        assert detector.detect_faces(np.zeros((200, 200, 3), dtype=np.uint8), min_face_size=min_face_size) == []


def test_proposals_use_the_packages_cell_geometry():
    prob = np.zeros((1, 3, 4), dtype=np.float32)
    prob[0, 1, 2] = 0.9
    offsets = np.zeros((1, 3, 4, 4), dtype=np.float32)
    offsets[0, 1, 2] = (0.1, 0, 0, -0.1)
    (box,) = net.proposals(prob, offsets, scale=0.5, threshold=0.6)
    # Cell (x=2, y=1): x from 2*2 + 1 to 2*2 + 12, offsets in units of 11 px, then / scale.
    np.testing.assert_allclose(box, [0, (5 + 1.1) / 0.5, 3 / 0.5, 16 / 0.5, (14 - 1.1) / 0.5, 0.9], atol=1e-5)


def test_a_numpy_detector_on_gpu_actors_is_refused():
    with pytest.raises(ConfigError, match="extract.detector=numpy"):
        ExtractConfig(detector="numpy", num_gpus=1)


def test_a_min_face_size_the_package_cannot_scan_is_refused_where_the_package_runs():
    for package in ({"detector": "tensorflow"}, {"num_gpus": 1}, {"device": "GPU:0"}):
        with pytest.raises(ConfigError, match="min_face_size=40 with the mtcnn package"):
            ExtractConfig(min_face_size=40, **package)
        assert ExtractConfig(min_face_size=20, **package).min_face_size == 20
    assert ExtractConfig(min_face_size=40).min_face_size == 40  # numpy on CPUs scans any size
    with pytest.raises(ConfigError, match="positive"):
        ExtractConfig(min_face_size=0)


def test_the_numpy_detector_runs_without_tensorflow():
    code = ("import sys, numpy as np\n"
            "from fakeface_ray.stages.extract import load_detector\n"
            "d = load_detector('auto', 'CPU:0', num_threads=1)\n"
            "print(type(d).__name__, d.detect_faces([np.full((64, 64, 3), 128, np.uint8)]), 'tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["NumpyMTCNN", "[[]]", "False"]


@pytest.mark.slow
def test_the_numpy_networks_match_the_keras_ones():
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet

    rng = np.random.default_rng(0)
    for name, keras_net, numpy_net, shape in (("pnet", PNet, net.pnet, (2, 37, 45, 3)),
                                             ("rnet", RNet, net.rnet, (5, 24, 24, 3)),
                                             ("onet", ONet, net.onet, (5, 48, 48, 3))):
        weights = net.load_weights(name)
        model = keras_net()
        model.build()
        model.set_weights(weights)
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        expected = [np.asarray(t) for t in model(x)]
        ours = numpy_net(weights, x)
        expected[-1] = expected[-1][..., 1]  # the face probability of the (not face, face) softmax
        for got, want in zip(ours, expected):
            np.testing.assert_allclose(got, want, atol=1e-4, err_msg=name)


@pytest.mark.slow
def test_the_numpy_detector_finds_what_the_package_finds(demo_corpus, detector):
    from mtcnn import MTCNN

    from fakeface_ray.stages import faces, imaging

    assert isinstance(detector, net.NumpyMTCNN)
    package = MTCNN()
    images = [imaging.decode_image(p.read_bytes(), 10**8).image for p in sorted(demo_corpus.rglob("*.jpg"))]
    copies = [faces.detection_copy(image, 320, 20)[0] for image in images]
    batches = [copies[k: k + 8] for k in range(0, len(copies), 8)] + [images[:3]]  # and full resolution
    compared = 0
    for batch in batches:
        for ours, theirs in zip(detector.detect_faces(batch), package.detect_faces(batch)):
            assert [f["box"] for f in ours] == [f["box"] for f in theirs]
            assert [f["keypoints"] for f in ours] == [{k: list(v) for k, v in f["keypoints"].items()} for f in theirs]
            np.testing.assert_allclose([f["confidence"] for f in ours], [f["confidence"] for f in theirs], atol=1e-4)
            compared += bool(ours)
    assert compared >= 35
    # Above 20 px the package finds nothing (its pyramid runs under the window; the config refuses it);
    # the numpy detector still finds each face it finds at 20 px, where the face is larger than 40 px.
    large = [copy for copy, found in zip(copies[:16], detector.detect_faces(copies[:16]))
             if found and min(found[0]["box"][2:]) > 60]
    assert len(large) >= 8
    assert all(detector.detect_faces(large, min_face_size=40))
    assert not any(package.detect_faces(large[:4], min_face_size=40))
