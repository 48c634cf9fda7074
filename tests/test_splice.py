"""The splice-v1 network: patches, a few seconds of training, weights that round-trip, Ray Train."""

import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fakeface_ray.config import SpliceConfig, SynthConfig
from fakeface_ray.stages.embedders import EmbedderError
from fakeface_ray.stages.faces import part_patches

from .photos import face_photo, jpeg_bytes

KEYPOINTS = (140, 165, 260, 165, 200, 235, 150, 300, 250, 300)


def test_part_patches_are_native_and_padded_at_the_border():
    image = np.random.default_rng(0).integers(0, 256, (50, 60, 3)).astype(np.uint8)
    points = np.array([10, 10, 50, 10, 30, 25, 20, 45, 40, 45], dtype=np.float32)
    patches = part_patches(image, points, 16)
    assert patches.shape == (4, 16, 16, 3) and patches.dtype == np.uint8
    np.testing.assert_array_equal(patches[0], image[2:18, 2:18])  # pixels untouched, never resampled
    # The mouth patch (centre 30, 45) reaches 5 rows past the bottom: the last row is repeated.
    np.testing.assert_array_equal(patches[3, :13], image[37:50, 22:38])
    assert all(np.array_equal(patches[3, r], image[49, 22:38]) for r in range(13, 16))


@pytest.fixture(scope="module")
def reals(tmp_path_factory):
    from fakeface_ray.learning.splice_training import TrainingImage

    folder = tmp_path_factory.mktemp("reals")
    images = []
    for i in range(12):
        path = folder / f"r{i}.jpg"
        path.write_bytes(jpeg_bytes(face_photo(i, 400), 90))
        images.append(TrainingImage(f"r{i}", str(path), KEYPOINTS, 0))
    return images


def test_too_few_reals_are_refused_with_the_reason(reals):
    from fakeface_ray.learning.splice_training import SpliceTrainingError, check_training_set

    with pytest.raises(SpliceTrainingError, match="3 usable training reals, fewer than splice.min_reals=10"):
        check_training_set(reals[:3], SpliceConfig())
    with pytest.raises(SpliceTrainingError, match="0 usable training reals \\(12 more have faces under 96 px"):
        check_training_set([], SpliceConfig(), small_faces=12)


def test_more_workers_than_a_network_has_reals_for_are_refused(reals):
    from fakeface_ray.learning.splice_training import SpliceTrainingError, check_worker_shares, worker_share

    fakes = [replace(image, image_id=f"f{k}", label=1) for k, image in enumerate(reals[:4])]
    mixed = [image for pair in zip(reals[:4], fakes) for image in pair]  # real, fake, real, fake, ...
    # Two workers: one would train on the 4 reals, the other on the 4 fakes alone.
    assert [image.label for image in worker_share(mixed, 1, 2)] == [1, 1, 1, 1]
    with pytest.raises(SpliceTrainingError, match="workers=2 leaves a worker of net-1 \\(8 images, 4 reals\\) 0 "):
        check_worker_shares({"net-0": reals, "net-1": mixed}, replace(SpliceConfig(), workers=2), SynthConfig())
    with pytest.raises(SpliceTrainingError, match="workers=16 leaves a worker of net-0"):
        check_worker_shares({"net-0": reals}, replace(SpliceConfig(), workers=16), SynthConfig())
    three = replace(SpliceConfig(), workers=3)
    check_worker_shares({"net-0": reals, "net-1": mixed}, three, SynthConfig())
    # Blends from another face alone need two reals in each share; the last share of `mixed` has one.
    with pytest.raises(SpliceTrainingError, match="1 training reals, fewer than the 2"):
        check_worker_shares({"net-1": mixed}, three, replace(SynthConfig(), donors=("other",)))


def test_gpu_training_on_a_cluster_without_gpus_is_refused_up_front():
    from fakeface_ray.learning.splice_training import SpliceTrainingError, check_resources

    with pytest.raises(SpliceTrainingError, match="has 0 GPUs"):
        check_resources(replace(SpliceConfig(), use_gpu=True), {"CPU": 16.0})
    with pytest.raises(SpliceTrainingError, match="workers=4 needs a CPU each"):
        check_resources(replace(SpliceConfig(), workers=4), {"CPU": 2.0})
    check_resources(replace(SpliceConfig(), workers=2, use_gpu=True), {"CPU": 8.0, "GPU": 2.0})


def test_epoch_examples_label_and_weight_each_kind(reals):
    from fakeface_ray.learning.splice_training import TrainingImage, epoch_examples
    from fakeface_ray.stages.embedders.splice import MAP, PATCH
    from fakeface_ray.stages.imaging import decode_image

    images = reals[:4] + [TrainingImage("f0", reals[4].uri, KEYPOINTS, 1)]
    pixels = [decode_image(Path(i.uri).read_bytes(), 10**8).image for i in images]
    config = replace(SpliceConfig(), fake_fraction=0.5)
    x, y, b = epoch_examples(pixels, images, np.array([1, 0, 3, 2, -1]), config, SynthConfig(), seed=0, epoch=0)
    assert x.shape == (5, 4, PATCH, PATCH, 3) and b.shape == (5, 4, MAP, MAP, 2)
    assert y[4, 0] == 1 and b[4, ..., 1].max() == 0  # a labelled fake: no boundary weight
    synthetic = [n for n in range(4) if y[n, 0] == 1]
    assert all(b[n, ..., 0].max() > 0 for n in synthetic)  # its blend shows in some patch
    assert all(b[n, ..., 0].max() == 0 and y[n, 0] == 0 for n in range(4) if n not in synthetic)
    again = epoch_examples(pixels, images, np.array([1, 0, 3, 2, -1]), config, SynthConfig(), seed=0, epoch=0)
    np.testing.assert_array_equal(again[0], x)


@pytest.mark.slow
def test_a_short_training_lowers_the_loss_and_the_weights_round_trip(reals, tmp_path):
    from fakeface_ray.learning.splice_training import fit_splice, save_splice
    from fakeface_ray.stages.embedders.splice import DIMS, SpliceEmbedder
    from fakeface_ray.stages.imaging import decode_image

    config = replace(SpliceConfig(), epochs=6, batch_size=8, learning_rate=3e-3)
    net, history = fit_splice(reals, config, SynthConfig(), seed=0)
    assert len(history) == 6 and history[-1]["loss"] < history[0]["loss"], history
    metadata = save_splice(net, tmp_path, history, {"note": "test"})
    assert len(metadata["sha256"]) == 64 and metadata["history"] == history
    image = decode_image(Path(reals[0].uri).read_bytes(), 10**8).image
    loaded = SpliceEmbedder(tmp_path).embed_images([image], [np.array(KEYPOINTS)])
    direct = SpliceEmbedder(tmp_path, net=net).embed_images([image], [np.array(KEYPOINTS)])
    assert loaded.shape == (1, DIMS)
    np.testing.assert_allclose(loaded, direct, rtol=1e-5, atol=1e-5)
    (tmp_path / "splice.weights.h5").write_bytes(b"not the weights")
    with pytest.raises(EmbedderError, match="sha256"):
        SpliceEmbedder(tmp_path)


@pytest.mark.slow
@pytest.mark.ray
def test_ray_train_with_two_workers_writes_verified_weights_of_each_network(reals, tmp_path, ray_session):
    from fakeface_ray.learning.splice_training import train_splice
    from fakeface_ray.stages.embedders.splice import SpliceModel
    from fakeface_ray.storage.locations import location

    config = replace(SpliceConfig(), epochs=1, batch_size=4, workers=2)
    handler = signal.getsignal(signal.SIGINT)
    saved = train_splice({"net-0": reals, "net-1": reals[:10]}, config, SynthConfig(), seed=0,
                         folder=location(tmp_path / "model"), storage=str(tmp_path / "ray-train"))
    # Ray Train's handler, which holds its controller, is gone: Ctrl-C interrupts again, the controller ends.
    assert signal.getsignal(signal.SIGINT) is handler
    assert _train_controllers_ending_alive(ray_session) == 0
    assert saved["net-0"]["workers"] == 2 and saved["net-0"]["training_reals"] == 12
    assert saved["net-1"]["image_ids"] == sorted(i.image_id for i in reals[:10])
    assert all(len(SpliceModel(tmp_path / "model" / name).verified()) > 1000 for name in ("net-0", "net-1"))


def _train_controllers_ending_alive(ray, wait_s: float = 30.0) -> int:
    """How many Ray Train controller actors are still alive after up to `wait_s` (GCS's actor table:
    the state API needs the dashboard, which the tests' Ray does not start)."""
    from ray._private import state

    deadline = time.monotonic() + wait_s
    while True:
        alive = sum(actor["ActorClassName"].endswith("TrainController") and actor["State"] == "ALIVE"
                    for actor in state.actors().values())
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


class _Constant:
    """A stand-in network: every patch scores `value` in every dim; records how many patches it saw."""

    def __init__(self, value: float):
        self.value, self.seen = value, 0

    def embed_patches(self, patches: np.ndarray) -> np.ndarray:
        self.seen += len(patches)
        return np.full((len(patches), 136), self.value, dtype=np.float32)


def _rows(tmp_path, reals):
    import hashlib

    import pyarrow as pa

    from fakeface_ray.storage.schema import embeddings_schema

    rows = []
    for k, item in enumerate(reals[:4]):
        data = Path(item.uri).read_bytes()
        rows.append({"image_id": item.image_id, "uri": item.uri, "label": "real",
                     "sha256": hashlib.sha256(data).hexdigest(), "status": "ok", "n_faces": 1,
                     "face_box": [100, 100, 200, 250], "keypoints": list(KEYPOINTS), "embedder": "forensic-v11",
                     "embedding": [float(k)] * 3})
    rows[2]["sha256"] = "0" * 64  # the file changed since its row was made
    rows.append({**rows[0], "image_id": "gone", "uri": str(tmp_path / "gone.jpg")})
    rows.append({**rows[0], "image_id": "no face", "status": "no_face", "embedding": None, "keypoints": None,
                 "face_box": None})
    return pa.Table.from_pylist(rows, schema=embeddings_schema(3))


def test_splice_scores_come_from_the_unseen_network_or_the_mean_and_bad_files_become_error_rows(reals, tmp_path):
    from fakeface_ray.stages.splice_features import SCORE_DIMS, SpliceFeatures, SpliceNetworks

    nets = [_Constant(1.0), _Constant(3.0)]
    stage = SpliceFeatures(SpliceNetworks((b"", b""), "concat", 10**8, {"r0": 1, "r1": 0}), embedders=nets)
    out = stage(_rows(tmp_path, reals)).to_pylist()
    by_id = {r["image_id"]: r for r in out}
    assert [r["image_id"] for r in out] == ["r0", "r1", "r2", "r3", "gone", "no face"]  # every row, in place
    assert by_id["r0"]["embedding"] == [0.0] * 3 + [3.0] * SCORE_DIMS  # its fold's network only
    assert by_id["r1"]["embedding"] == [1.0] * 3 + [1.0] * SCORE_DIMS
    assert by_id["r3"]["embedding"] == [3.0] * 3 + [2.0] * SCORE_DIMS  # not assigned: the mean of both
    assert by_id["r2"]["status"] == "read_error" and "changed since its row was made" in by_id["r2"]["error"]
    assert by_id["gone"]["status"] == "read_error" and by_id["gone"]["embedding"] is None
    assert by_id["no face"]["status"] == "no_face" and by_id["no face"]["embedding"] is None
    assert {r["embedder"] for r in out} == {"forensic-v11+splice-v1"}
    assert (nets[0].seen, nets[1].seen) == (2, 2)  # r1 and r3; r0 and r3

    alone = SpliceFeatures(SpliceNetworks((b"",), "alone", 10**8), embedders=[_Constant(5.0)])(
        _rows(tmp_path, reals)).to_pylist()
    assert alone[0]["embedding"] == [5.0] * SCORE_DIMS and alone[0]["embedder"] == "splice-v1"


def test_cross_fitting_folds_are_stratified_and_seeded(reals):
    from fakeface_ray.learning.splice_training import TrainingImage
    from fakeface_ray.runs import _cross_fit_folds

    images = reals + [TrainingImage(f"f{i}", "x", KEYPOINTS, 1) for i in range(6)]
    folds = _cross_fit_folds(images, 3, seed=0)
    labels = np.array([i.label for i in images])
    assert all(np.bincount(folds[labels == label]).tolist() == [n // 3] * 3 for label, n in ((0, 12), (1, 6)))
    np.testing.assert_array_equal(folds, _cross_fit_folds(images, 3, seed=0))
    assert (_cross_fit_folds(images, 0, seed=0) == -1).all()
