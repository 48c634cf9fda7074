"""Throughput and memory, side by side on the same images and models, in one invocation.

1. the original's loop: per image, Pillow open, MTCNN `detect_faces`, crop, resize, FaceNet `predict`
   on that one face;
2. this project's pipeline: `fakeface extract` as a whole process, Ray start included, once with
   FaceNet and once with the forensic embedder, then FaceNet again with MTCNN on the full image
   (`extract.detect_max_side=0`, the behaviour before the scaled copy), and FaceNet with the mtcnn
   package's TensorFlow MTCNN in the actors (`extract.detector=tensorflow`, before the numpy one);
3. the ceiling: MTCNN alone and each embedder alone, batched, in one process, no Ray; the pipeline
   cannot beat the serial sum of the two per-image costs on a machine whose cores they share.

FaceNet uses a random-weight file in the real Keras 2 layout (the arithmetic is the weights'
shape, not their values). The corpus is the demo's 600x600 photos, copied under new names up to
`--images` (the Kaggle set has 2,041): a fixed start-up cost (Ray, TensorFlow in each actor) is
part of every real run but should not be all of the measurement. `--scale A,B` also runs the
forensic pipeline (the stage that ships native face regions) on A and on B images to compare peak
memory. Prints images/s, ratios and peak memory (driver and largest worker: RSS, and RSS without the
object store's shared pages), and writes JSON.

`--rounds N --arms facenet,forensic --no-ceiling` repeats the loop and the named pipeline arms N times
in turn, each ratio taken within its round, and reports each ratio's mean and standard deviation: on
a shared 2-core box one slow start or a slow minute moves a single ratio by 0.5.

    .venv/bin/python benchmarks/throughput.py [--corpus data/demo/real_and_fake_face] [--images 600]
        [--scale 200,2000] [--rounds 1] [--arms facenet,forensic,...] [--no-ceiling]
        [--json benchmarks/results/throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Each pipeline arm: the embedder and the overrides of its `fakeface extract` run.
ARM_OVERRIDES = {
    "facenet": ("facenet", []),
    "forensic": ("forensic", []),
    # FaceNet with MTCNN on the full image (before extract.detect_max_side): what the scaled copy gains.
    "facenet_full_resolution": ("facenet", ["extract.detect_max_side=0"]),
    # FaceNet with the mtcnn package's TensorFlow MTCNN in the actors (before the numpy detector).
    "facenet_tensorflow_mtcnn": ("facenet", ["extract.detector=tensorflow"]),
}
PIPELINE_ARMS = tuple(ARM_OVERRIDES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(ROOT / "data/demo/real_and_fake_face"))
    parser.add_argument("--images", type=int, default=600, help="images to time (demo photos, copied)")
    parser.add_argument("--scale", default="",
                        help="two corpus sizes, e.g. 200,2000: forensic pipeline peak memory on each")
    parser.add_argument("--rounds", type=int, default=1, help="times to run the loop and the arms, in turn")
    parser.add_argument("--arms", default=",".join(PIPELINE_ARMS), help="pipeline arms to run, comma-separated")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the stages-alone ceiling")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/throughput.json"))
    args = parser.parse_args()
    arms = tuple(a for a in args.arms.split(",") if a)
    unknown = set(arms) - set(PIPELINE_ARMS)
    if unknown or args.rounds < 1:
        parser.error(f"--arms takes {', '.join(PIPELINE_ARMS)}; --rounds at least 1")

    work = Path(tempfile.mkdtemp(prefix="fakeface-bench-"))
    try:
        photos = _photos(Path(args.corpus))
        images = _replicate(photos, work / "small" / "real_and_fake_face", args.images)
        weights = work / "facenet_keras.h5"
        _write_random_facenet(weights)
        result: dict = {"machine": _machine(), "date": time.strftime("%Y-%m-%d"), "images": len(images),
                        "image_size": _size(images[0])}
        if not args.no_ceiling:
            result["ceiling"] = ceiling(images, weights)
        result["rounds"] = [one_round(images, work, weights, arms, n) for n in range(args.rounds)]
        result.update(result["rounds"][0])  # the first round, in the single run's layout
        if args.scale:
            result["memory_scaling"] = {}
            for n in (int(v) for v in args.scale.split(",")):
                _replicate(photos, work / f"n{n}" / "real_and_fake_face", n)
                result["memory_scaling"][str(n)] = pipeline(work / f"n{n}", work / f"out-n{n}", "forensic", weights)
        _ratios(result)
        _print(result)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"\nwritten {args.json}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def one_round(images: list[Path], work: Path, weights: Path, arms: tuple[str, ...], n: int) -> dict:
    """The original loop, then each pipeline arm, on the same images."""
    out = {"original_loop": original_loop(images, weights)}
    for arm in arms:
        embedder, overrides = ARM_OVERRIDES[arm]
        out[f"pipeline_{arm}"] = pipeline(work / "small", work / f"out-{arm}-{n}", embedder, weights, overrides)
    return out


def original_loop(images: list[Path], weights: Path) -> dict:
    """The original: one image at a time, one face at a time, `model.predict` per face."""
    from mtcnn import MTCNN
    from PIL import Image

    from fakeface_ray.stages.embedders.facenet import FaceNetEmbedder, preprocess

    detector = MTCNN()
    model = FaceNetEmbedder(weights).model
    detector.detect_faces(np.asarray(Image.open(images[0]).convert("RGB")))  # warm-up, not timed
    start = time.perf_counter()
    faces = 0
    for path in images:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        found = detector.detect_faces(pixels)
        if not found:
            continue
        x, y, w, h = max(found, key=lambda d: d["confidence"])["box"]
        crop = Image.fromarray(pixels[max(y, 0): y + h, max(x, 0): x + w]).resize((160, 160))
        model.predict(preprocess(np.asarray(crop)[None], "prewhiten"), verbose=0)
        faces += 1
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images_per_s": len(images) / seconds, "faces": faces,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def ceiling(images: list[Path], weights: Path) -> dict:
    """Per-image cost of each stage alone, batched the way the pipeline batches, in one process."""
    from fakeface_ray.config import EmbedConfig, ExtractConfig
    from fakeface_ray.stages.embed import FaceEmbedder
    from fakeface_ray.stages.embedders.facenet import FaceNetEmbedder
    from fakeface_ray.stages.extract import FaceExtractor

    extractor = FaceExtractor(ExtractConfig())
    batches = read_batches(images)
    extractor(batches[0])  # warm-up
    start = time.perf_counter()
    extracted = [extractor(b) for b in batches]
    extract_s = (time.perf_counter() - start) / len(images)
    out = {"extract_s_per_image": extract_s}
    embedders = {"facenet": FaceEmbedder(EmbedConfig(), model=FaceNetEmbedder(weights)),
                 "forensic": FaceEmbedder(EmbedConfig(embedder="forensic"))}
    for name, stage in embedders.items():
        stage(extracted[0])  # warm-up
        start = time.perf_counter()
        for batch in extracted:
            stage(batch)
        embed_s = (time.perf_counter() - start) / len(images)
        out[f"embed_{name}_s_per_image"] = embed_s
        out[f"{name}_images_per_s"] = 1.0 / (extract_s + embed_s)
    return out


def read_batches(paths: list[Path], size: int = 8) -> list[dict]:
    """The files read into extract-stage input batches of `size`, as the pipeline's read tasks emit them."""
    from fakeface_ray.stages import sources

    ids = np.array([str(p) for p in paths], dtype=object)
    return [sources.read_files({"image_id": ids[i:i + size], "uri": ids[i:i + size],
                                "label": np.array([None] * len(ids[i:i + size]), dtype=object)})
            for i in range(0, len(ids), size)]


def pipeline(corpus_root: Path, out: Path, embedder: str, weights: Path, overrides: list[str] = (),
             tree: Path = ROOT) -> dict:
    """`fakeface extract` as a user runs it, timed from process start, with peak RSS sampled.

    Args:
        overrides: more `--set key=value` for the run.
        tree: the checkout whose `fakeface_ray` runs (another commit's worktree, for a before/after).
    """
    import psutil

    command = [sys.executable, "-m", "fakeface_ray.cli", "extract", "--infile", str(corpus_root / "real_and_fake_face"),
               "--out", str(out), "--set", f"embed.embedder={embedder}", "--set", f"embed.weights={weights}"]
    command += [arg for override in overrides for arg in ("--set", override)]
    log = out.parent / f"{out.name}.log"
    start = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=tree, stdout=sink, stderr=subprocess.STDOUT)
    driver = psutil.Process(process.pid)
    peaks = {"driver": 0.0, "worker": 0.0, "driver_own": 0.0, "worker_own": 0.0}
    stop = threading.Event()

    def record(role: str, pid: int) -> None:
        rss, store = _rss_mb(pid)
        peaks[role] = max(peaks[role], rss)
        peaks[f"{role}_own"] = max(peaks[f"{role}_own"], rss - store)

    def sample() -> None:
        while not stop.is_set():
            try:
                record("driver", driver.pid)
            except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
                break
            for proc in psutil.process_iter(["cmdline"]):
                if "ray::MapWorker" in " ".join(proc.info["cmdline"] or []):
                    try:
                        record("worker", proc.pid)
                    except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
                        pass
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    if code != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"fakeface extract failed with exit code {code}; its output ends:\n{tail}")
    run = json.loads((out / "run.json").read_text())
    return {"seconds": seconds, "images_per_s": run["n_inputs"] / seconds,
            "pipeline_seconds": run["timings"]["extract_embed_write_s"],
            "first_row_s": run["timings"].get("first_row_s"),
            "peak_driver_rss_mb": peaks["driver"], "peak_worker_rss_mb": peaks["worker"],
            "peak_driver_own_mb": peaks["driver_own"], "peak_worker_own_mb": peaks["worker_own"],
            "counts_by_status": run["counts_by_status"], "plan": run["plan"]}


def _rss_mb(pid: int) -> tuple[float, float]:
    """A process's resident memory and the part of it that is shared memory (Ray's object store), in MiB.

    Every process that reads or writes Ray objects maps the store (several GiB of /dev/shm) and
    keeps the pages it touched resident, so its RSS grows with the objects that passed through it,
    up to the store's size, while its own memory stays flat. /proc's RssShmem counts those pages
    (reading smaps per mapping costs 100 ms a sample in a TensorFlow process).
    """
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "RssShmem:")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("RssShmem", 0.0)


def _arms(result: dict) -> list[str]:
    return [name for name in PIPELINE_ARMS if f"pipeline_{name}" in result]


def _ratios(result: dict) -> None:
    for one in result["rounds"]:
        original = one["original_loop"]["images_per_s"]
        for name in _arms(one):
            one[f"pipeline_{name}"]["vs_original"] = one[f"pipeline_{name}"]["images_per_s"] / original
    if len(result["rounds"]) > 1:
        result["vs_original"] = {}
        for name in _arms(result):
            ratios = [one[f"pipeline_{name}"]["vs_original"] for one in result["rounds"]]
            result["vs_original"][name] = {"mean": float(np.mean(ratios)), "std": float(np.std(ratios, ddof=1)),
                                           "min": min(ratios), "runs": ratios}
    for embedder in ("facenet", "forensic"):  # the ceiling scans the scaled copy, as these runs do
        if "ceiling" in result and f"pipeline_{embedder}" in result:
            p = result[f"pipeline_{embedder}"]
            p["vs_ceiling"] = p["images_per_s"] / result["ceiling"][f"{embedder}_images_per_s"]
    for name, arm in (("scaled_copy_speedup", "facenet_full_resolution"),
                      ("numpy_mtcnn_speedup", "facenet_tensorflow_mtcnn")):
        if {"pipeline_facenet", f"pipeline_{arm}"} <= result.keys():
            result[name] = result["pipeline_facenet"]["images_per_s"] / result[f"pipeline_{arm}"]["images_per_s"]
    if "memory_scaling" in result:
        small, big = (result["memory_scaling"][k] for k in sorted(result["memory_scaling"], key=int))
        result["memory_ratio"] = {role: big[f"peak_{role}_mb"] / small[f"peak_{role}_mb"]
                                  for role in ("driver_rss", "worker_rss", "driver_own", "worker_own")}


def _print(r: dict) -> None:
    print(f"{r['machine']}; {r['images']} images of {r['image_size']}")
    for n, one in enumerate(r["rounds"], 1):
        print(f"round {n}: original loop (FaceNet predict per face): "
              f"{one['original_loop']['images_per_s']:6.2f} images/s")
        for name in _arms(one):
            p = one[f"pipeline_{name}"]
            ceiling = (f", {100 * p['vs_ceiling']:.0f}% of ceiling ({r['ceiling'][f'{name}_images_per_s']:.2f}/s)"
                       if "vs_ceiling" in p else "")
            print(f"pipeline {name:<23} (whole process): {p['images_per_s']:6.2f} images/s  "
                  f"x{p['vs_original']:.2f} original{ceiling}; first row {p['first_row_s']:.1f} s; "
                  f"peak RSS driver {p['peak_driver_rss_mb']:.0f} MB, worker {p['peak_worker_rss_mb']:.0f} MB")
    for name, v in r.get("vs_original", {}).items():
        print(f"pipeline {name} vs the original loop over {len(v['runs'])} rounds: "
              f"x{v['mean']:.2f} +- {v['std']:.2f} (lowest x{v['min']:.2f})")
    for n, p in r.get("memory_scaling", {}).items():
        print(f"pipeline forensic on {n:>5} images: {p['images_per_s']:6.2f} images/s; peak RSS driver "
              f"{p['peak_driver_rss_mb']:.0f} MB, worker {p['peak_worker_rss_mb']:.0f} MB; without the object "
              f"store: driver {p['peak_driver_own_mb']:.0f} MB, worker {p['peak_worker_own_mb']:.0f} MB")
    if "scaled_copy_speedup" in r:
        print(f"scaled copy vs full-resolution MTCNN (FaceNet pipeline): x{r['scaled_copy_speedup']:.2f}")
    if "numpy_mtcnn_speedup" in r:
        print(f"numpy MTCNN vs the package's TensorFlow one (FaceNet pipeline): x{r['numpy_mtcnn_speedup']:.2f}")
    if "memory_ratio" in r:
        m = r["memory_ratio"]
        print(f"peak memory, largest/smallest corpus: RSS driver x{m['driver_rss']:.2f}, worker "
              f"x{m['worker_rss']:.2f}; without the object store driver x{m['driver_own']:.2f}, "
              f"worker x{m['worker_own']:.2f}")


def _photos(corpus: Path) -> list[Path]:
    """The corpus's images, real and fake interleaved so any prefix holds both classes."""
    if not corpus.is_dir():
        raise SystemExit(f"no corpus at {corpus}: run `make demo` or `fakeface demo-data` first")
    real, fake = (sorted((corpus / label).glob("*.jpg")) for label in ("training_real", "training_fake"))
    return [p for pair in zip(real, fake) for p in pair]


def _replicate(photos: list[Path], target: Path, count: int) -> list[Path]:
    """`count` copies of `photos` in turn, under new names, in their class folders."""
    for label in ("training_real", "training_fake"):
        (target / label).mkdir(parents=True)
    return [Path(shutil.copy(source, target / source.parent.name / f"{i:06d}_{source.name}"))
            for i, source in ((i, photos[i % len(photos)]) for i in range(count))]


def _write_random_facenet(path: Path) -> None:
    from fakeface_ray.stages.embedders.facenet import build_inception_resnet_v1, model_weights
    from fakeface_ray.stages.embedders.facenet_weights import write_weight_file

    write_weight_file(path, model_weights(build_inception_resnet_v1(128)), "keras2-full-model")


def _size(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return f"{image.width}x{image.height}"


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


if __name__ == "__main__":
    main()
