"""What fsync costs per committed part: the same parts written durably (fsync file and folder) and not.

Parts of `--rows` embeddings rows (forensic-v1 size) are committed one by one through the real
PartWriter, alternating durable and non-durable rounds so both see the same disk and load.

    python benchmarks/fsync_cost.py --parts 40 --rows 5000 --out /tmp/fsync
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fakeface_ray.storage import parts  # noqa: E402
from fakeface_ray.storage.locations import location  # noqa: E402
from fakeface_ray.storage.schema import to_table  # noqa: E402


def rows(n: int, dims: int = 35):
    batch = {
        "image_id": np.array([f"img/{i:07d}.jpg" for i in range(n)], dtype=object),
        "uri": np.array([f"/data/img/{i:07d}.jpg" for i in range(n)], dtype=object),
        "label": np.full(n, "real", dtype=object), "sha256": np.full(n, "0" * 64, dtype=object),
        "width": np.full(n, 600), "height": np.full(n, 600), "status": np.full(n, "ok", dtype=object),
        "error": np.full(n, "", dtype=object), "n_faces": np.ones(n, dtype=int),
        "face_box": np.full((n, 4), 100), "face_confidence": np.full(n, 0.99), "keypoints": np.zeros((n, 10)),
    }
    return to_table(batch, np.random.default_rng(0).normal(size=(n, dims)).astype(np.float32), "forensic-v1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=40)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--out", default="/tmp/fakeface-fsync")
    args = parser.parse_args()
    table = rows(args.rows)
    seconds = {True: [], False: []}
    for k in range(args.parts):
        for durable in (True, False):
            folder = Path(args.out) / f"{durable}-{k}"
            shutil.rmtree(folder, ignore_errors=True)
            writer = parts.PartWriter(location(folder), max_rows=args.rows, durable=durable)
            started = time.perf_counter()
            writer.write(table)
            writer.close()
            seconds[durable].append(time.perf_counter() - started)
            shutil.rmtree(folder)
    durable, plain = np.median(seconds[True]) * 1e3, np.median(seconds[False]) * 1e3
    print(json.dumps({"parts_each": args.parts, "rows_per_part": args.rows, "part_bytes": table.nbytes,
                      "median_ms_durable": round(durable, 2), "median_ms_plain": round(plain, 2),
                      "fsync_ms_per_part": round(durable - plain, 2), "ratio": round(durable / plain, 3)}))


if __name__ == "__main__":
    main()
