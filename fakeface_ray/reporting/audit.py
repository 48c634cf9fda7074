"""The shortcut audit (`audit.json`) as a console table and as an HTML table."""

from __future__ import annotations

import html

from ..storage.schema import CLASSES

WIDTHS = (20, 24, 24)  # cue, then each class


def text_table(audit: dict) -> list[str]:
    """Lines for the console: one row per cue, then what the numbers mean and the verdict."""
    def cell(text: str, width: int) -> str:
        return (text if len(text) < width else text[:width - 2] + "~").ljust(width)

    lines = ["".join(cell(h, w) for h, w in zip(("cue", *CLASSES), WIDTHS)) + "AUC   verdict"]
    for cue in audit["cues"]:
        auc = "n/a " if cue["auc"] is None else f"{cue['auc']:.2f}"
        lines.append(cell(cue["title"], WIDTHS[0])
                     + "".join(cell(cue["per_class"][name], w) for name, w in zip(CLASSES, WIDTHS[1:]))
                     + f"{auc}  {cue['verdict']}")
    counts = audit["n_per_class"]
    lines.append(f"{counts['real']} real and {counts['fake']} fake images; AUC: a classifier on the cue alone, "
                 f"cross-validated (0.5 chance, 1.0 perfect); above {audit['threshold']:.2f} it separates the classes")
    lines.append(f"verdict: {audit['verdict']}")
    return lines


def html_table(audit: dict) -> str:
    """The audit section of report.html; each AUC carries `data-audit` (the cue's name) for tests."""
    rows = []
    for cue in audit["cues"]:
        auc = "n/a" if cue["auc"] is None else f"{cue['auc']:.2f}"
        style = ' style="background:#fdd"' if cue["separates"] else ""
        rows.append(f"<tr{style}><th>{html.escape(cue['title'])}</th>"
                    + "".join(f"<td>{html.escape(cue['per_class'][name])}</td>" for name in CLASSES)
                    + f'<td data-audit="{html.escape(cue["name"])}">{auc}</td>'
                    + f"<td>{html.escape(cue['verdict'])}</td></tr>")
    header = "<tr><th>cue</th>" + "".join(f"<th>{name}</th>" for name in CLASSES) + "<th>AUC</th><th>verdict</th></tr>"
    return (f"<p><b>{html.escape(audit['verdict'])}</b></p>"
            f"<table>{header}{''.join(rows)}</table>"
            f"<p>How the files were saved, class by class ({audit['n_per_class']['real']} real, "
            f"{audit['n_per_class']['fake']} fake). AUC: a small classifier on that cue alone, cross-validated; "
            f"0.5 is chance, 1.0 tells every image apart. Above {audit['threshold']:.2f} the cue separates the "
            "classes, and a detector's score on these images may measure it instead of the faces.</p>")
