"""List input images and their labels from a local folder or a pyarrow filesystem URI."""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from ..errors import UserError
from ..storage.locations import READ_ERRORS, Location, read_bytes, resolve, to_uri
from ..storage.schema import CLASSES, FAKE, REAL

DEFAULT_CLASS_MAP = {"training_real": REAL, "real": REAL, "training_fake": FAKE, "fake": FAKE}


class SourceError(UserError):
    """The input location cannot be listed or holds no images."""


@dataclass(frozen=True)
class Source:
    image_id: str
    uri: str
    label: str | None
    file_size: int | None = None
    file_mtime_ns: int | None = None


LISTING_SCHEMA = pa.schema([("image_id", pa.string()), ("uri", pa.string()), ("label", pa.string()),
                            ("file_size", pa.int64()), ("file_mtime_ns", pa.int64())])
CHUNK = 65_536  # entries gathered as Python objects before they become Arrow columns


@dataclass(frozen=True)
class Listing:
    """The inputs, one row per file sorted by image_id, as Arrow columns (LISTING_SCHEMA).

    Columns, not objects: about 100 bytes per input plus the path text, so a million-file corpus
    lists into tens of megabytes. Iterating yields `Source`s, for small corpora and tests.
    """

    table: pa.Table

    def __len__(self) -> int:
        return self.table.num_rows

    def __iter__(self) -> Iterator[Source]:
        for batch in self.table.to_batches():
            for row in batch.to_pylist():
                yield Source(**row)

    def __getitem__(self, index: int) -> Source:
        return Source(**self.table.slice(index, 1).to_pylist()[0])

    def labels(self) -> list[str | None]:
        return self.table.column("label").to_pylist()


def label_for(image_id: str, class_map: dict[str, str] | None = None) -> str | None:
    """Label from the nearest parent folder that names a class; None when unlabelled.

    Args:
        image_id: path relative to the input root, with `/` separators.
        class_map: folder name -> `real`/`fake`; entries override the defaults.
    """
    return _labeller(class_map)(image_id)


def _labeller(class_map: dict[str, str] | None) -> Callable[[str], str | None]:
    mapping = {**DEFAULT_CLASS_MAP, **{k.lower(): v for k, v in (class_map or {}).items()}}

    def label(image_id: str) -> str | None:
        for folder in reversed(posixpath.dirname(image_id).split("/")):
            found = mapping.get(folder.lower())
            if found is not None:
                if found not in CLASSES:
                    raise SourceError(f"class_map maps '{folder}' to '{found}'; labels are {CLASSES}")
                return found
        return None

    return label


def list_sources(location: str | Location, extensions: tuple[str, ...], class_map: dict[str, str] | None = None
                 ) -> Listing:
    """Every image file under `location` with its size and mtime, sorted by image_id.

    Hidden files and folders are skipped. The walk goes one folder at a time (local folders through
    `os.scandir`, which streams), so only one folder's entries are ever held as Python objects.
    Listing opens no file.

    Args:
        location: a path or URI, or a Location (its filesystem lists; URIs are made from its text).
    """
    if isinstance(location, Location):
        fs, root, location = location.fs, location.path, location.display
    else:
        fs, root = resolve(location)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise SourceError(f"input not found: {location}")
    if info.type != pafs.FileType.Directory:
        raise SourceError(f"input is not a folder: {location}")
    wanted = {e.lower() for e in extensions}
    label = _labeller(class_map)
    entries = _walk_local(root) if isinstance(fs, pafs.LocalFileSystem) else _walk(fs, root)
    chunks, rows = [], []
    for path, size, mtime_ns in entries:
        rel = posixpath.relpath(path, root) if root != "/" else path.lstrip("/")
        if posixpath.splitext(rel)[1].lower() not in wanted:
            continue
        rows.append((rel, to_uri(location, path), label(rel), size, mtime_ns))
        if len(rows) == CHUNK:
            chunks.append(_columns(rows))
            rows = []
    chunks.append(_columns(rows))
    table = pa.Table.from_batches(chunks, schema=LISTING_SCHEMA)
    if table.num_rows == 0:
        raise SourceError(f"no images ({', '.join(sorted(wanted))}) under {location}")
    return Listing(table.take(pc.sort_indices(table, [("image_id", "ascending")])).combine_chunks())


def _columns(rows: list[tuple]) -> pa.RecordBatch:
    columns = list(zip(*rows)) if rows else [[] for _ in LISTING_SCHEMA]
    return pa.RecordBatch.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, LISTING_SCHEMA)],
                                      schema=LISTING_SCHEMA)


def _walk_local(root: str) -> Iterator[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every file under `root`, hidden entries skipped, symlinks followed.

    A link to a folder the path is already inside (a cycle) is not entered: it would list forever.
    """
    folders = [(root, frozenset([_folder_key(root)]))]
    while folders:
        folder, inside = folders.pop()
        with os.scandir(folder) as scan:
            for entry in scan:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    key = _folder_key(entry.path)
                    if key not in inside:
                        folders.append((entry.path, inside | {key}))
                elif entry.is_file():
                    stat = entry.stat()
                    yield entry.path, stat.st_size, stat.st_mtime_ns


def _folder_key(path: str) -> tuple[int, int]:
    stat = os.stat(path)  # follows links: a link and its target are one folder
    return stat.st_dev, stat.st_ino


def _walk(fs: pafs.FileSystem, root: str) -> Iterator[tuple[str, int, int]]:
    """The same on any pyarrow filesystem, one folder listing at a time."""
    folders = [root]
    while folders:
        for entry in fs.get_file_info(pafs.FileSelector(folders.pop(), recursive=False)):
            if entry.base_name.startswith("."):
                continue
            if entry.type == pafs.FileType.Directory:
                folders.append(entry.path)
            elif entry.type == pafs.FileType.File:
                mtime = entry.mtime_ns
                yield entry.path, entry.size, -1 if mtime is None else mtime


def read_files(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Ray Data stage: add `bytes`, `sha256` and `read_error` for each row's `uri`.

    A file that vanished or cannot be read becomes a row with `read_error`, never an exception.
    Empty strings stand for "none": Ray turns all-None object columns into NaN between stages.
    Rows whose bytes hash to their `done_sha256` (`--verify`: already written by an earlier run
    from the same bytes) are dropped.
    """
    uris = batch["uri"]
    data = np.empty(len(uris), dtype=object)
    digests = np.empty(len(uris), dtype=object)
    errors = np.empty(len(uris), dtype=object)
    for i, uri in enumerate(uris):
        try:
            blob = read_bytes(str(uri))
        except READ_ERRORS as exc:
            data[i], digests[i], errors[i] = b"", "", f"cannot read file: {exc}"
            continue
        data[i], digests[i], errors[i] = blob, hashlib.sha256(blob).hexdigest(), ""
    out = {**batch, "bytes": data, "sha256": digests, "read_error": errors}
    previous = out.pop("done_sha256", None)
    if previous is None:
        return out
    todo = np.array([not p or p != d for p, d in zip(previous, digests)], dtype=bool)
    return {k: v[todo] for k, v in out.items()}
