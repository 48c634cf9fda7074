"""The demo corpus: real face photos that scikit-image ships, and fakes spliced the Kaggle way.

Reals are the 100 Labeled-Faces-in-the-Wild faces of `skimage.data.lfw_subset`, each rendered as a
600x600 photo: random framing, skin tint, sensor noise, then a camera JPEG. Fakes take a photo of
another person and paste the left eye, right eye, nose and/or mouth of a donor photo over it, aligned
on MTCNN landmarks, at three levels in equal shares (easy: hard edges; mid: feathered; hard: feathered
and colour-matched). Every image, real or fake, is then saved once more as JPEG, so re-compression
alone says nothing about the class. Names follow Kaggle: `<level>_<n>_<LE><RE><N><M>.jpg`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import transform

from .config import Config
from .console import output
from .stages.faces import PARTS

if TYPE_CHECKING:
    from .runs import TrainedRun

SIZE = 600
LEVELS = ("easy", "mid", "hard")
CORPUS = "real_and_fake_face"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Photo:
    pixels: np.ndarray  # uint8 SIZE x SIZE x 3
    keypoints: np.ndarray  # float [5, 2] in photo coordinates (MTCNN order)


def lfw_faces() -> np.ndarray:
    """The 100 face images (25x25 grey, float in [0, 1]) shipped with scikit-image."""
    from skimage import data

    return data.lfw_subset()[:100]


def canonical_keypoints(faces: np.ndarray, detector: Any) -> list[np.ndarray | None]:
    """MTCNN landmarks of each face in source (25x25) coordinates; None where none is found."""
    scale = SIZE / faces.shape[1]
    renders = [np.repeat(_resize(face, SIZE)[:, :, None], 3, axis=2) for face in faces]
    found = detector.detect_faces(renders)
    points = []
    for detections in found:
        if not detections:
            points.append(None)
            continue
        best = max(detections, key=lambda d: d["confidence"])
        kp = best["keypoints"]
        points.append((np.array([kp[k] for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")],
                               dtype=np.float64) + 0.5) / scale - 0.5)
    return points


def render_photo(face: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator) -> Photo:
    """A 600x600 colour 'camera photo' of a grey face: framing, tint, sensor noise, camera JPEG."""
    src = face.shape[0]
    scale = SIZE / src * rng.uniform(0.95, 1.12)
    angle = np.deg2rad(rng.uniform(-5, 5))
    centre = np.array([SIZE / 2, SIZE / 2]) + rng.uniform(-15, 15, size=2)
    to_photo = transform.SimilarityTransform(scale=scale, rotation=angle)
    offset = centre - to_photo(np.array([[src / 2, src / 2]]))[0]
    to_photo = transform.SimilarityTransform(scale=scale, rotation=angle, translation=offset)
    grey = transform.warp(face, to_photo.inverse, output_shape=(SIZE, SIZE), order=3, mode="edge")
    tint = np.array([1.0, rng.uniform(0.78, 0.88), rng.uniform(0.62, 0.76)])
    rgb = np.clip(grey, 0, 1)[:, :, None] ** rng.uniform(0.9, 1.1) * tint * 255 * rng.uniform(0.9, 1.05)
    sigma = rng.uniform(1.5, 3.5)
    noise = rng.normal(0, sigma, size=(SIZE, SIZE, 1)) + rng.normal(0, sigma / 2, size=(SIZE, SIZE, 3))
    pixels = _jpeg(np.clip(rgb + noise, 0, 255).astype(np.uint8), int(rng.integers(88, 96)))
    return Photo(pixels, to_photo(keypoints))


def part_mask(keypoints: np.ndarray, parts: tuple[bool, bool, bool, bool], level: str,
              rng: np.random.Generator) -> np.ndarray:
    """Float mask in [0, 1] over the chosen parts: hard-edged for `easy`, feathered otherwise."""
    le, re, nose, ml, mr = keypoints
    eye = float(np.linalg.norm(re - le))
    mouth_half = float(np.linalg.norm(mr - ml)) / 2
    shapes = [
        (le, rng.uniform(0.38, 0.55) * eye, rng.uniform(0.22, 0.35) * eye),
        (re, rng.uniform(0.38, 0.55) * eye, rng.uniform(0.22, 0.35) * eye),
        (nose - [0, rng.uniform(0.05, 0.25) * eye], rng.uniform(0.22, 0.35) * eye, rng.uniform(0.35, 0.5) * eye),
        ((ml + mr) / 2, mouth_half + rng.uniform(0.1, 0.25) * eye, rng.uniform(0.22, 0.35) * eye),
    ]
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    mask = np.zeros((SIZE, SIZE))
    for chosen, (centre, rx, ry) in zip(parts, shapes):
        if chosen:
            mask = np.maximum(mask, (((xs - centre[0]) / rx) ** 2 + ((ys - centre[1]) / ry) ** 2 <= 1).astype(float))
    if level != "easy":
        mask = ndimage.gaussian_filter(mask, sigma=rng.uniform(0.05, 0.1) * eye)
    return mask


def splice(base: Photo, donor: Photo, parts: tuple[bool, bool, bool, bool], level: str,
           rng: np.random.Generator) -> np.ndarray:
    """The base photo with the donor's chosen parts pasted in, aligned on the five landmarks."""
    align = transform.SimilarityTransform.from_estimate(base.keypoints, donor.keypoints)  # base -> donor
    warped = transform.warp(donor.pixels / 255.0, align, output_shape=(SIZE, SIZE), order=3, mode="edge") * 255
    mask = part_mask(base.keypoints, parts, level, rng)
    if level == "hard":
        inside = mask > 0.5
        for c in range(3):
            d, b = warped[..., c][inside], base.pixels[..., c][inside].astype(float)
            warped[..., c] = (warped[..., c] - d.mean()) / max(d.std(), 1e-3) * b.std() + b.mean()
    out = base.pixels * (1 - mask[:, :, None]) + warped * mask[:, :, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def build_demo_corpus(out: str | Path, seed: int = 0, variants: int = 2, identities: int | None = None,
                      detector: Any = None) -> dict:
    """Write `<out>/real_and_fake_face/{training_real,training_fake}/` and a manifest; return it.

    Half the identities give reals, the other half fake bases, so no person is in both classes.
    Each identity gives `variants` images. Deterministic for a seed.

    Args:
        identities: use only the first N faces (small corpora for tests); default all 100.
        detector: MTCNN-like landmark detector; default `mtcnn.MTCNN` on the CPU.
    """
    if detector is None:
        from .stages.extract import load_detector

        detector = load_detector()
    rng = np.random.default_rng(seed)
    faces = lfw_faces()[:identities]
    keypoints = canonical_keypoints(faces, detector)
    usable = [i for i, kp in enumerate(keypoints) if kp is not None]
    reals, bases = usable[0::2], usable[1::2]
    root = Path(out) / CORPUS
    (root / "training_real").mkdir(parents=True, exist_ok=True)
    (root / "training_fake").mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"seed": seed, "variants": variants, "source": "skimage.data.lfw_subset",
                                "images": []}
    for n, identity in enumerate(r for r in reals for _ in range(variants)):
        photo = render_photo(faces[identity], keypoints[identity], rng)
        name = f"training_real/real_{n + 1:05d}.jpg"
        _save(root / name, photo.pixels, rng)
        manifest["images"].append({"file": name, "label": "real", "identity": identity})
    fake_bases = [b for b in bases for _ in range(variants)]
    levels = [LEVELS[k % len(LEVELS)] for k in range(len(fake_bases))]
    counters = dict.fromkeys(LEVELS, 0)
    for identity, level in zip(fake_bases, levels):
        donor_id = int(rng.choice([u for u in usable if u != identity]))
        base = render_photo(faces[identity], keypoints[identity], rng)
        donor = render_photo(faces[donor_id], keypoints[donor_id], rng)
        parts = _choose_parts(rng)
        counters[level] += 1
        code = "".join("1" if p else "0" for p in parts)
        name = f"training_fake/{level}_{counters[level]}_{code}.jpg"
        _save(root / name, splice(base, donor, parts, level, rng), rng)
        manifest["images"].append({"file": name, "label": "fake", "identity": identity, "donor": donor_id,
                                   "level": level, "parts": dict(zip(PARTS, parts))})
    (Path(out) / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def corpus_ready(out: str | Path) -> bool:
    """Whether `out` holds a finished demo corpus (its manifest is written last)."""
    return (Path(out) / MANIFEST).is_file()


def _choose_parts(rng: np.random.Generator) -> tuple[bool, bool, bool, bool]:
    while True:
        parts = tuple(bool(v) for v in rng.integers(0, 2, size=4))
        if any(parts):
            return parts


def _save(path: Path, pixels: np.ndarray, rng: np.random.Generator) -> None:
    Image.fromarray(pixels).save(path, format="JPEG", quality=int(rng.integers(75, 93)))


def _jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _resize(face: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(np.clip(face * 255, 0, 255).astype(np.uint8))
    return np.asarray(image.resize((size, size), Image.BICUBIC))


def run_demo(config: Config, data_dir: str | Path, break_lock: bool = False) -> TrainedRun:
    """Build the demo corpus in `data_dir` if missing, then the whole pipeline on it into `config.out`.

    An earlier run on the same images there is replaced (the demo is rerun as is); a run of other
    images is refused like any other, never cleared.
    """
    from .runs import OutputExistsError, capture_logs, holds_a_run, holds_run_of, run_all
    from .stages.requirements import pipeline_needs, require
    from .storage.locations import location

    out = location(config.out)
    if not corpus_ready(data_dir):
        require(*pipeline_needs(config.extract, config.embed))
        capture_logs(out)  # building the corpus runs MTCNN in this process
        output.echo(f"[fakeface] building the demo corpus in {data_dir} ...")
        build_demo_corpus(data_dir, seed=config.seed)
    earlier_demo = holds_run_of(out, config.infile)
    if not earlier_demo and holds_a_run(out):
        raise OutputExistsError(f"{out} holds a run of other images than the demo's; choose another --out")
    return run_all(config, overwrite=earlier_demo, break_lock=break_lock)
