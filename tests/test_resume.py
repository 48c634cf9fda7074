"""What `--resume` redoes, decided from listings: skipped inputs are never opened."""

import os

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from fakeface_ray.config import load_config
from fakeface_ray.stages import sources
from fakeface_ray.stages.sources import LISTING_SCHEMA, Listing, list_sources
from fakeface_ray.storage import parts
from fakeface_ray.storage.locations import Location, location

from .test_storage import Recording


def _listing(rows) -> pa.Table:
    """(image_id, size, mtime) -> a listing table."""
    return pa.Table.from_pylist([{"image_id": i, "uri": f"/in/{i}", "label": "real", "file_size": size,
                                  "file_mtime_ns": mtime} for i, size, mtime in rows], schema=LISTING_SCHEMA)


def _committed(rows) -> pa.Table:
    """(image_id, sha256, size, mtime) -> committed rows."""
    schema = pa.schema([("image_id", pa.string()), ("sha256", pa.string()), ("file_size", pa.int64()),
                        ("file_mtime_ns", pa.int64())])
    return pa.Table.from_pylist([dict(zip(schema.names, r)) for r in rows], schema=schema)


def _todo(plan) -> dict[str, str]:
    return dict(zip(plan.todo.column("image_id").to_pylist(), plan.todo.column("done_sha256").to_pylist()))


def test_resume_trusts_size_and_mtime_and_redoes_what_changed():
    listing = _listing([("same", 10, 100), ("grown", 11, 100), ("touched", 10, 200), ("new", 5, 1),
                        ("legacy", 7, 7), ("unreadable", 3, 3), ("twice", 4, 4)])
    committed = _committed([("same", "s1", 10, 100), ("grown", "s2", 10, 100), ("touched", "s3", 10, 100),
                            ("legacy", "s5", None, None), ("unreadable", None, 3, 3), ("gone", "s6", 1, 1),
                            ("twice", "s7", 4, 4), ("twice", "s7", 4, 4)])
    plan = parts.plan_resume(listing, committed)
    # Changed listings and new inputs are redone whatever their bytes ("" = no sha256 to match);
    # rows written before listings were recorded are kept if their bytes hash the same.
    assert _todo(plan) == {"grown": "", "touched": "", "new": "", "legacy": "s5", "unreadable": "", "twice": ""}
    assert plan.unchanged == 1 and plan.duplicated == 1
    assert plan.vanished.to_pylist() == ["gone"]
    # The rows a resume replaces: every redone input that had one (twice: both), never a new input.
    assert sorted(plan.redone.to_pylist()) == ["grown", "legacy", "touched", "twice", "unreadable"]
    assert plan.todo.column_names == LISTING_SCHEMA.names + ["done_sha256"]

    verified = parts.plan_resume(listing, committed, verify=True)
    assert _todo(verified) == {**_todo(plan), "same": "s1"}  # re-hashed: redone only if the bytes differ
    assert verified.unchanged == 0


def test_resume_of_a_finished_run_opens_no_input_and_starts_no_ray(tmp_path, monkeypatch):
    from fakeface_ray import pipeline
    from fakeface_ray.storage.schema import embeddings_schema

    for i in range(5):
        (tmp_path / "in" / "real").mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / "real" / f"{i}.png").write_bytes(b"x" * (i + 1))
    recording = Recording()
    inputs = Location(pafs.PyFileSystem(recording), str(tmp_path / "in"), str(tmp_path / "in"))
    listing = list_sources(inputs, (".png",))
    assert [s.file_size for s in listing] == [1, 2, 3, 4, 5]
    assert [s.file_mtime_ns for s in listing] == [os.stat(tmp_path / "in" / "real" / f"{i}.png").st_mtime_ns
                                                   for i in range(5)]
    # What a finished run left: one row per input, made from this listing.
    rows = listing.table.to_pylist()
    table = pa.Table.from_pylist([{**r, "sha256": "0" * 64, "status": "too_small", "n_faces": 0,
                                   "embedder": "forensic-v5"} for r in rows], schema=embeddings_schema(56))
    parts.write_part(location(tmp_path / "out" / "embeddings") / "part-a-000000.parquet", table)

    def no_ray(*args, **kwargs):
        raise AssertionError("a resume with nothing to do started Ray")

    def no_read(uri):
        raise AssertionError(f"a resume with nothing to do read {uri}")

    monkeypatch.setattr(pipeline, "connect", no_ray)
    monkeypatch.setattr(sources, "read_bytes", no_read)  # what the read stage calls for each input
    config = load_config(infile=str(tmp_path / "in"), out=str(tmp_path / "out"))
    result = pipeline.extract_embeddings(config, tmp_path / "out", list_sources(inputs, (".png",)), resume=True)
    assert result.work["unchanged_skipped"] == 5 and result.work["to_process"] == 0 and result.plan is None
    assert result.counts_by_status == {"too_small": 5}
    assert recording.read == []  # the listings opened no file either
    assert parts.is_complete(location(tmp_path / "out" / "embeddings"))


def test_a_resume_that_stops_midway_leaves_no_finished_marker(tmp_path, monkeypatch):
    from fakeface_ray import pipeline
    from fakeface_ray.storage.schema import embeddings_schema

    (tmp_path / "in" / "real").mkdir(parents=True)
    for i in range(3):
        (tmp_path / "in" / "real" / f"{i}.png").write_bytes(b"x" * (i + 1))
    listing = list_sources(str(tmp_path / "in"), (".png",))
    rows = [{**r, "sha256": "0" * 64, "status": "too_small", "n_faces": 0, "embedder": "forensic-v5"}
            for r in listing.table.to_pylist()]
    embeddings = location(tmp_path / "out" / "embeddings")
    parts.write_part(embeddings / "part-a-000000.parquet", pa.Table.from_pylist(rows, schema=embeddings_schema(56)))
    parts.mark_complete(embeddings, 3)
    (tmp_path / "in" / "real" / "3.png").write_bytes(b"new")  # an input added since the run finished

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "connect", lambda config: {})
    monkeypatch.setattr(pipeline, "plan_pools", lambda *args: None)
    monkeypatch.setattr(pipeline, "build_dataset", stopped)
    config = load_config(infile=str(tmp_path / "in"), out=str(tmp_path / "out"))
    with pytest.raises(KeyboardInterrupt):
        pipeline.extract_embeddings(config, tmp_path / "out", list_sources(str(tmp_path / "in"), (".png",)),
                                    resume=True)
    assert not parts.is_complete(embeddings)  # the folder says interrupted, and resume finishes it
    assert parts.read_folder(embeddings, ["image_id"]).num_rows == 3  # what was written stays


def test_the_demo_replaces_only_a_run_of_its_own_images(tmp_path):
    import json

    from fakeface_ray.runs import holds_run_of
    from fakeface_ray.storage.schema import embeddings_schema

    demo, other = str(tmp_path / "data" / "demo"), str(tmp_path / "photos")
    out = location(tmp_path / "out")
    assert not holds_run_of(out, demo)  # nothing there
    rows = [{"image_id": "real/0.png", "uri": str(tmp_path / "data" / "demo" / "real" / "0.png"), "label": "real",
             "sha256": "0" * 64, "status": "too_small", "n_faces": 0, "embedder": "forensic-v5"}]
    parts.write_part(out / "embeddings" / "part-a-000000.parquet",
                     pa.Table.from_pylist(rows, schema=embeddings_schema(56)))
    assert holds_run_of(out, demo) and not holds_run_of(out, other)  # interrupted: its rows say
    assert not holds_run_of(out, str(tmp_path / "data" / "dem"))  # a prefix of the folder's name is not it
    (tmp_path / "out" / "run.json").write_text(json.dumps({"config": {"infile": other}}))
    assert holds_run_of(out, other) and not holds_run_of(out, demo)  # finished: its record says


def test_a_listing_is_columns_and_iterates_as_sources(tmp_path):
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "b.jpg").write_bytes(b"abc")
    (tmp_path / "fake" / "a.jpg").write_bytes(b"ab")
    listing = list_sources(str(tmp_path), (".jpg",))
    assert isinstance(listing, Listing) and listing.table.schema == LISTING_SCHEMA
    assert [(s.image_id, s.label, s.file_size) for s in listing] == [("fake/a.jpg", "fake", 2), ("fake/b.jpg", "fake", 3)]
    assert listing[1].uri == str(tmp_path / "fake" / "b.jpg") and len(listing) == 2
    with pytest.raises(IndexError):
        listing[2]


def test_read_stage_takes_listing_rows_by_number_and_keeps_what_resume_added(tmp_path):
    import numpy as np

    from fakeface_ray.pipeline import read_listed

    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.png").write_bytes(name.encode())
    listing = list_sources(str(tmp_path), (".png",)).table
    listing = listing.append_column("done_sha256", pa.array(["", "", "x"]))
    out = read_listed({"id": np.array([2, 0])}, listing)
    assert list(out["image_id"]) == ["c.png", "a.png"] and list(out["bytes"]) == [b"c", b"a"]
    assert list(out["label"]) == [None, None] and list(out["file_size"]) == [1, 1]
    assert "done_sha256" not in out  # consumed: row "c" hashes to something other than "x", so it stays
