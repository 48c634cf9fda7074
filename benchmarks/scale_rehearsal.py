"""Scale rehearsal: pure pipeline overhead, driver memory, parts, resume and train load at N images.

Generates N distinct 16x16 PNGs (under `real/` and `fake/`, 1,000 per folder), so every row is
`too_small` and no model runs. Then, each as its own `python -m fakeface_ray.cli` process:

- `extract`: wall time, overhead per image, the driver's peak RSS (VmHWM, read by the process
  itself at exit) and its listing time (`run.json`); part count and sizes in OUT/embeddings.
- `extract --resume` of the finished run, twice: once timed (with the driver's read bytes from
  /proc/self/io), once under `strace -f` (every process, Ray's included) counting the opens of
  image files, which is how "reads no image bytes" is checked. `--control` also traces a
  `--resume --verify`, which re-hashes every input, to show the count finds the reads it should.
- A labelled variant: N rows of random L2-normalised 128-d embeddings with labels, written in the
  embeddings schema by the product's PartWriter; times `train`'s `load_embeddings`, its split and
  one Nystroem fit (the default `nystroem_components`, one point of the default grid).

    .venv/bin/python benchmarks/scale_rehearsal.py --images 10000 [--work /tmp/fakeface-scale] [--control]
        [--json benchmarks/results/scale_rehearsal_10000.json]

Driver RSS growth per input is the slope between two sizes: run it at 10,000 and 100,000 and
compare `driver.peak_rss_mb` (the script prints the slope when both JSON files exist).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fakeface_ray.config import TrainConfig  # noqa: E402
from fakeface_ray.learning import classifiers  # noqa: E402
from fakeface_ray.learning.train import load_embeddings, split  # noqa: E402
from fakeface_ray.stages import sources  # noqa: E402
from fakeface_ray.storage import parts  # noqa: E402
from fakeface_ray.storage.locations import location  # noqa: E402
from fakeface_ray.storage.schema import embeddings_schema  # noqa: E402

PER_FOLDER = 1000
DIMS = 128
# Runs the CLI and, at exit, writes what the kernel counted for this (driver) process.
DRIVER = """
import atexit, json, os, sys
def _dump():
    status = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)
    io = dict(l.split(': ') for l in open('/proc/self/io'))
    json.dump({'vm_hwm_kb': int(status['VmHWM'].split()[0]), 'vm_rss_kb': int(status['VmRSS'].split()[0]),
               'rchar': int(io['rchar']), 'read_bytes': int(io['read_bytes'])}, open(os.environ['DRIVER_STATS'], 'w'))
atexit.register(_dump)
sys.argv[0] = 'fakeface'
from fakeface_ray.cli import main
main()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--work", default="/tmp/fakeface-scale", help="images and outputs go here")
    parser.add_argument("--keep", action="store_true", help="keep the images and outputs")
    parser.add_argument("--control", action="store_true",
                        help="also trace a `--resume --verify`, which must open every image: checks the counting")
    parser.add_argument("--json", default=None, help="default benchmarks/results/scale_rehearsal_<N>.json")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for the extract runs, e.g. output.part_rows=5000")
    args = parser.parse_args()
    n = args.images
    work = Path(args.work) / str(n)
    images, out = work / "images", work / "out"
    result_path = Path(args.json or ROOT / f"benchmarks/results/scale_rehearsal_{n}.json")
    result: dict = {"images": n, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                    f"Python {platform.python_version()}", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "load_average_start": os.getloadavg(), "overrides": args.set}

    result["generate_s"], result["image_bytes"] = generate(images, n)
    print(f"{n} images, {result['image_bytes'] / 1e6:.1f} MB, in {result['generate_s']:.1f} s", flush=True)
    result["listing"] = measure_listing(images)
    print(f"listing: {result['listing']}", flush=True)

    shutil.rmtree(out, ignore_errors=True)
    overrides = [arg for setting in args.set for arg in ("--set", setting)]
    run = cli(["extract", "--infile", str(images), "--out", str(out), *overrides], work)
    record = json.loads((out / "run.json").read_text())
    result["extract"] = {**run, "overhead_ms_per_image": 1e3 * run["wall_s"] / n,
                         "list_sources_s": record["timings"]["list_sources_s"],
                         "counts_by_status": record["counts_by_status"], "load_average_after": os.getloadavg()}
    result["driver"] = {"peak_rss_mb": run["driver"]["vm_hwm_kb"] / 1024, "peak_rss_bytes_per_input":
                        run["driver"]["vm_hwm_kb"] * 1024 / n}
    result["parts"] = describe_parts(out / "embeddings")
    print(f"extract: {json.dumps(result['extract'])}\nparts: {result['parts']}", flush=True)

    resume = cli(["extract", "--infile", str(images), "--out", str(out), "--resume", *overrides], work)
    record = json.loads((out / "run.json").read_text())
    traced = cli(["extract", "--infile", str(images), "--out", str(out), "--resume", *overrides], work, strace=True)
    result["resume"] = {**resume, "work": record["work"], "strace": traced["strace"],
                        "strace_wall_s": traced["wall_s"], "image_files_opened": traced["strace"]["image_opens"],
                        "fraction_of_first_run": resume["wall_s"] / run["wall_s"]}
    print(f"resume: {json.dumps(result['resume'])}", flush=True)
    if args.control:
        control = cli(["extract", "--infile", str(images), "--out", str(out), "--resume", "--verify", *overrides], work,
                      strace=True)
        result["verify_control"] = {"strace_wall_s": control["wall_s"], "strace": control["strace"]}
        print(f"verify control: {result['verify_control']}", flush=True)

    result["labelled"] = labelled(work / "labelled", n)
    print(f"labelled: {result['labelled']}", flush=True)
    result["load_average_end"] = os.getloadavg()
    result["slope"] = slope(result, result_path.parent)
    if not args.keep:
        shutil.rmtree(work)
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(result, indent=2))
    print(f"written {result_path}")


def generate(folder: Path, n: int) -> tuple[float, int]:
    """N distinct 16x16 RGB PNGs (random pixels), half under real/, half under fake/; reused if there."""
    started = time.perf_counter()
    done = folder / ".complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        rng = np.random.default_rng(0)
        for i in range(n):
            sub = folder / ("real" if i % 2 == 0 else "fake") / f"{i // (2 * PER_FOLDER):04d}"
            if i % (2 * PER_FOLDER) < 2:
                sub.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buffer, format="PNG")
            (sub / f"{i:07d}.png").write_bytes(buffer.getvalue())
        done.write_text(str(n))
    total = sum(p.stat().st_size for p in folder.rglob("*.png"))
    return time.perf_counter() - started, total


def measure_listing(images: Path) -> dict:
    """Listing time and the Arrow bytes the listing holds, in this process."""
    started = time.perf_counter()
    listing = sources.list_sources(str(images), (".png",))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "inputs": len(listing), "table_bytes": listing.table.nbytes,
            "bytes_per_input": listing.table.nbytes / len(listing)}


def cli(arguments: list[str], work: Path, strace: bool = False) -> dict:
    """Run `fakeface <arguments>` as a driver process; its wall time and kernel counters."""
    stats = work / "driver.json"
    command = [sys.executable, "-c", DRIVER, *arguments]
    trace = work / "strace.txt"
    if strace:
        # Every process (Ray's raylet and workers are the driver's descendants); opens only.
        command = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-e", "signal=none",
                   "-o", str(trace), *command]
    env = {**os.environ, "DRIVER_STATS": str(stats), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    found = {"wall_s": wall, "driver": json.loads(stats.read_text()), "stdout": done.stdout.strip().splitlines()[-4:]}
    if strace:
        found["strace"] = count_opens(trace)
        trace.unlink()
    return found


def count_opens(trace: Path) -> dict:
    """Opens of image files (not folders) in an strace log, and opens in all."""
    opens = image_opens = 0
    path = re.compile(r'open(?:at2?)?\((?:[^,]+, )?"([^"]+)"')
    for line in trace.open():
        found = path.search(line)
        if not found:
            continue
        opens += 1
        if found.group(1).endswith(".png") and "O_DIRECTORY" not in line:
            image_opens += 1
    return {"opens": opens, "image_opens": image_opens}


def describe_parts(folder: Path) -> dict:
    """Committed parts: count, and rows, bytes and row groups of each."""
    found = []
    for part in sorted(folder.glob("*.parquet")):
        meta = pq.ParquetFile(part).metadata
        found.append({"name": part.name, "rows": meta.num_rows, "bytes": part.stat().st_size,
                      "row_groups": meta.num_row_groups})
    return {"count": len(found), "rows": sum(p["rows"] for p in found), "each": found}


def labelled(folder: Path, n: int) -> dict:
    """Write N labelled random embeddings as the product would, then time train's load, split and a Nystroem fit."""
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, DIMS)).astype(np.float32)
    x[:, :8] += 0.5 * y[:, None]  # a little signal, so the fit has something to find
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"{'fake' if v else 'real'}/{i:07d}.png" for i, v in enumerate(y)]
    schema = embeddings_schema(DIMS)
    table = pa.table({
        "image_id": ids, "uri": [f"/data/{i}" for i in ids], "label": ["fake" if v else "real" for v in y],
        "sha256": [f"{i:064x}" for i in range(n)], "file_size": np.full(n, 850), "file_mtime_ns": np.full(n, 0),
        "width": np.full(n, 600, np.int32), "height": np.full(n, 600, np.int32), "status": ["ok"] * n,
        "error": pa.nulls(n, pa.string()), "n_faces": np.ones(n, np.int16),
        "face_box": pa.FixedSizeListArray.from_arrays(pa.array(np.full(4 * n, 100, np.int32)), 4),
        "face_confidence": np.full(n, 0.99, np.float32),
        "keypoints": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(10 * n, np.float32)), 10),
        "embedder": ["facenet-128"] * n,
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), DIMS),
    }, schema=schema)
    started = time.perf_counter()
    writer = parts.PartWriter(location(folder))
    for start in range(0, n, 16):  # blocks the size the pipeline hands the writer
        writer.write(table.slice(start, 16))
    writer.close()
    write_s = time.perf_counter() - started
    del table, x

    started = time.perf_counter()
    data = load_embeddings(str(folder))
    load_s = time.perf_counter() - started
    config = TrainConfig()
    started = time.perf_counter()
    train, test = split(data, config.test_split, seed=0)
    split_s = time.perf_counter() - started
    kind = classifiers.resolve(config.classifier, len(train.y))
    model, grid = classifiers.build("nystroem", config, len(train.y), DIMS, seed=0)
    model.set_params(map__gamma=1.0 / DIMS, clf__C=1.0)
    started = time.perf_counter()
    model.fit(train.x, train.y)
    fit_s = time.perf_counter() - started
    candidates = sum(int(np.prod([len(v) for v in g.values()])) for g in grid)
    shutil.rmtree(folder)
    return {"rows": n, "dims": DIMS, "write_s": write_s, "parts": len(writer.parts), "load_s": load_s,
            "split_s": split_s, "auto_classifier": kind, "train_rows": len(train.y),
            "nystroem_components": config.nystroem_components, "nystroem_fit_s": fit_s,
            "test_accuracy": float((model.predict(test.x) == test.y).mean()),
            "default_grid_candidates": candidates, "default_cv_folds": config.cv_folds}


def slope(result: dict, results: Path) -> dict | None:
    """Driver peak RSS growth per input between this run and the other size's JSON, if there."""
    others = [json.loads(p.read_text()) for p in results.glob("scale_rehearsal_*.json")]
    others = [o for o in others if o.get("images") not in (None, result["images"]) and "driver" in o
              and o.get("overrides", []) == result["overrides"]]
    if not others:
        return None
    other = min(others, key=lambda o: abs(o["images"] - result["images"]))
    (n0, r0), (n1, r1) = sorted([(other["images"], other["driver"]["peak_rss_mb"]),
                                 (result["images"], result["driver"]["peak_rss_mb"])])
    per_input = (r1 - r0) * 2**20 / (n1 - n0)
    print(f"driver peak RSS {r0:.0f} MB at {n0}, {r1:.0f} MB at {n1}: {per_input:.0f} bytes per input", flush=True)
    return {"from": n0, "to": n1, "peak_rss_mb": [r0, r1], "bytes_per_input": per_input}


if __name__ == "__main__":
    main()
