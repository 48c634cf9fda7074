"""FaceNet embedding throughput: batched `model(x, training=False)` against per-image `predict`.

Runs both on the same crops, interleaved, several rounds, and prints faces/s and the ratio.
Uses the weight file given (or random weights: the arithmetic is the same).

    .venv/bin/python benchmarks/facenet_throughput.py [--weights model/facenet_keras.h5] [--faces 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="FaceNet weight file; random weights if omitted")
    parser.add_argument("--faces", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from fakeface_ray.stages.embedders.facenet import FaceNetEmbedder, build_inception_resnet_v1, model_weights, preprocess
    from fakeface_ray.stages.embedders.facenet_weights import write_weight_file

    weights = args.weights
    if weights is None:
        weights = os.path.join(tempfile.mkdtemp(), "random-weights.h5")
        write_weight_file(weights, model_weights(build_inception_resnet_v1(128)), "keras2-weights")
    embedder = FaceNetEmbedder(weights, batch_size=args.batch_size)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (args.faces, 160, 160, 3), dtype=np.uint8)
    embedder.embed(faces[:2])  # warm-up: graph tracing, thread pools
    embedder.model.predict(preprocess(faces[:1], embedder.preprocess), verbose=0)

    batched, single = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        out_batched = embedder.embed(faces)
        batched.append(time.perf_counter() - start)
        start = time.perf_counter()
        rows = [embedder.model.predict(preprocess(face[None], embedder.preprocess), verbose=0)[0] for face in faces]
        single.append(time.perf_counter() - start)
    out_single = np.stack(rows)
    out_single /= np.linalg.norm(out_single, axis=1, keepdims=True)
    assert np.allclose(out_batched, out_single, atol=1e-4), "the two paths disagree"

    b, s = np.median(batched), np.median(single)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}; "
          f"{embedder.name}, {args.faces} faces, {args.rounds} rounds (median)")
    print(f"batched model(x) batch {args.batch_size}: {args.faces / b:8.1f} faces/s")
    print(f"per-image predict:            {args.faces / s:8.1f} faces/s")
    print(f"ratio batched / per-image:    {s / b:8.2f}x")


if __name__ == "__main__":
    main()
