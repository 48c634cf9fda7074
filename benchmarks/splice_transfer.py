"""Cross-generator quality of the run's own splice-v1: train on one generator, test on the others.

`benchmarks/split_protocol.py --runs DIR --set splice.use=concat` keeps one `fakeface train` run per
corpus and split seed (`<generator>-<seed>`): its cross-fitted splice networks, trained on that
corpus's training split (reals, fakes synthesised from them every epoch, the split's labelled
fakes), and its classifier on forensic features beside the networks' scores. This scores those
runs on every other corpus of the set, as `predict` would: each test row gets the mean of the
run's networks (`SpliceFeatures`, in this process) and the run's own classifier decides. Beside it,
on the same split: the embedder alone (the product's default) and the splice scores alone, each
with the product's grid search and threshold (`train.tune`).

A test row is one whose source photo is not among the photos of the run's training side, so no
photo (real, or the base of a fake) is on both sides. Each cell is macro F1 and ROC AUC, mean +-
std over the seeds; on the generator trained on, the run's classifier reproduces the run's own
metrics.json (checked).

    .venv/bin/python benchmarks/split_protocol.py --work runs/q6_published --runs runs/sp_published \\
        --seeds 0,1,2 --set splice.use=concat
    .venv/bin/python benchmarks/splice_transfer.py \\
        --sets published=runs/corpora_published:runs/q6_published:runs/sp_published [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fakeface_ray.config import load_config  # noqa: E402
from fakeface_ray.learning.artifact import load_artifact  # noqa: E402
from fakeface_ray.learning.evaluate import evaluate  # noqa: E402
from fakeface_ray.learning.train import Embeddings, fit, load_embeddings, split_by_ids, tune  # noqa: E402
from fakeface_ray.stages.embedders.splice import network_weights  # noqa: E402
from fakeface_ray.stages.splice_features import SCORE_DIMS, SpliceFeatures, SpliceNetworks  # noqa: E402
from fakeface_ray.storage import parts  # noqa: E402
from fakeface_ray.storage.locations import location  # noqa: E402
from quality import cell_summary, photos_of  # noqa: E402  (benchmarks/, this script's folder)

GENERATORS = ("paste", "poisson", "swap", "retouch")
FORENSIC, ALONE, RUN = MODELS = ("forensic", "splice-v1 alone", "forensic + splice-v1 (the run)")


def scores_alone(data: Embeddings) -> Embeddings:
    """The splice-v1 columns of concat rows: what `splice.use=alone` trains on (same networks)."""
    return Embeddings(data.ids, data.uris, data.x[:, -SCORE_DIMS:], data.y, "splice-v1", data.groups, data.parents)


def spliced(weights: tuple[bytes, ...], embeddings: Path, cache: Path, max_pixels: int) -> Embeddings:
    """Every row of `embeddings` with a run's splice scores (the mean of its networks' `weights`).

    Kept in `cache` with the networks' sha256: a run trained again since is scored again.
    """
    digest = hashlib.sha256(b"".join(weights)).hexdigest()
    stamp = cache / "_networks.sha256"  # `_` files are not read as parts
    if not (stamp.exists() and stamp.read_text() == digest):
        rows = SpliceFeatures(SpliceNetworks(weights, "concat", max_pixels), num_threads=2)(
            parts.read_folder(location(embeddings)))
        cache.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows, cache / "part-0.parquet")
        stamp.write_text(digest)
    return load_embeddings(cache)


def held(data: Embeddings, photos: dict[str, str], training_photos: set[str]) -> Embeddings:
    """The rows whose source photo the run never trained on."""
    return data.take(np.array([photos[i] not in training_photos for i in data.ids]))


def score(artifact, data: Embeddings) -> tuple[float, float]:
    """Macro F1 and ROC AUC of a trained artifact on `data`."""
    metrics = evaluate(artifact, data).metrics
    return float(metrics.macro_f1), float(metrics.roc_auc)


def one_set(corpora: Path, work: Path, runs: Path, seeds: list[int], cache: Path) -> dict:
    """Cells (trained on, model, tested on) -> [(macro F1, ROC AUC) per seed] for one corpus set."""
    photos = {g: photos_of(corpora / g / "real_and_fake_face") for g in GENERATORS}
    forensic = {g: load_embeddings(work / g / "embeddings") for g in GENERATORS}
    cells: dict[str, list] = {}
    for seed in seeds:
        config = load_config(overrides=[f"seed={seed}", "train.test_split=0.5", "train.backend=loky"])
        for g1 in GENERATORS:
            run = runs / f"{g1}-{seed}"
            started = time.perf_counter()
            own = load_embeddings(run / "splice_embeddings")
            test_ids = set(pq.read_table(run / "test_predictions.parquet", columns=["image_id"])
                           .column("image_id").to_pylist())
            train_ids = set(own.ids.tolist()) - test_ids
            training_photos = {photos[g1][i] for i in train_ids}
            weights = tuple(network_weights(run / "model"))  # read and verified once per run
            models = {
                FORENSIC: fit(forensic[g1], config.train, seed, train_ids=train_ids).artifact,
                ALONE: tune(*split_by_ids(scores_alone(own), train_ids), config.train, seed).artifact,
                RUN: load_artifact(run / "model")[0],
            }
            for g2 in GENERATORS:
                rows = own if g2 == g1 else spliced(weights, work / g2 / "embeddings",
                                                    cache / f"{g1}-{seed}" / g2, config.read.max_pixels)
                test = held(rows, photos[g2], training_photos)
                inputs = {FORENSIC: held(forensic[g2], photos[g2], training_photos), ALONE: scores_alone(test),
                          RUN: test}
                for name, artifact in models.items():
                    cells.setdefault(f"{g1} | {name} | {g2}", []).append(score(artifact, inputs[name]))
                if g2 == g1:
                    recorded = json.loads((run / "metrics.json").read_text())["macro_f1"]
                    measured = cells[f"{g1} | {RUN} | {g2}"][-1][0]
                    if abs(recorded - measured) > 1e-9:
                        raise SystemExit(f"{run}: the run's classifier scores {measured} here, {recorded} in metrics.json")
            print(f"seed {seed} {g1}: done in {time.perf_counter() - started:.0f} s", flush=True)
    return cells


def summary(cells: dict) -> dict:
    """Per cell mean +- std; per model the means on the generator trained on and on the others."""
    table = {k: cell_summary(values) for k, values in cells.items()}
    means = {}
    for name in MODELS:
        same = [table[f"{g} | {name} | {g}"] for g in GENERATORS]
        other = [table[f"{g1} | {name} | {g2}"] for g1 in GENERATORS for g2 in GENERATORS if g1 != g2]
        means[name] = {f"{side}_{m}": float(np.mean([c[f"{m}_mean"] for c in chosen]))
                       for side, chosen in (("same", same), ("other", other)) for m in ("macro_f1", "roc_auc")}
    return {"cells": table, "means": means}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", required=True,
                        help="name=CORPORA:WORK:RUNS,...: corpora.py's folder, quality.py's work folder "
                             "(forensic embeddings) and split_protocol.py's --runs folder")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--cache", default=str(ROOT / "runs/splice_transfer"),
                        help="where the other corpora's splice scores are kept, per set and run, with their networks' sha256")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/splice_transfer.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results, started = {}, time.perf_counter()
    for entry in args.sets.split(","):
        name, folders = entry.split("=", 1)
        corpora, work, runs = (Path(f) for f in folders.split(":"))
        results[name] = summary(one_set(corpora, work, runs, seeds, Path(args.cache) / name))
        for model, m in results[name]["means"].items():
            print(f"{name} | {model} | same {m['same_macro_f1']:.3f} / {m['same_roc_auc']:.3f} | "
                  f"other {m['other_macro_f1']:.3f} / {m['other_roc_auc']:.3f}", flush=True)
        machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        Path(args.json).write_text(json.dumps({"machine": machine, "date": time.strftime("%Y-%m-%d"), "seeds": seeds,
                                               "seconds": round(time.perf_counter() - started), "sets": results},
                                              indent=1))


if __name__ == "__main__":
    main()
