import pytest
import yaml
from click.testing import CliRunner

from fakeface_ray.cli import cli


def test_help_lists_the_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "demo-data", "run", "extract", "train", "show-config"):
        assert command in result.output


def test_run_keeps_the_original_flags():
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert "--infile" in result.output and "--testsplit" in result.output


def test_show_config_applies_overrides():
    result = CliRunner().invoke(cli, ["show-config", "--set", "train.backend=loky", "--set", "extract.margin=0"])
    assert result.exit_code == 0
    shown = yaml.safe_load(result.output)
    assert shown["train"]["backend"] == "loky" and shown["extract"]["margin"] == 0.0


def test_user_errors_exit_2_with_a_message_and_no_traceback(tmp_path):
    runner = CliRunner()
    cases = [
        (["show-config", "--set", "train.kernal=rbf"], "did you mean 'train.kernels'"),
        (["run", "--infile", str(tmp_path / "missing"), "--out", str(tmp_path / "out")], "input not found"),
        (["run", "--testsplit", "1.5"], "between 0 and 1"),
        (["show-config", "--config", str(tmp_path / "none.yaml")], "config file not found"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def _labelled(root, reals=2, fakes=2):
    from .photos import face_photo, jpeg_bytes

    for label, n in (("training_real", reals), ("training_fake", fakes)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / label / f"{i}.jpg").write_bytes(jpeg_bytes(face_photo(i, 32)))


def test_one_class_is_refused_before_anything_is_written(tmp_path):
    _labelled(tmp_path / "in", reals=3, fakes=0)
    result = CliRunner().invoke(cli, ["run", "--infile", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "training needs both classes" in result.output
    assert not (tmp_path / "out").exists()
    _labelled(tmp_path / "both", reals=3, fakes=2)  # both classes, too few for this split
    result = CliRunner().invoke(cli, ["run", "--infile", str(tmp_path / "both"), "--testsplit", "0.9",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "test split 0.9 is too large or too small" in result.output
    assert not (tmp_path / "out").exists()


def test_an_output_folder_holding_a_run_is_refused(tmp_path):
    _labelled(tmp_path / "in")
    out = tmp_path / "out"
    (out / "embeddings").mkdir(parents=True)
    args = ["extract", "--infile", str(tmp_path / "in"), "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "holds an interrupted run; pass --resume" in result.output
    (out / "embeddings" / "_COMPLETE").write_text("{}")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "holds a finished run" in result.output
    result = CliRunner().invoke(cli, args + ["--resume", "--overwrite"])
    assert result.exit_code == 2 and "exclude each other" in result.output
    assert sorted(p.name for p in (out / "embeddings").iterdir()) == ["_COMPLETE"]


def test_too_many_errors_fail_after_writing(tmp_path, monkeypatch):
    from fakeface_ray import runs
    from fakeface_ray.pipeline import ExtractResult
    from fakeface_ray.cluster.plan import Plan, PoolPlan

    _labelled(tmp_path / "in")
    pool = PoolPlan(1, 1, 1.0, 0.0, 8)
    canned = ExtractResult(tmp_path / "out" / "embeddings", 4, {"ok": 2, "decode_error": 1, "no_face": 1},
                           "forensic-v11", "requested", Plan(0.25, pool, pool), None, {})
    monkeypatch.setattr(runs, "extract_embeddings", lambda *args, **kwargs: canned)
    args = ["extract", "--infile", str(tmp_path / "in"), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args + ["--max-error-fraction", "0.2"])
    assert result.exit_code == 1 and "1 of 4 rows are errors" in result.output
    assert (tmp_path / "out" / "run.json").exists()
    result = CliRunner().invoke(cli, args + ["--max-error-fraction", "0.25", "--overwrite"])
    assert result.exit_code == 0, result.output


WITHOUT_TENSORFLOW = """
import json, sys
sys.modules["tensorflow"] = None  # not importable, as after `pip install fakeface-ray` without [cpu]
from click.testing import CliRunner
from fakeface_ray.cli import cli
results = [(r.exit_code, r.output) for r in (CliRunner().invoke(cli, args) for args in json.loads(sys.argv[1]))]
import ray
print(json.dumps({"results": results, "ray_started": ray.is_initialized()}))
"""


def test_commands_that_need_tensorflow_exit_2_without_it_before_ray_starts(tmp_path):
    import json
    import subprocess
    import sys

    _labelled(tmp_path / "in")
    out = str(tmp_path / "out")
    facenet = ["--set", "embed.embedder=facenet"]
    commands = [["run", "--infile", str(tmp_path / "in"), "--out", out] + facenet,
                ["extract", "--infile", str(tmp_path / "in"), "--out", out] + facenet,
                ["extract", "--infile", str(tmp_path / "in"), "--out", out, "--set", "extract.detector=tensorflow"],
                ["predict", "--model", str(tmp_path / "model"), "--infile", str(tmp_path / "in"), "--out", out] + facenet,
                ["check-weights", str(tmp_path / "w.h5")]]
    done = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, json.dumps(commands)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    for args, (code, shown) in zip(commands, report["results"]):
        assert code == 2, (args, shown)
        assert shown.startswith("error: not installed: tensorflow for FaceNet and MTCNN on GPUs"), shown
        assert "pip install 'fakeface-ray[cpu]'" in shown and "Traceback" not in shown
        assert len(shown.strip().splitlines()) == 1
    assert not report["ray_started"]
    assert not (tmp_path / "out").exists()


def test_a_failure_after_logging_started_is_one_line_naming_the_log(tmp_path, monkeypatch):
    from fakeface_ray import runs
    from fakeface_ray.storage.locations import location

    def actor_dies(config, **_):
        runs.capture_logs(location(config.out))
        print("chatter from Ray")
        raise RuntimeError("The actor died unexpectedly before finishing this task.\n\tclass_name: MapWorker")

    monkeypatch.setattr(runs, "run_all", actor_dies)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--infile", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 1
    log = out / "logs" / "driver.log"
    assert ("failed: RuntimeError: The actor died unexpectedly before finishing "
            f"this task. (log: {log})") in result.output.splitlines()
    assert "Traceback" in log.read_text() and "class_name: MapWorker" in log.read_text()


def test_the_pipeline_needs_tensorflow_only_for_facenet_and_gpus(tmp_path):
    from fakeface_ray.config import EmbedConfig, ExtractConfig
    from fakeface_ray.stages.requirements import pipeline_needs

    cpu, forensic = ExtractConfig(), EmbedConfig(embedder="forensic")
    assert pipeline_needs(cpu, forensic) == ("mtcnn",)
    assert pipeline_needs(cpu, EmbedConfig(embedder="auto", weights=str(tmp_path / "none.h5"))) == ("mtcnn",)
    (tmp_path / "w.h5").write_bytes(b"")  # FaceNet weights do not change what auto picks
    assert pipeline_needs(cpu, EmbedConfig(embedder="auto", weights=str(tmp_path / "w.h5"))) == ("mtcnn",)
    assert pipeline_needs(cpu, EmbedConfig(embedder="facenet", weights=str(tmp_path / "w.h5"))) == (
        "mtcnn", "tensorflow", "h5py")
    assert pipeline_needs(ExtractConfig(num_gpus=0.25), forensic) == ("mtcnn", "tensorflow")
    assert pipeline_needs(ExtractConfig(detector="tensorflow"), forensic) == ("mtcnn", "tensorflow")


@pytest.mark.slow
def test_a_forensic_extract_runs_where_tensorflow_cannot_be_imported(demo_corpus, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from .conftest import copy_corpus

    # A `tensorflow` that raises on import, first on the path of the driver and of every Ray worker
    # (a local Ray's workers inherit the driver's environment).
    blocked = tmp_path / "blocked" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('tensorflow is blocked in this test')\n")
    corpus = copy_corpus(demo_corpus, tmp_path / "corpus", per_class=4)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(p for p in (str(blocked.parent), os.environ.get("PYTHONPATH")) if p)}
    command = [sys.executable, "-m", "fakeface_ray.cli", "extract", "--infile", str(corpus),
               "--out", str(tmp_path / "out"), "--set", "embed.embedder=forensic"]
    done = subprocess.run(command, cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    counts = json.loads((tmp_path / "out" / "run.json").read_text())["counts_by_status"]
    assert sum(counts.values()) == 8 and counts.get("ok", 0) >= 6, counts


@pytest.mark.parametrize("command, patched, hint", [
    (["extract", "--infile", "in"], "run_extract", "rerun with --resume to finish"),
    (["predict", "--model", "m", "--infile", "in"], "run_predict", "run fakeface predict again"),
])
def test_ctrl_c_names_a_way_on_that_the_command_has(command, patched, hint, tmp_path, monkeypatch):
    from fakeface_ray import runs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, patched, interrupted)
    result = CliRunner().invoke(cli, [*command, "--out", str(tmp_path / "out")])
    assert result.exit_code == 130 and f"interrupted: committed parts are kept; {hint}" in result.output


@pytest.mark.slow
def test_the_demo_refuses_an_out_that_holds_a_run_of_other_images(demo_corpus, tmp_path):
    import json

    out = tmp_path / "important"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"config": {"infile": str(tmp_path / "photos")}}))
    result = CliRunner().invoke(cli, ["demo", "--data", str(demo_corpus.parent), "--out", str(out)])
    assert result.exit_code == 2 and "holds a run of other images than the demo's; choose another --out" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # nothing cleared
