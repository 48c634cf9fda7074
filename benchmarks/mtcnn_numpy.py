"""The numpy MTCNN against the mtcnn package's TensorFlow one: same batches, speed and agreement.

Both run as an extract actor runs them: one thread (TensorFlow's pools and BLAS capped to 1),
batches of 8 images of one shape, on the copies the extract stage scans (`--max-side`, 0 = the
full image). Speed alternates between the two per batch, so load drift hits both alike. Agreement
per image: the same faces (count, boxes and landmarks in whole pixels, as the package rounds them)
and the largest confidence difference.

    .venv/bin/python benchmarks/mtcnn_numpy.py [--corpus data/demo ../shared/faces] [--max-side 320 0]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", nargs="+", default=[str(ROOT / "data/demo"), str(ROOT.parent / "shared/faces")])
    parser.add_argument("--max-side", nargs="+", type=int, default=[320, 0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/mtcnn_numpy.json"))
    args = parser.parse_args()

    from fakeface_ray.stages.extract import load_detector

    detectors = {"numpy": load_detector("numpy", num_threads=1),
                 "tensorflow": load_detector("tensorflow", num_threads=1)}
    result: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPUs", "cells": []}
    for corpus in args.corpus:
        images = _images(Path(corpus))
        for side in args.max_side:
            cell = compare(detectors, images, side, args.batch)
            cell.update(corpus=corpus, max_side=side)
            result["cells"].append(cell)
            print(f"{Path(corpus).name:>6} max_side={side or 'full':<4} {cell['images']} images: "
                  f"numpy {cell['ms_per_image']['numpy']:.1f} ms/image, tensorflow "
                  f"{cell['ms_per_image']['tensorflow']:.1f} (x{cell['speedup']:.2f}); identical faces "
                  f"{cell['identical']}/{cell['images']}, confidence max diff {cell['confidence_max_diff']:.1e}")
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"written {args.json}")


def compare(detectors: dict, images: list[np.ndarray], max_side: int, batch: int) -> dict:
    """Both detectors on the same batches; ms per image, identical results, confidence difference."""
    from fakeface_ray.stages import faces

    scanned = [faces.detection_copy(image, max_side, 20)[0] for image in images]
    by_shape: dict[tuple, list[np.ndarray]] = {}
    for image in scanned:
        by_shape.setdefault(image.shape, []).append(image)
    batches = [same[k: k + batch] for same in by_shape.values() for k in range(0, len(same), batch)]
    for detector in detectors.values():
        detector.detect_faces(batches[0])  # warm-up, not timed
    seconds = {name: 0.0 for name in detectors}
    found: dict[str, list] = {name: [] for name in detectors}
    for chunk in batches:
        for name, detector in detectors.items():
            start = time.perf_counter()
            found[name] += detector.detect_faces(chunk)
            seconds[name] += time.perf_counter() - start
    identical, confidence = 0, 0.0
    for ours, theirs in zip(found["numpy"], found["tensorflow"]):
        identical += [_key(f) for f in ours] == [_key(f) for f in theirs]
        if len(ours) == len(theirs):
            confidence = max([confidence] + [abs(a["confidence"] - b["confidence"]) for a, b in zip(ours, theirs)])
    ms = {name: 1000 * s / len(images) for name, s in seconds.items()}
    return {"images": len(images), "ms_per_image": ms, "speedup": ms["tensorflow"] / ms["numpy"],
            "identical": identical, "with_a_face": sum(bool(f) for f in found["tensorflow"]),
            "confidence_max_diff": confidence}


def _key(face: dict) -> tuple:
    return tuple(face["box"]), tuple(tuple(int(v) for v in face["keypoints"][k]) for k in sorted(face["keypoints"]))


def _images(corpus: Path) -> list[np.ndarray]:
    """The corpus's decodable images under detect_scale.py's size cap."""
    from detect_scale import corpus_paths  # this folder is on sys.path when the script runs

    from fakeface_ray.stages import imaging

    decoded = (imaging.decode_image(path.read_bytes(), 200_000_000) for path in corpus_paths(corpus)[0])
    return [d.image for d in decoded if d.image is not None]


if __name__ == "__main__":
    main()
