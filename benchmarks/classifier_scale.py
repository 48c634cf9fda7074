"""Classifier at scale: grid-search fit time and macro F1 of the exact SVC and scalable alternatives.

Synthetic embeddings (L2-normalised like FaceNet's, two classes made of several clusters each, so
a curved boundary helps) at N rows and D dims. Each classifier is `fakeface_ray.learning.classifiers.build`
(the product's own pipelines) grid-searched over C in {0.1, 1, 10}, RBF kernels at gamma = 1/D,
with 3 stratified folds and a refit, through Ray's joblib backend on a local Ray; macro F1 is on
a held-out 20%. A cell whose fit time, projected from the same classifier at the previous N with
the exponent measured so far (at least 2 for the exact SVC), would pass `--budget-s` is skipped
and the projection recorded instead. Then one cell through both ray and loky, to compare the
two joblib backends on this machine.

    .venv/bin/python benchmarks/classifier_scale.py [--sizes 2000,20000,200000] [--dims 128,512]
        [--classifiers svc,linear,sgd,nystroem] [--nystroem-components 500] [--budget-s 600]
        [--no-backends] [--merge]
        [--json benchmarks/results/classifier_scale.json]

`--merge` replaces the cells it measures in an existing JSON and keeps the others (e.g. to time
one exact-SVC cell past the budget).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from fakeface_ray.learning.classifiers import KINDS

ROOT = Path(__file__).resolve().parents[1]
C_GRID = (0.1, 1.0, 10.0)
GAMMAS = ("scale",)  # gamma = 1 / D on standardised inputs, SVC's own default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000,200000")
    parser.add_argument("--dims", default="128,512")
    parser.add_argument("--classifiers", default=",".join(KINDS))
    parser.add_argument("--nystroem-components", type=int, default=500)
    parser.add_argument("--no-backends", action="store_true", help="skip the ray vs loky comparison")
    parser.add_argument("--merge", action="store_true", help="update the cells of an existing --json")
    parser.add_argument("--budget-s", type=float, default=600.0, help="skip cells projected to take longer")
    parser.add_argument("--backend-cell", default="20000,128,nystroem",
                        help="N,D,classifier timed through both ray and loky")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/classifier_scale.json"))
    args = parser.parse_args()

    from fakeface_ray.cluster.connect import connect
    from fakeface_ray.config import RayConfig

    connect(RayConfig())
    sizes = [int(v) for v in args.sizes.split(",")]
    dims_list = [int(v) for v in args.dims.split(",")]
    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                    "date": time.strftime("%Y-%m-%d"), "grid": {"C": list(C_GRID), "gamma": list(GAMMAS)},
                    "folds": 3,
                    "nystroem_components": args.nystroem_components, "cells": []}
    if args.merge and Path(args.json).exists():
        result = {**json.loads(Path(args.json).read_text()), "date": result["date"]}
    for dims in dims_list:
        for kind in args.classifiers.split(","):
            for n in sizes:
                previous = sorted((c["n"], c["fit_s"]) for c in result["cells"]  # measured, smaller N
                                  if (c["dims"], c["classifier"]) == (dims, kind) and "fit_s" in c and c["n"] < n)
                projected = _project(previous, n, kind)
                if projected is not None and projected > args.budget_s:
                    cell = {"n": n, "dims": dims, "classifier": kind, "skipped": True, "projected_fit_s": projected}
                else:
                    cell = {"n": n, "dims": dims, "classifier": kind,
                            **grid_search(n, dims, kind, "ray", args.nystroem_components)}
                same = (cell["n"], cell["dims"], cell["classifier"])
                result["cells"] = [c for c in result["cells"] if (c["n"], c["dims"], c["classifier"]) != same]
                result["cells"].append(cell)
                _print_cell(cell)
    result["cells"].sort(key=lambda c: (c["dims"], KINDS.index(c["classifier"]), c["n"]))
    if not args.no_backends:
        n, dims, kind = args.backend_cell.split(",")
        result["backends"] = {"n": int(n), "dims": int(dims), "classifier": kind}
        for backend in ("ray", "loky"):
            result["backends"][backend] = grid_search(int(n), int(dims), kind, backend, args.nystroem_components)
            print(f"backend {backend:<5} N={n} D={dims} {kind}: fit {result['backends'][backend]['fit_s']:.1f} s")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"written {args.json}")


def synthetic(n: int, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N unit-length float32 vectors in two classes of 4 clusters each, 5% labels flipped."""
    x, y = make_classification(n_samples=n, n_features=dims, n_informative=min(32, dims), n_redundant=0,
                               n_clusters_per_class=4, class_sep=1.0, flip_y=0.05, random_state=seed)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), y.astype(np.int64)


def grid_search(n: int, dims: int, kind: str, backend: str, components: int = 500) -> dict:
    """Fit time (grid + refit) and held-out macro F1 of one classifier on synthetic data."""
    from fakeface_ray.learning.classifiers import build
    from fakeface_ray.config import TrainConfig

    x, y = synthetic(n, dims)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    config = dataclasses.replace(TrainConfig(), c_grid=C_GRID, gamma_grid=GAMMAS, kernels=("rbf",),
                                 nystroem_components=components)
    model, grid = build(kind, config, len(y_train), dims, seed=0)
    search = GridSearchCV(model, grid, scoring="f1_macro", cv=StratifiedKFold(3, shuffle=True, random_state=0),
                          n_jobs=-1, refit=True)
    if backend == "ray":
        from ray.util.joblib import register_ray

        register_ray()
    start = time.perf_counter()
    with joblib.parallel_backend(backend):
        search.fit(x_train, y_train)
    fit_s = time.perf_counter() - start
    macro_f1 = f1_score(y_test, search.predict(x_test), average="macro")
    return {"fit_s": fit_s, "macro_f1": float(macro_f1), "fits": 3 * len(search.cv_results_["params"]) + 1,
            "best_params": {k: _plain(v) for k, v in search.best_params_.items()}}


def _project(previous: list[tuple[int, float]], n: int, kind: str) -> float | None:
    """Fit time at n from the last measured size, with the exponent the measurements give."""
    if not previous:
        return None
    exponent = 2.0 if kind == "svc" else 1.0
    if len(previous) >= 2:
        (n0, t0), (n1, t1) = previous[-2:]
        exponent = max(exponent, math.log(t1 / t0) / math.log(n1 / n0))
    n_last, t_last = previous[-1]
    return t_last * (n / n_last) ** exponent


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _print_cell(cell: dict) -> None:
    head = f"N={cell['n']:>7} D={cell['dims']:>3} {cell['classifier']:<9}"
    if cell.get("skipped"):
        print(f"{head} skipped: projected {cell['projected_fit_s'] / 60:.0f} min", flush=True)
    else:
        print(f"{head} fit {cell['fit_s']:8.1f} s  macro F1 {cell['macro_f1']:.3f}  {cell['best_params']}", flush=True)


if __name__ == "__main__":
    main()
