"""The double-quantisation maps: gaps (first save coarser than the last) or a periodic preference
among the values (first save finer), where a photo was a JPEG before its last save; broken where edited."""

import io

import numpy as np
import pytest
from PIL import Image

from fakeface_ray.stages.embedders.double_jpeg import (FIRST_STEP_CHOICES, SCALES, SHAPES, block_dct, double_save,
                                                      gap_map, modulation_map, reachable, single_save)
from fakeface_ray.stages.embedders.forensic import DQ_FEATURES, FEATURE_NAMES, ZONE_FEATURES, ForensicEmbedder, region_features
from fakeface_ray.stages.imaging import decode_image

from .photos import jpeg_bytes

# Five landmarks placed so that the left eye's ellipse covers PASTE (the photo's content does not matter).
KEYPOINTS = np.array([112, 132, 208, 132, 160, 188, 120, 240, 200, 240], dtype=np.float32)
PASTE = (slice(112, 160), slice(80, 144))  # 48x64 px over the left eye, on the 8x8 grid


def _saved(pixels: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixels saved as a JPEG and decoded, with the file's luma table."""
    decoded = decode_image(jpeg_bytes(pixels, quality), 10**8)
    return decoded.image, decoded.quantisation


def _spliced(first: int = 50, last: int = 90) -> tuple[np.ndarray, np.ndarray]:
    """The photo published at quality `first`, its left eye replaced by a resampled patch, saved at `last`."""
    from skimage import data

    photo = _saved(data.astronaut()[96:416, 96:416], first)[0]
    source = np.asarray(Image.fromarray(photo).resize((347, 347), Image.BICUBIC))
    edited = photo.copy()
    edited[PASTE] = source[PASTE]
    return _saved(edited, last)


def _luma(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def test_the_decoder_reads_a_jpegs_luma_table_and_nothing_from_other_files():
    _, table = _saved(np.full((32, 32, 3), 128, np.uint8), 50)
    assert table.shape == (8, 8) and table[0, 0] == 16 and table[0, 1] == 11  # libjpeg's table at quality 50
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(buffer, format="PNG")
    assert decode_image(buffer.getvalue(), 10**8).quantisation is None


def test_an_untouched_second_save_keeps_the_gaps_and_a_pasted_patch_fills_them():
    pixels, table = _spliced()
    share, used, offset = gap_map(_luma(pixels), (0, 0), table)
    assert used >= 3 and offset == (0, 0)
    pasted = np.zeros(share.shape, dtype=bool)
    pasted[14:20, 10:18] = True  # PASTE in blocks
    assert np.nanmean(share[pasted]) > np.nanmean(share[~pasted]) + 0.2


def _untouched_and_edited(first: int, last: int, scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Magnitudes 1..20 of Laplacian coefficients saved at `first` then `last` (decoding noise between),
    and of the same saved once at `last` (an edit)."""
    rng = np.random.default_rng(seed)
    before = rng.laplace(0, scale, 40000)
    untouched = np.abs(np.round((np.round(before / first) * first + rng.uniform(-0.5, 0.5, before.size)) / last))
    edited = np.abs(np.round((before + rng.normal(0, 3, before.size)) / last))
    return tuple(v[(v > 0) & (v <= 20)].astype(int) for v in (untouched, edited))


# Steep envelopes, where lift prefers a sparser lattice than the true one.
@pytest.mark.parametrize("first, last, scale", [(16, 10, 15), (20, 12, 15)])
def test_the_likelihood_picks_a_first_step_whose_gaps_hold_no_untouched_value_where_lift_does_not(first, last, scale):
    untouched, edited = _untouched_and_edited(first, last, scale)
    region = np.concatenate([untouched[: int(0.85 * 2000)], edited[: int(0.15 * 2000)]])  # 15% edited
    histogram = np.bincount(region, minlength=21)
    by_lift = FIRST_STEP_CHOICES["lift"](histogram, last)
    assert by_lift[untouched].mean() > 0.15  # lift's sparser wrong step
    by_likelihood = FIRST_STEP_CHOICES["likelihood"](histogram, last)
    assert by_likelihood[untouched].mean() == 0.0 and by_likelihood[edited].mean() > 0.4


def test_a_first_step_half_way_between_last_steps_reaches_both_and_other_ratios_keep_their_gaps():
    # 12 / 8: the multiples 1.5, 4.5, 7.5 ... land half-way, and decoding noise sends them either way.
    assert reachable(12, 8).all()
    # 16 / 10: 0, 1.6, 3.2, 4.8, 6.4, 8, 9.6 ... round to 0, 2, 3, 5, 6, 8, 10: 1, 4, 7 and 9 stay gaps.
    assert np.flatnonzero(~reachable(16, 10))[:4].tolist() == [1, 4, 7, 9]


# np.round's lattice gave these step pairs false gaps (lift, which the zones keep, picks a sparser wrong
# step on 12/8 and 6/4 either way). With both neighbours reachable, 12/8 and 6/4 leave no gap at all,
# so the likelihood reads no first step; 15/6 keeps true gaps, which hold edited values and no untouched one.
@pytest.mark.parametrize("first, last, has_gaps", [(12, 8, False), (15, 6, True), (6, 4, False)])
def test_the_likelihoods_gaps_of_a_half_way_step_pair_hold_no_untouched_value(first, last, has_gaps):
    untouched, edited = _untouched_and_edited(first, last, 40)
    region = np.concatenate([untouched[:1700], edited[:300]])
    gaps = FIRST_STEP_CHOICES["likelihood"](np.bincount(region, minlength=21), last)
    assert (gaps is not None) == has_gaps == (not reachable(first, last).all())
    if has_gaps:
        assert gaps[untouched].mean() == 0.0 and gaps[edited].mean() > 0.4


def test_the_likelihood_sees_no_coarser_first_step_in_a_single_or_finer_first_save():
    for first, last in ((8, 8), (5, 8), (3, 8)):
        untouched, _ = _untouched_and_edited(first, last, 40)
        assert FIRST_STEP_CHOICES["likelihood"](np.bincount(untouched[:2000], minlength=21), last) is None


def test_a_single_save_shows_no_gaps():
    from skimage import data

    pixels, table = _saved(data.astronaut()[96:416, 96:416], 90)
    assert gap_map(_luma(pixels), (0, 0), table)[1] == 0


def test_a_finer_first_step_leaves_a_periodic_pattern_and_none_when_the_last_is_a_multiple():
    # Seven first steps land in five last-step bins: some bins get two, against the smooth envelope.
    # Laplacian envelopes wide enough to reach the bins compared.
    wide = (np.repeat(SHAPES, len(SCALES)) == 1) & (np.tile(SCALES, len(SHAPES)) >= 3)
    against = (double_save(5, 7) - single_save(7))[wide]
    np.testing.assert_allclose(against[:, 6:11] - against[:, 6:11].mean(axis=1, keepdims=True),
                               against[:, 11:16] - against[:, 11:16].mean(axis=1, keepdims=True), atol=0.05)
    assert np.ptp(against[:, 5:15], axis=1).min() > 0.3
    # Every bin gets two multiples of a step half the last one: nothing periodic to read.
    assert np.ptp(np.diff((double_save(3, 6) - single_save(6))[wide], axis=1)[:, 5:15], axis=1).max() < 0.02


def test_one_save_is_not_read_as_two_and_a_finer_first_save_is():
    from skimage import data

    photo = data.astronaut()[96:416, 96:416]
    for quality in (50, 70, 85, 95):
        pixels, table = _saved(photo, quality)
        assert modulation_map(_luma(pixels), (0, 0), table)[1] <= 1
    pixels, table = _saved(_saved(photo, 80)[0], 70)
    assert modulation_map(_luma(pixels), (0, 0), table)[1] >= 10


def test_a_pasted_patch_breaks_the_pattern_of_a_finer_first_save():
    pixels, table = _spliced(first=85, last=60)
    assert gap_map(_luma(pixels), (0, 0), table)[1] == 0  # no gaps in this direction
    score, used, _ = modulation_map(_luma(pixels), (0, 0), table)
    assert used >= 3
    pasted = np.zeros(score.shape, dtype=bool)
    pasted[14:20, 10:18] = True
    assert np.nanmean(score[pasted]) > np.nanmean(score[~pasted]) + 0.02


def test_the_grid_follows_the_region_origin():
    luma = _luma(_spliced()[0])
    whole, _ = block_dct(luma, (0, 0))
    cut, offset = block_dct(luma[21:, 13:], (13, 21))
    assert offset == (3, 3)  # the region's row 3, column 3 is the image's (24, 16), a block corner
    np.testing.assert_array_equal(cut[0, 0], whole[3, 2])


def _named(features: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    return {name: float(features[FEATURE_NAMES.index(name)]) for name in names}


def test_the_forensic_features_point_at_the_pasted_eye_and_stay_zero_without_grid_or_table():
    pixels, table = _spliced()
    features = _named(region_features(pixels, KEYPOINTS, (0, 0), table), DQ_FEATURES)
    assert features["dq_frequencies"] > 0
    assert features["dq_left_eye"] > 0.2 and features["dq_left_eye"] > features["dq_right_eye"] + 0.2
    assert features["dq_max_part"] == features["dq_left_eye"]
    pixels_m, table_m = _spliced(first=85, last=60)
    features = _named(region_features(pixels_m, KEYPOINTS, (0, 0), table_m), DQ_FEATURES)
    assert features["dqm_frequencies"] > 0 and features["dq_frequencies"] == 0
    assert features["dqm_left_eye"] > features["dqm_right_eye"] + 0.02
    assert features["dqm_max_part"] == features["dqm_left_eye"]
    for origin, known in (((0, 0), None), (None, table)):
        off = _named(region_features(pixels, KEYPOINTS, origin, known), DQ_FEATURES + ZONE_FEATURES)
        assert not any(off.values())
    # The embedder's own call: a table of zeros (not a JPEG) counts as none.
    embedder = ForensicEmbedder()
    with_table, without = embedder.embed_regions([pixels] * 2, [KEYPOINTS] * 2, origins=[(0, 0)] * 2,
                                                 tables=[table.reshape(-1), np.zeros(64, np.int32)])
    assert np.any(with_table != without)


# A small face in the middle of the 512-px astronaut, so that the head's context (1.6-3 face radii) is in the image.
ASTRONAUT_KEYPOINTS = np.array([232, 220, 280, 220, 256, 248, 236, 276, 276, 276], dtype=np.float32)
ASTRONAUT_EYE = (slice(200, 240), slice(208, 256))
ASTRONAUT_MOUTH = (slice(264, 296), slice(224, 288))


def _astronaut_zones(patch: tuple[slice, slice] | None) -> dict[str, float]:
    """ZONE_FEATURES of the astronaut saved at 50 then 90, `patch` first replaced by an upscaled copy."""
    from skimage import data

    photo = _saved(data.astronaut(), 50)[0]
    edited = photo.copy()
    if patch is not None:
        edited[patch] = np.asarray(Image.fromarray(photo).resize((555, 555), Image.BICUBIC))[patch]
    pixels, table = _saved(edited, 90)
    return _named(region_features(pixels, ASTRONAUT_KEYPOINTS, (0, 0), table), ZONE_FEATURES)


@pytest.fixture(scope="module")
def astronaut_zones() -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """The astronaut's zones clean, with the eye edited, and with the mouth edited."""
    return tuple(_astronaut_zones(patch) for patch in (None, ASTRONAUT_EYE, ASTRONAUT_MOUTH))


def test_the_zones_read_an_edited_part_against_the_head_around_the_face(astronaut_zones):
    clean, eye, mouth = astronaut_zones
    assert eye["dq_eyes_zone"] > clean["dq_eyes_zone"] + 0.05
    assert mouth["dq_mouth_zone"] > clean["dq_mouth_zone"] + 0.05
    assert mouth["dq_mouth_zone"] - clean["dq_mouth_zone"] > mouth["dq_eyes_zone"] - clean["dq_eyes_zone"]
    assert min(eye["dq_inner_head"], mouth["dq_inner_head"]) > clean["dq_inner_head"] + 0.05


def test_the_zones_upper_readings_rise_where_an_edit_reaches_and_the_head_outside_stays(astronaut_zones):
    clean, eye, mouth = astronaut_zones
    # The share of blocks above the context's 95th percentile rises most in the zone that was edited.
    for zone, edited, other in (("eyes_zone", eye, mouth), ("mouth_zone", mouth, eye)):
        share = f"dq_{zone}_share"
        assert edited[share] > clean[share] + 0.05 and edited[share] > other[share]
    for reading, rise in (("inner_head_p90", 0.1), ("spread", 0.1), ("hotspot", 0.02)):
        assert min(eye[f"dq_{reading}"], mouth[f"dq_{reading}"]) > clean[f"dq_{reading}"] + rise, reading
    assert eye["dq_outer_head"] == pytest.approx(clean["dq_outer_head"], abs=1e-6)  # beyond the edits' reach


def test_a_face_that_fills_its_region_leaves_the_upper_zone_readings_at_zero():
    pixels, table = _spliced()
    # Landmarks spread three times wider: the context (1.6-3 face radii) falls outside the region.
    centre = KEYPOINTS.reshape(5, 2).mean(axis=0)
    wide = ((KEYPOINTS.reshape(5, 2) - centre) * 3 + centre).reshape(-1)
    features = region_features(pixels, wide, (0, 0), table)
    assert _named(features, DQ_FEATURES)["dq_frequencies"] > 0  # the map is read: only the context is missing
    zones = _named(features, ZONE_FEATURES)
    upper = [name for name in ZONE_FEATURES if name.endswith(("_p90", "_share", "_hotspot", "_spread"))]
    assert len(upper) == 16 and all(zones[name] == 0.0 for name in upper)
    assert all(np.isfinite(v) for v in zones.values())


def test_a_face_window_reads_the_face_as_the_region_it_cuts_and_the_zones_on_the_whole_region():
    pixels, table = _spliced()
    x0, y0, x1, y1 = 40, 56, 280, 300
    inner = KEYPOINTS.reshape(5, 2) - [x0, y0]
    alone = region_features(pixels[y0:y1, x0:x1], inner.reshape(-1), (x0, y0), table)
    windowed = region_features(pixels, KEYPOINTS, (0, 0), table, window=(x0, y0, x1, y1))
    face = [FEATURE_NAMES.index(n) for n in FEATURE_NAMES if n not in ZONE_FEATURES]
    np.testing.assert_array_equal(windowed[face], alone[face])
    whole = region_features(pixels, KEYPOINTS, (0, 0), table)
    zones = [FEATURE_NAMES.index(n) for n in ZONE_FEATURES]
    np.testing.assert_array_equal(windowed[zones], whole[zones])


def test_an_exif_turned_jpeg_gives_no_table():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(buffer, format="JPEG", quality=50, exif=exif)
    decoded = decode_image(buffer.getvalue(), 10**8)
    assert decoded.image.shape[:2] == (48, 32) and decoded.quantisation is None
