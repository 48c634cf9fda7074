"""Outputs on any pyarrow filesystem: every file appears whole, under its final name, once."""

import posixpath
import threading

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from fakeface_ray.storage import parts
from fakeface_ray.stages.sources import list_sources
from fakeface_ray.storage.locations import read_bytes, to_uri
from fakeface_ray.storage.locations import Location, location


class Recording(pafs.FileSystemHandler):
    """A local filesystem that records every file opened for writing and every move."""

    def __init__(self):
        self.local = pafs.LocalFileSystem()
        self.opened: list[str] = []
        self.moves: list[tuple[str, str]] = []

    def get_type_name(self): return "recording"
    def normalize_path(self, path): return path
    def get_file_info(self, paths): return self.local.get_file_info(paths)
    def get_file_info_selector(self, selector): return self.local.get_file_info(selector)
    def create_dir(self, path, recursive): self.local.create_dir(path, recursive=recursive)
    def delete_dir(self, path): self.local.delete_dir(path)
    def delete_dir_contents(self, path, missing_dir_ok=False): self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)
    def delete_root_dir_contents(self): raise NotImplementedError
    def delete_file(self, path): self.local.delete_file(path)
    def copy_file(self, src, dest): self.local.copy_file(src, dest)
    def open_input_stream(self, path): return self.local.open_input_stream(path)
    def open_input_file(self, path): return self.local.open_input_file(path)
    def open_append_stream(self, path, metadata): raise NotImplementedError

    def move(self, src, dest):
        self.moves.append((src, dest))
        self.local.move(src, dest)

    def open_output_stream(self, path, metadata):
        self.opened.append(path)
        return self.local.open_output_stream(path)


def test_parts_and_files_are_written_under_temporary_names_then_moved(tmp_path):
    handler = Recording()
    out = Location(pafs.PyFileSystem(handler), str(tmp_path / "out"), "recording://out")
    writer = parts.PartWriter(out / "embeddings")
    table = pa.table({"image_id": ["a", "b"], "sha256": ["1", "2"], "status": ["ok", "no_face"]})
    writer.write(table)
    writer.write(table.slice(0, 0))  # empty: nothing written
    parts.mark_complete(out / "embeddings", 2)
    (out / "run.json").write_text("{}")
    assert all(posixpath.basename(p).startswith(".") and p.endswith(".tmp") for p in handler.opened)
    moved = [posixpath.basename(d) for _, d in handler.moves]
    assert len(moved) == 3 and moved[0].startswith("part-") and moved[1:] == ["_COMPLETE", "run.json"]
    assert parts.committed_rows(out / "embeddings") == {"a": "1", "b": "2"}
    assert parts.is_complete(out / "embeddings")
    names = sorted(p.name for p in (tmp_path / "out" / "embeddings").iterdir())
    assert len(names) == 2 and names[0] == "_COMPLETE" and names[1].startswith("part-")  # no temporaries


def test_drop_rows_rewrites_only_the_parts_that_hold_them(tmp_path):
    folder = location(tmp_path / "emb")
    writer = parts.PartWriter(folder)
    first = writer.write(pa.table({"image_id": ["a", "b"], "sha256": ["1", "2"]}))
    second = writer.write(pa.table({"image_id": ["c"], "sha256": ["3"]}))
    before = (tmp_path / "emb" / second.name).stat().st_mtime_ns
    assert parts.drop_rows(folder, {"a", "zzz"}, keep_parts=set()) == 1
    assert parts.committed_rows(folder) == {"b": "2", "c": "3"}
    assert (tmp_path / "emb" / second.name).stat().st_mtime_ns == before
    assert parts.drop_rows(folder, {"b"}, keep_parts=set()) == 1
    assert not (tmp_path / "emb" / first.name).exists()


def test_file_uri_locations_and_query_options_survive(tmp_path):
    out = location(f"file://{tmp_path}/runs/x")
    (out / "metrics.json").write_text('{"ok": 1}')
    assert (tmp_path / "runs" / "x" / "metrics.json").read_text() == '{"ok": 1}'
    assert str(out / "metrics.json") == f"file://{tmp_path}/runs/x/metrics.json"
    remote = Location(pafs.LocalFileSystem(), "/b/runs", "s3://b/runs?endpoint_override=h:9000")
    assert str(remote / "plots" / "roc.png") == "s3://b/runs/plots/roc.png?endpoint_override=h:9000"
    assert to_uri("s3://bucket/faces?endpoint_override=localhost:9000&scheme=http", "bucket/faces/a.jpg") == \
        "s3://bucket/faces/a.jpg?endpoint_override=localhost:9000&scheme=http"
    (tmp_path / "in" / "real").mkdir(parents=True)
    (tmp_path / "in" / "real" / "a.jpg").write_bytes(b"x")
    (tmp_path / "in" / "real" / "no face #2.jpg").write_bytes(b"y")
    found = list_sources(f"file://{tmp_path}/in", (".jpg",))
    assert [read_bytes(s.uri) for s in found] == [b"x", b"y"]
    assert found[1].uri == f"file://{tmp_path}/in/real/no%20face%20%232.jpg"


def test_a_missing_location_is_absent_not_an_error(tmp_path):
    gone = location(tmp_path / "nothing")
    assert not gone.exists() and gone.glob("*") == []
    gone.delete()
    with pytest.raises(FileNotFoundError):
        gone.read_bytes()


class _StuckDataset:
    """Yields one block, then waits forever, like a Ray Data graph whose actors cannot be placed."""

    def iter_batches(self, **_):
        yield pa.table({"image_id": ["a"]})
        threading.Event().wait()


def test_a_run_that_stops_producing_rows_fails_and_keeps_what_it_wrote(tmp_path):
    from fakeface_ray.pipeline import StalledError, _write_parts

    writer = parts.PartWriter(location(str(tmp_path)))
    with pytest.raises(StalledError, match="--resume"):
        _write_parts(_StuckDataset(), writer, stall_timeout_s=1.0)
    assert [p.path for p in parts.committed_parts(location(str(tmp_path)))] == [p.path for p in writer.parts]
    assert len(writer.parts) == 1
