"""Output locations on any pyarrow filesystem: local folders, `file://`, `s3://`, `gs://`.

Every file is written under a hidden temporary name and then moved into place, so a reader never
sees half a file (on object stores the move is a copy, still of a complete object). On a local
filesystem the file is fsynced before the rename and its folder after it, so a power loss leaves
either the old file or the whole new one.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fnmatch
import os
import posixpath
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import SplitResult, quote, unquote, urlsplit

import pyarrow.fs as pafs

from ..errors import RunError, UserError

# `.<name>.<8 hex>.tmp`: what `Location.staged` writes before the move; nothing else matches.
TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


class LocationError(UserError):
    """A path or URI that names no filesystem pyarrow can open."""


# What reading a listed file can raise once it vanished, changed type or its URI no longer opens:
# a stage turns these into an error row, never a failed batch.
READ_ERRORS = (OSError, ValueError, LocationError)


class WriteError(RunError):
    """The output could not be written: no space, read-only, permission denied, a refusing object store."""

    def __init__(self, where: str, cause: str, remedy: str, then: str = "rerun with --resume"):
        self.where, self.cause, self.remedy = where, cause, remedy
        super().__init__(f"cannot write {where}: {cause}; {remedy}, then {then}")

    @classmethod
    def from_os(cls, where: str, exc: OSError) -> WriteError:
        return cls(where, _cause(exc), REMEDIES.get(exc.errno or 0, "fix that"))

    def then(self, step: str) -> WriteError:
        """The same error with another next step (for commands that have no --resume)."""
        return WriteError(self.where, self.cause, self.remedy, step)


REMEDIES = {errno.ENOSPC: "free space", errno.EDQUOT: "free space", errno.EROFS: "make it writable",
            errno.EACCES: "make it writable", errno.EPERM: "make it writable"}


def _cause(exc: OSError) -> str:
    """The reason, on one line: the errno's text, else the last detail pyarrow or the object store gave."""
    if exc.errno:
        return os.strerror(exc.errno)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rsplit("Detail: ", 1)[-1]


# One filesystem per scheme, authority and options, made once per process: building one per file
# (an S3 client, its connection, and the bucket's region looked up when the URI names none) would
# cost every image read a round trip. Value: the filesystem, and whether its paths start with the
# authority (s3://bucket/key -> bucket/key; file:///a -> /a).
_FILESYSTEMS: dict[tuple[str, str, str], tuple[pafs.FileSystem, bool]] = {}
# Dropped before pyarrow finalises S3 at exit (atexit runs the last registered first): a client
# that outlives it can hang or abort the exit.
atexit.register(_FILESYSTEMS.clear)
# The schemes whose paths were checked against pyarrow's (tests/test_storage.py); others, such as
# hdfs (which keeps a trailing slash), always go to pyarrow.
CACHED_SCHEMES = ("s3", "file")
# A URI whose path is derived here: RFC 3986 characters only (no brackets, no fragment), every % an
# escape. Anything else goes to pyarrow, which refuses it or reads it its own way.
_URI_CHARS = r"[A-Za-z0-9\-._~:/?@!$&'()*+,;=]*"
_PLAIN_URI = re.compile(f"({'|'.join(CACHED_SCHEMES)})://{_URI_CHARS}(%[0-9A-Fa-f]{{2}}{_URI_CHARS})*")


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it, for a local path or a URI.

    An s3:// or file:// URI's filesystem is made by pyarrow the first time its bucket and options
    are seen, and reused after that when pyarrow's path for that first URI is the one derived
    from it here; any other URI is handed to pyarrow every time.
    """
    if "://" not in location:
        return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())
    parts = _cacheable(location)
    known = _FILESYSTEMS.get((parts.scheme, parts.netloc, parts.query)) if parts else None
    if known is not None:
        return known[0], _uri_path(parts, known[1])
    try:
        fs, path = pafs.FileSystem.from_uri(location)
    except (ValueError, OSError) as exc:
        raise LocationError(f"cannot open {location}: {exc}") from None
    for with_authority in (True, False) if parts else ():
        if _uri_path(parts, with_authority) == path:
            _FILESYSTEMS[(parts.scheme, parts.netloc, parts.query)] = (fs, with_authority)
            break
    return fs, path


def _cacheable(uri: str) -> SplitResult | None:
    """The URI's parts when its path can be derived without pyarrow, else None."""
    if not _PLAIN_URI.fullmatch(uri):
        return None
    parts = urlsplit(uri)
    rooted = parts.path.startswith("/") and not parts.path.startswith("//")
    if not (rooted or (parts.path == "" and parts.netloc)):
        return None
    try:
        unquote(parts.path, errors="strict")
    except UnicodeDecodeError:
        return None
    return parts


def _uri_path(parts: SplitResult, with_authority: bool) -> str:
    path = (parts.netloc if with_authority else "") + unquote(parts.path)
    return path.rstrip("/") or "/"


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

    @property
    def is_local(self) -> bool:
        """On this machine's filesystem, where fsync and exclusive create exist."""
        return isinstance(self.fs, pafs.LocalFileSystem)

    def mkdir(self) -> None:
        with self._writing():
            self.fs.create_dir(self.path, recursive=True)

    def delete(self) -> None:
        """Remove a file or a whole folder; nothing if absent."""
        with self._writing():
            info = self.fs.get_file_info(self.path)
            if info.type == pafs.FileType.Directory:
                self.fs.delete_dir(self.path)
            elif info.type == pafs.FileType.File:
                self.fs.delete_file(self.path)

    def move_to(self, target: Location) -> None:
        """Rename this file to `target` (same filesystem), creating its folder."""
        with self._writing():
            self.fs.create_dir(posixpath.dirname(target.path), recursive=True)
            self.fs.move(self.path, target.path)

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.readall()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes, durable: bool = True) -> None:
        """Write under a hidden temporary name in the same folder, then move into place."""
        with self.staged(durable) as stream:
            stream.write(data)

    @contextlib.contextmanager
    def staged(self, durable: bool = True) -> Iterator[BinaryIO]:
        """A stream to a hidden temporary file that becomes this file when the block ends.

        Local files are fsynced before the rename and the folder after it (`durable`). On any
        failure the temporary file is removed, and an OSError becomes a one-line WriteError.
        """
        parent = posixpath.dirname(self.path)
        staging = posixpath.join(parent, f".{self.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.fs.create_dir(parent, recursive=True)
            if self.is_local:
                with open(staging, "xb") as stream:
                    yield stream
                    stream.flush()
                    if durable:
                        os.fsync(stream.fileno())
                os.replace(staging, self.path)
                if durable:
                    _fsync_folder(parent)
            else:
                with self.fs.open_output_stream(staging) as stream:
                    yield stream
                self.fs.move(staging, self.path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                self.fs.delete_file(staging)
            if isinstance(exc, OSError):
                raise WriteError.from_os(self.display, exc) from None
            raise

    def create_exclusive(self, data: bytes) -> bool:
        """Create this local file with `data` unless it exists (O_EXCL: atomic); True if created."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise WriteError.from_os(self.display, exc) from None
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            _fsync_folder(posixpath.dirname(self.path))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            raise WriteError.from_os(self.display, exc) from None
        return True

    def sweep_temporaries(self) -> list[Location]:
        """Remove the temporary files interrupted writes left anywhere under this folder; returns them."""
        if not self.is_dir():
            return []
        selector = pafs.FileSelector(self.path, recursive=True)
        found = [self / posixpath.relpath(e.path, self.path) for e in self.fs.get_file_info(selector)
                 if e.type == pafs.FileType.File and TEMPORARY.match(posixpath.basename(e.path))]
        for temporary in found:
            temporary.delete()
        return found

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise WriteError.from_os(self.display, exc) from None

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def glob(self, pattern: str) -> list[Location]:
        """Direct children whose name matches `pattern`, sorted by name."""
        if not self.is_dir():
            return []
        entries = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=False))
        names = sorted(posixpath.basename(e.path) for e in entries)
        return [self / n for n in names if fnmatch.fnmatch(n, pattern)]


def _fsync_folder(path: str) -> None:
    """Make a rename in `path` durable (the folder's entry, not only the file's bytes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def location(where: str | Path | Location) -> Location:
    """A Location for a local path or a filesystem URI (an existing Location is returned as is)."""
    if isinstance(where, Location):
        return where
    fs, path = resolve(str(where))
    return Location(fs, path, str(where))
