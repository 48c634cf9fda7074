"""Face-size-aware MTCNN: speed and detection quality of each way to shrink the image pyramid.

Runs the extract stage as one pipeline actor does (one TensorFlow thread, batches of 8, no native
regions) over each corpus with each setting, and compares every setting's faces with the full-resolution
pass (`extract.detect_max_side: 0`, MTCNN as the original called it):

- `max_side=S`: MTCNN on a copy whose longest side is at most S, boxes mapped back, and a full-resolution
  pass for images where the copy shows no face (`extract.detect_max_side`, what the stage does);
- `min_face=F`: full resolution, with MTCNN's smallest face set to F x the image's short side (at
  least `extract.min_face_size`), and the same full fallback for images where nothing is found.

Per setting: ms/image (median over `--runs` passes, settings interleaved so load drift hits all
alike), rows per status, images scanned twice, images the full pass finds a face in that turn
`no_face` (must be 0), whether the chosen face is the same one (box IoU >= 0.5), and the distance of
the five landmarks (pixels, native resolution) to the full-resolution result.

Corpora: the demo corpus (`make demo`) and the real photos in ../shared/faces (skipped with a
reason when absent; they are read in place, never copied).

    .venv/bin/python benchmarks/detect_scale.py [--sides 160,240,320,400] [--min-faces 0.1,0.2]
        [--runs 2] [--json benchmarks/results/detect_scale.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "faces"
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# MTCNN at full resolution on the 12-32 MP photos of ../shared/faces took the process past 21 GB
# and the OOM killer.
MAX_PIXELS = 4_000_000


class RelativeMinFace:
    """An MTCNN whose smallest face is a fraction of the short side, with a full pass where none is found."""

    def __init__(self, detector, fraction: float):
        self.detector, self.fraction = detector, fraction

    def detect_faces(self, images: list[np.ndarray], min_face_size: int) -> list[list[dict]]:
        """Like `MTCNN.detect_faces` on images of one shape (the extract stage groups them so)."""
        relative = max(min_face_size, round(self.fraction * min(images[0].shape[:2])))
        found = self.detector.detect_faces(images, min_face_size=relative)
        for k, faces in enumerate(found):
            if not faces and relative > min_face_size:
                found[k] = self.detector.detect_faces([images[k]], min_face_size=min_face_size)[0]
        return found


class CountingDetector:
    """Passes calls through and counts the images MTCNN scans."""

    def __init__(self, detector):
        self.detector, self.images = detector, 0

    def detect_faces(self, images: list[np.ndarray], **kwargs) -> list[list[dict]]:
        """`MTCNN.detect_faces`, counted."""
        self.images += len(images)
        return self.detector.detect_faces(images, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default=str(ROOT / "data/demo/real_and_fake_face"))
    parser.add_argument("--faces", default=str(FACES))
    parser.add_argument("--sides", default="160,240,320,400", help="extract.detect_max_side values to try")
    parser.add_argument("--min-faces", default="0.1,0.2", help="smallest face as a fraction of the short side")
    parser.add_argument("--runs", type=int, default=2, help="timed passes per setting")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help="leave out larger photos (MTCNN at full resolution on them runs out of memory)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/detect_scale.json"))
    args = parser.parse_args()

    from throughput import read_batches  # this folder is on sys.path when the script runs

    from fakeface_ray.config import ExtractConfig
    from fakeface_ray.stages.extract import FaceExtractor, load_detector

    corpora, skipped = {}, {}
    for name, folder in (("demo", Path(args.demo)), ("shared_faces", Path(args.faces))):
        paths, left_out = corpus_paths(folder, args.max_pixels)
        if left_out:
            print(f"{name}: {left_out} of {len(paths) + left_out} images over {args.max_pixels} pixels left out")
            skipped[name] = left_out
        if paths:
            corpora[name] = read_batches(paths)
        else:
            print(f"skipping {name}: no images under {folder}" + (" (run `make demo`)" if name == "demo" else ""))
    if not corpora:
        raise SystemExit("no corpus to measure")

    mtcnn = load_detector(num_threads=1)  # one thread, as each extract actor runs it
    settings = {"full": (dataclasses.replace(ExtractConfig(), detect_max_side=0), None)}
    settings.update({f"max_side={s}": (dataclasses.replace(ExtractConfig(), detect_max_side=int(s)), None)
                     for s in args.sides.split(",") if s})
    settings.update({f"min_face={f}": (dataclasses.replace(ExtractConfig(), detect_max_side=0), float(f))
                     for f in args.min_faces.split(",") if f})

    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                    "date": time.strftime("%Y-%m-%d"), "runs": args.runs, "load_average_start": os.getloadavg(),
                    "tensorflow_threads": 1, "batch_size": 8, "max_pixels": args.max_pixels,
                    "left_out_over_max_pixels": skipped, "corpora": {}}
    for corpus, batches in corpora.items():
        n = sum(len(b["uri"]) for b in batches)
        FaceExtractor(ExtractConfig(), keep_regions=False, detector=mtcnn)(batches[0])  # warm-up: first trace
        rows, seconds, scanned = {}, {name: [] for name in settings}, {}
        for _ in range(args.runs):
            for name, (config, fraction) in settings.items():
                counter = CountingDetector(mtcnn)
                detector = RelativeMinFace(counter, fraction) if fraction else counter
                extractor = FaceExtractor(config, keep_regions=False, detector=detector)
                start = time.perf_counter()
                outs = [extractor(b) for b in batches]
                seconds[name].append(time.perf_counter() - start)
                rows[name] = {k: np.concatenate([o[k] for o in outs]) for k in
                              ("status", "n_faces", "face_box", "keypoints", "width", "height")}
                scanned[name] = counter.images
        full = rows["full"]
        result["corpora"][corpus] = {
            "images": n,
            "settings": {name: _compare(rows[name], full, seconds[name], n, scanned[name]) for name in settings}}
        print(json.dumps(result["corpora"][corpus]), flush=True)  # a long run shows each corpus as it ends
    result["load_average_end"] = os.getloadavg()
    _print(result)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"\nwritten {args.json}")


def _compare(rows: dict, full: dict, seconds: list[float], n: int, scanned: int) -> dict:
    """One setting against the full-resolution pass."""
    both = (rows["status"] == "ok") & (full["status"] == "ok")
    same = np.array([_iou(a, b) >= 0.5 for a, b in zip(rows["face_box"], full["face_box"])]) & both
    distance = np.linalg.norm((rows["keypoints"] - full["keypoints"]).reshape(-1, 5, 2), axis=-1)[same]
    statuses, counts = np.unique(rows["status"].astype(str), return_counts=True)
    return {
        "ms_per_image": 1000 * statistics.median(seconds) / n,
        "ms_per_image_runs": [1000 * s / n for s in seconds],
        "counts_by_status": dict(zip(statuses.tolist(), counts.tolist())),
        "faces_found": int(rows["n_faces"].sum()),
        "scanned_twice": scanned - int(np.isin(rows["status"], ["ok", "no_face", "detect_error"]).sum()),
        "lost_to_no_face": int(((full["status"] == "ok") & (rows["status"] == "no_face")).sum()),
        "other_face_chosen": int((both & ~same).sum()),
        "landmark_px": _summary(distance.reshape(-1)),
        "landmark_px_worst_point_per_image": _summary(distance.max(axis=1) if len(distance) else distance),
    }


def corpus_paths(folder: Path, max_pixels: int = MAX_PIXELS) -> tuple[list[Path], int]:
    """The images under `folder` of at most `max_pixels`, sorted, and how many larger ones were left out."""
    from PIL import Image

    def pixels(path: Path) -> int:
        with Image.open(path) as image:
            return image.width * image.height

    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES) if folder.is_dir() else []
    kept = [p for p in paths if pixels(p) <= max_pixels]
    return kept, len(paths) - len(kept)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - ix * iy
    return float(ix * iy / union) if union > 0 else 0.0


def _summary(values: np.ndarray) -> dict:
    if not len(values):
        return {"n": 0}
    return {"n": int(len(values)), "mean": float(values.mean()), "median": float(np.median(values)),
            "p95": float(np.percentile(values, 95)), "max": float(values.max())}


def _print(result: dict) -> None:
    print(f"{result['machine']}; {result['runs']} runs; load average {result['load_average_start']}")
    for corpus, c in result["corpora"].items():
        print(f"\n{corpus}: {c['images']} images")
        for name, s in c["settings"].items():
            lm = s["landmark_px"]
            print(f"  {name:<14} {s['ms_per_image']:6.1f} ms/image  {s['counts_by_status']}  faces {s['faces_found']}  "
                  f"twice {s['scanned_twice']}  lost {s['lost_to_no_face']}  other face {s['other_face_chosen']}  "
                  f"landmarks median {lm.get('median', float('nan')):.2f} p95 {lm.get('p95', float('nan')):.2f} "
                  f"max {lm.get('max', float('nan')):.2f} px")


if __name__ == "__main__":
    main()
