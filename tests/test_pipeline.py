"""The whole pipeline on a small generated corpus, through the shared local Ray."""

import json

import numpy as np
import pyarrow.dataset as pads
import pytest

from fakeface_ray import demo
from fakeface_ray.config import load_config
from fakeface_ray.runs import run_all
from fakeface_ray.schema import embeddings_schema

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, detector):
    out = tmp_path_factory.mktemp("corpus")
    demo.build_demo_corpus(out, seed=1, variants=1, identities=20, detector=detector)
    root = out / demo.CORPUS
    (root / "training_real" / "notes.jpg").write_text("not an image")
    (root / "training_real" / "empty.jpg").write_bytes(b"")
    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (200, 1, 3))
    from PIL import Image

    Image.fromarray(ramp).save(root / "training_fake" / "no face here.png")
    return root


def test_run_writes_one_row_per_input_and_the_report(corpus, tmp_path, ray_session):
    n_inputs = sum(1 for p in corpus.rglob("*") if p.is_file())
    config = load_config(overrides=["train.c_grid=[0.1, 1, 10]", "train.gamma_grid=[scale]"],
                         infile=str(corpus), out=str(tmp_path / "run"))
    record = run_all(config)

    table = pads.dataset(str(tmp_path / "run" / "embeddings"), format="parquet").to_table()
    assert table.num_rows == n_inputs
    assert sorted(table.column("image_id").to_pylist()) == sorted(
        str(p.relative_to(corpus)) for p in corpus.rglob("*") if p.is_file())
    dims = table.schema.field("embedding").type.list_size
    assert table.schema.remove_metadata() == embeddings_schema(dims)
    by_id = {r["image_id"]: r for r in table.to_pylist()}
    assert by_id["training_real/notes.jpg"]["status"] == "unsupported"
    assert by_id["training_real/empty.jpg"]["status"] == "empty_file"
    assert by_id["training_fake/no face here.png"]["status"] == "no_face"
    ok = [r for r in by_id.values() if r["status"] == "ok"]
    assert len(ok) >= 16 and all(len(r["embedding"]) == dims and r["sha256"] for r in ok)

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("macro_f1", "accuracy", "roc_auc", "per_class", "confusion_matrix", "counts_by_status",
                "embedder", "best_params"):
        assert key in metrics
    assert set(metrics["per_class"]) == {"real", "fake"}
    assert metrics["confusion_matrix"]["labels"] == ["real", "fake"]
    assert sum(metrics["counts_by_status"].values()) == n_inputs
    assert metrics["embedder"] == "forensic-v1"

    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["embedder"] == "forensic-v1" and "auto" in run["embedder_reason"]
    assert {"extract_embed_write_s", "train_s", "report_s", "total_s"} <= set(run["timings"])
    assert run["config"]["infile"] == str(corpus)
    for name in ("classification_report.txt", "model/classifier.joblib", "model/metadata.json",
                 "plots/samples_real.png", "plots/samples_fake.png", "plots/confusion_matrix.png",
                 "plots/roc.png"):
        assert (tmp_path / "run" / name).is_file(), name
    assert record["metrics"]["macro_f1"] == metrics["macro_f1"]
