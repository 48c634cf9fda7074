"""Where the detector stands: one decision rule's scores from `threshold_rule.py --cross` results, per corpus set.

Reads the JSON files that `threshold_rule.py --cross` wrote (one or several; a set name may appear in one
file only) and prints the README's summary table as Markdown: for each generator, trained and tested on it
(the hidden check's protocol), macro F1 per set, the mean ± standard deviation over sets, the lowest set and
the mean ROC AUC; then the same across generators (trained on one, tested on each other), with the oracle
cut's macro F1 beside it. With `--quality`, also the means of a `quality.py` result's cells per training set,
on the generator trained on and on the other three (the starting point, forensic-v1 and splice-v1). No run
is repeated: every cell is a mean of means the benchmarks wrote. With `--against`, the same sets' results
of another embedder or setting are the baseline: each headline reading's mean over sets, both sides, their
difference and in how many sets it went up and down (the files of both sides must share their split seeds).
After the table, the hidden check's own statistic (the mean macro F1 of two split seeds) against issue 11's targets:
per set for the first two seeds, and how many pairs of seeds, over all sets, reach the target.

    .venv/bin/python benchmarks/detection_summary.py benchmarks/results/threshold_rule_false_alarm.json \\
        benchmarks/results/threshold_rule_false_alarm_published_seed6.json \\
        [--quality benchmarks/results/quality.json] [--against BASELINE.json ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fakeface_ray.config import load_config  # noqa: E402

GENERATORS = ("paste", "poisson", "swap", "retouch")
B_LIKE = ("poisson", "swap", "retouch")
# Issue 11's targets for the hidden corpora A (a paste) and B (other manipulations).
# B mixes manipulations in one corpus: the mean over the three B-like corpora averages away one
# corpus's spread, and each one alone is harder than a mix; the check's odds lie between them.
TARGETS = {"`paste`": (("paste",), 0.75), "B-like mean": (B_LIKE, 0.70),
           **{f"`{g}` alone": ((g,), 0.70) for g in B_LIKE}}
SIDES = {"same": "on the generator trained on", "other": "on the others", "none": "trained on none of them"}


def default_rule() -> str:
    """threshold_rule.py's name for the library's default threshold rule, from the default config."""
    train = load_config().train
    if train.false_alarm_allowance is None:
        return train.threshold
    if train.threshold != "one_se":
        raise SystemExit(f"threshold_rule.py has no column for {train.threshold} with a false-alarm allowance")
    return f"one_se_band_false_alarm_{train.false_alarm_allowance:g}"


def load_sets(paths: list[Path], classifier: str) -> tuple[dict[str, dict], list[int]]:
    """({set name: {"protocol": ..., "cross": ...}} merged over the files, their split seeds); a set in two
    files, or files of different seeds, are refused."""
    sets: dict[str, dict] = {}
    seeds = None
    for path in paths:
        document = json.loads(path.read_text())
        if seeds is not None and document["seeds"] != seeds:
            raise SystemExit(f"{path}: split seeds {document['seeds']}, not {seeds} as the files before it")
        seeds = document["seeds"]
        results = document["classifiers"][classifier]
        for name, protocol in results["protocol"].items():
            if name in sets:
                raise SystemExit(f"{path}: set {name!r} is already in an earlier file")
            if name not in results.get("cross", {}):
                raise SystemExit(f"{path}: no across-generator results for {name!r}; run threshold_rule.py with --cross")
            sets[name] = {"protocol": protocol, "cross": results["cross"][name]}
    return sets, seeds


def spread(values: list[float]) -> str:
    """Mean ± standard deviation over sets, three decimals."""
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {deviation:.3f}"


def table(sets: dict[str, dict], rule: str) -> str:
    """The summary as Markdown rows: one per generator, the B-like and overall means, and across generators."""
    names = list(sets)
    headers = [column(name) for name in names]
    lines = [f"| trained and tested on | {' | '.join(headers)} | mean ± std over sets | lowest | ROC AUC |",
             "|---" * (len(names) + 4) + "|"]
    for generator in GENERATORS:
        cells = [sets[name]["protocol"][generator] for name in names]
        scores = [cell[rule]["macro_f1_mean"] for cell in cells]
        lines.append(f"| `{generator}` | {' | '.join(f'{s:.3f}' for s in scores)} | {spread(scores)} | "
                     f"{min(scores):.3f} | {statistics.mean(cell['roc_auc_mean'] for cell in cells):.3f} |")
    for label, generators in (("B-like mean", B_LIKE), ("all four", GENERATORS)):
        means = [statistics.mean(sets[name]["protocol"][g][rule]["macro_f1_mean"] for g in generators)
                 for name in names]
        lines.append(f"| {label} | {' | '.join(f'{s:.3f}' for s in means)} | {spread(means)} | {min(means):.3f} | |")
    across, auc, oracle = [], [], []
    for name in names:
        cells = sets[name]["cross"].values()
        across.append(statistics.mean(cell[rule]["macro_f1_mean"] for cell in cells))
        auc.append(statistics.mean(cell["roc_auc_mean"] for cell in cells))
        oracle.append(statistics.mean(cell["oracle"]["macro_f1_mean"] for cell in cells))
    lines.append(f"| across generators | {' | '.join(f'{s:.3f}' for s in across)} | {spread(across)} | "
                 f"{min(across):.3f} | {statistics.mean(auc):.3f} |")
    lines.append(f"| across, the oracle cut (reads the test split) | {' | '.join(f'{s:.3f}' for s in oracle)} | "
                 f"{spread(oracle)} | {min(oracle):.3f} | |")
    return "\n".join(lines)


def column(name: str) -> str:
    """A set's column header: "pub. 7" for published_seed7, "ind. 9" for published_ind9 (generators
    drawn from their own streams), "pub." for published."""
    return name.replace("published_seed", "pub. ").replace("published_ind", "ind. ").replace("published", "pub.")


def check_odds(sets: dict[str, dict], seeds: list[int], rule: str) -> str:
    """Markdown rows: the hidden check's statistic, the mean macro F1 of two split seeds, against its target.

    Per set for the first two seeds (the check's `--set seed=S`), then the share of every pair of seeds,
    over all sets, that reaches the target: how often one draw of the check would pass.
    """
    names = list(sets)
    headers = [column(name) for name in names]
    lines = [f"| the check's statistic (target) | {' | '.join(headers)} | sets at target | seed pairs at target |",
             "|---" * (len(names) + 3) + "|"]
    for label, (generators, target) in TARGETS.items():
        per_run = {name: [statistics.mean(cell) for cell in zip(
            *([run[rule]["macro_f1"] for run in sets[name]["protocol"][g]["runs"]] for g in generators))]
            for name in names}
        first = [statistics.mean(runs[:2]) for runs in per_run.values()]
        pairs = [statistics.mean(pair) for runs in per_run.values() for pair in itertools.combinations(runs, 2)]
        lines.append(f"| {label}, seeds {seeds[0]} and {seeds[1]} ({target:.2f}) | "
                     f"{' | '.join(f'{s:.3f}' for s in first)} | {sum(s >= target for s in first)} of {len(first)} | "
                     f"{sum(s >= target for s in pairs)} of {len(pairs)} |")
    return "\n".join(lines)


def headline(sets: dict[str, dict], rule: str) -> dict[str, dict[str, float]]:
    """Per reading (`paste`, the B-like mean, across generators; macro F1 at `rule` and ROC AUC), each set's value."""
    def protocol(name: str, generators: tuple[str, ...], key) -> float:
        return statistics.mean(key(sets[name]["protocol"][g]) for g in generators)

    def across(name: str, key) -> float:
        return statistics.mean(key(cell) for cell in sets[name]["cross"].values())

    f1, auc = (lambda cell: cell[rule]["macro_f1_mean"]), (lambda cell: cell["roc_auc_mean"])
    # None: the across-generator cells, not the protocol's generators.
    return {f"{label} {metric}": {name: across(name, key) if generators is None else protocol(name, generators, key)
                                  for name in sets}
            for label, generators in (("`paste`", ("paste",)), ("B-like mean", B_LIKE), ("across generators", None))
            for metric, key in (("macro F1", f1), ("ROC AUC", auc))}


def comparison(sets: dict[str, dict], baseline: dict[str, dict], rule: str) -> str:
    """Markdown rows: each headline reading's mean over the sets both have, here and in the baseline, and a
    line naming the sets only one side has."""
    shared = [name for name in sets if name in baseline]
    if not shared:
        raise SystemExit("--against: no corpus set is in both the results and the baseline")
    left_out = sorted(set(sets) ^ set(baseline))
    ours, theirs = headline({n: sets[n] for n in shared}, rule), headline({n: baseline[n] for n in shared}, rule)
    lines = [f"| reading ({len(shared)} sets) | baseline | these results | difference | sets up / down |",
             "|---|---|---|---|---|"]
    for reading, values in ours.items():
        differences = [values[n] - theirs[reading][n] for n in shared]
        lines.append(f"| {reading} | {statistics.mean(theirs[reading].values()):.3f} | "
                     f"{statistics.mean(values.values()):.3f} | {statistics.mean(differences):+.3f} | "
                     f"{sum(d > 0 for d in differences)} / {sum(d < 0 for d in differences)} |")
    if left_out:
        lines.append(f"\nLeft out, in one side only: {', '.join(left_out)}.")
    return "\n".join(lines)


def quality_table(path: Path) -> str:
    """A `quality.py` result's cells, averaged per training set: on the generator trained on, on the others,
    and where the set was trained on no generator's fakes (`quality.py`'s `any`)."""
    cells: dict[str, dict[str, list[dict]]] = {}
    for key, cell in json.loads(path.read_text())["cells"].items():
        trained_on, training_set, tested_on = (part.strip() for part in key.split("|"))
        side = "none" if trained_on == "any" else "same" if trained_on == tested_on else "other"
        cells.setdefault(training_set, {side: [] for side in SIDES})[side].append(cell)
    shown_sides = [side for side in SIDES if any(sides[side] for sides in cells.values())]
    lines = [f"| training set | {' | '.join(SIDES[side] for side in shown_sides)} |",
             "|---" * (len(shown_sides) + 1) + "|"]
    for training_set, sides in cells.items():
        shown = [f"{statistics.mean(c['macro_f1_mean'] for c in sides[side]):.3f} / "
                 f"{statistics.mean(c['roc_auc_mean'] for c in sides[side]):.3f} ({len(sides[side])} cells)"
                 if sides[side] else "" for side in shown_sides]
        lines.append(f"| {training_set} | {' | '.join(shown)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="threshold_rule.py --cross JSON files")
    parser.add_argument("--rule", default=default_rule(),
                        help="a column of threshold_rule.py's results (default: the library's default rule)")
    parser.add_argument("--classifier", default="trees")
    parser.add_argument("--quality", type=Path, help="a quality.py JSON file to summarise as well")
    parser.add_argument("--against", nargs="+", type=Path, default=[],
                        help="threshold_rule.py --cross files of a baseline, compared set by set")
    args = parser.parse_args()
    sets, seeds = load_sets(args.results, args.classifier)
    print(table(sets, args.rule))
    print()
    print(check_odds(sets, seeds, args.rule))
    if args.against:
        baseline, baseline_seeds = load_sets(args.against, args.classifier)
        if baseline_seeds != seeds:
            raise SystemExit(f"--against: split seeds {baseline_seeds}, not {seeds} as the results")
        print()
        print(comparison(sets, baseline, args.rule))
    if args.quality:
        print()
        print(quality_table(args.quality))


if __name__ == "__main__":
    main()
