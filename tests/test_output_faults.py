"""Everyday faults on the output side, end to end: two runs at once, a full disk, a damaged part, changed inputs.

Tiny generated images (every row `too_small`, no face model runs) keep these about the storage
layer; the MTCNN and embed actors still start, as in any run.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest
from click.testing import CliRunner
from PIL import Image

from fakeface_ray.cli import cli
from fakeface_ray.config import load_config
from fakeface_ray.runs import run_extract
from fakeface_ray.stages import sources

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).parents[1]


def tiny_corpus(root: Path, n: int) -> Path:
    """`n` distinct 16x16 PNGs, half real and half fake."""
    for i in range(n):
        folder = root / ("training_real" if i % 2 == 0 else "training_fake")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.full((16, 16, 3), i % 251, dtype=np.uint8)
        pixels[0, 0] = (i & 255, i >> 8, 7)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")
    return root


def _rows(out: Path) -> dict[str, dict]:
    table = pads.dataset(str(out / "embeddings"), format="parquet").to_table(columns=["image_id", "sha256"])
    rows = table.to_pylist()
    assert len(rows) == len({r["image_id"] for r in rows}), "an input has two rows"
    return {r["image_id"]: r for r in rows}


def _assert_exactly_once(out: Path, corpus: Path) -> None:
    assert sorted(_rows(out)) == sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*.png"))
    assert (out / "embeddings" / "_COMPLETE").exists()


def _temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if p.name.endswith(".tmp")]


def _extract_command(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fakeface_ray.cli", "extract", "--infile", str(corpus), "--out", str(out),
            "--set", "embed.embedder=forensic", *extra]


def test_two_drivers_on_one_out_one_runs_and_the_other_is_refused(tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus", 24)
    out = tmp_path / "out"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    drivers = [subprocess.Popen(_extract_command(corpus, out), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outcomes = [d.communicate(timeout=600) for d in drivers]
    codes = sorted(d.returncode for d in drivers)
    assert codes == [0, 2], outcomes
    refused = outcomes[[d.returncode for d in drivers].index(2)]
    lines = refused[1].strip().splitlines()
    assert len(lines) == 1 and "is in use by pid" in lines[0] and "Traceback" not in refused[1], refused
    _assert_exactly_once(out, corpus)
    assert not (out / "_LOCK").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 8 KiB tmpfs: room for the lock, not for a part. Skipped where this user cannot mount."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip()}); "
                    "test_storage's refusing filesystem covers the error path")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_in_one_line_leaves_no_temporaries_and_resumes(tmp_path, small_disk):
    corpus = tiny_corpus(tmp_path / "corpus", 40)
    out = small_disk / "out"
    full = subprocess.run(_extract_command(corpus, out), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert full.returncode == 1, full.stdout[-2000:] + full.stderr[-2000:]
    errors = [line for line in full.stderr.splitlines() if line.startswith("failed:")]
    assert len(errors) == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert errors[0].startswith(f"failed: cannot write {out}/embeddings/part-")
    # The log, on the same disk, names itself only if the traceback still fitted.
    assert errors[0].removesuffix(f" (log: {out}/logs/driver.log)").endswith(
        "No space left on device; free space, then rerun with --resume")
    assert _temporaries(out) == [] and not (out / "_LOCK").exists()

    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)  # space freed
    resumed = subprocess.run(_extract_command(corpus, out, "--resume"), cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_exactly_once(out, corpus)
    assert _temporaries(out) == []


def test_a_cut_part_refuses_train_and_resume_quarantines_it_and_redoes_its_rows(tmp_path, ray_session, capsys):
    corpus = tiny_corpus(tmp_path / "corpus", 30)
    out = tmp_path / "out"
    config = load_config(overrides=["embed.embedder=forensic", "output.part_rows=4", "read.files_per_block=4"],
                         infile=str(corpus), out=str(out))
    run_extract(config)
    committed = sorted((out / "embeddings").glob("part-*.parquet"))
    assert len(committed) >= 2
    damaged = committed[1]
    lost = set(pads.dataset(str(damaged), format="parquet").to_table(columns=["image_id"]).column(0).to_pylist())
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # what a power loss can leave

    trained = CliRunner().invoke(cli, ["train", "--embeddings", str(out / "embeddings"), "--out", str(tmp_path / "t")])
    assert trained.exit_code == 2 and f"unreadable part: {damaged.name}" in trained.output, trained.output
    assert "--resume" in trained.output and "Traceback" not in trained.output

    capsys.readouterr()
    record = run_extract(config, resume=True).to_dict()
    warning = capsys.readouterr().err
    assert f"warning: {damaged.name} cannot be read; moved to {out}/embeddings/_quarantine/{damaged.name}" in warning
    assert (out / "embeddings" / "_quarantine" / damaged.name).exists()
    assert record["work"]["to_process"] == len(lost) and record["work"]["unchanged_skipped"] == 30 - len(lost)
    _assert_exactly_once(out, corpus)


def test_resume_redoes_a_resized_input_trusts_an_unchanged_listing_and_verify_rehashes(tmp_path, ray_session):
    corpus = tiny_corpus(tmp_path / "corpus", 20)
    out = tmp_path / "out"
    config = load_config(overrides=["embed.embedder=forensic"], infile=str(corpus), out=str(out))
    run_extract(config)
    before = _rows(out)

    resized, disguised = corpus / "training_real" / "00002.png", corpus / "training_fake" / "00003.png"
    resized.write_bytes(resized.read_bytes() + b"\0")  # new size
    stat = disguised.stat()
    data = bytearray(disguised.read_bytes())
    data[-20] ^= 0xFF  # other bytes, same size, and the mtime put back: a listing cannot tell
    disguised.write_bytes(bytes(data))
    os.utime(disguised, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def sha(path: Path) -> str:
        return sources.hashlib.sha256(path.read_bytes()).hexdigest()

    work = run_extract(config, resume=True).to_dict()["work"]
    assert work["to_process"] == 1 and work["unchanged_skipped"] == 19 and work["rows_dropped"] == 1
    after = _rows(out)
    assert after["training_real/00002.png"]["sha256"] == sha(resized) != before["training_real/00002.png"]["sha256"]
    assert after["training_fake/00003.png"]["sha256"] == before["training_fake/00003.png"]["sha256"] != sha(disguised)
    assert {k: v for k, v in after.items() if k != "training_real/00002.png"} == \
        {k: v for k, v in before.items() if k != "training_real/00002.png"}

    work = run_extract(config, resume=True, verify=True).to_dict()["work"]
    assert work["to_process"] == 20 and work["rows_dropped"] == 1  # all re-hashed; one had changed
    assert _rows(out)["training_fake/00003.png"]["sha256"] == sha(disguised)
    _assert_exactly_once(out, corpus)

    finished = run_extract(config, resume=True).to_dict()
    assert finished["work"]["to_process"] == 0 and finished["work"]["parts_written"] == 0
    assert finished["plan"] is None  # nothing to do: no Ray job was built
    assert "first_row_s" not in finished["timings"]  # no first row to time (a null once broke the summary)
