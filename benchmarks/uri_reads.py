"""What a filesystem made per file costs an object-store read: `read_bytes` with the per-process
filesystem cache against the same reads with a fresh pyarrow filesystem each time (as before).

The store is a local S3-compatible server (moto) on loopback, so the numbers hold no network
latency, no TLS handshake and no bucket-region lookup: each of those a real store adds to every
uncached read, and none to a cached one. Rounds alternate the two arms on the same objects.

    python benchmarks/uri_reads.py --objects 200 --rounds 5 --json benchmarks/results/uri_reads.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fakeface_ray.storage import locations  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--bytes", type=int, default=60_000, help="Object size (a 600 px JPEG is about 60 KB).")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1")
        client.create_bucket(Bucket="faces")
        payload = np.random.default_rng(0).bytes(args.bytes)
        for i in range(args.objects):
            client.put_object(Bucket="faces", Key=f"corpus/img {i:05d}.jpg", Body=payload)
        uris = [f"s3://faces/corpus/img%20{i:05d}.jpg?endpoint_override={host}:{port}&scheme=http"
                for i in range(args.objects)]
        per_read = {"cached": [], "per_file": []}
        for _ in range(args.rounds):
            for arm in per_read:
                started = time.perf_counter()
                for uri in uris:
                    if arm == "per_file":
                        locations._FILESYSTEMS.clear()
                    assert len(locations.read_bytes(uri)) == args.bytes
                per_read[arm].append((time.perf_counter() - started) / len(uris) * 1e3)
    finally:
        server.stop()
    cached, per_file = np.median(per_read["cached"]), np.median(per_read["per_file"])
    result = {"objects": args.objects, "bytes": args.bytes, "rounds": args.rounds,
              "ms_per_read_cached": round(float(cached), 3), "ms_per_read_per_file": round(float(per_file), 3),
              "per_round_ms": {k: [round(v, 3) for v in vs] for k, vs in per_read.items()},
              "per_file_over_cached": round(float(per_file / cached), 3)}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
