"""FaceNet embedding throughput: the embedder's batched graph, the same batches called eagerly, per-image `predict`.

`FaceNetEmbedder.embed` runs one traced `tf.function` per batch; "eager" is
`model(x, training=False)` on the same batches (the embedder before the graph); "per-image" is the
original's `predict` on one face at a time. Runs all three on the same crops, interleaved, several
rounds, checks they agree, and prints faces/s and ratios. Uses the weight file given (or random
weights: the arithmetic is the same).

    .venv/bin/python benchmarks/facenet_throughput.py [--weights model/facenet_keras.h5] [--faces 64]
        [--json benchmarks/results/facenet_throughput.json]
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--json", default=None, help="also write the numbers here")
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
    embedder.embed(faces[:2])  # warm-up: thread pools
    embedder.model.predict(preprocess(faces[:1], embedder.preprocess), verbose=0)

    def eager_embed() -> np.ndarray:
        out = [np.asarray(embedder.model(preprocess(faces[k:k + args.batch_size], embedder.preprocess), training=False))
               for k in range(0, len(faces), args.batch_size)]
        out = np.concatenate(out)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    eager_embed()
    batched, eager, single = [], [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        out_batched = embedder.embed(faces)
        batched.append(time.perf_counter() - start)
        start = time.perf_counter()
        out_eager = eager_embed()
        eager.append(time.perf_counter() - start)
        start = time.perf_counter()
        rows = [embedder.model.predict(preprocess(face[None], embedder.preprocess), verbose=0)[0] for face in faces]
        single.append(time.perf_counter() - start)
    out_single = np.stack(rows)
    out_single /= np.linalg.norm(out_single, axis=1, keepdims=True)
    assert np.allclose(out_batched, out_single, atol=1e-4), "graph and per-image predict disagree"
    assert np.allclose(out_batched, out_eager, atol=1e-5), "graph and eager disagree"

    b, e, s = np.median(batched), np.median(eager), np.median(single)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"machine: {machine}; {embedder.name}, {args.faces} faces, {args.rounds} rounds (median)")
    print(f"embedder (graph), batch {args.batch_size}: {args.faces / b:8.1f} faces/s")
    print(f"eager model(x), batch {args.batch_size}:   {args.faces / e:8.1f} faces/s")
    print(f"per-image predict:            {args.faces / s:8.1f} faces/s")
    print(f"graph / eager:                {e / b:8.2f}x")
    print(f"graph / per-image:            {s / b:8.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "date": time.strftime("%Y-%m-%d"), "faces": args.faces,
                       "batch_size": args.batch_size, "rounds": args.rounds, "load_average": os.getloadavg(),
                       "faces_per_s": {"graph": args.faces / b, "eager": args.faces / e, "per_image_predict": args.faces / s},
                       "graph_over_eager": e / b, "graph_over_per_image": s / b}, f, indent=2)


if __name__ == "__main__":
    main()
