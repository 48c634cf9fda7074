"""Fakes synthesised from real faces: blend a region of a face with a transformed source.

The recipe follows the blending-artefact papers (Self-Blended Images, Face X-ray, SLADD), written
from their descriptions: a mask over one part or several, deformed and blurred by a random amount;
a source that is the same image transformed (self-blend), another real face aligned on the five
landmarks, or the same face with a part enlarged or moved (retouch); alpha, feathered or
gradient-domain (Poisson) blending; a JPEG re-save. Every draw comes from the generator passed in,
so a seed gives the same fake, byte for byte. All of it is pure numpy/scipy/scikit-image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage, sparse
from scipy.sparse.linalg import splu
from skimage import color, draw, transform

from ..config import SynthBlend, SynthDonor, choices
from .faces import PARTS

DONORS = choices(SynthDonor)
BLENDS = choices(SynthBlend)


class BlendError(ValueError):
    """A real that no fake can be made from: no donor of the kinds allowed, or its parts outside the image."""


@dataclass(frozen=True)
class Fake:
    """A synthetic fake and how it was made."""

    pixels: np.ndarray  # uint8 HxWx3, after the JPEG re-save
    jpeg: bytes  # the re-saved file
    mask: np.ndarray  # float32 HxW in [0, 1]: the blend weight of the source at each pixel
    recipe: dict = field(default_factory=dict)

    def boundary(self) -> np.ndarray:
        """The Face X-ray target 4*M*(1-M): 1 on the blend boundary, 0 where untouched or replaced."""
        return 4.0 * self.mask * (1.0 - self.mask)


def landmarks(keypoints: np.ndarray) -> tuple[np.ndarray, ...]:
    """(left eye, right eye, nose, mouth centre, mouth half-width vector, eye distance) from 10 numbers."""
    le, re, nose, ml, mr = np.asarray(keypoints, dtype=np.float64).reshape(5, 2)
    return le, re, nose, (ml + mr) / 2, (mr - ml) / 2, max(float(np.linalg.norm(re - le)), 4.0)


def usable_landmarks(keypoints: np.ndarray, min_eye_distance: float = 8.0) -> bool:
    """Whether five landmarks can anchor a blend: finite, eyes apart, not all on one line."""
    points = np.asarray(keypoints, np.float64).reshape(5, 2)
    if not np.isfinite(points).all() or np.linalg.norm(points[1] - points[0]) < min_eye_distance:
        return False
    return np.linalg.matrix_rank(points - points.mean(0), tol=1.0) == 2


def part_mask(keypoints: np.ndarray, part: str, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of `part` (one of PARTS, or "inner_face") in an image of `shape`, from the five landmarks."""
    le, re, nose, mouth, half, eye = landmarks(keypoints)
    height, width = shape
    if part == "inner_face":
        # Eyebrows to below the mouth: the region face swaps replace.
        up = np.array([0.0, -0.55 * eye])
        down = np.array([0.0, 0.45 * eye])
        side = (re - le) / eye * 0.45 * eye
        hull = np.array([le - side + up, re + side + up, re + side * 1.1, mouth + half + side * 0.6 + down,
                         mouth + down * 1.2, mouth - half - side * 0.6 + down, le - side * 1.1])
        mask = np.zeros(shape, dtype=bool)
        rows, cols = draw.polygon(hull[:, 1], hull[:, 0], shape=shape)
        mask[rows, cols] = True
        return mask
    centre, rx, ry = {
        "left_eye": (le, 0.45 * eye, 0.28 * eye),
        "right_eye": (re, 0.45 * eye, 0.28 * eye),
        "nose": (nose - [0.0, 0.15 * eye], 0.30 * eye, 0.42 * eye),
        "mouth": (mouth, float(np.linalg.norm(half)) + 0.18 * eye, 0.30 * eye),
    }[part]
    ys, xs = np.ogrid[0:height, 0:width]
    return ((xs - centre[0]) / rx) ** 2 + ((ys - centre[1]) / ry) ** 2 <= 1.0


def deform_mask(mask: np.ndarray, eye: float, rng: np.random.Generator) -> np.ndarray:
    """A random small affine move, an elastic warp, erosion or dilation, then a random blur.

    Returns float32 in [0, 1]; a blur of 0 keeps a hard edge (about one mask in four). The mask
    should leave about half an eye distance of margin around the part for the warp and the blur.
    """
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return mask.astype(np.float32)
    centre = np.array([ys.mean(), xs.mean()])
    scale = rng.uniform(0.9, 1.1, size=2)
    angle = rng.uniform(-0.1, 0.1)
    shift = rng.uniform(-0.04, 0.04, size=2) * eye
    # Elastic: a smooth random displacement of up to 8% of the eye distance, drawn on a coarse grid.
    step = 8
    coarse = (height // step + 2, width // step + 2)
    amplitude = rng.uniform(0.0, 0.08) * eye
    displacement = [ndimage.gaussian_filter(rng.normal(size=coarse), 0.25 * eye / step) for _ in range(2)]
    peak = max(max(np.abs(d).max() for d in displacement), 1e-9)
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float64)
    dy, dx = (ndimage.map_coordinates(d, [grid_y / step, grid_x / step], order=1) * amplitude / peak
              for d in displacement)
    # Where each output pixel samples the input: the inverse of (scale, rotate, shift) about the centre.
    cos, sin = np.cos(angle), np.sin(angle)
    ry, rx = grid_y - centre[0] - shift[1], grid_x - centre[1] - shift[0]
    src_y = (cos * ry - sin * rx) / scale[1] + centre[0] + dy
    src_x = (sin * ry + cos * rx) / scale[0] + centre[1] + dx
    out = ndimage.map_coordinates(mask.astype(np.float64), [src_y, src_x], order=0, mode="constant")
    steps = int(rng.integers(-2, 3) * max(1.0, 0.02 * eye))
    if steps > 0:
        out = ndimage.binary_dilation(out > 0.5, iterations=steps).astype(np.float64)
    elif steps < 0:
        eroded = ndimage.binary_erosion(out > 0.5, iterations=-steps)
        out = eroded.astype(np.float64) if eroded.any() else out
    sigma = 0.0 if rng.random() < 0.25 else rng.uniform(0.02, 0.15) * eye
    if sigma > 0:
        out = ndimage.gaussian_filter(out, sigma)
        out = out / max(out.max(), 1e-9)  # the blur must not weaken the centre of a small part
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def transform_source(image: np.ndarray, eye: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The image with random colour, HSV, brightness/contrast, resampling and a small affine move.

    Returns float64 HxWx3 in [0, 255] and what was drawn.
    """
    x = image.astype(np.float64)
    recipe: dict = {}
    gains, offsets = rng.uniform(0.92, 1.08, size=3), rng.uniform(-8, 8, size=3)
    x = x * gains + offsets
    hsv = color.rgb2hsv(np.clip(x, 0, 255) / 255.0)
    hue, saturation, value = rng.uniform(-0.02, 0.02), rng.uniform(0.85, 1.15), rng.uniform(0.9, 1.1)
    hsv[..., 0] = (hsv[..., 0] + hue) % 1.0
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 1)
    hsv[..., 2] = np.clip(hsv[..., 2] * value, 0, 1)
    x = color.hsv2rgb(hsv) * 255.0
    contrast, brightness = rng.uniform(0.85, 1.15), rng.uniform(-10, 10)
    x = (x - x.mean()) * contrast + x.mean() + brightness
    recipe.update(gains=gains.round(3).tolist(), hue=round(hue, 4), saturation=round(saturation, 3),
                  contrast=round(contrast, 3))
    resample = str(rng.choice(["down_up", "sharpen", "none"]))
    img = Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8))
    if resample == "down_up":
        factor = rng.uniform(0.5, 0.9)
        small = img.resize((max(1, round(img.width * factor)), max(1, round(img.height * factor))), Image.BILINEAR)
        img = small.resize(img.size, Image.BICUBIC)
        recipe["down_up"] = round(factor, 3)
    elif resample == "sharpen":
        img = img.filter(ImageFilter.UnsharpMask(radius=rng.uniform(1, 2.5), percent=int(rng.integers(60, 160)),
                                                 threshold=0))
    recipe["resample"] = resample
    x = np.asarray(img, dtype=np.float64)
    shift = rng.uniform(-0.03, 0.03, size=2) * eye
    scale = rng.uniform(0.96, 1.04)
    centre = np.array(image.shape[1::-1]) / 2
    move = (transform.SimilarityTransform(translation=-centre) + transform.SimilarityTransform(scale=scale)
            + transform.SimilarityTransform(translation=centre + shift))
    x = transform.warp(x, move.inverse, order=1, mode="edge", preserve_range=True)
    recipe["shift"] = shift.round(2).tolist()
    return np.clip(x, 0, 255), recipe


def align_donor(donor: np.ndarray, donor_keypoints: np.ndarray, keypoints: np.ndarray,
                shape: tuple[int, int]) -> np.ndarray:
    """The donor face warped onto the target's landmarks (similarity transform), float64 in [0, 255]."""
    target_to_donor = transform.SimilarityTransform.from_estimate(
        np.asarray(keypoints, np.float64).reshape(5, 2), np.asarray(donor_keypoints, np.float64).reshape(5, 2))
    return transform.warp(donor.astype(np.float64), target_to_donor, output_shape=shape, order=3, mode="edge",
                          preserve_range=True)


def retouch_source(image: np.ndarray, keypoints: np.ndarray, part: str, rng: np.random.Generator
                   ) -> tuple[np.ndarray, dict]:
    """The same face with `part` enlarged (or shrunk a little) and moved, as a liquify tool would."""
    le, re, nose, mouth, _, eye = landmarks(keypoints)
    centre = {"left_eye": le, "right_eye": re, "nose": nose, "mouth": mouth,
              "inner_face": (le + re + mouth) / 3}[part]
    scale = rng.uniform(1.06, 1.25) if rng.random() < 0.75 else rng.uniform(0.85, 0.95)
    shift = rng.uniform(-0.06, 0.06, size=2) * eye
    move = (transform.SimilarityTransform(translation=-centre) + transform.SimilarityTransform(scale=scale)
            + transform.SimilarityTransform(translation=centre + shift))
    warped = transform.warp(image.astype(np.float64), move.inverse, order=3, mode="edge", preserve_range=True)
    return warped, {"scale": round(scale, 3), "shift": shift.round(2).tolist()}


def poisson_blend(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Gradient-domain blend: inside `mask`, the source's gradients with the target's boundary values.

    Solves the discrete Poisson equation per channel on the mask's bounding box (scipy sparse).
    """
    inside = mask > 0.5
    out = target.astype(np.float64).copy()
    if not inside.any():
        return out
    ys, xs = np.nonzero(inside)
    y0, y1 = max(ys.min() - 1, 0), min(ys.max() + 2, inside.shape[0])
    x0, x1 = max(xs.min() - 1, 0), min(xs.max() + 2, inside.shape[1])
    box = inside[y0:y1, x0:x1].copy()
    box[0, :] = box[-1, :] = False  # the box's edge is always boundary
    box[:, 0] = box[:, -1] = False
    n = int(box.sum())
    if n == 0:
        return out
    index = -np.ones(box.shape, dtype=np.int64)
    index[box] = np.arange(n)
    rows, cols = np.nonzero(box)
    neighbours = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    a_rows, a_cols = [np.arange(n)], [np.arange(n)]
    a_vals = [np.full(n, 4.0)]
    for dy, dx in neighbours:
        other = index[rows + dy, cols + dx]
        inner = other >= 0
        a_rows.append(np.arange(n)[inner])
        a_cols.append(other[inner])
        a_vals.append(np.full(inner.sum(), -1.0))
    a = sparse.csr_matrix((np.concatenate(a_vals), (np.concatenate(a_rows), np.concatenate(a_cols))), shape=(n, n))
    src = source[y0:y1, x0:x1].astype(np.float64)
    dst = out[y0:y1, x0:x1]
    b = 4.0 * src[rows, cols]  # [n, 3]: one right-hand side per channel, one factorisation for all
    for dy, dx in neighbours:
        ny, nx = rows + dy, cols + dx
        b -= src[ny, nx]
        boundary = index[ny, nx] < 0
        b[boundary] += dst[ny[boundary], nx[boundary]]
    dst[rows, cols] = splu(a.tocsc()).solve(b)
    return np.clip(out, 0, 255)


def jpeg_round_trip(pixels: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
    """The JPEG file of the pixels at `quality`, and its decoded pixels."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue(), np.asarray(Image.open(buffer).convert("RGB"))


def synthesize(image: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator,
               donor: tuple[np.ndarray, np.ndarray] | None = None, quality: tuple[int, int] = (70, 96),
               donors: tuple[str, ...] = DONORS, blends: tuple[str, ...] = BLENDS) -> Fake:
    """One fake from a real face image and its five landmarks.

    Args:
        donor: another real image and its landmarks, for the `other` donor; without it, `other`
            is not drawn.
        quality: JPEG quality range of the re-save, high end excluded.
        donors, blends: the kinds to draw from, uniformly.
    """
    # Work in a window around the face: the blend never reaches further, and large photos stay cheap.
    eye = landmarks(keypoints)[-1]
    points = np.asarray(keypoints, np.float64).reshape(5, 2)
    (x0, y0), (x1, y1) = points.min(0) - 1.5 * eye, points.max(0) + 1.5 * eye
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    x1, y1 = min(int(np.ceil(x1)), image.shape[1]), min(int(np.ceil(y1)), image.shape[0])
    local = (points - [x0, y0]).reshape(-1)
    if donor is not None:
        donor = (donor[0], np.asarray(donor[1], np.float64))
    mixed, mask, recipe = _blend_window(image[y0:y1, x0:x1], local, rng, donor, donors, blends)
    out = image.copy()
    out[y0:y1, x0:x1] = mixed
    full_mask = np.zeros(image.shape[:2], dtype=np.float32)
    full_mask[y0:y1, x0:x1] = mask
    q = int(rng.integers(*quality))
    data, pixels = jpeg_round_trip(out, q)
    return Fake(pixels, data, full_mask, {**recipe, "quality": q})


def _blend_window(image: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator,
                  donor: tuple[np.ndarray, np.ndarray] | None, donors: tuple[str, ...], blends: tuple[str, ...]
                  ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(uint8 blended window, float32 mask, recipe) for a window of the image and its landmarks."""
    shape = image.shape[:2]
    eye = landmarks(keypoints)[-1]
    kinds = [d for d in donors if d != "other" or donor is not None]
    if not kinds:
        raise BlendError("synth.donors allows only another face's parts, and there is no other usable real")
    kind = str(rng.choice(kinds))
    # One part most of the time, sometimes several (SLADD's combinations) or the inner face.
    count = int(rng.choice([1, 1, 1, 2, 3]))
    chosen = sorted(rng.choice(len(PARTS), size=count, replace=False).tolist())
    parts = ["inner_face"] if kind != "retouch" and rng.random() < 0.2 else [PARTS[i] for i in chosen]
    if kind == "retouch":
        parts = parts[:1]
    hard = np.zeros(shape, dtype=bool)
    for part in parts:
        hard |= part_mask(keypoints, part, shape)
    if kind == "retouch":
        # The warped part covers a larger area than the original one.
        hard = ndimage.binary_dilation(hard, iterations=max(1, int(0.1 * eye)))
    # Everything below happens in a box around the mask, with room for the warp and the blur.
    ys, xs = np.nonzero(hard)
    if not len(ys):
        raise BlendError(f"the landmarks put {', '.join(parts)} outside the image")
    pad = int(0.8 * eye) + 2
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, shape[1])
    target, hard = image[y0:y1, x0:x1], hard[y0:y1, x0:x1]
    local = (np.asarray(keypoints, np.float64).reshape(5, 2) - [x0, y0]).reshape(-1)
    if kind == "self":
        source, details = transform_source(target, eye, rng)
    elif kind == "other":
        source = align_donor(donor[0], donor[1], local, hard.shape)
        # Colour-match the donor to the target inside the mask half of the time.
        if rng.random() < 0.5:
            mean_s, std_s = source[hard].mean(0), source[hard].std(0) + 1e-3
            mean_t, std_t = target[hard].mean(0), target[hard].std(0) + 1e-3
            source = (source - mean_s) / std_s * std_t + mean_t
        details = {}
    else:
        source, details = retouch_source(target, local, parts[0], rng)
    mask = deform_mask(hard, eye, rng)
    blend = str(rng.choice(blends))
    if blend == "poisson":
        mixed = poisson_blend(target, source, mask)
        mask = (mask > 0.5).astype(np.float32)  # the gradient domain leaves no alpha
    else:
        ratio = 1.0 if blend == "feather" else float(rng.choice([0.5, 0.75, 1.0, 1.0]))
        if blend == "alpha":
            mask = (mask > 0.5).astype(np.float32) * ratio
        mixed = target * (1 - mask[..., None]) + source * mask[..., None]
    pixels = image.copy()
    pixels[y0:y1, x0:x1] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    full_mask = np.zeros(shape, dtype=np.float32)
    full_mask[y0:y1, x0:x1] = mask
    mask = full_mask
    return pixels, mask.astype(np.float32), {"donor": kind, "parts": parts, "blend": blend, **details}
