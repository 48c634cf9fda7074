"""Learning curves of the classifiers on real embeddings: macro F1 against training rows, trees and SVM.

`train.classifier: auto` takes the extremely randomised trees up to `TREES_MAX_ROWS` training rows.
Their lead over the SVM grid was measured at about 60 rows; this measures it from there up to the
cap, on embeddings the pipeline wrote:

- `corpora`: the corpora of `benchmarks/corpora.py` (every generator of every `--corpora` set, pooled),
  grouped by source photo: a photo's reals and the fakes made on it are all on one side;
- `demo`: a demo-generator corpus (`fakeface demo-data --variants 40`: 3,880 images of 98 people),
  grouped by person.

For each split seed the groups are split in halves (stratified, `fakeface_ray.learning.train.split`).
The classifier trains on a seeded, stratified subset of N rows of the training half, nested across N,
with the product's own grid search, folds (groups kept whole) and threshold (`train.tune`), and is
tested on the whole test half. Each cell is macro F1 and ROC AUC, mean +- std over the seeds, the
fit's seconds (2 joblib workers) and the pickled model's size.

    .venv/bin/fakeface demo-data --out runs/demo40 --variants 40
    .venv/bin/fakeface extract --infile runs/demo40/real_and_fake_face --out runs/demo40_run
    .venv/bin/python benchmarks/classifier_curve.py \\
        --corpora runs/corpora_published:runs/q6_published,runs/corpora_published_seed1:runs/q6_published_seed1 \\
        --demo runs/demo40:runs/demo40_run [--seeds 0,1,2,3,4] [--json benchmarks/results/classifier_curve.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fakeface_ray.config import TrainConfig  # noqa: E402
from fakeface_ray.learning.artifact import ClassifierArtifact  # noqa: E402
from fakeface_ray.learning.evaluate import evaluate  # noqa: E402
from fakeface_ray.learning.train import Embeddings, split, tune  # noqa: E402
from fakeface_ray.storage.schema import CLASSES  # noqa: E402
from quality import as_embeddings, extract, photos_of  # noqa: E402  (benchmarks/, this script's folder)

GENERATORS = ("paste", "poisson", "swap", "retouch")


def grouped(rows: list[dict], groups: list[str], families: list[str]) -> tuple[Embeddings, np.ndarray]:
    """Embeddings whose groups are the given names (photo or person), and each row's family."""
    names = {g: i for i, g in enumerate(sorted(set(groups)))}
    data = as_embeddings(rows, rows[0]["embedder"])
    data.groups = np.array([names[g] for g in groups], dtype=np.int64)
    return data, np.array(families, dtype=object)


def usable(corpus: Path, run: Path) -> list[dict]:
    """The ok rows of a corpus's embeddings under `run` (`quality.py`'s reader: extracts if missing)."""
    return [r for r in extract(corpus, run, "forensic") if r["status"] == "ok"]


def corpora_dataset(pairs: list[tuple[Path, Path]]) -> tuple[Embeddings, np.ndarray]:
    """Every generator of every corpus set, pooled; groups are source photos."""
    rows, groups, families = [], [], []
    for corpora, work in pairs:
        for g in GENERATORS:
            corpus = corpora / g / "real_and_fake_face"
            photo = photos_of(corpus)
            for r in usable(corpus, work / g):
                groups.append(photo[r["image_id"]])
                families.append(g)
                # Every set and generator names its files alike: the row's id says which corpus it is from.
                rows.append({**r, "image_id": f"{work.name}/{g}/{r['image_id']}"})
    return grouped(rows, groups, families)


def demo_dataset(corpus: Path, run: Path) -> tuple[Embeddings, np.ndarray]:
    """A demo-generator corpus; groups are people (a fake's base identity)."""
    manifest = json.loads((corpus / "manifest.json").read_text())
    person = {m["file"]: str(m["identity"]) for m in manifest["images"]}
    level = {m["file"]: m.get("level", "real") for m in manifest["images"]}
    rows = usable(corpus / "real_and_fake_face", run)
    return grouped(rows, [person[r["image_id"]] for r in rows], [level[r["image_id"]] for r in rows])


def nested_subset(train: Embeddings, size: int, seed: int) -> np.ndarray:
    """Row indices of a stratified subset of `size` rows; a smaller size's subset is in a larger one's."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(len(CLASSES)):
        rows = rng.permutation(np.flatnonzero(train.y == c))
        picked.append(rows[: round(size * len(rows) / len(train.y))])
    return np.sort(np.concatenate(picked))


def curve(data: Embeddings, families: np.ndarray, sizes: list[int], classifiers: list[str],
          seeds: list[int]) -> dict:
    """Cells {classifier: {size: ...}} over the seeds, and the training half's size.

    Args:
        sizes: training rows per cell; one past the training half takes all of it.
    """
    cells: dict[str, dict[int, list[dict]]] = {k: {} for k in classifiers}
    available = []
    for seed in seeds:
        train, test = split(data, 0.5, seed)
        test_families = families[np.isin(data.ids, test.ids)]
        available.append(len(train.y))
        for size in sizes:
            # A size past the training half takes all of it; the cell records the rows it had.
            subset = train.take(nested_subset(train, min(size, len(train.y)), seed))
            for kind in classifiers:
                config = TrainConfig(backend="loky", n_jobs=2, classifier=kind)
                started = time.perf_counter()
                result = tune(subset, test, config, seed)
                seconds = time.perf_counter() - started
                metrics = evaluate(result.artifact, test).metrics
                cell = {"rows": len(subset.y), "macro_f1": metrics.macro_f1, "roc_auc": metrics.roc_auc,
                        "fit_s": seconds, "model_mb": len(pickle.dumps(result.artifact.model)) / 1e6,
                        "params": result.best_params,
                        "macro_f1_by_family": family_f1(result.artifact, test, test_families)}
                cells[kind].setdefault(size, []).append(cell)
                print(f"seed {seed} n={len(subset.y)} {kind}: macro F1 {metrics.macro_f1:.3f}, "
                      f"ROC AUC {metrics.roc_auc:.3f}, {seconds:.1f} s", flush=True)
    summary = {kind: {str(size): summarise(runs) for size, runs in by_size.items()} for kind, by_size in cells.items()}
    return {"rows": len(data.y), "groups": int(len(np.unique(data.groups))), "training_half_rows": available,
            "cells": summary}


def family_f1(artifact: ClassifierArtifact, test: Embeddings, families: np.ndarray) -> dict:
    """Macro F1 on each family's test fakes together with all the test reals."""
    predicted = artifact.labels(artifact.scores(test.x))
    out = {}
    for family in sorted(set(families[test.y == 1])):
        keep = (test.y == 0) | (families == family)
        out[family] = float(f1_score(test.y[keep], predicted[keep], average="macro", labels=[0, 1]))
    return out


def summarise(runs: list[dict]) -> dict:
    """One cell's means and stds over the seeds, with each seed's numbers."""
    f1 = [r["macro_f1"] for r in runs]
    auc = [r["roc_auc"] for r in runs]
    out = {"macro_f1_mean": float(np.mean(f1)), "macro_f1_std": float(np.std(f1)),
           "roc_auc_mean": float(np.mean(auc)), "roc_auc_std": float(np.std(auc)),
           "fit_s_mean": float(np.mean([r["fit_s"] for r in runs])),
           "model_mb_mean": float(np.mean([r["model_mb"] for r in runs])),
           "macro_f1_by_family_mean": {f: float(np.mean([r["macro_f1_by_family"][f] for r in runs]))
                                       for f in runs[0]["macro_f1_by_family"]},
           "seeds": runs}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default="", help="CORPORA:WORK pairs, comma-separated (corpora.py's --out, "
                                                      "quality.py's --work)")
    parser.add_argument("--demo", default="", help="CORPUS:RUN of a demo-data corpus and its extract run")
    parser.add_argument("--corpora-sizes", default="56,110,220,440,900")
    parser.add_argument("--demo-sizes", default="60,125,250,500,1000,2000")
    parser.add_argument("--classifiers", default="trees,svc")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/classifier_curve.json"))
    args = parser.parse_args()

    seeds = [int(s) for s in args.seeds.split(",")]
    classifiers = args.classifiers.split(",")
    datasets = {}
    if args.corpora:
        pairs = [tuple(Path(p) for p in pair.split(":")) for pair in args.corpora.split(",")]
        datasets["corpora"] = (corpora_dataset(pairs), [int(s) for s in args.corpora_sizes.split(",")], args.corpora)
    if args.demo:
        corpus, run = (Path(p) for p in args.demo.split(":"))
        datasets["demo"] = (demo_dataset(corpus, run), [int(s) for s in args.demo_sizes.split(",")], args.demo)
    results = {}
    for name, ((data, families), sizes, source) in datasets.items():
        print(f"{name}: {len(data.y)} rows in {len(np.unique(data.groups))} groups", flush=True)
        results[name] = {"source": source, **curve(data, families, sizes, classifiers, seeds)}
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    out = {"machine": machine, "date": time.strftime("%Y-%m-%d"), "seeds": seeds, "datasets": results}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
