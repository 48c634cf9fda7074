"""The whole pipeline on a small generated corpus, through the shared local Ray."""

import json

import numpy as np
import pyarrow.dataset as pads
import pytest

from .conftest import SMALL_GRID, SMALL_GRID_ARGS, copy_corpus
from fakeface_ray.config import load_config
from fakeface_ray.runs import run_all
from fakeface_ray.storage.schema import embeddings_schema

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_corpus):
    root = copy_corpus(demo_corpus, tmp_path_factory.mktemp("corpus"), per_class=10)
    (root / "training_real" / "notes.jpg").write_text("not an image")
    (root / "training_real" / "empty.jpg").write_bytes(b"")
    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (200, 1, 3))
    from PIL import Image

    Image.fromarray(ramp).save(root / "training_fake" / "no face here.png")
    return root


@pytest.fixture(scope="module")
def finished(corpus, tmp_path_factory, ray_session):
    tmp_path = tmp_path_factory.mktemp("finished")
    config = load_config(overrides=list(SMALL_GRID), infile=str(corpus), out=str(tmp_path / "run"))
    return tmp_path, run_all(config)


def test_run_writes_one_row_per_input_and_the_report(corpus, finished):
    tmp_path, trained = finished
    n_inputs = sum(1 for p in corpus.rglob("*") if p.is_file())

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
    assert metrics["embedder"] == "forensic-v11"

    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["embedder"] == "forensic-v11" and "auto" in run["embedder_reason"]
    assert {"extract_embed_write_s", "train_s", "report_s", "total_s"} <= set(run["timings"])
    assert run["config"]["infile"] == str(corpus)
    for name in ("classification_report.txt", "model/classifier.joblib", "model/metadata.json",
                 "plots/samples_real.png", "plots/samples_fake.png", "plots/confusion_matrix.png",
                 "plots/roc.png", "plots/precision_recall.png", "report.html", "test_predictions.parquet"):
        assert (tmp_path / "run" / name).is_file(), name
    assert trained.record.to_dict()["metrics"]["macro_f1"] == trained.metrics["macro_f1"] == metrics["macro_f1"]


def test_run_with_a_facenet_weight_file_and_uris(corpus, tmp_path, ray_session):
    from fakeface_ray.stages.embedders.facenet import build_inception_resnet_v1, model_weights
    from fakeface_ray.stages.embedders.facenet_weights import file_sha256, write_weight_file
    from fakeface_ray.runs import run_extract

    model = build_inception_resnet_v1(128)
    weights = tmp_path / "facenet_keras.h5"
    write_weight_file(weights, model_weights(model), "keras2-full-model")
    # Input and output as file:// URIs: the same code path as s3:// and gs://.
    config = load_config(overrides=["embed.embedder=facenet", f"embed.weights={weights}"],
                         infile=f"file://{corpus}", out=f"file://{tmp_path}/run")
    record = run_extract(config).to_dict()
    assert (tmp_path / "run" / "run.json").is_file() and (tmp_path / "run" / "embeddings" / "_COMPLETE").is_file()
    assert record["embedder"] == "facenet-128" and record["embedder_reason"] == "embedder 'facenet' requested"
    assert record["weights"]["sha256"] == file_sha256(weights)
    assert record["weights"]["parameters"] == 22_808_144
    table = pads.dataset(str(tmp_path / "run" / "embeddings"), format="parquet").to_table()
    ok = table.filter(pads.field("status") == "ok")
    vectors = np.array(ok.column("embedding").to_pylist())
    assert vectors.shape[1] == 128 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_local_ray_listens_on_loopback_without_a_dashboard(ray_session):
    import ipaddress

    import psutil
    import ray._private.worker as worker

    assert [n["NodeManagerAddress"] for n in ray_session.nodes()] == ["127.0.0.1"]
    assert not worker.global_worker.node.address_info.get("webui_url")
    # This session's processes only: another Ray on the same machine (a parallel job) is not ours to judge.
    session = worker.global_worker.node.session_name
    ray_pids = {p.pid for p in psutil.process_iter(["cmdline"]) if session in " ".join(p.info["cmdline"] or [])}
    listening = [c for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.pid in ray_pids]
    assert listening
    for conn in listening:
        address = ipaddress.ip_address(conn.laddr.ip)
        mapped = getattr(address, "ipv4_mapped", None)
        assert (mapped or address).is_loopback, conn


def test_run_resume_of_a_finished_run_has_nothing_to_do_and_succeeds(corpus, finished, tmp_path, ray_session):
    import shutil

    from click.testing import CliRunner

    from fakeface_ray.cli import cli

    out = tmp_path / "again"
    shutil.copytree(finished[0] / "run", out)
    result = CliRunner().invoke(cli, ["run", "--infile", str(corpus), "--out", str(out), "--resume",
                                      *SMALL_GRID_ARGS])
    assert result.exit_code == 0, result.output[-2000:]
    timings = next(line for line in result.output.splitlines() if line.startswith("timings "))
    assert "; 0 to process;" in result.output and "extract_embed_write" in timings and "first_row" not in timings
    assert "first_row_s" not in json.loads((out / "run.json").read_text())["timings"]


def test_predict_scores_every_input_with_the_trained_model(corpus, finished, tmp_path, ray_session):
    from fakeface_ray.storage.schema import predictions_schema
    from fakeface_ray.runs import run_predict
    from fakeface_ray.learning.train import TrainError

    run_dir, _ = finished
    config = load_config(infile=str(corpus), out=str(tmp_path / "pred"))
    summary = run_predict(config, str(run_dir / "run" / "model"))
    table = pads.dataset(str(tmp_path / "pred" / "predictions"), format="parquet").to_table()
    assert table.schema.remove_metadata() == predictions_schema()
    rows = {r["image_id"]: r for r in table.to_pylist()}
    assert len(rows) == summary["n_inputs"] == sum(1 for p in corpus.rglob("*") if p.is_file())
    for r in rows.values():
        if r["status"] == "ok":
            assert r["pred"] in ("real", "fake") and 0.0 <= r["p_fake"] <= 1.0
            assert (r["pred"] == "fake") == (r["score"] >= summary["threshold"])
        else:
            assert r["pred"] is None and r["score"] is None and r["p_fake"] is None
    counts = summary["counts_by_prediction"]
    assert counts["real"] + counts["fake"] == sum(r["status"] == "ok" for r in rows.values())
    # The same images through training and prediction get the same scores.
    trained = pads.dataset(str(run_dir / "run" / "test_predictions.parquet"), format="parquet").to_table().to_pylist()
    for r in trained:
        assert rows[r["image_id"]]["score"] == pytest.approx(r["score"], abs=1e-4)

    from fakeface_ray.stages.embedders.facenet import build_inception_resnet_v1, model_weights
    from fakeface_ray.stages.embedders.facenet_weights import write_weight_file

    weights = tmp_path / "facenet_keras.h5"
    write_weight_file(weights, model_weights(build_inception_resnet_v1(128)), "keras2-weights")
    other = load_config(overrides=["embed.embedder=facenet", f"embed.weights={weights}"],
                        infile=str(corpus), out=str(tmp_path / "pred2"))
    with pytest.raises(TrainError, match="trained on forensic-v11 \\(68 dims\\) but this run embeds with facenet-128"):
        run_predict(other, str(run_dir / "run" / "model"))
    assert not (tmp_path / "pred2").exists()


def test_predict_with_a_known_share_of_fakes_calls_that_share_fake(corpus, finished, tmp_path, ray_session):
    from fakeface_ray.runs import run_predict

    run_dir, _ = finished
    config = load_config(overrides=["predict.fake_share=0.25"], infile=str(corpus), out=str(tmp_path / "share"))
    summary = run_predict(config, str(run_dir / "run" / "model"))
    folder = tmp_path / "share" / "predictions"
    rows = pads.dataset(str(folder), format="parquet").to_table().to_pylist()
    scored = [r for r in rows if r["score"] is not None]
    fakes = [r for r in scored if r["pred"] == "fake"]
    assert len(fakes) == round(0.25 * len(scored)) and all(r["pred"] is None for r in rows if r["score"] is None)
    assert min(r["score"] for r in fakes) == summary["threshold"] >= max(r["score"] for r in scored if r["pred"] == "real")
    assert summary["counts_by_prediction"]["fake"] == len(fakes)
    assert summary["threshold_rule"].startswith("fake_share 0.25") and "model_threshold" in summary
    assert json.loads((folder / "_COMPLETE").read_text()) == {"rows": len(rows)}

    # Another share on the same scores, also after a relabel stopped midway (no marker): no image is read.
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fakeface_ray.config import ConfigError
    from fakeface_ray.errors import UserError
    from fakeface_ray.pipeline import ExactlyOnceError

    (folder / "_COMPLETE").unlink()
    half = load_config(overrides=["predict.fake_share=0.5"], infile=str(corpus), out=str(tmp_path / "share"))
    again = run_predict(half, str(run_dir / "run" / "model"), relabel=True)
    relabelled = pads.dataset(str(folder), format="parquet").to_table().to_pylist()
    assert sum(r["pred"] == "fake" for r in relabelled) == round(0.5 * len(scored)) == again["counts_by_prediction"]["fake"]
    assert [r["score"] for r in relabelled] == [r["score"] for r in rows] and (folder / "_COMPLETE").is_file()
    assert json.loads((tmp_path / "share" / "predict.json").read_text())["threshold_rule"].startswith("fake_share 0.5")
    assert again["counts_by_status"] == summary["counts_by_status"] and again["n_inputs"] == summary["n_inputs"]
    with pytest.raises(ConfigError, match="give --fake-share"):
        run_predict(load_config(infile=str(corpus), out=str(tmp_path / "share")), str(run_dir / "run" / "model"),
                    relabel=True)
    with pytest.raises(UserError, match="no predictions to label again"):
        run_predict(load_config(overrides=["predict.fake_share=0.5"], infile=str(corpus), out=str(tmp_path / "none")),
                    str(run_dir / "run" / "model"), relabel=True)
    kept = pa.Table.from_pylist(relabelled[1:], schema=pq.read_schema(sorted(folder.glob("part-*.parquet"))[0]))
    for part in folder.glob("part-*.parquet"):
        part.unlink()
    pq.write_table(kept, folder / "part-x.parquet")  # a predict stopped while scoring: a row is missing
    with pytest.raises(ExactlyOnceError, match="run predict with --overwrite"):
        run_predict(half, str(run_dir / "run" / "model"), relabel=True)


@pytest.fixture(scope="module")
def s3_server():
    """A local S3-compatible server (moto) on loopback; yields the URI options that reach it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    boto3.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket="faces")
    yield f"endpoint_override={host}:{port}&scheme=http"
    server.stop()


def test_run_reads_and_writes_an_s3_compatible_store(corpus, s3_server, tmp_path, ray_session):
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri(f"s3://faces?{s3_server}")
    for path in corpus.rglob("*"):
        if path.is_file():
            with fs.open_output_stream(f"faces/corpus/{path.relative_to(corpus)}") as stream:
                stream.write(path.read_bytes())
    config = load_config(overrides=[*SMALL_GRID, "train.backend=loky"],
                         infile=f"s3://faces/corpus?{s3_server}", out=f"s3://faces/runs/x?{s3_server}")
    record = run_all(config).record.to_dict()
    assert record["n_inputs"] == sum(1 for p in corpus.rglob("*") if p.is_file())
    stored = {info.path.removeprefix("faces/runs/x/") for info in
              fs.get_file_info(pafs.FileSelector("faces/runs/x", recursive=True)) if info.type == pafs.FileType.File}
    for name in ("run.json", "metrics.json", "report.html", "model/classifier.joblib", "embeddings/_COMPLETE",
                 "plots/roc.png"):
        assert name in stored, name
    assert not [name for name in stored if name.rsplit("/", 1)[-1].startswith(".")]  # no temporaries left
    rows = pads.dataset("faces/runs/x/embeddings", filesystem=fs, format="parquet").to_table().to_pylist()
    assert len(rows) == record["n_inputs"]
    assert all(r["uri"].startswith("s3://faces/corpus/") and r["uri"].endswith(s3_server) for r in rows)


def test_synthetic_fakes_join_the_training_side_only(finished, tmp_path):
    import pyarrow.parquet as pq

    from fakeface_ray.runs import run_train

    run_dir, _ = finished
    config = load_config(overrides=["synth.variants=1", *SMALL_GRID, "train.backend=loky"], out=str(tmp_path / "synth"))
    trained = run_train(config, str(run_dir / "run" / "embeddings"))
    summary = trained.record.train["synthetic"]
    made = pads.dataset(str(tmp_path / "synth" / "synthetic"), format="parquet").to_table().to_pylist()
    assert summary["parents"] == len(made) and summary["fakes"] == sum(r["status"] == "ok" for r in made) > 0
    assert all(r["synthetic"] and r["label"] == "fake" and r["image_id"].startswith(r["parent_image_id"])
               for r in made)
    test_ids = set(pq.read_table(tmp_path / "synth" / "test_predictions.parquet").column("image_id").to_pylist())
    assert not {r["parent_image_id"] for r in made} & test_ids  # nothing made from a test image
    assert all(r["parent_image_id"].startswith("training_real/") for r in made)


def test_train_into_a_folder_of_another_run_records_its_own_config_and_counts(finished, tmp_path):
    from fakeface_ray.runs import run_train

    run_dir, first = finished
    out = tmp_path / "other"
    out.mkdir()
    stale = json.loads((run_dir / "run" / "run.json").read_text())  # another run's record, left in --out
    stale["config"]["train"]["test_split"], stale["counts_by_status"] = 0.9, {"ok": 999}
    stale["timings"]["total_s"] = 1e6
    (out / "run.json").write_text(json.dumps(stale))
    config = load_config(overrides=[*SMALL_GRID, "train.backend=loky", "train.test_split=0.3"], out=str(out))
    trained = run_train(config, str(run_dir / "run" / "embeddings"))
    written = json.loads((out / "run.json").read_text())
    assert written["config"]["train"]["test_split"] == 0.3
    assert "counts_by_status" not in written and "total_s" not in written["timings"]
    assert trained.metrics["counts_by_status"] == first.record.extract["counts_by_status"]


@pytest.mark.ray
def test_the_read_stage_reads_every_input_once_in_at_most_max_read_tasks_blocks(tmp_path, ray_session):
    from fakeface_ray.config import ReadConfig
    from fakeface_ray.pipeline import read_stage
    from fakeface_ray.stages.sources import list_sources

    (tmp_path / "real").mkdir()
    for i in range(61):
        (tmp_path / "real" / f"{i:02d}.png").write_bytes(bytes([i]) * (i + 1))
    read = ReadConfig(files_per_block=2, max_read_tasks=3)
    listing = list_sources(str(tmp_path), read.extensions)
    blocks = list(read_stage(listing.table, read, num_cpus=0.25).iter_batches(batch_size=None, batch_format="numpy"))
    # 31 batches of 2 files in 3 tasks: each task's batches are joined (Ray may cut a task's rows once).
    assert len(blocks) <= 2 * read.max_read_tasks
    got = {uri: data for block in blocks for uri, data in zip(block["uri"], block["bytes"])}
    assert sum(len(block["uri"]) for block in blocks) == len(got) == 61
    assert all(data == bytes([int(uri[-6:-4])]) * (int(uri[-6:-4]) + 1) for uri, data in got.items())


def test_splice_networks_are_cross_fitted_on_the_training_side_reused_and_read_by_predict(
        corpus, finished, tmp_path, ray_session):
    import pyarrow.parquet as pq

    from fakeface_ray.runs import run_predict, run_train

    run_dir, _ = finished
    overrides = ["splice.use=concat", "splice.epochs=1", "splice.batch_size=4", "splice.cross_fit_folds=2",
                 "splice.min_reals=3", *SMALL_GRID, "train.backend=loky"]
    config = load_config(overrides=overrides, out=str(tmp_path / "spliced"))
    trained = run_train(config, str(run_dir / "run" / "embeddings"))
    summary = trained.record.train["splice"]
    assert trained.metrics["embedder"] == "forensic-v11+splice-v1" and summary["networks"] == 2
    assert not summary["reused"] and [len(h) for h in summary["histories"]] == [1, 1]
    model = tmp_path / "spliced" / "model"
    seen = [set(json.loads((model / "splice" / name / "splice.json").read_text())["image_ids"])
            for name in json.loads((model / "splice" / "networks.json").read_text())["networks"]]
    test_ids = set(pq.read_table(tmp_path / "spliced" / "test_predictions.parquet").column("image_id").to_pylist())
    training = seen[0] | seen[1]
    assert len(training) == summary["training_images"] and not training & test_ids
    assert all(sum(i in s for s in seen) == 1 for i in training)  # each training row is unseen by one network
    page = (tmp_path / "spliced" / "report.html").read_text()
    assert 'data-plot="splice_training"' in page and "splice-v1 networks (concat)" in page

    again = run_train(config, str(run_dir / "run" / "embeddings"))
    assert again.record.train["splice"]["reused"] and again.metrics["macro_f1"] == trained.metrics["macro_f1"]
    longer = run_train(load_config(overrides=overrides + ["splice.epochs=2", "splice.cross_fit_folds=0"],
                                   out=str(tmp_path / "spliced")), str(run_dir / "run" / "embeddings"))
    assert not longer.record.train["splice"]["reused"]  # other settings: trained again, in the same folder
    assert [len(h) for h in longer.record.train["splice"]["histories"]] == [2]
    assert sorted(p.name for p in (model / "splice").iterdir()) == ["net-0", "networks.json"]

    predicted = load_config(infile=str(corpus), out=str(tmp_path / "pred"))
    result = run_predict(predicted, str(model))
    assert result["embedder"] == "forensic-v11+splice-v1"
    rows = {r["image_id"]: r for r in pads.dataset(str(tmp_path / "pred" / "predictions"), format="parquet")
            .to_table().to_pylist()}
    # Test rows were scored by the mean of the networks in training; predict does the same.
    for r in pq.read_table(tmp_path / "spliced" / "test_predictions.parquet").to_pylist():
        assert rows[r["image_id"]]["score"] == pytest.approx(r["score"], abs=1e-3)


def test_too_few_training_reals_for_the_splice_network_fall_back_with_the_reason(finished, tmp_path):
    from fakeface_ray.runs import run_train

    run_dir, _ = finished
    config = load_config(overrides=["splice.use=alone", "splice.min_reals=500", *SMALL_GRID, "train.backend=loky"],
                         out=str(tmp_path / "fallback"))
    trained = run_train(config, str(run_dir / "run" / "embeddings"))
    splice = trained.record.train["splice"]
    assert splice["fallback"] == trained.metrics["embedder"] == "forensic-v11"
    assert "usable training reals, fewer than splice.min_reals=500" in splice["reason"]
    assert json.loads((tmp_path / "fallback" / "run.json").read_text())["splice"] == splice
    assert "Not used: " in (tmp_path / "fallback" / "report.html").read_text()
    assert not (tmp_path / "fallback" / "model" / "splice").exists()


def test_gpu_splice_training_on_a_cluster_without_gpus_is_refused_before_extraction(corpus, tmp_path, ray_session):
    from fakeface_ray.learning.splice_training import SpliceTrainingError

    config = load_config(overrides=["splice.use=concat", "splice.use_gpu=true"], infile=str(corpus),
                         out=str(tmp_path / "gpu"))
    with pytest.raises(SpliceTrainingError, match="splice.use_gpu asks for 1 GPU workers but the cluster has 0 GPUs"):
        run_all(config)
    assert not (tmp_path / "gpu").exists()
