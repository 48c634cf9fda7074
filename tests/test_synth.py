"""Synthetic fakes: every transform seeded and deterministic, masks over the parts they name."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from fakeface_ray.config import ExtractConfig, SynthConfig, TrainConfig
from fakeface_ray.learning import train
from fakeface_ray.stages import blends
from fakeface_ray.stages.synth import FakeSynthesizer, choose_donors, synthetic_id

from .photos import face_photo, jpeg_bytes

# LFW faces at 400x400: the landmarks sit at the same place in every one of them.
KEYPOINTS = np.array([140, 165, 260, 165, 200, 235, 150, 300, 250, 300], dtype=np.float64)
EYE = 120.0


@pytest.mark.parametrize("part, inside", [("left_eye", (140, 165)), ("right_eye", (260, 165)),
                                          ("nose", (200, 225)), ("mouth", (200, 300))])
def test_each_part_mask_covers_its_landmark_and_not_the_others(part, inside):
    mask = blends.part_mask(KEYPOINTS, part, (400, 400))
    assert mask[inside[1], inside[0]]
    others = {(140, 165), (260, 165), (200, 300)} - {inside}
    assert not any(mask[y, x] for x, y in others)
    assert 0.005 < mask.mean() < 0.1


def test_the_inner_face_covers_every_landmark():
    mask = blends.part_mask(KEYPOINTS, "inner_face", (400, 400))
    assert all(mask[int(y), int(x)] for x, y in KEYPOINTS.reshape(5, 2))
    assert not mask[5, 5] and not mask[395, 200]


def test_deform_mask_is_seeded_and_stays_near_the_part():
    hard = blends.part_mask(KEYPOINTS, "nose", (400, 400))
    first = blends.deform_mask(hard, EYE, np.random.default_rng(3))
    assert np.array_equal(first, blends.deform_mask(hard, EYE, np.random.default_rng(3)))
    assert not np.array_equal(first, blends.deform_mask(hard, EYE, np.random.default_rng(4)))
    assert first.dtype == np.float32 and 0 <= first.min() and first.max() <= 1
    ys, xs = np.nonzero(first > 0.5)
    assert abs(xs.mean() - 200) < 0.2 * EYE and abs(ys.mean() - 225) < 0.2 * EYE


def test_poisson_blend_of_a_brightened_copy_gives_back_the_target():
    target = face_photo(1, 200).astype(float)
    mask = blends.part_mask(KEYPOINTS / 2, "nose", (200, 200)).astype(float)
    out = blends.poisson_blend(target, target + 30, mask)  # same gradients, other level
    np.testing.assert_allclose(out, target, atol=1e-6)
    assert np.array_equal(blends.poisson_blend(target, target, np.zeros((200, 200))), target)


@pytest.mark.parametrize("donor_kind", blends.DONORS)
@pytest.mark.parametrize("blend", blends.BLENDS)
def test_every_donor_and_blend_is_deterministic_and_changes_only_around_its_mask(donor_kind, blend):
    image, donor = face_photo(2, 400), face_photo(7, 400)

    def make(seed):
        return blends.synthesize(image, KEYPOINTS, np.random.default_rng(seed), donor=(donor, KEYPOINTS),
                                 donors=(donor_kind,), blends=(blend,), quality=(95, 96))

    fake = make(11)
    assert fake.jpeg == make(11).jpeg and fake.jpeg != make(12).jpeg
    assert fake.recipe["donor"] == donor_kind and fake.recipe["blend"] == blend
    assert fake.pixels.shape == image.shape and fake.mask.shape == image.shape[:2]
    assert fake.mask.max() > 0.4
    # Outside the mask (and a margin for JPEG blocks) only the re-save at quality 95 changed the pixels.
    far = ~ndimage.binary_dilation(fake.mask > 0, iterations=16)
    inside = fake.mask >= 0.9 * fake.mask.max()
    change = np.abs(fake.pixels.astype(float) - image.astype(float)).mean(axis=2)
    assert change[far].mean() < 2.0
    assert change[inside].mean() > change[far].mean()
    boundary = fake.boundary()
    assert boundary.max() <= 1.0 and boundary[far].max() == 0


def test_choose_donors_never_picks_the_face_itself():
    points = np.stack([KEYPOINTS + i for i in range(6)])
    donors = choose_donors(points, seed=0)
    assert len(donors) == 6 and all(d != i and 0 <= d < 6 for i, d in enumerate(donors))
    assert np.array_equal(donors, choose_donors(points, seed=0))
    assert choose_donors(points[:1], seed=0).tolist() == [-1]


def test_choose_donors_draws_among_the_closest_shapes_as_a_full_distance_matrix_would():
    from fakeface_ray.stages.synth import normalised_shape

    points = KEYPOINTS + np.random.default_rng(1).normal(0, 6, (300, 10))
    shapes = np.stack([normalised_shape(p) for p in points])
    distance = np.linalg.norm(shapes[:, None] - shapes[None], axis=(2, 3))
    np.fill_diagonal(distance, np.inf)
    rng = np.random.default_rng(7)
    expected = [int(rng.choice(np.argsort(row)[:5])) for row in distance]
    assert choose_donors(points, seed=7).tolist() == expected


def _batch(indices):
    n = len(indices)
    return {
        "image_id": np.array([f"real/{i}.jpg" for i in indices], dtype=object),
        "uri": np.array([f"/in/real/{i}.jpg" for i in indices], dtype=object),
        "bytes": np.array([jpeg_bytes(face_photo(i, 400), 92) for i in indices], dtype=object),
        "read_error": np.full(n, "", dtype=object),
        "face_box": np.tile([110, 110, 180, 220], (n, 1)),
        "face_confidence": np.full(n, 0.99, dtype=np.float32),
        "keypoints": np.tile(KEYPOINTS.astype(np.float32), (n, 1)),
        "donor_uri": np.full(n, "", dtype=object),
        "donor_keypoints": np.full((n, 10), np.nan, dtype=np.float32),
    }


def test_the_synth_stage_gives_k_fakes_per_parent_whatever_the_batching():
    stage = FakeSynthesizer(replace(SynthConfig(), variants=2, donors=("self", "retouch")), ExtractConfig(), seed=5)
    together = stage(_batch([0, 1, 2]))
    alone = stage(_batch([1]))
    assert list(together["image_id"]) == [synthetic_id(f"real/{i}.jpg", k) for i in range(3) for k in range(2)]
    assert list(together["parent_image_id"]) == [f"real/{i}.jpg" for i in range(3) for _ in range(2)]
    assert set(together["label"]) == {"fake"} and set(together["status"]) == {"ok"}
    assert list(alone["sha256"]) == list(together["sha256"][2:4])
    assert together["face"].shape == (6, 160, 160, 3) and (together["region_shape"] > 0).all()
    assert all(len(d) == 64 for d in together["sha256"])
    broken = _batch([3, 4])
    broken["read_error"][0] = "cannot read file: gone"
    broken["keypoints"][1] = 0.0  # a degenerate detection: a row with a reason, not a crash
    out = stage(broken)
    assert list(out["status"]) == ["synth_error"] * 4
    assert "parent image: cannot read file: gone" == out["error"][0] and "landmarks" in out["error"][2]


def test_a_parent_no_fake_can_be_made_from_is_an_error_row_and_its_batch_goes_on(tmp_path):
    # Only another face's parts are allowed and this parent has no donor; the next parent has one.
    stage = FakeSynthesizer(replace(SynthConfig(), variants=2, donors=("other",)), ExtractConfig(), seed=5)
    donor = tmp_path / "donor.jpg"
    donor.write_bytes(jpeg_bytes(face_photo(2, 400), 92))
    batch = _batch([0, 1])
    batch["donor_uri"][1], batch["donor_keypoints"][1] = str(donor), KEYPOINTS
    # A donor whose URI no longer opens counts as none.
    batch["donor_uri"][0], batch["donor_keypoints"][0] = "nosuchscheme://bucket/donor.jpg", KEYPOINTS
    out = stage(batch)
    assert list(out["status"]) == ["synth_error", "synth_error", "ok", "ok"]
    assert "no other usable real" in out["error"][0]
    # Landmarks that put every part outside the image: a reason, not a crash.
    with pytest.raises(blends.BlendError, match="outside the image"):
        blends.synthesize(face_photo(0, 400), KEYPOINTS + 2000.0, np.random.default_rng(0), donors=("self",))


def _embeddings(n_real: int, n_fake: int) -> train.Embeddings:
    rng = np.random.default_rng(0)
    ids = np.array([f"r{i}" for i in range(n_real)] + [f"f{i}" for i in range(n_fake)], dtype=object)
    y = np.array([0] * n_real + [1] * n_fake)
    return train.Embeddings(ids, ids, (rng.normal(size=(len(y), 3)) + y[:, None] * 3).astype(np.float32), y, "t")


def test_no_synthetic_row_of_a_test_image_reaches_training():
    data = _embeddings(20, 20)
    parents = np.repeat(data.ids[data.y == 0], 2)
    synthetic = train.Embeddings(np.array([f"{p}#synthetic-{k}" for p, k in zip(parents, [0, 1] * 20)], dtype=object),
                                 parents, np.full((40, 3), 3.0, np.float32), np.ones(40, dtype=np.int64), "t",
                                 parents=parents)
    config = TrainConfig(backend="loky", n_jobs=1, classifier="svc", c_grid=(1.0,), kernels=("linear",), test_split=0.5)
    kept, test = train.split(data, 0.5, seed=0)
    chosen = train.with_synthetic(kept, synthetic)
    trained_parents = set(chosen.parents[chosen.parents != None])  # noqa: E711
    assert trained_parents and trained_parents <= set(kept.ids)
    assert not trained_parents & set(test.ids)
    result = train.fit(data, config, seed=0, synthetic=synthetic)
    assert result.train_size == len(kept.ids) + 2 * int((kept.y == 0).sum())
    assert not {i for i in result.test.ids if "#synthetic" in i}
