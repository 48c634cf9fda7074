"""Start-up: seconds to the first row of `fakeface extract` on the demo corpus, settings side by side.

Each setting is a list of `--set` overrides; runs alternate between settings so load drift on a shared
machine hits all alike. `first_row_s` is the run's own timing (from the start of extraction: Ray
start, actor start-up, the first batches); `process_s` the whole process, imports included.

    .venv/bin/python benchmarks/first_row.py [--runs 2] [--embedder forensic]
        [--settings "extract.detect_max_side=0;extract.detect_max_side=320"]

`--trees` compares checkouts instead, each with the first setting: a change that no setting
switches, against the commit before it (`git worktree add /tmp/before REV`, then
`--trees /tmp/before,.`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from throughput import _write_random_facenet, pipeline  # this folder is on sys.path when the script runs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(ROOT / "data/demo"))
    parser.add_argument("--embedder", default="forensic", choices=("forensic", "facenet"))
    parser.add_argument("--settings", default="extract.detect_max_side=0;extract.detect_max_side=320",
                        help="settings separated by ';', overrides within one by ','")
    parser.add_argument("--trees", default="",
                        help="checkouts separated by ',' to run side by side (with the first setting)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/first_row.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fakeface-first-row-"))
    try:
        weights = work / "facenet_keras.h5"
        if args.embedder == "facenet":
            _write_random_facenet(weights)
        settings = [s.split(",") for s in args.settings.split(";")]
        # Each arm: a name, the checkout it runs and its overrides.
        arms = ([(str(Path(t).resolve()), Path(t).resolve(), settings[0]) for t in args.trees.split(",")]
                if args.trees else [(";".join(s), ROOT, s) for s in settings])
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in arms}
        result = {"date": time.strftime("%Y-%m-%d"), "embedder": args.embedder, "corpus": args.corpus,
                  "commits": {name: _commit(tree) for name, tree, _ in arms},
                  "load_average_start": os.getloadavg(), "runs": runs}
        for k in range(args.runs):
            for n, (name, tree, overrides) in enumerate(arms):
                out = work / f"out-{k}-{n}"
                run = pipeline(Path(args.corpus), out, args.embedder, weights, overrides, tree)
                runs[name].append({"first_row_s": run["first_row_s"], "process_s": run["seconds"],
                                   "images": sum(run["counts_by_status"].values()),
                                   "counts_by_status": run["counts_by_status"]})
                print(f"{name:<40} first row {run['first_row_s']:5.1f} s, "
                      f"process {run['seconds']:5.1f} s", flush=True)
        result["load_average_end"] = os.getloadavg()
        result["median_first_row_s"] = {name: statistics.median(r["first_row_s"] for r in rs) for name, rs in runs.items()}
        print(json.dumps(result["median_first_row_s"], indent=1))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _commit(tree: Path) -> str:
    """The checkout's commit, with '+' when its working tree has changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=tree, capture_output=True, text=True)
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    main()
