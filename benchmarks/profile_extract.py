"""Where the extract stage (the pipeline's slowest) spends its time: cProfile of one actor's work.

Runs `FaceExtractor` as one pipeline actor does (one TensorFlow thread, batches of 8) on demo
photos and prints the time in decoding, each MTCNN network and the crops.

    .venv/bin/python benchmarks/profile_extract.py [--images 64] [--out benchmarks/results/extract_profile.txt]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
# Functions worth naming in the summary: ours, mtcnn's stages, and TensorFlow's call entry point.
WATCH = ("imaging.py:", "faces.py:", "extract.py:", "mtcnn/stages/", "mtcnn/mtcnn.py:", "mtcnn/utils/",
         "PIL/", "tensorflow/python/eager/polymorphic_function/polymorphic_function.py:")


def main() -> None:
    from throughput import read_batches  # this folder is on sys.path when the script runs

    from fakeface_ray.config import ExtractConfig
    from fakeface_ray.stages.extract import FaceExtractor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(ROOT / "data/demo/real_and_fake_face"))
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/extract_profile.txt"))
    args = parser.parse_args()

    paths = sorted(Path(args.corpus).rglob("*.jpg"))[: args.images + 8]
    if len(paths) < args.images + 8:
        raise SystemExit(f"need {args.images + 8} images under {args.corpus}: run `make demo` first")
    batches = read_batches(paths)
    extractor = FaceExtractor(ExtractConfig(), keep_regions=False, num_threads=1)
    extractor(batches[0])  # warm-up: TensorFlow traces each new input shape once
    profile = cProfile.Profile()
    profile.enable()
    for batch in batches[1:]:
        extractor(batch)
    profile.disable()

    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    total = stats.total_tt
    stats.sort_stats("cumulative").print_stats("|".join(w.replace("/", ".") for w in WATCH), 25)
    header = (f"FaceExtractor, 1 TensorFlow thread, batches of 8, {args.images} images of the demo corpus: "
              f"{total:.1f} s, {1000 * total / args.images:.0f} ms/image\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(header + text.getvalue())
    print(header + text.getvalue())


if __name__ == "__main__":
    main()
