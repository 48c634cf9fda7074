"""Cross-generator quality: train on one generator's fakes (and synthetic ones), test on the others.

Each corpus of `benchmarks/corpora.py` (paste, poisson, swap, retouch; built from ../shared/faces)
is extracted once through the pipeline. For every split seed, the source photos are split in two
pools, so no photo (real, or the base of a fake) is on both sides: the classifier trains on the
training pool's images of one corpus and is tested on the test pool's images of every corpus.

Training sets, per embedder:
- `labelled`: the corpus's labelled reals and fakes (what `fakeface run` does today);
- `+synthetic`: the same, plus K synthetic fakes per training real (fakeface_ray.stages.synth);
- `synthetic only`: the training reals and their synthetic fakes, no labelled fake at all.

Each cell is macro F1 and ROC AUC as mean +- std over the seeds. A shortcut check (a classifier on
global image statistics alone) runs on every corpus; it must stay near chance.

    python benchmarks/corpora.py --out runs/corpora
    python benchmarks/quality.py --corpora runs/corpora --work runs/quality
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fakeface_ray.config import (ClassifierName, EmbedConfig, ExtractConfig, SynthConfig, TrainConfig,  # noqa: E402
                                 choices, load_config)
from fakeface_ray.learning.evaluate import evaluate  # noqa: E402
from fakeface_ray.learning.train import Embeddings, concat, tune  # noqa: E402
from fakeface_ray.stages.embed import FaceEmbedder  # noqa: E402
from fakeface_ray.stages.synth import FakeSynthesizer, choose_donors  # noqa: E402
from fakeface_ray.storage.locations import read_bytes  # noqa: E402
from fakeface_ray.storage.schema import CLASSES  # noqa: E402



def extract(corpus: Path, out: Path, embedder: str) -> list[dict]:
    """Rows of the corpus's embeddings (extracting them first unless already complete)."""
    from fakeface_ray.runs import run_extract

    if not (out / "embeddings" / "_COMPLETE").exists():
        config = load_config(overrides=[f"embed.embedder={embedder}"], infile=str(corpus), out=str(out))
        run_extract(config, overwrite=True)
    columns = ["image_id", "uri", "label", "status", "face_box", "face_confidence", "keypoints", "embedding",
               "embedder"]
    return pads.dataset(str(out / "embeddings"), format="parquet").to_table(columns=columns).to_pylist()


def photos_of(corpus: Path) -> dict[str, str]:
    """image_id -> source photo, from the corpus manifest."""
    manifest = json.loads((corpus / "manifest.json").read_text())
    return {m["file"]: m["photo"] for m in manifest["images"]}


def training_pool(photos: set[str], seed: int) -> set[str]:
    """Half of the source photos, drawn by the seed: the training side of every corpus of a set."""
    rng = np.random.default_rng(seed)
    return set(rng.choice(sorted(photos), size=len(photos) // 2, replace=False).tolist())


def as_embeddings(rows: list[dict], embedder: str) -> Embeddings:
    ids = np.array([r["image_id"] for r in rows], dtype=object)
    return Embeddings(ids, np.array([r["uri"] for r in rows], dtype=object),
                      np.array([r["embedding"] for r in rows], dtype=np.float32).reshape(len(rows), -1),
                      np.array([CLASSES.index(r["label"]) for r in rows], dtype=np.int64), embedder)


def synthesize(reals: list[dict], variants: int, seed: int, embedder: FaceEmbedder) -> Embeddings:
    """K synthetic fakes per real, with donors among these reals, embedded in this process."""
    keypoints = np.array([r["keypoints"] for r in reals], dtype=np.float32)
    donors = choose_donors(keypoints, seed)
    batch = {
        "image_id": np.array([r["image_id"] for r in reals], dtype=object),
        "uri": np.array([r["uri"] for r in reals], dtype=object),
        "bytes": np.array([read_bytes(r["uri"]) for r in reals], dtype=object),
        "read_error": np.full(len(reals), "", dtype=object),
        "face_box": np.array([r["face_box"] for r in reals], dtype=np.int32),
        "face_confidence": np.array([r["face_confidence"] for r in reals], dtype=np.float32),
        "keypoints": keypoints,
        "donor_uri": np.array([reals[d]["uri"] for d in donors], dtype=object),
        "donor_keypoints": keypoints[donors],
    }
    stage = FakeSynthesizer(replace(SynthConfig(), variants=variants), ExtractConfig(), seed=seed)
    table = embedder(stage(batch)).to_pylist()
    rows = [r for r in table if r["status"] == "ok"]
    fakes = as_embeddings(rows, rows[0]["embedder"] if rows else "")
    fakes.parents = np.array([r["image_id"].split("#synthetic-")[0] for r in rows], dtype=object)
    return fakes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=str(ROOT / "runs/corpora"))
    parser.add_argument("--work", default=str(ROOT / "runs/quality"))
    parser.add_argument("--generators", default="paste,poisson,swap,retouch")
    parser.add_argument("--embedder", default="forensic")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--classifier", default=TrainConfig.classifier, choices=choices(ClassifierName),
                        help="train.classifier for every cell (default: the config's)")
    parser.add_argument("--sets", default="labelled,+synthetic,synthetic only",
                        help="training sets for the --embedder rows; empty for none")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/quality.json"))
    args = parser.parse_args()

    from fakeface_ray.cluster.connect import connect
    from fakeface_ray.config import RayConfig

    connect(RayConfig())
    corpora, work = Path(args.corpora), Path(args.work)
    generators = args.generators.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows, photos = {}, {}
    for g in generators:
        corpus = corpora / g / "real_and_fake_face"
        rows[g] = [r for r in extract(corpus, work / g, args.embedder) if r["status"] == "ok"]
        photos[g] = photos_of(corpus)
        print(f"{g}: {len(rows[g])} usable rows", flush=True)
    version = rows[generators[0]][0]["embedder"]  # the version the rows were made with, e.g. forensic-v2
    embed_stage = FaceEmbedder(EmbedConfig(embedder=args.embedder))
    config = TrainConfig(backend="loky", n_jobs=2, classifier=args.classifier)
    cells: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    started = time.perf_counter()
    for seed in seeds:
        train_pool = training_pool({p for g in generators for p in photos[g].values()}, seed)
        wanted = [w for w in args.sets.split(",") if w]
        for g1 in generators if wanted else []:
            train_rows = [r for r in rows[g1] if photos[g1][r["image_id"]] in train_pool]
            labelled = as_embeddings(train_rows, args.embedder)
            reals = [r for r in train_rows if r["label"] == "real"]
            sets = {"labelled": labelled}
            if set(wanted) - {"labelled"}:
                synthetic = synthesize(reals, args.variants, seed, embed_stage)
                sets.update({"+synthetic": concat(labelled, synthetic),
                             "synthetic only": concat(labelled.take(labelled.y == 0), synthetic)})
            for training, data in ((t, d) for t, d in sets.items() if t in wanted):
                result = tune(data, data, config, seed)
                for g2 in generators:
                    test_rows = [r for r in rows[g2] if photos[g2][r["image_id"]] not in train_pool]
                    metrics = evaluate(result.artifact, as_embeddings(test_rows, args.embedder)).metrics
                    cells.setdefault((g1, f"{version}: {training}", g2), []).append(
                        (metrics.macro_f1, metrics.roc_auc))
            print(f"seed {seed} {g1}: done ({time.perf_counter() - started:.0f} s)", flush=True)

    table = {f"{g1} | {training} | {g2}": cell_summary(values) for (g1, training, g2), values in cells.items()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"embedder": args.embedder, "classifier": args.classifier,
                                           "variants": args.variants, "seeds": seeds,
                                           "cells": table}, indent=1))
    print(markdown(table, generators))


def cell_summary(values: list[tuple[float, float]]) -> dict:
    """A cell's macro F1 and ROC AUC, mean and std over its seeds' (macro F1, ROC AUC) pairs."""
    f1, auc = np.asarray(values, dtype=float).T
    return {"macro_f1_mean": float(np.mean(f1)), "macro_f1_std": float(np.std(f1)),
            "roc_auc_mean": float(np.mean(auc)), "roc_auc_std": float(np.std(auc)), "seeds": len(values)}


def markdown(table: dict, generators: list[str]) -> str:
    """Rows: training corpus and set; columns: test corpus; cells: macro F1 / ROC AUC, mean +- std."""
    lines = ["| trained on | training set | " + " | ".join(f"test: {g}" for g in generators) + " |",
             "|---|---|" + "---|" * len(generators)]
    rows = sorted({tuple(k.split(" | ")[:2]) for k in table}, key=lambda r: (r[0] == "any", r[0], r[1]))
    for g1, training in rows:
        cells = [table[f"{g1} | {training} | {g2}"] for g2 in generators]
        lines.append(f"| {g1} | {training} | " + " | ".join(
            f"{c['macro_f1_mean']:.2f} ± {c['macro_f1_std']:.2f} / {c['roc_auc_mean']:.2f} ± {c['roc_auc_std']:.2f}"
            for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
