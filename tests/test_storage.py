"""Outputs on any pyarrow filesystem: every file appears whole, under its final name, once."""

import posixpath
import signal
import threading
import time

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from fakeface_ray.storage import parts
from fakeface_ray.stages.sources import list_sources
from fakeface_ray.storage.locations import read_bytes, to_uri
from fakeface_ray.storage.locations import Location, LocationError, location


class Recording(pafs.FileSystemHandler):
    """A local filesystem that records every file opened for reading or writing and every move."""

    def __init__(self):
        self.local = pafs.LocalFileSystem()
        self.opened: list[str] = []
        self.read: list[str] = []
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
    def open_input_stream(self, path):
        self.read.append(path)
        return self.local.open_input_stream(path)

    def open_input_file(self, path):
        self.read.append(path)
        return self.local.open_input_file(path)
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
    writer.close()
    parts.mark_complete(out / "embeddings", 2)
    (out / "run.json").write_text("{}")
    assert all(posixpath.basename(p).startswith(".") and p.endswith(".tmp") for p in handler.opened)
    moved = [posixpath.basename(d) for _, d in handler.moves]
    assert len(moved) == 3 and moved[0].startswith("part-") and moved[1:] == ["_COMPLETE", "run.json"]
    assert parts.read_committed(out / "embeddings").rows.select(["image_id", "sha256"]).to_pydict() == {
        "image_id": ["a", "b"], "sha256": ["1", "2"]}
    assert parts.is_complete(out / "embeddings")
    names = sorted(p.name for p in (tmp_path / "out" / "embeddings").iterdir())
    assert len(names) == 2 and names[0] == "_COMPLETE" and names[1].startswith("part-")  # no temporaries


def _ids(folder) -> list[str]:
    return sorted(parts.read_folder(folder, ["image_id"]).column("image_id").to_pylist())


def test_drop_rows_rewrites_only_the_parts_that_hold_them(tmp_path):
    folder = location(tmp_path / "emb")
    first, second = folder / "part-a-000000.parquet", folder / "part-a-000001.parquet"
    parts.write_part(first, pa.table({"image_id": ["a", "b"], "sha256": ["1", "2"]}))
    parts.write_part(second, pa.table({"image_id": ["c"], "sha256": ["3"]}))
    before = (tmp_path / "emb" / second.name).stat().st_mtime_ns
    assert parts.drop_rows(folder, {"a", "zzz"}, keep_parts=set()) == 1
    assert _ids(folder) == ["b", "c"]
    assert (tmp_path / "emb" / second.name).stat().st_mtime_ns == before
    assert parts.drop_rows(folder, {"b"}, keep_parts=set()) == 1
    assert not (tmp_path / "emb" / first.name).exists()


def test_a_uri_filesystem_is_made_once_and_gives_pyarrow_s_own_paths(monkeypatch):
    from fakeface_ray.storage import locations

    monkeypatch.setattr(locations, "_FILESYSTEMS", {})
    options = "?endpoint_override=127.0.0.1:9&scheme=http"  # made, never contacted
    uris = [f"s3://bucket/{key}{options}" for key in ("a.jpg", "a%20b/c%23d.jpg", "dir/", "%E2%82%AC.jpg",
                                                      "a%2Fb", "//double", "")]
    uris += ["file:///tmp/a%20b/c.jpg", "file:///tmp/", "file:///", "file:///tmp/x%23y.jpg", "mock://x/y"]
    first = {uri: locations.resolve(uri) for uri in uris}
    for uri in uris:  # the second time from the cache
        fs, path = locations.resolve(uri)
        assert path == pafs.FileSystem.from_uri(uri)[1], uri
        assert type(fs) is type(first[uri][0])
    assert locations.resolve(uris[0])[0] is locations.resolve(uris[1])[0]
    assert locations.resolve(f"s3://other/a.jpg{options}")[0] is not locations.resolve(uris[0])[0]
    assert ("mock", "x", "") not in locations._FILESYSTEMS  # only checked schemes are derived here
    # With their filesystem cached, URIs pyarrow refuses are still refused, never read as another path.
    refused = [f"S3://bucket/b{options}", f"s3://bucket/a\nb{options}", "file:///tmp/a\tb", f"s3://bucket/a b{options}",
               f"s3://bucket/a%zz{options}", f"s3://bucket/[x]{options}", f"s3://bucket/a%FF.jpg{options}", "file://"]
    for uri in refused:
        with pytest.raises((ValueError, OSError)):
            pafs.FileSystem.from_uri(uri)  # pyarrow's own answer
        with pytest.raises(LocationError, match="cannot open"):
            locations.resolve(uri)


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
    # The row that arrived was still buffered: the failing run commits it before it gives up.
    assert [p.path for p in parts.committed_parts(location(str(tmp_path)))] == [p.path for p in writer.parts]
    assert len(writer.parts) == 1 and _ids(location(str(tmp_path))) == ["a"]


class _SlowDataset:
    """Yields a block every 0.7 s: rows wait past the commit interval between blocks."""

    def iter_batches(self, **_):
        for k in range(10):
            yield pa.table({"image_id": [f"i{k:03d}"]})
            time.sleep(0.7)


def test_ctrl_c_never_lands_inside_a_commit_and_keeps_every_row_received(tmp_path, monkeypatch):
    from fakeface_ray.pipeline import _write_parts

    committers = []
    commit = parts.write_part
    monkeypatch.setattr(parts, "write_part", lambda *a, **k: (committers.append(threading.current_thread()),
                                                                commit(*a, **k)))
    writer = parts.PartWriter(location(str(tmp_path)), commit_interval_s=0.2)
    # Python's own Ctrl-C handler, as in the CLI: a library loaded earlier in this test session may have replaced it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(2.5, signal.raise_signal, [signal.SIGINT]).start()
        with pytest.raises(KeyboardInterrupt):
            _write_parts(_SlowDataset(), writer, stall_timeout_s=60.0)
    finally:
        signal.signal(signal.SIGINT, previous)
    # The main thread, where Python delivers Ctrl-C, commits at most the last part, after the interrupt.
    assert len(committers) > 1 and threading.main_thread() not in committers[:-1]
    ids = _ids(location(str(tmp_path)))
    assert ids == sorted(set(ids)) and 0 < len(ids) < 10


def _rows(start: int, n: int) -> pa.Table:
    return pa.table({"image_id": [f"i{k:05d}" for k in range(start, start + n)],
                     "sha256": [f"{k:064x}" for k in range(start, start + n)]})


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _sizes(folder) -> dict[str, int]:
    return {p.name: parts.read_parts([p]).num_rows for p in parts.committed_parts(folder)}


def test_the_writer_rolls_a_part_by_rows_and_commits_the_rest_on_close(tmp_path):
    folder = location(tmp_path / "emb")
    writer = parts.PartWriter(folder, max_rows=10, commit_interval_s=1e9)
    for k in range(7):
        writer.write(_rows(4 * k, 4))  # a part at 12 rows, another at 24, 4 left buffered
    assert sorted(_sizes(folder).values()) == [12, 12] and writer.buffered_rows == 4
    writer.close()
    assert sorted(_sizes(folder).values()) == [4, 12, 12]
    assert _ids(folder) == [f"i{k:05d}" for k in range(28)]
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(_rows(99, 1))


def test_the_writer_rolls_a_part_by_bytes(tmp_path):
    folder = location(tmp_path / "emb")
    block = _rows(0, 50)
    writer = parts.PartWriter(folder, max_rows=10**6, max_bytes=2 * block.nbytes, commit_interval_s=1e9)
    for k in range(5):
        writer.write(_rows(50 * k, 50))
    assert sorted(_sizes(folder).values()) == [100, 100] and writer.buffered_rows == 50


def test_the_writer_checkpoints_on_a_timer_and_folds_checkpoints_into_the_next_full_part(tmp_path):
    folder, clock = location(tmp_path / "emb"), _Clock()
    writer = parts.PartWriter(folder, max_rows=10, commit_interval_s=60, clock=clock)
    writer.write(_rows(0, 3))
    writer.commit_if_due()
    assert _sizes(folder) == {}  # not due yet
    clock.now = 61
    writer.commit_if_due()
    clock.now = 130
    writer.write(_rows(3, 3))  # due again: committed as it arrives
    assert list(_sizes(folder).values()) == [3, 3] and writer.buffered_rows == 0
    writer.write(_rows(6, 5))  # 11 rows since the last full part: one part replaces both checkpoints
    assert _sizes(folder) == {f"part-{writer.session}-000000-000002.parquet": 11}
    assert _ids(folder) == [f"i{k:05d}" for k in range(11)]


def test_the_writer_keeps_many_small_blocks_as_few_tables_and_loses_no_row(tmp_path, monkeypatch):
    monkeypatch.setattr(parts, "COMPACT_TABLES", 4)
    folder, clock = location(tmp_path / "emb"), _Clock()
    writer = parts.PartWriter(folder, max_rows=40, commit_interval_s=60, clock=clock)
    for k in range(30):  # 2-row blocks: compacted every 4, a checkpoint at block 9, a full part at 20
        if k == 9:
            clock.now = 61
        writer.write(_rows(2 * k, 2))
        assert len(writer._pending) <= 4 + 2  # the checkpointed rows, compacted ones, and a short tail
    assert writer.buffered_rows == 20
    writer.close()
    assert sorted(_sizes(folder).values()) == [20, 40]
    assert _ids(folder) == [f"i{k:05d}" for k in range(60)]


def test_a_crash_between_parts_keeps_every_committed_row_once(tmp_path, monkeypatch):
    folder, clock = location(tmp_path / "emb"), _Clock()
    writer = parts.PartWriter(folder, max_rows=20, commit_interval_s=60, clock=clock)
    for k in range(3):
        writer.write(_rows(3 * k, 3))
        clock.now += 61
        writer.commit_if_due()
    writer.write(_rows(9, 2))  # buffered when the driver dies: lost, and redone by --resume
    assert _ids(folder) == [f"i{k:05d}" for k in range(9)]

    # The full part is committed, then the driver dies before the checkpoints it replaces are gone.
    def crash(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(folder), "delete", crash)
    with pytest.raises(KeyboardInterrupt):
        writer.write(_rows(11, 9))
    monkeypatch.undo()
    assert len(_ids(folder)) == 9 + 20  # the checkpoints' rows twice, until a resume settles the folder
    committed = parts.read_committed(folder)
    assert sorted(committed.rows.column("image_id").to_pylist()) == [f"i{k:05d}" for k in range(20)]
    assert _ids(folder) == [f"i{k:05d}" for k in range(20)]


def test_local_commits_are_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    import os

    synced = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: synced.append(("rename", b)) or real_replace(a, b))
    part = location(tmp_path / "emb") / "part-x-000000.parquet"
    parts.write_part(part, _rows(0, 3))
    assert len(synced) == 3
    assert posixpath.basename(synced[0]).startswith(".part-x-000000.parquet.")  # the file, under its temporary name
    assert synced[1] == ("rename", part.path) and synced[2] == str(tmp_path / "emb")  # then its folder


class _Refusing(Recording):
    """A filesystem whose writes fail with `error` after `budget` bytes, like a full or read-only disk."""

    def __init__(self, error: int, budget: int = 0):
        super().__init__()
        self.error, self.budget = error, budget

    def open_output_stream(self, path, metadata):
        handler = self

        class Stream:
            def __init__(self):
                self.inner = handler.local.open_output_stream(path)

            def write(self, data):
                handler.budget -= len(data)
                if handler.budget < 0:
                    raise OSError(handler.error, os.strerror(handler.error))
                return self.inner.write(data)

            def close(self):
                self.inner.close()

            def flush(self):
                self.inner.flush()

            @property
            def closed(self):
                return self.inner.closed

        import os

        handler.opened.append(path)
        return pa.PythonFile(Stream(), mode="w")


@pytest.mark.parametrize("error, remedy", [(28, "free space"), (30, "make it writable"), (13, "make it writable")],
                         ids=["ENOSPC", "EROFS", "EACCES"])
def test_a_failed_write_is_one_line_names_the_path_and_leaves_no_temporary(tmp_path, error, remedy):
    from fakeface_ray.storage.locations import WriteError

    handler = _Refusing(error, budget=100)
    folder = Location(pafs.PyFileSystem(handler), str(tmp_path / "emb"), "s3://bucket/out/embeddings")
    writer = parts.PartWriter(folder, max_rows=5)
    with pytest.raises(WriteError) as caught:
        writer.write(_rows(0, 5))
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 1
    assert message.startswith(f"cannot write s3://bucket/out/embeddings/part-{writer.session}-000000.parquet: ")
    assert message.endswith(f"{remedy}, then rerun with --resume")
    assert list((tmp_path / "emb").iterdir()) == []  # the temporary file is gone


def test_unreadable_parts_are_refused_or_quarantined(tmp_path):
    from fakeface_ray.storage.parts import DamagedPartsError

    folder = location(tmp_path / "emb")
    good, bad = folder / "part-a-000000.parquet", folder / "part-a-000001.parquet"
    parts.write_part(good, _rows(0, 3))
    parts.write_part(bad, _rows(3, 3))
    data = (tmp_path / "emb" / bad.name).read_bytes()
    (tmp_path / "emb" / bad.name).write_bytes(data[: len(data) // 2])  # what a power loss can leave
    with pytest.raises(DamagedPartsError, match=f"1 unreadable part: {bad.name} .*--resume"):
        parts.check_readable(folder)
    with pytest.raises(DamagedPartsError):
        parts.read_committed(folder, quarantine=False)
    committed = parts.read_committed(folder)
    assert [q.name for q in committed.quarantined] == [bad.name]
    assert (tmp_path / "emb" / "_quarantine" / bad.name).read_bytes() == data[: len(data) // 2]
    assert committed.rows.column("image_id").to_pylist() == ["i00000", "i00001", "i00002"]
    parts.check_readable(folder)  # readers skip `_quarantine/`
    assert _ids(folder) == ["i00000", "i00001", "i00002"]


def test_sweep_removes_only_temporary_files_of_interrupted_writes(tmp_path):
    out = location(tmp_path / "out")
    (tmp_path / "out" / "embeddings").mkdir(parents=True)
    left = [tmp_path / "out" / "embeddings" / ".part-a-000000.parquet.0badc0de.tmp",
            tmp_path / "out" / ".run.json.12345678.tmp"]
    kept = [tmp_path / "out" / ".hidden", tmp_path / "out" / "embeddings" / "part-a-000000.parquet",
            tmp_path / "out" / "notes.tmp"]
    for path in left + kept:
        path.write_bytes(b"x")
    assert sorted(p.name for p in out.sweep_temporaries()) == sorted(p.name for p in left)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in left)


def test_a_rewrite_stopped_midway_does_not_look_finished(tmp_path):
    folder = location(tmp_path / "predictions")
    for k in range(3):
        parts.write_part(folder / f"part-{k}.parquet", pa.table({"image_id": [f"{k}a", f"{k}b"], "pred": ["real"] * 2}))
    parts.mark_complete(folder, 6)
    assert parts.rewrite_parts(folder, lambda rows: rows.set_column(1, "pred", pa.array(["fake"] * 2))) == 6
    assert parts.is_complete(folder) and set(parts.read_folder(folder).column("pred").to_pylist()) == {"fake"}

    seen = []

    def fails_on_the_second(rows):
        seen.append(rows)
        if len(seen) == 2:
            raise OSError("disk full")
        return rows.set_column(1, "pred", pa.array(["real"] * 2))

    with pytest.raises(OSError):
        parts.rewrite_parts(folder, fails_on_the_second)
    assert not parts.is_complete(folder)
    assert sorted(parts.read_folder(folder).column("pred").to_pylist()) == ["fake"] * 4 + ["real"] * 2
