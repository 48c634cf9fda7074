"""List input images and their labels from a local folder or a pyarrow filesystem URI."""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

import numpy as np
import pyarrow.fs as pafs

from ..errors import UserError
from ..storage.locations import LocationError, read_bytes, resolve, to_uri
from ..storage.schema import CLASSES, FAKE, REAL

DEFAULT_CLASS_MAP = {"training_real": REAL, "real": REAL, "training_fake": FAKE, "fake": FAKE}


class SourceError(UserError):
    """The input location cannot be listed or holds no images."""


@dataclass(frozen=True)
class Source:
    image_id: str
    uri: str
    label: str | None


def label_for(image_id: str, class_map: dict[str, str] | None = None) -> str | None:
    """Label from the nearest parent folder that names a class; None when unlabelled.

    Args:
        image_id: path relative to the input root, with `/` separators.
        class_map: folder name -> `real`/`fake`; entries override the defaults.
    """
    mapping = {**DEFAULT_CLASS_MAP, **{k.lower(): v for k, v in (class_map or {}).items()}}
    for folder in reversed(posixpath.dirname(image_id).split("/")):
        label = mapping.get(folder.lower())
        if label is not None:
            if label not in CLASSES:
                raise SourceError(f"class_map maps '{folder}' to '{label}'; labels are {CLASSES}")
            return label
    return None


def list_sources(location: str, extensions: tuple[str, ...], class_map: dict[str, str] | None = None
                 ) -> list[Source]:
    """Every image file under `location`, sorted by image_id; hidden files and folders skipped."""
    fs, root = resolve(location)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise SourceError(f"input not found: {location}")
    if info.type != pafs.FileType.Directory:
        raise SourceError(f"input is not a folder: {location}")
    wanted = {e.lower() for e in extensions}
    sources = []
    for entry in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if entry.type != pafs.FileType.File:
            continue
        rel = posixpath.relpath(entry.path, root) if root != "/" else entry.path.lstrip("/")
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if posixpath.splitext(rel)[1].lower() not in wanted:
            continue
        sources.append(Source(rel, to_uri(location, entry.path), label_for(rel, class_map)))
    if not sources:
        raise SourceError(f"no images ({', '.join(sorted(wanted))}) under {location}")
    return sorted(sources, key=lambda s: s.image_id)


def read_files(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Ray Data stage: add `bytes`, `sha256` and `read_error` for each row's `uri`.

    A file that vanished or cannot be read becomes a row with `read_error`, never an exception.
    Empty strings stand for "none": Ray turns all-None object columns into NaN between stages.
    Rows whose bytes hash to their `done_sha256` (already written by an earlier run) are dropped.
    """
    uris = batch["uri"]
    data = np.empty(len(uris), dtype=object)
    digests = np.empty(len(uris), dtype=object)
    errors = np.empty(len(uris), dtype=object)
    for i, uri in enumerate(uris):
        try:
            blob = read_bytes(str(uri))
        except (OSError, ValueError, LocationError) as exc:
            data[i], digests[i], errors[i] = b"", "", f"cannot read file: {exc}"
            continue
        data[i], digests[i], errors[i] = blob, hashlib.sha256(blob).hexdigest(), ""
    out = {**batch, "bytes": data, "sha256": digests, "read_error": errors}
    previous = out.pop("done_sha256", None)
    if previous is None:
        return out
    todo = np.array([not p or p != d for p, d in zip(previous, digests)], dtype=bool)
    return {k: v[todo] for k, v in out.items()}
