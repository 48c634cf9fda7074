"""The hidden check's protocol on this box's corpora: `fakeface train --testsplit 0.5 --set seed=S`.

The issue's targets are measured as a user would run the tool: one corpus, half of it held out,
default settings, the mean of split seeds. This runs that command on each corpus's embeddings from
`benchmarks/quality.py` (its `--work` folder holds `<generator>/embeddings`), one process per seed,
and collects each run's own `metrics.json`. Unlike `quality.py` it splits by image, not by source
photo, exactly as `fakeface run` does.

    .venv/bin/python benchmarks/quality.py --corpora runs/corpora_published --work runs/quality_published
    .venv/bin/python benchmarks/split_protocol.py --work runs/quality_published [--seeds 0,1,2,3,4,5]
        [--set synth.variants=4] [--in-process [--set train.classifier=svc]] [--json benchmarks/results/split_protocol.json] [--runs DIR]

`--in-process` runs the command's own steps (the same split, grid search, threshold and test) in
this process, with joblib's loky backend instead of a Ray per seed: seconds instead of minutes per
corpus, and the same numbers (forensic-v6, published corpora, 6 seeds: equal to the third decimal).
It takes only `train.*` in `--set`: the command's synthetic fakes and splice networks need its
output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_once(embeddings: Path, seed: int, overrides: list[str], out: Path) -> dict:
    """One `fakeface train` process; its metrics and wall time."""
    command = [sys.executable, "-m", "fakeface_ray.cli", "train", "--embeddings", str(embeddings),
               "--testsplit", "0.5", "--out", str(out), "--set", f"seed={seed}"]
    for override in overrides:
        command += ["--set", override]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"macro_f1": metrics["macro_f1"], "roc_auc": metrics["roc_auc"], "embedder": metrics["embedder"],
            "seconds": time.perf_counter() - started}


def run_in_process(embeddings: Path, seed: int, overrides: list[str]) -> dict:
    """`run_once`'s split, grid search, threshold and test metrics, without a process or Ray."""
    from fakeface_ray.config import load_config
    from fakeface_ray.learning.evaluate import evaluate
    from fakeface_ray.learning.train import fit, load_embeddings

    config = load_config(overrides=[f"seed={seed}", "train.test_split=0.5", "train.backend=loky", *overrides])
    started = time.perf_counter()
    result = fit(load_embeddings(embeddings), config.train, config.seed)
    metrics = evaluate(result.artifact, result.test).metrics
    return {"macro_f1": metrics.macro_f1, "roc_auc": metrics.roc_auc, "embedder": result.artifact.embedder,
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="benchmarks/quality.py's --work folder")
    parser.add_argument("--generators", default="paste,poisson,swap,retouch")
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--in-process", action="store_true", help="the command's steps in this process")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/split_protocol.json"))
    parser.add_argument("--runs", help="keep each run's folder here (<generator>-<seed>) instead of a temporary "
                                       "one: a second call with other settings reuses its splice networks")
    args = parser.parse_args()
    if args.in_process and any(not o.startswith("train.") for o in args.overrides):
        parser.error("--in-process takes only train.* in --set")

    seeds = [int(s) for s in args.seeds.split(",")]
    generators: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = args.runs or scratch
        for g in args.generators.split(","):
            embeddings = Path(args.work) / g / "embeddings"
            runs = {s: run_in_process(embeddings, s, args.overrides) if args.in_process
                    else run_once(embeddings, s, args.overrides, Path(scratch) / f"{g}-{s}") for s in seeds}
            f1 = [r["macro_f1"] for r in runs.values()]
            auc = [r["roc_auc"] for r in runs.values()]
            generators[g] = {"seeds": runs, "macro_f1_mean": float(np.mean(f1)), "macro_f1_std": float(np.std(f1)),
                             "roc_auc_mean": float(np.mean(auc)), "roc_auc_std": float(np.std(auc))}
            print(f"{g}: macro F1 {np.mean(f1):.2f} ± {np.std(f1):.2f}, ROC AUC {np.mean(auc):.2f} "
                  f"({len(seeds)} seeds, {runs[seeds[0]]['embedder']})", flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    result = {"machine": machine, "date": time.strftime("%Y-%m-%d"),
              "command": "fakeface train --embeddings <work>/<generator>/embeddings --testsplit 0.5 --set seed=S"
                         + "".join(f" --set {o}" for o in args.overrides),
              "in_process": args.in_process,
              "work": args.work, "generators": generators}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
