"""Choose the decision threshold on cross-validation scores: the one-standard-error rule around the
model's own boundary, the model's boundary itself, the best macro F1, or a fake-recall floor; and a
false-alarm allowance that may lower the rule's threshold."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..config import ThresholdRule, choices


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float  # call `fake` when the decision value is >= this
    rule: str  # a ThresholdRule, "min_fake_recall=R", or the rule then "false_alarm_allowance=A"
    fake_recall: float
    fake_precision: float
    macro_f1: float
    false_alarm_rate: float  # the share of reals called fake

    def to_dict(self) -> dict:
        return asdict(self)


def rates(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(fake recall, fake precision, macro F1) when `scores >= threshold` means fake (label 1)."""
    recall, precision, macro = rates_at(y_true, scores, np.array([threshold], dtype=float))
    return float(recall[0]), float(precision[0]), float(macro[0])


def rates_at(y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """`rates` at every threshold at once, in O((N + T) log N): counts come from one sort."""
    fake = np.asarray(y_true) == 1
    order = np.argsort(scores, kind="stable")
    ranked = np.asarray(scores, dtype=float)[order]
    fakes_below = np.concatenate([[0], np.cumsum(fake[order])])  # fakes among the k lowest scores
    below = np.searchsorted(ranked, thresholds, side="left")  # rows called real at each threshold
    n, n_fake = len(ranked), int(fake.sum())
    tp = (n_fake - fakes_below[below]).astype(float)
    fp = (n - below) - tp
    fn = n_fake - tp
    tn = below - fn
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    return recall, precision, _macro_f1(tp, fp, fn, tn)


def choose_threshold(y_true: np.ndarray, scores: np.ndarray, rule: ThresholdRule = "one_se",
                     min_fake_recall: float | None = None,
                     false_alarm_allowance: float | None = None) -> OperatingPoint:
    """The threshold, with its rates on out-of-fold decision values (never the test split).

    Args:
        rule: `boundary` keeps the model's own boundary, 0 (its classes weighted equally);
            `max_macro_f1` takes the threshold with the best macro F1 on `scores`; `one_se` the
            one nearest the boundary whose macro F1 is within one bootstrap standard error of that best.
        min_fake_recall: when set, overrides `rule` (and the allowance): the highest threshold whose
            fake recall is at least R (the fewest false alarms that still catch that share of fakes).
        false_alarm_allowance: when set, the rule's threshold is lowered (never raised) towards the
            lowest one that calls at most this share of the reals fake, but not below the thresholds
            whose macro F1 is within one standard error of the best. Fakes unlike the labelled ones
            score lower than those and fall under a cut set on them; the reals' scores do not depend
            on how the fakes were made. Where the folds separate the classes cleanly, that band is
            narrow and no false alarm is spent.
    """
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=float)
    candidates, table, band = _candidates_and_band(y_true, scores)
    if min_fake_recall is not None:
        reaching = np.flatnonzero(table[:, 0] >= min_fake_recall - 1e-12)
        i = reaching[np.argmax(candidates[reaching])]
        rule = f"min_fake_recall={min_fake_recall:g}"
    elif rule == "max_macro_f1":
        best = np.flatnonzero(table[:, 2] == table[:, 2].max())
        # Among ties, the one nearest the model's own boundary.
        i = best[np.argmin(np.abs(candidates[best]))]
    elif rule == "boundary":
        i = int(np.flatnonzero(candidates == 0.0)[0])
    elif rule == "one_se":
        i = band[np.argmin(np.abs(candidates[band]))]  # the band's threshold nearest the boundary
    else:
        raise ValueError(f"unknown threshold rule {rule!r}; expected one of {', '.join(choices(ThresholdRule))}")
    threshold = float(candidates[i])
    recall, precision, macro = table[i]
    if false_alarm_allowance is not None and min_fake_recall is None:
        # Candidates ascend: the band's first is its lowest.
        cut = max(false_alarm_cut(y_true, scores, false_alarm_allowance), float(candidates[band[0]]))
        if cut < threshold:
            threshold, rule = cut, f"{rule}, false_alarm_allowance={false_alarm_allowance:g}"
            recall, precision, macro = rates(y_true, scores, cut)
    alarms = float(np.mean(scores[y_true == 0] >= threshold)) if np.any(y_true == 0) else 0.0
    return OperatingPoint(threshold, rule, float(recall), float(precision), float(macro), alarms)


def share_fakes(scores: np.ndarray, share: float, keys: np.ndarray) -> np.ndarray:
    """Which rows to call fake so that round(share x rows) are: the highest scores, ties broken by
    `keys` (image_ids: the same batch gets the same labels). Non-finite scores are never chosen.

    For a batch whose share of fakes is known (`predict.fake_share`): it reads the batch being
    scored, not the training folds.
    """
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    order = np.flatnonzero(finite)[np.argsort(np.asarray(keys)[finite], kind="stable")]
    order = order[np.argsort(-scores[order], kind="stable")]
    chosen = np.zeros(len(scores), dtype=bool)
    chosen[order[:round(share * len(order))]] = True
    return chosen


def band_floor(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The lowest threshold whose macro F1 on `scores` is within one bootstrap standard error of the best."""
    candidates, _, band = _candidates_and_band(np.asarray(y_true), np.asarray(scores, dtype=float))
    return float(candidates[band[0]])  # candidates ascend


def _candidates_and_band(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate thresholds (ascending), their rates table, and the indices of the one-standard-error
    band: the candidates whose macro F1 is within one standard error of the best (on few rows the best
    is mostly noise)."""
    values = np.unique(scores)
    # Thresholds between neighbouring scores, plus one below all and the model's own boundary, 0.
    candidates = np.unique(np.concatenate([[values[0] - 1.0, 0.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]]))
    table = np.column_stack(rates_at(y_true, scores, candidates))
    best = int(np.argmax(table[:, 2]))
    band = np.flatnonzero(table[:, 2] >= table[best, 2] - _bootstrap_se(y_true, scores, candidates[best]))
    return candidates, table, band


def false_alarm_cut(y_true: np.ndarray, scores: np.ndarray, allowance: float) -> float:
    """The lowest threshold that calls at most `allowance` (< 1) of the reals (label 0) fake: midway
    between the highest real it leaves under and the next real above (+inf without reals)."""
    reals = np.sort(np.asarray(scores, dtype=float)[np.asarray(y_true) == 0])[::-1]
    if not len(reals):
        return float("inf")
    above = reals[int(np.floor(allowance * len(reals)))]  # the highest real left under the cut
    higher = reals[reals > above]
    return float((above + higher.min()) / 2) if len(higher) else float(above + 1.0)


def _bootstrap_se(y_true: np.ndarray, scores: np.ndarray, threshold: float, resamples: int = 200) -> float:
    """The standard error of macro F1 at `threshold` over seeded bootstrap resamples of the rows.

    Macro F1 depends on the four confusion counts alone, so a resample of N rows is one multinomial
    draw of them: O(resamples), not O(resamples * N log N).
    """
    fake, called = np.asarray(y_true) == 1, np.asarray(scores) >= threshold
    counts = np.array([np.sum(fake & called), np.sum(~fake & called), np.sum(fake & ~called),
                       np.sum(~fake & ~called)], dtype=float)
    draws = np.random.default_rng(0).multinomial(len(fake), counts / counts.sum(), size=resamples).astype(float)
    return float(np.std(_macro_f1(*draws.T)))


def _macro_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
    """The mean of the fake and the real class's F1, from confusion counts (0 for a class never hit)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        f1_fake = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        f1_real = np.where(tn > 0, 2 * tn / (2 * tn + fn + fp), 0.0)
    return (f1_fake + f1_real) / 2
