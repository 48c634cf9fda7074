"""`fakeface run` at two commits side by side: the wall time of a whole run on the same N images, and its ratio.

Issue 11's bar: `fakeface run` on 1,000 images may take at most 3x as long as it did before the detector
work began (the baseline, d1915ee: forensic-v1 and the SVM grid). Each commit runs from its own git
worktree with this checkout's virtual environment (`python -m fakeface_ray.cli` with the worktree as the
working directory imports the worktree's package), each run a fresh process with its own local Ray, with
the commit's default settings; the rounds alternate the order, so drift on the machine hits both alike.
The ratio is taken within each round. The corpus is `fakeface demo-data` with enough variants, N/2 reals
and N/2 fakes hard-linked into one folder.

    .venv/bin/python benchmarks/run_cost.py --images 1000 --rounds 2 [--baseline d1915ee] \\
        [--json benchmarks/results/run_cost_1000.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "d1915ee"  # the commit before issue 11's first (d0b9d75, the synth stage)
CLASSES = ("training_real", "training_fake")
IMAGES_PER_VARIANT = 48  # the demo makes at least this many images of each class per variant


def corpus(work: Path, images: int) -> Path:
    """A Kaggle-layout folder of `images` demo images, half of each class, built once under `work`."""
    root = work / f"corpus_{images}" / "real_and_fake_face"
    if root.exists():
        return root
    generated = work / f"demo_{images}"
    variants = math.ceil(images / 2 / IMAGES_PER_VARIANT)
    subprocess.run([sys.executable, "-m", "fakeface_ray.cli", "demo-data", "--out", str(generated),
                    "--variants", str(variants)], cwd=ROOT, check=True)
    for name in CLASSES:
        files = sorted((generated / "real_and_fake_face" / name).iterdir())[:images // 2]
        if len(files) < images // 2:
            raise SystemExit(f"demo-data --variants {variants} made {len(files)} {name} images, "
                             f"fewer than {images // 2}")
        (root / name).mkdir(parents=True)
        for file in files:
            os.link(file, root / name / file.name)
    return root


def timed_run(tree: Path, infile: Path, out: Path) -> dict:
    """One `fakeface run --testsplit 0.2` from `tree`: wall seconds, the run's own stage timings, macro F1."""
    command = [sys.executable, "-m", "fakeface_ray.cli", "run", "--infile", str(infile), "--testsplit", "0.2",
               "--out", str(out)]
    log = out.parent / f"{out.name}.log"
    start = time.perf_counter()
    with log.open("wb") as sink:
        done = subprocess.run(command, cwd=tree, stdout=sink, stderr=subprocess.STDOUT,
                              env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} (in {tree}) exited {done.returncode}; see {log}")
    record = json.loads((out / "run.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall_s": round(seconds, 1), "timings": {k: round(v, 1) for k, v in record["timings"].items()},
            "embedder": metrics.get("embedder"), "macro_f1": round(metrics["macro_f1"], 4),
            "load_average": os.getloadavg()}


def commit_of(rev: str) -> str:
    """`rev` as a full commit hash."""
    return subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--work", default=None, help="where the corpus and the runs go (default: a temporary folder)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/run_cost.json"))
    args = parser.parse_args()

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fakeface-run-cost-"))
    work.mkdir(parents=True, exist_ok=True)
    infile = corpus(work, args.images)
    arms = {"baseline": commit_of(args.baseline), "head": commit_of("HEAD")}
    trees = {}
    try:
        for name, commit in arms.items():
            trees[name] = work / f"src_{name}"
            added = subprocess.run(["git", "worktree", "add", "--detach", "--force", str(trees[name]), commit],
                                   cwd=ROOT, capture_output=True, text=True)
            if added.returncode != 0:
                raise SystemExit(f"git worktree add {commit}: {added.stderr.strip()}")
        runs: dict[str, list[dict]] = {name: [] for name in arms}
        ratios = []
        for round_ in range(args.rounds):
            order = list(arms) if round_ % 2 == 0 else list(reversed(arms))
            for name in order:
                out = work / f"out_{name}_{round_}"
                shutil.rmtree(out, ignore_errors=True)
                runs[name].append(timed_run(trees[name], infile, out))
                print(name, round_, runs[name][-1], flush=True)
                shutil.rmtree(out, ignore_errors=True)
            ratios.append(runs["head"][-1]["wall_s"] / runs["baseline"][-1]["wall_s"])
    finally:
        for tree in trees.values():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "images": args.images, "commits": arms, "runs": runs,
              "head_over_baseline": [round(r, 3) for r in ratios],
              "head_over_baseline_mean": round(statistics.mean(ratios), 3),
              "head_over_baseline_std": round(statistics.stdev(ratios), 3) if len(ratios) > 1 else None}
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("commits", "head_over_baseline", "head_over_baseline_mean")}))


if __name__ == "__main__":
    main()
