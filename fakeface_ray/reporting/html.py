"""`report.html`: one self-contained page (images inlined) from a finished run's files."""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import ReportConfig
from ..errors import UserError
from ..stages import imaging
from ..storage.locations import READ_ERRORS, Location, location, read_bytes
from ..storage.schema import CLASSES, FAKE
from . import plots
from .audit import html_table

METRIC_ROWS = ("macro_f1", "accuracy", "roc_auc")


class ReportError(UserError):
    """The folder holds no finished training to report on."""


def build_report(out: str | Location, per_class: int = ReportConfig.samples_per_class,
                 run: dict | None = None) -> Location:
    """Plots (PNG under plots/) and `report.html` from `metrics.json`, the test rows and the run record.

    Args:
        run: the run record; by default read from `out/run.json` (absent: the page leaves it out).
    """
    out = location(out)
    if not (out / "metrics.json").exists() or not (out / "test_predictions.parquet").exists():
        raise ReportError(f"{out} holds no finished training (metrics.json, test_predictions.parquet)")
    metrics = json.loads((out / "metrics.json").read_text())
    if run is None:
        run = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    try:
        table = pq.read_table(io.BytesIO((out / "test_predictions.parquet").read_bytes())).to_pylist()
    except pa.ArrowException as exc:
        raise ReportError(f"{out / 'test_predictions.parquet'} cannot be read ({str(exc).splitlines()[0]}); "
                          "run train again to rewrite it") from None
    y_true = np.array([CLASSES.index(r["label"]) for r in table], dtype=np.int64)
    scores = np.array([r["score"] for r in table], dtype=float)
    splice = run.get("splice") or {}
    written = plots.plot_all(out, metrics, y_true, scores, _samples(table, per_class), splice.get("histories"))
    audit = json.loads((out / "audit.json").read_text()) if (out / "audit.json").exists() else None
    page = out / "report.html"
    page.write_text(render(metrics, run, {name: loc.read_bytes() for name, loc in written.items()}, audit))
    return page


def render(metrics: dict, run: dict, pngs: dict[str, bytes], audit: dict | None = None) -> str:
    """The page; every number shown carries `data-metric` so tests can compare it with metrics.json.

    Args:
        audit: the shortcut audit (`audit.json`); its table comes right after the test metrics.
    """
    def cell(key: str, value) -> str:
        shown = "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
        return f'<td data-metric="{html.escape(key)}">{html.escape(shown)}</td>'

    rows = "".join(f"<tr><th>{k.replace('_', ' ')}</th>{cell(k, metrics.get(k))}</tr>" for k in METRIC_ROWS)
    per_class = "".join(
        f"<tr><th>{name}</th>" + "".join(cell(f"{name}.{m}", v[m]) for m in ("precision", "recall", "f1", "support"))
        + "</tr>" for name, v in metrics["per_class"].items())
    point = metrics.get("operating_point", {})
    point_rows = "".join(f"<tr><th>{k.replace('_', ' ')}</th>{cell('operating_point.' + k, v)}</tr>"
                         for k, v in point.items())
    matrix = metrics["confusion_matrix"]
    header = "".join(f"<th>predicted {c}</th>" for c in matrix["labels"])
    labels = matrix["labels"]
    body = "".join(f"<tr><th>true {c}</th>" + "".join(cell(f"confusion.{c}.{d}", v) for d, v in zip(labels, row))
                   + "</tr>" for c, row in zip(labels, matrix["matrix"]))
    statuses = "".join(f"<tr><th>{html.escape(k)}</th>{cell('status.' + k, v)}</tr>"
                       for k, v in metrics.get("counts_by_status", {}).items())
    images = "".join(
        f'<figure><img data-plot="{name}" alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        f"<figcaption>{name.replace('_', ' ')}</figcaption></figure>" for name, data in pngs.items())
    splice_section = _splice_section(run.get("splice") or {}, cell)
    details = html.escape(json.dumps({"config": run.get("config"), "versions": run.get("versions"),
                                      "embedder_reason": run.get("embedder_reason"),
                                      "timings": run.get("timings")}, indent=2))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fakeface-ray report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}
img {{ max-width: 34em; }}
pre {{ background: #f6f6f6; padding: 1em; overflow: auto; }}
</style></head>
<body>
<h1>fakeface-ray: real or fake</h1>
<p>Embedder <b data-metric="embedder">{html.escape(str(metrics.get("embedder")))}</b>, best parameters
<code>{html.escape(json.dumps(metrics.get("best_params")))}</code>, {metrics.get("n_test")} test images.
<code>fake</code> is the positive class.</p>
<h2>Test metrics</h2><table>{rows}</table>
<table><tr><th></th><th>precision</th><th>recall</th><th>f1</th><th>support</th></tr>{per_class}</table>
<h2>Shortcut audit</h2>{html_table(audit) if audit else "<p>Not run (the report of a `fakeface train`).</p>"}
<h2>Operating point (chosen on cross-validation folds)</h2><table>{point_rows}</table>
<h2>Confusion matrix</h2><table><tr><th></th>{header}</tr>{body}</table>
<h2>Inputs by status</h2><table>{statuses}</table>
{splice_section}
<h2>Plots</h2>{images}
<h2>Run</h2><pre>{details}</pre>
<script>
window.addEventListener("load", () => {{
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = ok + "/" + imgs.length;
}});
</script>
</body></html>
"""


def _splice_section(splice: dict, cell) -> str:
    """The splice networks' part of the page: their training, epoch by epoch, or why none was used."""
    if "fallback" in splice:
        return (f"<h2>splice-v1 network</h2><p>Not used: {html.escape(splice['reason'])}. "
                f"The classifier reads {html.escape(splice['fallback'])}.</p>")
    if "histories" not in splice:
        return ""
    histories = splice["histories"]
    header = "".join(f"<th>network {k + 1} loss</th><th>training ROC AUC</th>" for k in range(len(histories)))
    rows = []
    for epoch in range(len(histories[0])):
        cells = "".join(cell(f"splice.net{k}.epoch{epoch + 1}.loss", h[epoch]["loss"])
                        + cell(f"splice.net{k}.epoch{epoch + 1}.train_auc", h[epoch].get("train_auc"))
                        for k, h in enumerate(histories))
        rows.append(f"<tr><th>{epoch + 1}</th>{cells}</tr>")
    how = "Reused from an earlier run on the same training set" if splice["reused"] else "Trained"
    cost = splice.get("train_seconds_per_1000_images")
    folds = splice.get("cross_fit_folds", 0)
    scheme = (f"one per cross-fitting fold ({folds}): each scores the training rows it never saw, and their mean "
              "scores the test rows" if folds else "one network, trained on every training row")
    return (f"<h2>splice-v1 networks ({html.escape(splice['use'])})</h2><p>{how} on {splice['training_images']} "
            f"images of the training side, {scheme}. "
            f'<span data-metric="splice.train_seconds_per_1000_images">{"n/a" if cost is None else f"{cost:.0f}"}'
            "</span> s of training per 1,000 training images. First epoch to last (plot: splice training):</p>"
            f"<table><tr><th>epoch</th>{header}</tr>{''.join(rows)}</table>")


def _samples(rows: list[dict], per_class: int) -> dict[str, list[tuple[np.ndarray, str]]]:
    """Thumbnails, read back from the files, for each class and each outcome of the test split."""
    groups: dict[str, list[dict]] = {name: [] for name in plots.SAMPLE_GRIDS}
    for r in rows:
        groups[r["label"]].append(r)
        right = r["pred"] == r["label"]
        outcome = ("true_" if right else "false_") + ("positive" if r["pred"] == FAKE else "negative")
        groups[outcome].append(r)
    out: dict[str, list[tuple[np.ndarray, str]]] = {}
    for name, members in groups.items():
        # Outcome grids show the most confident cases first: the clearest successes and mistakes.
        if name not in CLASSES:
            members = sorted(members, key=lambda r: -abs(r["score"]))
        out[name] = [(thumb, f"{r['image_id'].rsplit('/', 1)[-1][:22]}\nscore {r['score']:+.2f}")
                     for r in members[:per_class] if (thumb := _thumbnail(r["uri"])) is not None]
    return out


def _thumbnail(uri: str) -> np.ndarray | None:
    from PIL import Image

    try:
        decoded = imaging.decode_image(read_bytes(uri), max_pixels=10**9)
    except READ_ERRORS:
        return None  # the file moved since training: the grid shows the others
    if decoded.image is None:
        return None
    image = Image.fromarray(decoded.image)
    image.thumbnail((160, 160))
    return np.asarray(image)
