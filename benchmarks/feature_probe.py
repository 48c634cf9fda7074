"""Candidate features screened before they become an embedder, and the trees' settings with them.

- `distance`: the forensic readings are near zero on an untouched face, so a fake could show as a
  point far from the training reals, whichever generator made it: three columns (mean and top-5 mean
  of robust z-scores against the training reals, and a Ledoit-Wolf Mahalanobis distance), and that
  distance alone as a score.
- `eye_asymmetry`: each of the seven part readings of the left eye minus the right, as a magnitude:
  a face's two eyes share its camera, light and skin, and a paste often takes one.
- `part_outlier`: each reading's largest distance from the median of the four parts.
- `noise_zones`: forensic-v8's zone readings (each zone against the head's context) of two more
  per-block maps, the noise residual and the error level of each 8x8 block on the file's grid.
- `~dc` (replaces columns in place, so each run stays paired with the base embedder's): the gap map's
  readings (`dq` and `zones` groups, the modulation map's unchanged) with each 8x8 block's DC
  coefficient read for double-quantisation gaps too. The AC coefficients of smooth skin quantise to
  zero and say nothing; every block has a DC value, so a small paste on smooth skin shows there.
  `~dc_half` weighs the DC as half of each block's value instead of one coefficient among its AC ones.
  `~dc_fixed` is `~dc` with the DC lattice counting a half-way first-step multiple as reaching both
  last steps (the flaw forensic-v11 fixed for the AC coefficients). On forensic-v11 it gained 0.001-0.003 on
  every side, under the screens' bar (`results/feature_probe_v11_dc_fixed.json`).
- `~likelihood_zones`: the zones' gap map takes its first step by likelihood too (forensic-v10 took it for
  the face's only: on v8's lattice, the zones' version lost on `paste`). On forensic-v11's lattice it
  lost on `paste` again, -0.004, and gained 0.009 across (`results/feature_probe_v11_likelihood_zones.json`).
- `~edited_modulation`: the modulation map's finer first save chosen by a double save that leaves
  EDITED_SHARE of the values to one save, as forensic-v10 chose the coarser one; it lost on every side
  (trained on -0.005, `paste` -0.002, across -0.002; `results/feature_probe_v11_edited_modulation.json`).
- `magnitude`: every reading as the magnitude of its robust z-score against the training reals, so
  a generator that moves a reading the other way from the one trained on still reads as far.

- `parts_again`: the pooled part readings once more, so that trees drawing few features per split
  (`--max-features 2`) draw them more often.

`--max-features` screens the trees' randomisation (features drawn per split) instead of columns.
`--monotone M` constrains the trees to be monotone in each column whose ROC AUC on the training rows
is at least M from one half, in the direction of that AUC: a reading that points to `fake` on the
generator trained on may not point to `real` further along, whatever a few rows say.
`--with-svm` also scores each variant with the library's SVM grid beside the trees: the mean of the
two models' p_fake, each a sigmoid of its out-of-fold decision values, as a run's p_fake is.

forensic-v8's further zone readings were screened here against forensic-v7 (commit 50649cf,
`results/feature_probe_zones.json`), then moved into the embedder.
The gap map's first step chosen by likelihood (`~fitted_gaps`, and `~fitted_gaps_dq` / `_zones` for one
group's columns) was screened here against forensic-v8 (commits 54a2137 and 960c3c8,
`results/feature_probe_fitted_gaps{,_groups}.json`); its face (`dq`) half moved into forensic-v10.
The gap lattice's half-way fix (`~halfway`: a first-step multiple half-way between two last steps reaches
both) was screened here on forensic-v8 and on forensic-v10 (`results/feature_probe_v10_halfway.json`);
on v8 it lost on `paste` in the protocol (forensic-v9), on v10 it lost nowhere and is forensic-v11.

A screen, not the hidden check's protocol: one fixed classifier (the trees with leaves of 2, no
grid search) and ROC AUC, so it needs no threshold. The splits are the protocol's (`split`, half of
each corpus by the seed) and `quality.py`'s across generators (half of a set's source photos).
The part, noise-zone and DC readings (for those candidates only) are read on the face region the
extract stage cuts (the face box grown by half its side on each side), from the corpus files
`quality.py` extracted with today's forensic embedder (`runs/q11_*`), and cached under `--cache`.

    .venv/bin/python benchmarks/feature_probe.py \\
        --sets published:runs/q11_published,shipped:runs/q11_shipped [--seeds 0,1,2,3,4,5] \\
        [--json benchmarks/results/feature_probe.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fakeface_ray.config import TrainConfig  # noqa: E402
from fakeface_ray.learning import classifiers  # noqa: E402
from fakeface_ray.learning.artifact import fit_sigmoid  # noqa: E402
from fakeface_ray.learning.classifiers import ExtraTreesVotes  # noqa: E402
from fakeface_ray.learning.train import Embeddings, load_embeddings, split, split_by_ids  # noqa: E402
from fakeface_ray.config import ExtractConfig  # noqa: E402
from fakeface_ray.stages import faces, imaging  # noqa: E402
from fakeface_ray.stages.embedders import double_jpeg, forensic  # noqa: E402
from fakeface_ray.stages.extract import FACE_WINDOW_CONTEXT, REGION_CONTEXT  # noqa: E402
from quality import training_pool  # noqa: E402  (this folder, as the script's own)
from threshold_rule import row_photos  # noqa: E402

# The forensic embedder's feature groups, for `-group` variants.
GROUPS = {"part": forensic.POOLED_FEATURES, "face": forensic.FACE_FEATURES, "global": forensic.GLOBAL_FEATURES,
          "dq": forensic.DQ_FEATURES, "zones": forensic.ZONE_FEATURES}
BASE = forensic.ForensicEmbedder.name
DEFAULT_VARIANTS = f"{BASE},+distance,+eye_asymmetry,+eye_asymmetry+part_outlier"


def aligned_origin(face: faces.Region) -> tuple[int, int] | None:
    """The region's corner in its image where its pixels are unscaled (the 8x8 grid holds), as the embedder takes it."""
    return face.origin if face.scale == 1.0 else None


def part_readings(face: faces.Region, table: np.ndarray | None) -> np.ndarray:
    """[4, 7] signed part readings of one face region."""
    return forensic.part_readings(forensic.reading_maps(face.pixels, aligned_origin(face)), face.keypoints)


def noise_zone_readings(face: faces.Region, table: np.ndarray | None) -> np.ndarray:
    """[2, 14] zone readings of the log mean noise residual and error level of each 8x8 block on the
    file's grid, against the head's context, as the forensic embedder reads its double-JPEG maps."""
    region, origin, points = face.pixels, face.origin, face.keypoints
    maps = forensic.reading_maps(region, origin)
    offset = ((-origin[1]) % 8, (-origin[0]) % 8)
    rows, cols = (max((size - start) // 8, 0) for size, start in zip(region.shape[:2], offset))
    grid = maps[:2, offset[0]: offset[0] + 8 * rows, offset[1]: offset[1] + 8 * cols]
    blocks = np.log(grid.reshape(2, rows, 8, cols, 8).mean(axis=(2, 4)) + forensic.EPS)
    zones = forensic._head_zones((rows, cols), offset, points)
    return np.stack([forensic._zone_readings(b, zones) for b in blocks])


def dc_gaps(dct: np.ndarray, last: int, halfway: bool = False) -> np.ndarray | None:
    """Per block, 1.0 where its DC value sits in a gap of the coarser first step that best explains the
    region's DC values, else 0.0; None where no first step shows (fewer than MIN_VALUES blocks, or
    values that avoid no candidate's gaps by MIN_LIFT over chance).

    As screened in feature_probe_dc*.json: a multiple of the first step that falls half-way between two
    last steps is counted as reaching the even one only (numpy rounds half to even), though decoding
    noise sends it to either; `double_jpeg.reachable` did the same for the AC coefficients before
    forensic-v11. `halfway` counts it as reaching both, as `reachable` does since.
    """
    if dct.shape[0] * dct.shape[1] < double_jpeg.MIN_VALUES or last < 2:
        return None
    values = np.round((dct[:, :, 0, 0] - 1024.0) / last).astype(int)  # JPEG's level shift: 128 x 8
    low, high = int(values.min()), int(values.max())
    counts = np.bincount((values - low).ravel(), minlength=high - low + 1)
    best_margin, best = 0.0, None
    for first in range(last + 1, 3 * last + 8):
        multiples = np.arange(low * last // first - 1, high * last // first + 2)
        scaled = multiples * first / last
        landed = (double_jpeg.landing_values(scaled) if halfway else np.round(scaled).astype(int)) - low
        reach = np.zeros(high - low + 1, dtype=bool)
        reach[landed[(landed >= 0) & (landed <= high - low)]] = True
        cover, hits = reach.mean(), counts[reach].sum() / counts.sum()
        if cover > 0.9 or hits < double_jpeg.MIN_LIFT * cover:
            continue
        # The true first step: of the lattices the values fit, the sparsest (a divisor's lattice covers
        # more; a multiple's leaves out values that occur).
        if hits - cover > best_margin:
            best_margin, best = hits - cover, reach
    return None if best is None else (~best[values - low]).astype(float)


def history_maps_with_dc(luma: np.ndarray, origin: tuple[int, int], table: np.ndarray,
                         half: bool = False, first_step: str = "lift", halfway: bool = False) -> tuple[tuple, tuple]:
    """`double_jpeg.history_maps`, with each block's DC value in the gap map: one more coefficient, or
    (`half`) half of a block's value, the AC coefficients' share the other half; `halfway` as `dc_gaps`."""
    dct, offset = double_jpeg.block_dct(luma, origin)
    total, informative, used = double_jpeg.block_sums(dct, table, double_jpeg.MIN_VALUES,
                                                      double_jpeg.FIRST_STEP_CHOICES[first_step])
    dc = dc_gaps(dct, int(table[0, 0]), halfway)
    if dc is not None and half:
        ac = np.divide(total, informative, out=np.zeros_like(total), where=informative > 0)
        total, informative, used = np.where(informative > 0, (ac + dc) / 2, dc), np.ones_like(total), used + 1
    elif dc is not None:
        total, informative, used = total + dc, informative + 1, used + 1
    gaps = np.full(total.shape, np.nan)
    np.divide(total, informative, out=gaps, where=informative > 0)
    modulation = double_jpeg._block_map(dct, offset, table, double_jpeg.MIN_PATTERN_VALUES,
                                        double_jpeg._single_against_double)
    return (gaps, used, offset), modulation


# The groups the JPEG-history candidates recompute (the gap and modulation maps' readings).
HISTORY_GROUPS = ("dq", "zones")


def history_readings(face: faces.Region, table: np.ndarray | None, **replaced) -> np.ndarray:
    """The forensic embedder's `dq` and `zones` columns with `double_jpeg`'s functions named in `replaced` swapped
    for the call (the embedder reads them through the module; the gap choices themselves it takes from
    `double_jpeg.FIRST_STEP_CHOICES`, so a candidate replaces those there, not by name)."""
    originals = {name: getattr(double_jpeg, name) for name in replaced}
    for name, function in replaced.items():
        setattr(double_jpeg, name, function)
    try:
        features = forensic.region_features(face.pixels, face.keypoints, aligned_origin(face), table, face.window)
    finally:
        for name, function in originals.items():
            setattr(double_jpeg, name, function)
    return features[[i for group in HISTORY_GROUPS for i in group_columns(group)]]


def dc_history_readings(face: faces.Region, table: np.ndarray | None, half: bool = False,
                        halfway: bool = False) -> np.ndarray:
    """The forensic embedder's `dq` and `zones` columns with the DC values read for gaps too."""
    return history_readings(face, table, history_maps=lambda luma, origin, table, first_step="lift":
                            history_maps_with_dc(luma, origin, table, half, first_step, halfway))


HISTORY_MAPS = double_jpeg.history_maps  # the library's, for candidates that wrap it


def likelihood_zones_readings(face: faces.Region, table: np.ndarray | None) -> np.ndarray:
    """The forensic embedder's `dq` and `zones` columns with the zones' gap map also taking its first step
    by likelihood (the face's already does)."""
    return history_readings(face, table, history_maps=lambda luma, origin, table, first_step="lift":
                            HISTORY_MAPS(luma, origin, table, "likelihood"))


def single_against_edited_double(histogram: np.ndarray, last: int) -> np.ndarray | None:
    """`double_jpeg._single_against_double` with the finer first save, and its envelope, chosen by a double
    save that leaves EDITED_SHARE of the values to one save; each value's reading stays single against
    the pure double save of that step and envelope."""
    counts = histogram[1:]
    single = double_jpeg.single_save(last)
    fit_single = single @ counts
    best_single = int(np.argmax(fit_single))
    best_evidence, best = double_jpeg.MIN_EVIDENCE, None
    for first in range(1, last):
        fit = double_jpeg._double_with_edits(first, last) @ counts
        envelope = int(np.argmax(fit))
        if fit[envelope] - fit_single[best_single] > best_evidence:
            best_evidence, best = fit[envelope] - fit_single[best_single], double_jpeg.double_save(first, last)[envelope]
    return None if best is None else np.concatenate([[0.0], single[best_single] - best])


def edited_modulation_readings(face: faces.Region, table: np.ndarray | None) -> np.ndarray:
    """The forensic embedder's `dq` and `zones` columns with the modulation map's finer first save chosen
    as `single_against_edited_double` chooses it."""
    return history_readings(face, table, _single_against_double=single_against_edited_double)


# Readings of the face region (twice the face box) that the candidates need, cached per corpus.
REGION_READINGS = {"parts": part_readings, "noise_zones": noise_zone_readings, "dc_history": dc_history_readings,
                   "dc_half_history": lambda face, table: dc_history_readings(face, table, half=True),
                   "dc_fixed_history": lambda face, table: dc_history_readings(face, table, halfway=True),
                   "likelihood_zones_history": likelihood_zones_readings,
                   "edited_modulation_history": edited_modulation_readings}
CANDIDATE_READINGS = {"eye_asymmetry": "parts", "part_outlier": "parts", "noise_zones": "noise_zones",
                      "dc": "dc_history", "dc_half": "dc_half_history", "dc_fixed": "dc_fixed_history",
                      "likelihood_zones": "likelihood_zones_history",
                      "edited_modulation": "edited_modulation_history"}
# `~name` candidates: their readings replace these groups' columns in place (a history reading holds
# HISTORY_GROUPS' columns; a candidate naming fewer groups takes those columns of it).
REPLACED_GROUPS = {"dc": HISTORY_GROUPS, "dc_half": HISTORY_GROUPS, "dc_fixed": HISTORY_GROUPS,
                   "likelihood_zones": ("zones",),
                   "edited_modulation": HISTORY_GROUPS}


def code_digest() -> str:
    """A short hash of the code the readings come from: a cache made by other code is never read."""
    sources = sorted((ROOT / "fakeface_ray" / "stages").rglob("*.py")) + [Path(__file__).resolve()]
    return hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:12]


def cached_readings(work: Path, generator: str, cache: Path, kind: str) -> dict[str, np.ndarray]:
    """image_id -> one of REGION_READINGS for each extracted face (cached as .npz, per code_digest)."""
    path = cache / work.name / code_digest() / f"{generator}_{kind}.npz"
    if not path.exists():
        rows = pads.dataset(str(work / generator / "embeddings"), format="parquet").to_table(
            columns=["image_id", "uri", "status", "face_box", "face_confidence", "keypoints"]).to_pylist()
        ids, values = [], []
        for r in (r for r in rows if r["status"] == "ok"):
            decoded = imaging.decode_image(Path(r["uri"]).read_bytes(), 10**9)
            detection = faces.Detection(tuple(r["face_box"]), r["face_confidence"],
                                        np.asarray(r["keypoints"], np.float32))
            # The region and window the extract stage cut for the embedder.
            face = faces.native_region(decoded.image, detection, REGION_CONTEXT, ExtractConfig().region_max_side,
                                       FACE_WINDOW_CONTEXT)
            ids.append(r["image_id"])
            values.append(np.clip(np.nan_to_num(REGION_READINGS[kind](face, decoded.quantisation),
                                                nan=0.0, posinf=0.0, neginf=0.0), -10, 10))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, ids=np.array(ids, dtype=object), values=np.stack(values))
    saved = np.load(path, allow_pickle=True)
    return dict(zip(saved["ids"], saved["values"]))


def readings(data: Embeddings) -> np.ndarray:
    """The forensic features without the constant (undoing the L2 normalisation)."""
    return data.x[:, :-1] / data.x[:, -1:]


def robust_z(reals: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Each column of `x` as a robust z-score against `reals` (median, scaled MAD)."""
    median = np.median(reals, axis=0)
    spread = np.median(np.abs(reals - median), axis=0) * 1.4826 + 1e-3
    return (x - median) / spread


def distances(reals: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, 3] distance columns of `x` from `reals` (robust z mean, top-5 mean, Mahalanobis), and the last."""
    z = np.abs(robust_z(reals, x))
    mahalanobis = LedoitWolf().fit(reals).mahalanobis(x)
    return np.stack([z.mean(axis=1), np.sort(z, axis=1)[:, -5:].mean(axis=1), mahalanobis], axis=1), mahalanobis


def group_columns(group: str) -> list[int]:
    """The forensic feature columns of one of GROUPS."""
    return [forensic.FEATURE_NAMES.index(f) for f in GROUPS[group]]


def columns(data: Embeddings, regional: dict[str, dict], reals: np.ndarray, variant: str) -> np.ndarray:
    """The forensic readings with a variant's `+candidate` columns appended, `~candidate` columns put in
    place of the groups they replace, and `-group` columns left out.

    Args:
        regional: REGION_READINGS kind -> image_id -> readings, for the candidates that need them.
    """
    x = readings(data)

    def stacked(kind: str) -> np.ndarray:  # read only by the candidates that need it, cached on demand
        return np.stack([regional[kind][i] for i in data.ids])

    def eye_asymmetry() -> np.ndarray:
        parts = stacked("parts")
        return np.abs(parts[:, 0] - parts[:, 1])

    def part_outlier() -> np.ndarray:
        parts = stacked("parts")
        return np.abs(parts - np.median(parts, axis=1, keepdims=True)).max(axis=1)

    steps = re.findall(r"([+~-])(\w+)", variant.removeprefix(BASE))
    read = [i for group in HISTORY_GROUPS for i in group_columns(group)]
    for name in (name for sign, name in steps if sign == "~"):
        x = x.copy()
        replaced = [i for group in REPLACED_GROUPS[name] for i in group_columns(group)]
        x[:, replaced] = stacked(CANDIDATE_READINGS[name])[:, [read.index(i) for i in replaced]]
    extra = {"eye_asymmetry": eye_asymmetry, "part_outlier": part_outlier,
             "noise_zones": lambda: stacked("noise_zones").reshape(len(data.ids), -1),
             "distance": lambda: distances(reals, x)[0],
             "magnitude": lambda: np.abs(robust_z(reals, x)),
             "parts_again": lambda: x[:, group_columns("part")]}
    dropped = [i for sign, name in steps if sign == "-" for i in group_columns(name)]
    kept = np.delete(x, dropped, axis=1)
    return np.concatenate([kept] + [extra[name]() for sign, name in steps if sign == "+"], axis=1)


def directions(x: np.ndarray, y: np.ndarray, margin: float | None) -> np.ndarray | None:
    """Monotone constraints for the trees: +1 / -1 where a column's ROC AUC is at least `margin` above / below
    one half, else 0; None without a margin."""
    if margin is None:
        return None
    lean = np.array([roc_auc_score(y, column) for column in x.T]) - 0.5
    return np.where(np.abs(lean) >= max(margin, 1e-9), np.sign(lean), 0).astype(int)


def with_svm(trees: ExtraTreesVotes, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """The mean of the fitted trees' and the library's SVM grid's p_fake on `x_test`, each a Platt sigmoid of
    the model's out-of-fold decision values on the training rows (as a run's p_fake)."""
    config = TrainConfig()
    cv = StratifiedKFold(config.cv_folds, shuffle=True, random_state=seed)
    svm, grid = classifiers.build("svc", config, len(y), x.shape[1], seed)
    search = GridSearchCV(svm, grid, scoring=config.scoring, cv=cv, n_jobs=1).fit(x, y)
    p_fake = []
    for model in (trees, search.best_estimator_):
        oof = cross_val_predict(clone(model), x, y, cv=cv, method="decision_function")
        p_fake.append(fit_sigmoid(y, oof)(model.decision_function(x_test)))
    return np.mean(p_fake, axis=0)


@dataclass(frozen=True)
class Fitting:
    """How each variant is fitted: the trees' features per split, their monotone margin (`directions`), and
    whether the SVM is also scored beside them (`with_svm`)."""

    max_features: str | int | float = "sqrt"
    monotone: float | None = None
    svm: bool = False


def scores(train: Embeddings, test: Embeddings, regional_train: dict, regional_test: dict, variants: list[str],
           seed: int, fitting: Fitting) -> dict[str, float]:
    """ROC AUC on `test` of each variant fitted on `train` (and with the SVM beside the trees, `+svm`), and of
    the distance from the training reals alone."""
    reals = readings(train)[train.y == 0]
    out = {"distance alone": float(roc_auc_score(test.y, distances(reals, readings(test))[1]))}
    for variant in variants:
        x = columns(train, regional_train, reals, variant)
        trees = ExtraTreesVotes(n_estimators=500, min_samples_leaf=2, max_features=fitting.max_features,
                                random_state=seed, n_jobs=1, monotonic_cst=directions(x, train.y, fitting.monotone))
        trees.fit(x, train.y)
        x_test = columns(test, regional_test, reals, variant)
        out[variant] = float(roc_auc_score(test.y, trees.decision_function(x_test)))
        if fitting.svm:
            out[f"{variant}+svm"] = float(roc_auc_score(test.y, with_svm(trees, x, train.y, x_test, seed)))
    return out


def seed_runs(data: dict[str, Embeddings], regional: dict[str, dict], photos: dict[str, np.ndarray],
              variants: list[str], seed: int, fitting: Fitting) -> tuple[dict[str, dict], list[dict]]:
    """One seed's scores: on each generator trained on (the protocol's split), and across generators."""
    within = {}
    for g, d in data.items():
        train, test = split(d, 0.5, seed)
        within[g] = scores(train, test, regional[g], regional[g], variants, seed, fitting)
    pool = training_pool({p for ps in photos.values() for p in ps}, seed)
    sides = {g: split_by_ids(d, set(d.ids[np.isin(photos[g], list(pool))])) for g, d in data.items()}
    across = [scores(sides[g1][0], sides[g2][1], regional[g1], regional[g2], variants, seed, fitting)
              for g1 in data for g2 in data if g2 != g1]
    return within, across


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", required=True, help="NAME:WORK pairs, comma-separated (quality.py's --work folders)")
    parser.add_argument("--generators", default="paste,poisson,swap,retouch")
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help=f"{BASE} with +candidate columns, ~candidate columns in place of their groups' "
                             "and -group columns, comma-separated; groups: "
                             + ", ".join(GROUPS))
    parser.add_argument("--max-features", default="sqrt",
                        help="the trees' max_features: sqrt, log2, a count (1) or a share (0.5)")
    parser.add_argument("--monotone", type=float, default=None, metavar="M",
                        help="monotone trees in each column whose training ROC AUC is at least M from 0.5")
    parser.add_argument("--with-svm", action="store_true",
                        help="also score each variant as the mean of the trees' and the SVM grid's p_fake (`+svm`)")
    parser.add_argument("--jobs", type=int, default=2, help="seeds scored at once")
    parser.add_argument("--cache", default=str(ROOT / "runs/feature_probe"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/feature_probe.json"))
    args = parser.parse_args()

    generators = args.generators.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    max_features = args.max_features if args.max_features in ("sqrt", "log2") else (
        int(args.max_features) if args.max_features.isdigit() else float(args.max_features))
    fitting = Fitting(max_features, args.monotone, args.with_svm)
    if any("~" in v and re.search(r"\+(distance|magnitude)\b", v) for v in variants):
        sys.exit("+distance and +magnitude read the training reals' original columns: not with a ~ candidate")
    kinds = {kind for v in variants for name, kind in CANDIDATE_READINGS.items() if re.search(rf"[+~]{name}\b", v)}
    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                    "date": time.strftime("%Y-%m-%d"), "seeds": seeds, "variants": variants,
                    **asdict(fitting), "sets": {}}
    for pair in args.sets.split(","):
        name, work = pair.split(":", 1)
        data = {g: load_embeddings(Path(work) / g / "embeddings") for g in generators}
        if any(d.embedder != BASE for d in data.values()):
            sys.exit(f"{work} holds {sorted({d.embedder for d in data.values()})} embeddings; this screen reads "
                     f"{BASE}: extract the corpora again with quality.py --sets ''")
        regional = {g: {kind: cached_readings(Path(work), g, Path(args.cache), kind) for kind in kinds}
                    for g in generators}
        photos = {g: row_photos(d) for g, d in data.items()}
        # One seed per process: each fit is too small to use two cores.
        runs = Parallel(n_jobs=args.jobs)(delayed(seed_runs)(data, regional, photos, variants, seed, fitting)
                                          for seed in seeds)
        within = {g: [r[0][g] for r in runs] for g in generators}
        across = [cell for r in runs for cell in r[1]]
        entry = {"within": {g: mean_of(runs) for g, runs in within.items()}, "across": mean_of(across),
                 "within_runs": within, "across_runs": across}
        result["sets"][name] = entry
        print(name, table(entry, generators), flush=True)
    sets = result["sets"].values()
    result["overall"] = {"within": {g: mean_of([s["within"][g] for s in sets]) for g in generators},
                         "across": mean_of([s["across"] for s in sets])}
    print("overall", table(result["overall"], generators))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {args.json}")


def mean_of(runs: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def table(entry: dict, generators: list[str]) -> str:
    """One line per variant: ROC AUC on each generator trained on, their mean, and across generators."""
    lines = []
    for variant in entry["across"]:
        within = [entry["within"][g][variant] for g in generators]
        lines.append(f"\n  {variant:28s} " + " ".join(f"{g} {a:.3f}" for g, a in zip(generators, within))
                     + f"  mean {np.mean(within):.3f}  across {entry['across'][variant]:.3f}")
    return "".join(lines)


if __name__ == "__main__":
    main()
