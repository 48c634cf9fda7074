import json

import numpy as np
import pytest

from fakeface_ray.learning.evaluate import compute_metrics, text_report
from fakeface_ray.reporting.plots import plot_all


def test_class_names_sit_on_their_own_numbers():
    # 4 real (0) all right; 6 fake (1): 3 caught, 3 called real. Asymmetric on purpose.
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    y_pred = np.array([0, 0, 0, 0, 1, 1, 1, 0, 0, 0])
    scores = np.array([-2, -1.5, -1, -0.5, 2, 1.5, 1, 0.1, -0.1, -1.2])
    m = compute_metrics(y_true, y_pred, scores).to_dict()
    assert m["per_class"]["real"] == {"precision": 4 / 7, "recall": 1.0, "f1": 2 * (4 / 7) / (4 / 7 + 1), "support": 4}
    assert m["per_class"]["fake"]["precision"] == 1.0
    assert m["per_class"]["fake"]["recall"] == 0.5
    assert m["per_class"]["fake"]["support"] == 6
    assert m["confusion_matrix"]["labels"] == ["real", "fake"]
    assert m["confusion_matrix"]["matrix"] == [[4, 0], [3, 3]]  # rows true, columns predicted
    assert m["accuracy"] == 0.7
    assert m["macro_f1"] == (m["per_class"]["real"]["f1"] + m["per_class"]["fake"]["f1"]) / 2
    # The fake scored -1.2 ranks below two of the four reals: 22 of 24 pairs in order.
    assert m["roc_auc"] == pytest.approx(22 / 24)
    json.dumps(m)


def test_text_report_labels_rows_by_class():
    text = text_report(np.array([0, 1, 1]), np.array([0, 1, 0]))
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()[:4] in ("real", "fake")}
    assert lines["real"][-1] == "1" and lines["fake"][-1] == "2"


def test_plots_are_written(tmp_path):
    from fakeface_ray.storage.locations import location

    y = np.array([0, 0, 1, 1])
    scores = np.array([-1.0, -0.5, 0.5, 1.0])
    m = compute_metrics(y, y, scores).to_dict()
    m["operating_point"] = {"threshold": 0.0, "rule": "max_macro_f1"}
    thumbs = {"real": [(np.zeros((8, 8, 3), np.uint8), "a")], "fake": [(np.full((8, 8, 3), 255, np.uint8), "b")] * 5,
              "false_positive": []}
    written = plot_all(location(tmp_path), m, y, scores, thumbs)
    names = sorted(p.name for p in written.values())
    assert names == ["confusion_matrix.png", "precision_recall.png", "roc.png", "samples_fake.png", "samples_real.png"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == names  # no temporary files left
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(p.read_bytes()) > 1000 for p in written.values())
