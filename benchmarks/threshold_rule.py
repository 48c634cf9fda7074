"""The decision threshold's rules side by side: the best out-of-fold macro F1, the model's own boundary, and the
one-standard-error rule between them; candidate rules anchored on the real images' scores alone; and two
diagnostics that read the test split, so no run can use them (an oracle cut, and a cut at the training
side's share of fakes).

Every rule reads the same fitted model on the same split, so they differ only in the threshold. A
false-alarm rule (`false_alarm_R`) takes the lowest threshold whose share of out-of-fold reals called fake
is at most R: the reals' scores do not depend on how the fakes were made, so its cut does not move with the
training generator. `one_se_or_false_alarm_R` takes the lower of that and `one_se`. `one_se_lowest` takes
the lowest threshold whose out-of-fold macro F1 is within one standard error of the best (`one_se`'s band),
and `one_se_band_false_alarm_R` lowers `one_se` towards the false-alarm cut but not below that band: where
the folds separate the classes cleanly the band is narrow and nothing moves.
The protocol is the hidden check's (`split_protocol.py --in-process`: `fakeface train --testsplit 0.5
--set seed=S`'s split, grid search and out-of-fold decision values), on every corpus set's generators,
optionally across generators (`--cross`: `quality.py`'s split by source photo, trained on one generator's
training pool and tested on every other generator's test pool), and optionally on larger corpora (`--demo`:
a `fakeface extract` run of `fakeface demo-data --variants 40`, the whole training half and a subset of
`--demo-rows`).

    .venv/bin/python benchmarks/threshold_rule.py \\
        --sets published:runs/q7_published,shipped:runs/q7_shipped [--seeds 0,1,2,3,4,5] \\
        [--classifiers trees,svc] [--set train.tree_max_features=2] \\
        [--cross] [--demo runs/demo40_run] [--json benchmarks/results/threshold_rule.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fakeface_ray.config import TrainConfig, load_config  # noqa: E402
from fakeface_ray.learning.threshold import band_floor, choose_threshold, false_alarm_cut, rates, share_fakes  # noqa: E402
from fakeface_ray.learning.train import Embeddings, load_embeddings, split, split_by_ids, tune  # noqa: E402
from quality import photos_of, training_pool  # noqa: E402  (this folder, as the script's own)

RULES = ("max_macro_f1", "boundary", "one_se")
FALSE_ALARMS = (0.1, 0.15, 0.2, 0.25, 0.3)
CANDIDATES = tuple(f"false_alarm_{r:g}" for r in FALSE_ALARMS) + tuple(f"one_se_or_false_alarm_{r:g}"
                                                                        for r in FALSE_ALARMS)
BAND_FALSE_ALARMS = (0.2, 0.25, 0.3)  # a subset of FALSE_ALARMS: their cuts are reused
BANDED = ("one_se_lowest",) + tuple(f"one_se_band_false_alarm_{r:g}" for r in BAND_FALSE_ALARMS)
# The training side's share of fakes is the test split's (stratified); `predict.fake_share` given
# 0.1 too low or too high is what a user's wrong guess costs.
SHARE_ERRORS = (-0.1, 0.1)
DIAGNOSTICS = ("oracle", "training_share") + tuple(f"training_share_{e:+g}" for e in SHARE_ERRORS)
COLUMNS = RULES + CANDIDATES + BANDED + DIAGNOSTICS
SHOWN = ("one_se", "one_se_or_false_alarm_0.2", "one_se_lowest", "one_se_band_false_alarm_0.2",
         "one_se_band_false_alarm_0.3", "oracle", "training_share")


def oracle_cut(y: np.ndarray, scores: np.ndarray) -> float:
    """The threshold with the best macro F1 on these very rows (a bound no run can reach)."""
    return choose_threshold(y, scores, "max_macro_f1").threshold


# What the protocol sets itself: --classifiers picks the classifier, each column's threshold comes from
# the out-of-fold scores (so the library's threshold settings are never read), and the fits run locally.
FIXED = {"classifier", "backend", "n_jobs", "test_split", "threshold", "min_fake_recall", "false_alarm_allowance"}


def protocol_config(kind: str, overrides: list[str]) -> TrainConfig:
    """The library's train section with `--set` overrides, fitted as the rules need: loky, on `kind`."""
    keys = [item.partition("=")[0].strip() for item in overrides]
    fixed = sorted(key for key in keys if key.removeprefix("train.") in FIXED)
    if fixed:
        raise SystemExit(f"--set {', '.join(fixed)}: the protocol sets these itself (--classifiers for the classifier)")
    return replace(load_config(overrides=overrides).train, backend="loky", n_jobs=2, classifier=kind,
                   test_split=0.5, threshold="boundary")


def paired(train: Embeddings, test: Embeddings, config: TrainConfig, seed: int) -> dict:
    """One fit; test macro F1 at each rule's threshold, and the ROC AUC."""
    return paired_tests(train, {"test": test}, config, seed)["test"]


def paired_tests(train: Embeddings, tests: dict[str, Embeddings], config: TrainConfig, seed: int) -> dict[str, dict]:
    """One fit with `config` (`protocol_config`), then each test set's macro F1 at each rule's cut, and ROC AUC."""
    started = time.perf_counter()
    result = tune(train, train, config, seed)
    fit_s = time.perf_counter() - started
    cuts = {rule: choose_threshold(train.y, result.oof_scores, rule).threshold for rule in RULES}
    for r in FALSE_ALARMS:
        cuts[f"false_alarm_{r:g}"] = false_alarm_cut(train.y, result.oof_scores, r)
        cuts[f"one_se_or_false_alarm_{r:g}"] = min(cuts["one_se"], cuts[f"false_alarm_{r:g}"])
    cuts["one_se_lowest"] = band_floor(train.y, result.oof_scores)
    for r in BAND_FALSE_ALARMS:
        # Lowered towards the false-alarm cut, but not below the band of thresholds as good as the best.
        cuts[f"one_se_band_false_alarm_{r:g}"] = min(cuts["one_se"], max(cuts["one_se_lowest"],
                                                                         cuts[f"false_alarm_{r:g}"]))
    out = {}
    for name, test in tests.items():
        scores = result.artifact.scores(test.x)
        tested = cuts | {"oracle": oracle_cut(test.y, scores)}
        out[name] = {"roc_auc": float(roc_auc_score(test.y, scores)), "fit_s": fit_s, "train_rows": len(train.y)}
        for rule, cut in tested.items():
            out[name][rule] = {"threshold": cut, "macro_f1": rates(test.y, scores, cut)[2],
                               "called_fake": float(np.mean(scores >= cut))}
        # `predict --fake-share`'s labels: the share's highest scores, ties broken by image_id.
        for e in (0.0, *SHARE_ERRORS):
            fake = share_fakes(scores, train.y.mean() + e, test.ids)
            out[name]["training_share" + (f"_{e:+g}" if e else "")] = {
                "threshold": float(scores[fake].min()) if fake.any() else None,
                "macro_f1": float(f1_score(test.y, fake.astype(int), average="macro", zero_division=0)),
                "called_fake": float(fake.mean())}
    return out


def summarise(runs: list[dict]) -> dict:
    """Each column's mean and std over the seeds, and its gain over `max_macro_f1`: mean, seeds won and lost."""
    out: dict = {"roc_auc_mean": float(np.mean([r["roc_auc"] for r in runs]))}
    for rule in COLUMNS:
        f1 = np.array([r[rule]["macro_f1"] for r in runs])
        gain = f1 - np.array([r["max_macro_f1"]["macro_f1"] for r in runs])
        out[rule] = {"macro_f1_mean": float(f1.mean()), "macro_f1_std": float(f1.std()),
                     "gain_mean": float(gain.mean()), "wins": int(np.sum(gain > 0)), "losses": int(np.sum(gain < 0)),
                     "called_fake_mean": float(np.mean([r[rule]["called_fake"] for r in runs]))}
    out["runs"] = runs
    return out


def line(cell: dict) -> str:
    """The shown columns' mean macro F1, with their wins and losses against `max_macro_f1`."""
    return ", ".join(f"{rule} {cell[rule]['macro_f1_mean']:.3f}" + (f" ({cell[rule]['wins']}+/{cell[rule]['losses']}-)"
                                                                   if rule != "max_macro_f1" else "")
                     for rule in SHOWN)


def protocol(sets: dict[str, Path], generators: list[str], seeds: list[int], config: TrainConfig) -> dict:
    """{set: {generator: summary}} on the hidden check's split of each corpus."""
    out: dict[str, dict] = {}
    for name, work in sets.items():
        for g in generators:
            data = load_embeddings(work / g / "embeddings")
            runs = []
            for seed in seeds:
                train, test = split(data, 0.5, seed)
                runs.append(paired(train, test, config, seed))
            cell = out.setdefault(name, {})[g] = summarise(runs)
            print(f"{config.classifier} {name}/{g}: {line(cell)}", flush=True)
    return out


def row_photos(data: Embeddings) -> np.ndarray:
    """Each row's source photo, from the manifest of the corpus its files are in (`corpora.py`'s)."""
    photo = photos_of(Path(data.uris[0]).parents[1])
    return np.array([photo[i] for i in data.ids], dtype=object)


def cross(sets: dict[str, Path], generators: list[str], seeds: list[int], config: TrainConfig) -> dict:
    """{set: {"g1>g2": summary}}: trained on g1's training pool, tested on g2's test pool (g2 != g1).

    The pools are `quality.py`'s: half of all the set's source photos by the seed, so no photo, real or
    the base of a fake, is on both sides.
    """
    out: dict[str, dict] = {}
    for name, work in sets.items():
        data = {g: load_embeddings(work / g / "embeddings") for g in generators}
        photos = {g: row_photos(d) for g, d in data.items()}
        runs: dict[str, list[dict]] = {}
        for seed in seeds:
            pool = training_pool({p for ps in photos.values() for p in ps}, seed)
            sides = {g: split_by_ids(d, set(d.ids[np.isin(photos[g], list(pool))])) for g, d in data.items()}
            for g1 in generators:
                tests = {g2: sides[g2][1] for g2 in generators if g2 != g1}
                for g2, run in paired_tests(sides[g1][0], tests, config, seed).items():
                    runs.setdefault(f"{g1}>{g2}", []).append(run)
        out[name] = {cell: summarise(r) for cell, r in runs.items()}
        print(f"{config.classifier} {name} across generators: {line(overall(list(out[name].values())))}", flush=True)
    return out


def large(path: Path, rows: list[int], seeds: list[int], config: TrainConfig) -> dict:
    """{rows: summary}: the training half of a larger corpus, whole and in stratified subsets."""
    data = load_embeddings(path / "embeddings")
    out: dict[str, dict] = {}
    for n in rows:
        runs = []
        for seed in seeds:
            train, test = split(data, 0.5, seed)
            if n < len(train.y):
                keep, _ = split(train, 1.0 - n / len(train.y), seed)
                train = keep
            runs.append(paired(train, test, config, seed))
        cell = out[str(runs[0]["train_rows"])] = summarise(runs)
        print(f"{config.classifier} {path} {runs[0]['train_rows']} rows: {line(cell)}", flush=True)
    return out


def overall(cells: list[dict]) -> dict:
    """Every run of these cells pooled (each rule's mean, gain, wins and losses), and the cells each rule gains."""
    runs = [r for c in cells for r in c["runs"]]
    out = {k: v for k, v in summarise(runs).items() if k != "runs"}
    for rule in COLUMNS:
        out[rule]["cells_gaining"] = sum(c[rule]["gain_mean"] > 0 for c in cells)
    return out | {"cells": len(cells)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", required=True, help="NAME:WORK pairs, comma-separated (quality.py's --work folders)")
    parser.add_argument("--generators", default="paste,poisson,swap,retouch")
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--classifiers", default="trees,svc")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="a config override as `fakeface --set` takes it (train.tree_max_features=2); repeatable")
    parser.add_argument("--cross", action="store_true", help="also train on one generator, test on the others")
    parser.add_argument("--demo", help="a `fakeface extract` --out of a larger corpus (demo-data --variants 40)")
    parser.add_argument("--demo-rows", default="250,5000", help="training rows taken from its training half")
    parser.add_argument("--demo-seeds", default="0,1,2")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/threshold_rule.json"))
    args = parser.parse_args()

    sets = {name: Path(work) for name, work in (pair.split(":", 1) for pair in args.sets.split(","))}
    seeds = [int(s) for s in args.seeds.split(",")]
    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                    "date": time.strftime("%Y-%m-%d"), "seeds": seeds, "overrides": args.overrides, "classifiers": {}}
    for kind in args.classifiers.split(","):
        config = protocol_config(kind, args.overrides)
        cells = protocol(sets, args.generators.split(","), seeds, config)
        entry = {"protocol": cells,
                 "protocol_overall": overall([c for by_g in cells.values() for c in by_g.values()]),
                 "protocol_paste": overall([by_g["paste"] for by_g in cells.values() if "paste" in by_g])}
        if args.cross:
            across = cross(sets, args.generators.split(","), seeds, config)
            entry["cross"] = across
            entry["cross_overall"] = overall([c for by_cell in across.values() for c in by_cell.values()])
        if args.demo:
            entry["demo"] = large(Path(args.demo), [int(n) for n in args.demo_rows.split(",")],
                                  [int(s) for s in args.demo_seeds.split(",")], config)
        result["classifiers"][kind] = entry
        print(f"{kind} overall: {line(entry['protocol_overall'])}", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
