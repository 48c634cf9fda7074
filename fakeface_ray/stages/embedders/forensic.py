"""Weight-free features that expose splicing: each facial part compared with the skin around it.

A pasted eye, nose or mouth comes from another photo: its sensor noise, JPEG history, colour and
sharpness differ from its new surroundings, and its border leaves an edge. All features are log-ratios
or differences of part against surroundings, so they are near zero on an untouched face whatever the
camera, and they are computed on native-resolution pixels, where those traces survive.

v2 adds the JPEG history on the file's own grid (`double_jpeg`): where the photo was a JPEG before
it was edited, untouched blocks keep the gaps of two quantisations and edited ones fill them.
v3 reads the other direction too, a first save finer than the last, where untouched blocks keep a
periodic preference among the values instead of gaps.
v4 reads that direction as a likelihood test against one save of a smooth envelope; v3's pattern
also fitted the steep start of photos saved once.
v5 compares the inner face with the head around it by the same seven readings, as magnitudes: a
swapped face differs from its context in either direction.
v6 reads both JPEG-history maps in zones around the eyes, the mouth and the inner head against the
head and background around the face, on a region twice the face box: a warp, a blend or a pasted
part resamples more than the part itself, so the face's own surroundings are not a clean reference.
v7 pools each part reading over the four parts (largest and mean magnitude) instead of keeping one
value per part: a fake may edit any one of them, and a classifier trained on about 60 images learns
one threshold per reading from all its fakes, not one per part from a quarter of them.
v8 reads the zones further: three more zones (the nose's surroundings, the face's border and the head
just outside it), each first zone's 90th percentile and its share of blocks above the context's 95th
percentile (an edit that reaches a few blocks hardly moves a mean), the inner head's hottest 3x3
blocks and its spread, each against the context. The JPEG history read against the head generalises
best across generators of all v7's readings (`benchmarks/feature_probe.py`).
v10 chooses the first save's step of the face's gap map (the `dq_` readings) by likelihood, a double
save with some values edited against one save, instead of by lift, which on steep histograms picks a
sparser wrong step whose gaps hold untouched values. (v9, a fix of the gap lattice, was measured and
not taken.)
v11 takes that fix on top of v10 (`double_jpeg.reachable`): a first-step multiple half-way between two
last steps reaches both, where v2-v10 kept only the even one and read about a quarter of untouched
values as gaps for step pairs such as 12/8, which the likelihood choice now picks.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image
from scipy import ndimage

from ...config import ExtractConfig
from ..faces import PARTS, l2_normalize
from . import double_jpeg

PART_FEATURES = ("noise", "ela", "cb", "cr", "luma", "edge", "sharpness")
# Each part reading's largest and mean magnitude over the four parts.
POOLED_FEATURES = tuple(f"part_{pool}_{name}" for pool in ("max", "mean") for name in PART_FEATURES)
# The same readings of the inner face against the head around it (hairline, jaw, ears, background),
# as magnitudes: a swapped face brings its own noise, sharpness and skin tone, more or less than the
# head it lands on.
FACE_FEATURES = tuple(f"face_{name}" for name in PART_FEATURES)
# max_edge: the sharpest part outline against its ring, signed (the pooled edge readings are magnitudes).
GLOBAL_FEATURES = ("noise_level", "ela_level", "blockiness", "max_edge")
# The same seven readings of each double-JPEG map: `dq_` gaps (first save coarser), `dqm_` modulation.
DQ_FEATURES = tuple(f"{prefix}_{name}" for prefix in ("dq", "dqm")
                    for name in ("frequencies", "face", *PARTS, "max_part"))
# Each double-JPEG map in zones against the head's context, 1.6-3 face radii out: the mean of each
# zone (both eyes' surroundings, the mouth's, the inner head, the nose's, the face's border at 0.8-1.3
# face radii, the head outside it at 1.3-1.6); the 90th percentile and the share of blocks above the
# context's 95th percentile (less 0.05, the context's own share) of the first three; the largest
# 3x3-block mean of the inner head; the log-ratio of the inner head's spread.
ZONES = ("eyes_zone", "mouth_zone", "inner_head", "nose_zone", "border", "outer_head")
PEAK_ZONES = ZONES[:3]
ZONE_READINGS = (ZONES + tuple(f"{zone}_p90" for zone in PEAK_ZONES) + tuple(f"{zone}_share" for zone in PEAK_ZONES)
                 + ("hotspot", "spread"))
ZONE_FEATURES = tuple(f"{prefix}_{reading}" for prefix in ("dq", "dqm") for reading in ZONE_READINGS)
# Fewer context blocks than this leave the percentile, share, hotspot and spread readings at zero.
MIN_CONTEXT_BLOCKS = 8
FEATURE_NAMES = POOLED_FEATURES + FACE_FEATURES + GLOBAL_FEATURES + DQ_FEATURES + ZONE_FEATURES
ELA_QUALITY = 90
EPS = 0.05
# Keypoints of an average MTCNN box as fractions of it, for crops that come without landmarks.
_TEMPLATE = np.array([0.31, 0.40, 0.69, 0.40, 0.50, 0.60, 0.35, 0.80, 0.65, 0.80], dtype=np.float32)


class ForensicEmbedder:
    """Splice-evidence features; `.embed(faces)` on crops, `.embed_regions(...)` on native pixels."""

    name = "forensic-v11"
    dims = len(FEATURE_NAMES) + 1  # + a constant that keeps the magnitude through L2 normalisation

    def embed(self, faces: np.ndarray, margin: float = ExtractConfig.margin) -> np.ndarray:
        """Features of uint8 [N, S, S, 3] RGB face crops, landmarks taken from an average face.

        Args:
            margin: the crops' margin around the face box, as the extract stage cut them.
        """
        faces = np.asarray(faces)
        side = faces.shape[1]
        keypoints = (margin / 2 + _TEMPLATE) / (1 + margin) * side
        return self.embed_regions(list(faces), [keypoints] * len(faces))

    def embed_regions(self, regions: list[np.ndarray], keypoints: list[np.ndarray],
                      origins: list[tuple[int, int]] | None = None,
                      scales: list[float] | None = None,
                      tables: list[np.ndarray] | None = None,
                      windows: list[tuple[int, int, int, int]] | None = None) -> np.ndarray:
        """Features of native-resolution face regions with landmarks in region coordinates.

        Args:
            origins: each region's top-left corner in its image, to line up the JPEG 8x8 grid.
            scales: region pixels per image pixel; the grid is only used where this is 1.
            tables: each file's JPEG luma quantisation table (64 values, zeros when not a JPEG).
            windows: each face's own window (x0, y0, x1, y1) in its region, where the part and face
                readings are taken; None: the whole region.
        """
        rows = []
        for i, (region, points) in enumerate(zip(regions, keypoints)):
            origin = origins[i] if origins is not None else None
            aligned = scales is None or scales[i] == 1.0
            table = np.asarray(tables[i]).reshape(8, 8) if tables is not None and np.any(tables[i]) else None
            window = windows[i] if windows is not None else None
            rows.append(region_features(region, points, origin if aligned else None, table, window))
        features = np.stack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
        with_constant = np.concatenate([features, np.ones((len(features), 1), np.float32)], axis=1)
        return l2_normalize(with_constant)


def region_features(region: np.ndarray, keypoints: np.ndarray, origin: tuple[int, int] | None,
                    table: np.ndarray | None = None,
                    window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """float32 [len(FEATURE_NAMES)] for one RGB uint8 region and its 10 landmark coordinates.

    Args:
        origin: the region's top-left corner in the original image when pixels are unscaled
            (aligns the JPEG grid); None when unknown.
        table: the file's JPEG luma quantisation table [8, 8]; None when it is not a JPEG.
        window: the face's own window (x0, y0, x1, y1) in the region; None: the whole region.
    """
    x0, y0, x1, y1 = window if window is not None else (0, 0, region.shape[1], region.shape[0])
    inner_origin = (origin[0] + x0, origin[1] + y0) if origin is not None else None
    inner_points = (np.asarray(keypoints, dtype=np.float32).reshape(5, 2) - [x0, y0]).reshape(-1)
    face = _face_features(np.asarray(region)[y0:y1, x0:x1], inner_points, inner_origin, table)
    features = np.concatenate([face, _zone_features(region, keypoints, origin, table)])
    return np.clip(np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0), -10, 10).astype(np.float32)


def _face_features(region: np.ndarray, keypoints: np.ndarray, origin: tuple[int, int] | None,
                   table: np.ndarray | None) -> np.ndarray:
    """Every feature but ZONE_FEATURES, read in the face's own window."""
    maps = reading_maps(region, origin)
    noise, ela, luma = maps[0], maps[1], maps[4]
    parts = part_readings(maps, keypoints)
    # Each part's value made finite and clipped, as every feature is, before pooling: a part without
    # room for its ring counts as unremarkable instead of voiding the reading for all four.
    magnitudes = np.abs(np.clip(np.nan_to_num(parts, nan=0.0, posinf=0.0, neginf=0.0), -10, 10))
    pooled = np.concatenate([magnitudes.max(axis=0), magnitudes.mean(axis=0)])
    # A column and a row of coordinates: the ellipse distances broadcast to the region.
    ys, xs = (axis.astype(np.float32) for axis in np.ogrid[0: luma.shape[0], 0: luma.shape[1]])
    face = face_radius(keypoints, ys, xs)
    # Magnitudes: a donor face may be noisier or smoother than the head it lands on.
    whole_face = np.abs(_contrast(maps.reshape(len(maps), -1), face < 1.0, (face > 0.85) & (face < 1.15),
                                  face > 1.25))
    global_features = np.array([
        np.log(noise.mean() + EPS),
        np.log(ela.mean() + EPS),
        _blockiness(luma, origin),
        parts[:, 5].max(),
    ], dtype=np.float32)
    double_jpeg_features = _double_jpeg_features(luma, keypoints, origin, table)
    return np.concatenate([pooled, whole_face, global_features, double_jpeg_features])


def reading_maps(region: np.ndarray, origin: tuple[int, int] | None) -> np.ndarray:
    """float32 [8, H, W] per-pixel maps of an RGB uint8 region: noise, error level, Cb, Cr, luma,
    gradient, fine and coarse detail (what PART_FEATURES compare)."""
    luma, cb, cr = _ycbcr(np.asarray(region, dtype=np.float32))
    noise = np.abs(luma - median3(luma))
    ela = _error_level(region, origin)
    grad = np.hypot(ndimage.sobel(luma, axis=0), ndimage.sobel(luma, axis=1))
    fine = np.abs(ndimage.laplace(luma))
    coarse = np.abs(luma - ndimage.gaussian_filter(luma, 2.0)) + EPS
    return np.stack([noise, ela, cb, cr, luma, grad, fine, coarse])


def part_readings(maps: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """float32 [len(PARTS), len(PART_FEATURES)]: each part against its ring, signed, before pooling."""
    ellipses = _part_ellipses(keypoints)
    return np.stack([_part_contrast(maps, ellipses, i) for i in range(len(ellipses))])


def _zone_features(region: np.ndarray, keypoints: np.ndarray, origin: tuple[int, int] | None,
                   table: np.ndarray | None) -> np.ndarray:
    """ZONE_FEATURES on the whole region: each map's zones against the head's context (zeros where
    nothing shows)."""
    out = np.zeros(len(ZONE_FEATURES), dtype=np.float32)
    if origin is None or table is None or min(region.shape[:2]) < 64:
        return out
    luma = _ycbcr(np.asarray(region, dtype=np.float32))[0]
    maps = double_jpeg.history_maps(luma, origin, table)
    zones = _head_zones(maps[0][0].shape, maps[0][2], keypoints)
    width = len(ZONE_READINGS)
    for k, (score, used, _) in enumerate(maps):
        if used:
            out[k * width: (k + 1) * width] = _zone_readings(score, zones)
    return np.nan_to_num(out, nan=0.0)


def _zone_readings(score: np.ndarray, zones: dict) -> np.ndarray:
    """ZONE_READINGS of one per-block map against the head's context (NaN where too few blocks show)."""
    out = np.full(len(ZONE_READINGS), np.nan, dtype=np.float32)
    context_mean = _mean_of(score, zones["context"])
    out[: len(ZONES)] = [_mean_of(score, zones[z]) - context_mean for z in ZONES]
    shown = np.isfinite(score)
    context = score[zones["context"] & shown]
    if len(context) < MIN_CONTEXT_BLOCKS:
        return out
    top, high = np.percentile(context, [90, 95])
    values = [score[zones[z] & shown] for z in PEAK_ZONES]
    out[len(ZONES): len(ZONES) + 2 * len(PEAK_ZONES)] = (
        [np.percentile(v, 90) - top if len(v) >= 2 else 0.0 for v in values]
        + [np.mean(v > high) - 0.05 if len(v) >= 2 else 0.0 for v in values])
    # Mean of each block's 3x3 neighbourhood over the blocks that show.
    smooth = ndimage.uniform_filter(np.where(shown, score, 0.0), 3) / np.maximum(
        ndimage.uniform_filter(shown.astype(np.float32), 3), 1e-6)
    inner = smooth[zones["inner_head"]]
    out[-2] = inner.max() - smooth[zones["context"]].max() if inner.size else 0.0
    head = values[PEAK_ZONES.index("inner_head")]
    out[-1] = math.log((np.std(head) + 1e-3) / (np.std(context) + 1e-3)) if len(head) >= 2 else 0.0
    return out


def _head_zones(shape: tuple[int, int], offset: tuple[int, int], keypoints: np.ndarray) -> dict:
    """Masks over a region's 8x8 blocks: ZONES, and the context around the face (1.6-3 face radii)."""
    ys, xs = _block_centres(shape, offset)
    le, re, nose, ml, mr = np.asarray(keypoints, dtype=np.float32).reshape(5, 2)
    eye_dist = max(float(np.linalg.norm(re - le)), 4.0)
    mouth = (ml + mr) / 2
    face = face_radius(keypoints, ys, xs)
    # A liquify warp or a blend reaches about an eye distance around the eyes and further around the mouth.
    eyes = (np.hypot(xs - le[0], ys - le[1]) < eye_dist) | (np.hypot(xs - re[0], ys - re[1]) < eye_dist)
    return {"eyes_zone": eyes, "mouth_zone": np.hypot(xs - mouth[0], ys - mouth[1]) < 1.4 * eye_dist,
            "inner_head": face <= 1.3, "nose_zone": np.hypot(xs - nose[0], ys - nose[1]) < eye_dist,
            "border": (face > 0.8) & (face <= 1.3), "outer_head": (face > 1.3) & (face <= 1.6),
            "context": (face > 1.6) & (face < 3.0)}


def _part_contrast(maps: np.ndarray, ellipses: list[tuple[float, float, float, float]], i: int) -> np.ndarray:
    """PART_FEATURES of part `i` against its ring (1.25-1.9 radii, other parts left out), read in the
    window the ring fits in rather than over the whole region."""
    cx, cy, rx, ry = ellipses[i]
    height, width = maps.shape[1:]
    y0, y1 = max(math.floor(cy - 1.9 * ry), 0), min(math.ceil(cy + 1.9 * ry) + 1, height)
    x0, x1 = max(math.floor(cx - 1.9 * rx), 0), min(math.ceil(cx + 1.9 * rx) + 1, width)
    if y1 <= y0 or x1 <= x0:
        return np.zeros(len(PART_FEATURES), dtype=np.float32)
    ys, xs = (axis.astype(np.float32) for axis in np.ogrid[y0:y1, x0:x1])
    radii = [_radius(e, ys, xs) for e in ellipses]
    r = radii[i]
    inside_any = np.any([q < 1.25 for q in radii], axis=0)
    window = maps[:, y0:y1, x0:x1].reshape(len(maps), -1)
    return _contrast(window, r < 1.0, (r > 0.85) & (r < 1.15), (r > 1.25) & (r < 1.9) & ~inside_any)


def _contrast(maps: np.ndarray, inside: np.ndarray, band: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """PART_FEATURES of an area against the ring around it (zeros when either is under 9 pixels).

    Args:
        maps: float32 [8, pixels]: noise, error level, Cb, Cr, luma, gradient, fine and coarse detail.
        band: the area's outline, where a blend leaves an edge.
    """
    areas = np.stack([inside, band, ring]).reshape(3, -1)
    counts = areas.sum(axis=1)
    if counts[0] < 9 or counts[2] < 9:
        return np.zeros(len(PART_FEATURES), dtype=np.float32)
    # One matrix product instead of a boolean gather per map and area: the region's pixels are read once.
    # An empty outline gives NaN means, which the caller turns into zeros.
    means = np.full((len(maps), 3), np.nan, dtype=np.float32)
    np.divide(maps @ areas.T.astype(np.float32), counts, out=means, where=counts > 0)
    noise, ela, cb, cr, luma, grad, fine, coarse = means
    inner, edge, outer = 0, 1, 2
    return np.array([
        np.log((noise[inner] + EPS) / (noise[outer] + EPS)),
        np.log((ela[inner] + EPS) / (ela[outer] + EPS)),
        (cb[inner] - cb[outer]) / 16.0,
        (cr[inner] - cr[outer]) / 16.0,
        np.log((luma[inner] + EPS) / (luma[outer] + EPS)),
        np.log((grad[edge] + EPS) / (grad[outer] + EPS)),
        np.log((fine[inner] + EPS) / coarse[inner]) - np.log((fine[outer] + EPS) / coarse[outer]),
    ], dtype=np.float32)


# Paeth's median-of-9 exchange network: after each pair (a, b), value a <= value b; the median ends in 4.
_MEDIAN9 = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8), (4, 7),
            (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def median3(x: np.ndarray) -> np.ndarray:
    """3x3 median filter, equal to `ndimage.median_filter(x, size=3)` and 7x faster on a face region."""
    padded = np.pad(x, 1, mode="symmetric")  # scipy's default "reflect" border
    height, width = x.shape
    v = [padded[i:i + height, j:j + width] for i in range(3) for j in range(3)]
    for a, b in _MEDIAN9:
        v[a], v[b] = np.minimum(v[a], v[b]), np.maximum(v[a], v[b])
    return v[4]


def _ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    return luma, 0.564 * (b - luma), 0.713 * (r - luma)


def _error_level(region: np.ndarray, origin: tuple[int, int] | None) -> np.ndarray:
    """Mean absolute change per pixel when re-saved as JPEG, on the original 8x8 grid if known."""
    dx, dy = (origin[0] % 8, origin[1] % 8) if origin is not None else (0, 0)
    padded = np.pad(np.asarray(region, dtype=np.uint8), ((dy, 0), (dx, 0), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    Image.fromarray(padded).save(buffer, format="JPEG", quality=ELA_QUALITY)
    resaved = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32)[dy:, dx:]
    return np.abs(resaved - region.astype(np.float32)).mean(axis=2)


def _blockiness(luma: np.ndarray, origin: tuple[int, int] | None) -> float:
    """Log ratio of luma steps across the JPEG 8x8 block borders to steps inside blocks."""
    if origin is None or min(luma.shape) < 32:
        return 0.0
    steps_x = np.abs(np.diff(luma, axis=1)).mean(axis=0)
    steps_y = np.abs(np.diff(luma, axis=0)).mean(axis=1)
    on_x = (np.arange(len(steps_x)) + origin[0]) % 8 == 7
    on_y = (np.arange(len(steps_y)) + origin[1]) % 8 == 7
    border = np.concatenate([steps_x[on_x], steps_y[on_y]]).mean()
    inner = np.concatenate([steps_x[~on_x], steps_y[~on_y]]).mean()
    return float(np.log((border + EPS) / (inner + EPS)))


def _double_jpeg_features(luma: np.ndarray, keypoints: np.ndarray, origin: tuple[int, int] | None,
                          table: np.ndarray | None) -> np.ndarray:
    """DQ_FEATURES: each double-JPEG map read on the face (zeros where nothing shows)."""
    if origin is None or table is None or min(luma.shape) < 64:
        return np.zeros(len(DQ_FEATURES), dtype=np.float32)
    # The face's gap map takes its first step by likelihood; the zones keep lift's, as the likelihood lost
    # on pasted parts there (docs/detection.md, forensic-v10, and again on v11's lattice).
    maps = double_jpeg.history_maps(luma, origin, table, first_step="likelihood")
    score, _, offset = maps[0]
    areas = _block_areas(score.shape, offset, keypoints)  # both maps share the region's block grid
    return np.concatenate([_map_features(score, used, areas) for score, used, _ in maps])


def _block_areas(shape: tuple[int, int], offset: tuple[int, int], keypoints: np.ndarray) -> dict:
    """Masks over a region's 8x8 blocks: inner face, context, the face without its parts, each part."""
    ys, xs = _block_centres(shape, offset)
    radii = [_radius(e, ys, xs) for e in _part_ellipses(keypoints)]
    face = face_radius(keypoints, ys, xs)
    return {"face": face <= 1.0, "context": face > 1.6,
            "rest": (face <= 1.0) & ~np.any([r < 1.25 for r in radii], axis=0),
            "parts": [r < 1.0 for r in radii]}


def _block_centres(shape: tuple[int, int], offset: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Region coordinates (y, x) of the centre of each 8x8 block of a `shape` block grid at `offset`."""
    ys, xs = np.mgrid[0: shape[0], 0: shape[1]].astype(np.float32) * 8 + 3.5
    return ys + offset[0], xs + offset[1]


def _map_features(score: np.ndarray, used: int, areas: dict) -> np.ndarray:
    """A per-block map (positive: edited-looking) read as the share of frequencies it used, the inner
    face against its context, and each part against the rest of the face and their maximum."""
    out = np.zeros(len(DQ_FEATURES) // 2, dtype=np.float32)
    if not used:
        return out
    face_rest = _mean_of(score, areas["rest"])
    per_part = np.array([_mean_of(score, part) for part in areas["parts"]]) - face_rest
    out[0] = used / len(double_jpeg.FREQUENCIES)
    out[1] = _mean_of(score, areas["face"]) - _mean_of(score, areas["context"])
    out[2:2 + len(PARTS)] = per_part
    out[-1] = np.nanmax(per_part) if np.isfinite(per_part).any() else 0.0
    return np.nan_to_num(out, nan=0.0)


def _mean_of(share: np.ndarray, mask: np.ndarray) -> float:
    """Mean of the blocks under `mask` that have a value; NaN with fewer than two."""
    values = share[mask]
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) >= 2 else np.nan


def face_radius(keypoints: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Each point's elliptical distance to the inner face (eyes to mouth and a little below)."""
    le, re, _, ml, mr = np.asarray(keypoints, dtype=np.float32).reshape(5, 2)
    eye_dist = max(float(np.linalg.norm(re - le)), 4.0)
    cx, cy = (le + re + (ml + mr) / 2) / 3
    return _radius((float(cx), float(cy) + 0.1 * eye_dist, eye_dist, 1.3 * eye_dist), ys, xs)


def _part_ellipses(keypoints: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Each part's ellipse as (centre x, centre y, x radius, y radius), in PARTS order."""
    le, re, nose, ml, mr = np.asarray(keypoints, dtype=np.float32).reshape(5, 2)
    eye_dist = max(float(np.linalg.norm(re - le)), 4.0)
    mouth = (ml + mr) / 2
    mouth_half = max(float(np.linalg.norm(mr - ml)) / 2, 0.2 * eye_dist)
    return [
        (float(le[0]), float(le[1]), 0.40 * eye_dist, 0.25 * eye_dist),
        (float(re[0]), float(re[1]), 0.40 * eye_dist, 0.25 * eye_dist),
        (float(nose[0]), float(nose[1]) - 0.15 * eye_dist, 0.28 * eye_dist, 0.38 * eye_dist),
        (float(mouth[0]), float(mouth[1]), mouth_half + 0.15 * eye_dist, 0.28 * eye_dist),
    ]


def _radius(ellipse: tuple[float, float, float, float], ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Each point's elliptical distance to an ellipse's centre (1.0 = on its outline)."""
    cx, cy, rx, ry = ellipse
    return np.hypot((xs - cx) / rx, (ys - cy) / ry)
