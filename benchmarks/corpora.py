"""Evaluation corpora from real photos: reals, and fakes from four generator families.

The photos are `../shared/faces/` (116 real colour photos of about 100 people; they stay there and
are never copied into the project). Each corpus assigns half of the usable photos to `real` and
half to `fake` bases, so no photo is in both classes, and re-saves every image, real or fake, as a
JPEG at its own random quality, so file format and compression say nothing about the class.

The generators are written apart from `fakeface_ray.stages.blends` (other mask shapes, other warps)
so a detector trained on synth's fakes is tested on fakes it was not made from. Each generator
draws from its own stream, (seed, k). A fake's donor may be any other photo of the set, a real or
another fake's base, as in a corpus a user would have: the splits downstream keep reals and fake
bases apart, not donors. The generators:

- `paste`: eyes, nose and/or mouth of another person pasted on landmark-aligned boxes, at three
  levels in equal shares (hard edge / feathered / feathered and colour-matched): the ciplab way.
- `poisson`: the same parts of another person blended in the gradient domain.
- `swap`: the whole face of another person (an ellipse over the face box), colour-transferred in
  Lab and feathered wide: a face swap.
- `retouch`: the same face, eyes enlarged or mouth moved by a smooth local warp (a liquify tool).

`--published-quality LOW HIGH` first saves every photo as a JPEG of its own quality, as photo
collections publish them (the Kaggle set is 600x600 JPEGs): fakes are then made from the published
file, as an editor would, before the re-save. Without it the photos go in as the repositories ship
them (some PNG, many scaled down here from larger originals), so most carry no earlier JPEG on
their grid.

    python benchmarks/corpora.py --out runs/corpora        # all four, plus landmarks.json
    python benchmarks/corpora.py --out runs/corpora_published --published-quality 75 96
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import color, transform

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fakeface_ray.stages.blends import landmarks, poisson_blend  # noqa: E402
from fakeface_ray.stages.synth import normalised_shape  # noqa: E402

FACES = ROOT.parent / "shared" / "faces"
GENERATORS = ("paste", "poisson", "swap", "retouch")
MAX_SIDE = 768  # larger photos are scaled down once, before anything else (some are 7000 px)
MIN_EYE_DISTANCE = 24  # px; smaller faces carry too few pixels per part


@dataclass(frozen=True)
class Photo:
    name: str
    pixels: np.ndarray  # uint8 HxWx3
    keypoints: np.ndarray  # float [10]


def load_photos(faces: Path, cache: Path) -> list[Photo]:
    """Every usable photo under `faces`, scaled to at most MAX_SIDE, with MTCNN landmarks (cached)."""
    from fakeface_ray.stages import faces as geometry
    from fakeface_ray.stages.imaging import decode_image

    known = json.loads(cache.read_text()) if cache.is_file() else {}
    detector = None
    photos = []
    for path in sorted(p for p in faces.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")):
        name = str(path.relative_to(faces))
        decoded = decode_image(path.read_bytes(), 200_000_000)
        if decoded.image is None:
            continue
        image = Image.fromarray(decoded.image)
        if max(image.size) > MAX_SIDE:
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
        pixels = np.asarray(image)
        if name not in known:
            if detector is None:
                from fakeface_ray.stages.extract import load_detector

                detector = load_detector()
            found = [geometry.detection_from_mtcnn(f) for f in detector.detect_faces([pixels])[0]]
            best = geometry.choose_face(found)
            known[name] = None if best is None else best.keypoints.tolist()
        if known[name] is not None and landmarks(np.array(known[name]))[-1] >= MIN_EYE_DISTANCE:
            photos.append(Photo(name, pixels, np.array(known[name], dtype=np.float64)))
    cache.write_text(json.dumps(known))
    return photos


def published(photos: list[Photo], quality: tuple[int, int], seed: int) -> list[Photo]:
    """The photos as a collection publishes them: each decoded from a JPEG of its own quality."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for photo in photos:
        buffer = io.BytesIO()
        Image.fromarray(photo.pixels).save(buffer, format="JPEG", quality=int(rng.integers(*quality)))
        out.append(Photo(photo.name, np.asarray(Image.open(buffer).convert("RGB")), photo.keypoints))
    return out


def build_corpus(generator: str, photos: list[Photo], out: Path, seed: int | list[int]) -> dict:
    """Write `out/training_real/` and `out/training_fake/` and a manifest; return the manifest."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(photos))
    reals, bases = order[0::2], order[1::2]
    (out / "training_real").mkdir(parents=True, exist_ok=True)
    (out / "training_fake").mkdir(parents=True, exist_ok=True)
    manifest = {"generator": generator, "seed": seed, "images": []}
    for n, i in enumerate(reals):
        name = f"training_real/real_{n:04d}.jpg"
        _save(out / name, photos[i].pixels, rng)
        manifest["images"].append({"file": name, "label": "real", "photo": photos[i].name})
    shapes = np.stack([normalised_shape(p.keypoints) for p in photos])
    for n, i in enumerate(bases):
        # A donor of similar pose (Face X-ray's nearest-landmark search): one of the 5 nearest shapes.
        distance = np.linalg.norm(shapes - shapes[i], axis=(1, 2))
        distance[i] = np.inf
        donor = photos[int(rng.choice(np.argsort(distance)[:5]))]
        pixels, recipe = GENERATE[generator](photos[i], donor, rng, n)
        name = f"training_fake/{generator}_{n:04d}.jpg"
        _save(out / name, pixels, rng)
        manifest["images"].append({"file": name, "label": "fake", "photo": photos[i].name, **recipe})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _save(path: Path, pixels: np.ndarray, rng: np.random.Generator) -> None:
    Image.fromarray(pixels).save(path, format="JPEG", quality=int(rng.integers(70, 96)))


def _aligned(donor: Photo, base: Photo) -> np.ndarray:
    """The donor warped onto the base's landmarks, float in [0, 255]."""
    to_donor = transform.SimilarityTransform.from_estimate(base.keypoints.reshape(5, 2), donor.keypoints.reshape(5, 2))
    return transform.warp(donor.pixels.astype(float), to_donor, output_shape=base.pixels.shape[:2], order=3,
                          mode="edge", preserve_range=True)


def _part_boxes(keypoints: np.ndarray, shape: tuple[int, int], parts: list[str]) -> np.ndarray:
    """Rounded boxes over the chosen parts: a different shape from the synthesiser's ellipses."""
    le, re, nose, mouth, half, eye = landmarks(keypoints)
    boxes = {"left_eye": (le, 0.5 * eye, 0.3 * eye), "right_eye": (re, 0.5 * eye, 0.3 * eye),
             "nose": (nose - [0, 0.2 * eye], 0.28 * eye, 0.45 * eye),
             "mouth": (mouth, float(np.linalg.norm(half)) + 0.2 * eye, 0.28 * eye)}
    mask = np.zeros(shape)
    for part in parts:
        (cx, cy), rx, ry = boxes[part]
        y0, y1 = int(max(cy - ry, 0)), int(min(cy + ry, shape[0]))
        x0, x1 = int(max(cx - rx, 0)), int(min(cx + rx, shape[1]))
        mask[y0:y1, x0:x1] = 1.0
    # Round the corners a little.
    return (ndimage.gaussian_filter(mask, 0.06 * eye) > 0.5).astype(float)


def _some_parts(rng: np.random.Generator) -> list[str]:
    names = ["left_eye", "right_eye", "nose", "mouth"]
    while True:
        chosen = [n for n in names if rng.random() < 0.5]
        if chosen:
            return chosen


def _paste(base: Photo, donor: Photo, rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict]:
    level = ("hard_edge", "feathered", "colour_matched")[n % 3]
    parts = _some_parts(rng)
    eye = landmarks(base.keypoints)[-1]
    mask = _part_boxes(base.keypoints, base.pixels.shape[:2], parts)
    source = _aligned(donor, base)
    if level != "hard_edge":
        mask = ndimage.gaussian_filter(mask, rng.uniform(0.04, 0.1) * eye)
    if level == "colour_matched":
        inside = mask > 0.5
        for c in range(3):
            s, b = source[..., c][inside], base.pixels[..., c][inside].astype(float)
            source[..., c] = (source[..., c] - s.mean()) / max(s.std(), 1e-3) * b.std() + b.mean()
    out = base.pixels * (1 - mask[..., None]) + source * mask[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8), {"level": level, "parts": parts}


def _poisson(base: Photo, donor: Photo, rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict]:
    parts = _some_parts(rng)
    mask = _part_boxes(base.keypoints, base.pixels.shape[:2], parts)
    out = poisson_blend(base.pixels, _aligned(donor, base), mask)
    return np.clip(np.round(out), 0, 255).astype(np.uint8), {"parts": parts}


def _swap(base: Photo, donor: Photo, rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict]:
    le, re, nose, mouth, half, eye = landmarks(base.keypoints)
    centre = (le + re + mouth) / 3 + [0, 0.1 * eye]
    ys, xs = np.mgrid[0:base.pixels.shape[0], 0:base.pixels.shape[1]]
    inside = ((xs - centre[0]) / (1.0 * eye)) ** 2 + ((ys - centre[1]) / (1.25 * eye)) ** 2 <= 1
    source = _aligned(donor, base)
    # Colour transfer in Lab, the donor's face taking the base face's mean and spread (Reinhard's).
    lab_s, lab_b = color.rgb2lab(np.clip(source, 0, 255) / 255), color.rgb2lab(base.pixels / 255.0)
    for c in range(3):
        s, b = lab_s[..., c][inside], lab_b[..., c][inside]
        lab_s[..., c] = (lab_s[..., c] - s.mean()) / max(s.std(), 1e-3) * b.std() + b.mean()
    lab_s[..., 0] = np.clip(lab_s[..., 0], 0, 100)
    source = color.lab2rgb(lab_s) * 255
    mask = ndimage.gaussian_filter(inside.astype(float), rng.uniform(0.1, 0.2) * eye)
    out = base.pixels * (1 - mask[..., None]) + source * mask[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8), {}


def _retouch(base: Photo, donor: Photo, rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict]:
    le, re, nose, mouth, half, eye = landmarks(base.keypoints)
    kind = str(rng.choice(["enlarge_eyes", "move_mouth"]))
    ys, xs = np.mgrid[0:base.pixels.shape[0], 0:base.pixels.shape[1]].astype(float)
    dy, dx = np.zeros_like(ys), np.zeros_like(xs)
    if kind == "enlarge_eyes":
        strength = rng.uniform(0.15, 0.35)
        for centre in (le, re):
            r2 = ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (0.45 * eye) ** 2
            pull = strength * np.exp(-r2)  # sample nearer the centre: a radial bulge
            dx -= pull * (xs - centre[0])
            dy -= pull * (ys - centre[1])
    else:
        shift = rng.uniform(-0.12, 0.12, size=2) * eye
        r2 = ((xs - mouth[0]) ** 2 + (ys - mouth[1]) ** 2) / (0.8 * eye) ** 2
        weight = np.exp(-r2)
        dx -= weight * shift[0]
        dy -= weight * shift[1]
    out = np.stack([ndimage.map_coordinates(base.pixels[..., c].astype(float), [ys + dy, xs + dx], order=3,
                                            mode="nearest") for c in range(3)], axis=-1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8), {"retouch": kind}


GENERATE = {"paste": _paste, "poisson": _poisson, "swap": _swap, "retouch": _retouch}


def main() -> None:
    warnings.filterwarnings("ignore", message="Conversion from CIE-LAB")  # clipped out-of-gamut colours
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", default=str(FACES))
    parser.add_argument("--out", default=str(ROOT / "runs/corpora"))
    parser.add_argument("--generators", default=",".join(GENERATORS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offset-seeds", action="store_true",
                        help="draw generator k from seed + k, as every set built before 2026-12-02 (late) was: "
                             "neighbouring seeds then share photo splits (set s's generator k is set s+1's "
                             "generator k-1); by default generator k draws from (seed, k)")
    parser.add_argument("--published-quality", type=int, nargs=2, metavar=("LOW", "HIGH"),
                        help="first save every photo as a JPEG of a quality in [LOW, HIGH), as a photo "
                             "collection publishes them, before any real is re-saved or fake is made")
    args = parser.parse_args()
    if not Path(args.faces).is_dir():
        raise SystemExit(f"{args.faces} is absent: these corpora are built from ../shared/faces")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = load_photos(Path(args.faces), out / "landmarks.json")
    if args.published_quality:
        photos = published(photos, tuple(args.published_quality), args.seed)
    print(f"{len(photos)} usable photos")
    for k, generator in enumerate(args.generators.split(",")):
        seed = args.seed + k if args.offset_seeds else [args.seed, k]
        manifest = build_corpus(generator, photos, out / generator / "real_and_fake_face", seed)
        print(f"{generator}: {len(manifest['images'])} images")


if __name__ == "__main__":
    main()
