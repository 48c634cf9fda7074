"""The classifiers `train` grid-searches, and the rule that picks one for a corpus's size.

Exact kernel SVMs cost between N^2 and N^3 to fit; the others grow about linearly in N.
`benchmarks/classifier_scale.py` measures where the exact SVC stops paying for itself.
Extremely randomised trees scored best on held-out images of the forensic corpora (docs/detection.md,
"Extremely randomised trees decide"): on about 60 training rows of tens of heterogeneous, heavy-tailed features,
averaging many randomised splits ignores the uninformative dims that an SVM's kernel weighs in.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from ..config import ClassifierName, TrainConfig, choices

KINDS = tuple(k for k in choices(ClassifierName) if k != "auto")
# Training rows up to which `auto` takes the trees. They match or beat the SVM grid from 56 to
# 1,870 training rows (benchmarks/results/classifier_curve.json). Their size grows with the rows:
# 500 trees with leaves of 2 pickle to 17 MB at 1,870 rows of forensic features and to 51 MB at
# 2,000 rows of random ones; at 20,000 random rows they fit in 21 s on one core and pickle to
# 479 MB: too much to ship to every predict actor.
TREES_MAX_ROWS = 2_000
# Training rows above which `auto` leaves the exact SVC for Nystroem. Measured on 2 cores
# (benchmarks/results/classifier_scale.json, synthetic 128-d, a 3x3 grid): at 16k training rows the
# exact RBF SVC takes 157 s and is the most accurate (macro F1 0.895 against 0.805 for Nystroem
# with 500 components); its time grows at least as N^2, so 160k rows would take hours, while
# Nystroem takes 131 s there. The default grid has about 11x the benchmark's fits: near half an
# hour on 2 cores at this size, minutes on a cluster; at 10x the rows, 100x that.
EXACT_SVC_MAX_ROWS = 20_000


def resolve(kind: str, n_rows: int) -> str:
    """The concrete classifier for `kind` (`auto` or one of KINDS) on `n_rows` training rows."""
    if kind != "auto":
        return kind
    if n_rows <= TREES_MAX_ROWS:
        return "trees"
    return "svc" if n_rows <= EXACT_SVC_MAX_ROWS else "nystroem"


class ExtraTreesVotes(ExtraTreesClassifier):
    """Extremely randomised trees with a decision value: the trees' share of `fake` votes minus one half."""

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x)[:, 1] - 0.5


def build(kind: str, config: TrainConfig, n_rows: int, dims: int, seed: int) -> tuple[Pipeline, list[dict]]:
    """A scaler + classifier pipeline and its GridSearchCV grid.

    Args:
        kind: one of KINDS (resolve `auto` first).
        n_rows: training rows; SGD's `alpha` is `1 / (C * n_rows)`, the same penalty as the SVMs' C, and
            Nystroem keeps at most this many components.
        dims: embedding size; gamma `scale` is `1 / dims` on standardised inputs, as in SVC.
    """
    scaler = ("scaler", StandardScaler())
    weight = None if config.class_weight == "none" else config.class_weight
    gammas = [1.0 / dims if g == "scale" else float(g) for g in config.gamma_grid]
    if kind == "trees":
        # One core per fit: the grid search's joblib backend spreads the fits over the cluster.
        drawn = config.tree_max_features  # features drawn per split; a count is capped at the embedding's size
        if isinstance(drawn, int):
            drawn = min(drawn, dims)
        trees = ExtraTreesVotes(n_estimators=config.tree_count, max_features=drawn, class_weight=weight,
                                random_state=seed, n_jobs=1)
        return Pipeline([scaler, ("clf", trees)]), [{"clf__min_samples_leaf": list(config.tree_leaf_grid)}]
    if kind == "svc":
        grid = []
        for kernel in config.kernels:
            entry = {"clf__kernel": [kernel], "clf__C": list(config.c_grid)}
            if kernel == "rbf":
                entry["clf__gamma"] = list(config.gamma_grid)
            grid.append(entry)
        return Pipeline([scaler, ("clf", SVC(class_weight=weight, random_state=seed))]), grid
    if kind == "linear":
        return Pipeline([scaler, ("clf", _linear_svc(seed, weight))]), [{"clf__C": list(config.c_grid)}]
    if kind == "sgd":
        clf = SGDClassifier(loss="hinge", max_iter=50, tol=1e-4, class_weight=weight, random_state=seed)
        return Pipeline([scaler, ("clf", clf)]), [{"clf__alpha": [1.0 / (c * n_rows) for c in config.c_grid]}]
    if kind == "nystroem":
        rbf = Nystroem(kernel="rbf", n_components=min(config.nystroem_components, n_rows), random_state=seed)
        return (Pipeline([scaler, ("map", rbf), ("clf", _linear_svc(seed, weight))]),
                [{"map__gamma": gammas, "clf__C": list(config.c_grid)}])
    raise ValueError(f"unknown classifier {kind!r}; expected auto or one of {', '.join(KINDS)}")


def _linear_svc(seed: int, class_weight: str | None) -> LinearSVC:
    # dual="auto" solves the primal when rows outnumber features: linear in N.
    return LinearSVC(dual="auto", max_iter=5000, class_weight=class_weight, random_state=seed)


def plain_params(best_params: dict) -> dict:
    """`clf__C` -> `C`, `map__gamma` -> `gamma`: the grid's names without their step."""
    return {k.split("__", 1)[1]: v for k, v in best_params.items()}
