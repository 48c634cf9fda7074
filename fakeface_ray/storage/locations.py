"""Output locations on any pyarrow filesystem: local folders, `file://`, `s3://`, `gs://`.

Every file is written under a hidden temporary name and then moved into place, so a reader never
sees half a file (on object stores the move is a copy, still of a complete object).
"""

from __future__ import annotations

import fnmatch
import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pyarrow.fs as pafs

from ..errors import UserError


class LocationError(UserError):
    """A path or URI that names no filesystem pyarrow can open."""


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it, for a local path or a URI."""
    if "://" in location:
        try:
            return pafs.FileSystem.from_uri(location)
        except (ValueError, OSError) as exc:
            raise LocationError(f"cannot open {location}: {exc}") from None
    return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def to_uri(location: str, path: str) -> str:
    """The URI that reaches `path` on the filesystem `location` lives on.

    Query options of the location (`?endpoint_override=host:9000&scheme=http` for an
    S3-compatible store) are kept, so every file URI opens the same filesystem.
    """
    if "://" in location:
        scheme = location.split("://", 1)[0]
        query = location.split("?", 1)[1] if "?" in location else ""
        # Percent-encoded: a space or `#` in a file name is a syntax error in a URI; pyarrow decodes it.
        return f"{scheme}://{quote(path, safe='/')}" + (f"?{query}" if query else "")
    return path


def read_bytes(uri: str) -> bytes:
    """The file's bytes from a local path or URI."""
    fs, path = resolve(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)
    with fs.open_input_stream(path) as stream:
        return stream.readall()


@dataclass(frozen=True)
class Location:
    """A file or folder: a pyarrow filesystem and a path inside it, plus the text the user gave."""

    fs: pafs.FileSystem
    path: str
    display: str

    def __str__(self) -> str:
        return self.display

    def __truediv__(self, name: str) -> Location:
        base, sep, query = self.display.partition("?")  # URI options stay at the end
        return Location(self.fs, posixpath.join(self.path, name), posixpath.join(base, name) + sep + query)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def exists(self) -> bool:
        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.fs.get_file_info(self.path).type == pafs.FileType.Directory

    def mkdir(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def delete(self) -> None:
        """Remove a file or a whole folder; nothing if absent."""
        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path)
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(self.path)

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.readall()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> None:
        """Write under a hidden temporary name in the same folder, then move into place."""
        parent = posixpath.dirname(self.path)
        self.fs.create_dir(parent, recursive=True)
        staging = posixpath.join(parent, f".{self.name}.{uuid.uuid4().hex[:8]}.tmp")
        with self.fs.open_output_stream(staging) as stream:
            stream.write(data)
        self.fs.move(staging, self.path)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def glob(self, pattern: str) -> list[Location]:
        """Direct children whose name matches `pattern`, sorted by name."""
        if not self.is_dir():
            return []
        entries = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=False))
        names = sorted(posixpath.basename(e.path) for e in entries)
        return [self / n for n in names if fnmatch.fnmatch(n, pattern)]


def location(where: str | Path | Location) -> Location:
    """A Location for a local path or a filesystem URI (an existing Location is returned as is)."""
    if isinstance(where, Location):
        return where
    fs, path = resolve(str(where))
    return Location(fs, path, str(where))
