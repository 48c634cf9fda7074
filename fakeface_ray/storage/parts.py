"""Parquet parts committed one by one (temporary name, then move), so a run can resume.

A part being written has a hidden temporary name; readers (pyarrow, Ray) skip hidden files, so a
killed run never leaves a file that looks finished. `_COMPLETE` is written last, when every input
has exactly one row.
"""

from __future__ import annotations

import io
import json
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from .locations import Location

COMPLETE = "_COMPLETE"


class PartWriter:
    """Writes each table as `part-<session>-<n>.parquet` in `folder`, atomically."""

    def __init__(self, folder: Location):
        self.folder = folder
        self.session = uuid.uuid4().hex[:8]
        self.parts: list[Location] = []
        folder.mkdir()

    def write(self, table: pa.Table) -> Location | None:
        """Commit one part; empty tables write nothing."""
        if table.num_rows == 0:
            return None
        part = self.folder / f"part-{self.session}-{len(self.parts):06d}.parquet"
        part.write_bytes(_parquet_bytes(table))
        self.parts.append(part)
        return part


def committed_parts(folder: Location) -> list[Location]:
    """Finished part files, by name."""
    return folder.glob("part-*.parquet")


def read_parts(parts: list[Location], columns: list[str] | None = None) -> pa.Table:
    """The rows of some parts of one folder as one table."""
    if not parts:
        raise ValueError("no parts to read")
    return pads.dataset([p.path for p in parts], filesystem=parts[0].fs, format="parquet").to_table(columns=columns)


def read_folder(folder: Location, columns: list[str] | None = None) -> pa.Table:
    """Every committed row in `folder` (hidden and `_` files are skipped)."""
    return pads.dataset(folder.path, filesystem=folder.fs, format="parquet").to_table(columns=columns)


def committed_rows(folder: Location) -> dict[str, str]:
    """image_id -> sha256 of every row already committed in `folder`."""
    parts = committed_parts(folder)
    if not parts:
        return {}
    table = read_parts(parts, ["image_id", "sha256"])
    return {i: (s or "") for i, s in zip(table.column("image_id").to_pylist(), table.column("sha256").to_pylist())}


def drop_rows(folder: Location, image_ids: set[str], keep_parts: set[str]) -> int:
    """Remove rows of `image_ids` from committed parts whose path is not in `keep_parts`.

    Only parts that hold such rows are rewritten, each atomically; returns the rows dropped.
    """
    if not image_ids:
        return 0
    dropped = 0
    wanted = pa.array(sorted(image_ids), type=pa.string())
    for part in committed_parts(folder):
        if part.path in keep_parts:
            continue
        table = pq.read_table(part.path, filesystem=part.fs)
        stale = pc.is_in(table.column("image_id"), value_set=wanted)
        n_stale = pc.sum(stale).as_py() or 0
        if not n_stale:
            continue
        dropped += n_stale
        kept = table.filter(pc.invert(stale))
        if kept.num_rows == 0:
            part.delete()
        else:
            part.write_bytes(_parquet_bytes(kept))
    return dropped


def mark_complete(folder: Location, n_rows: int) -> None:
    """Write the marker that says every input has its row."""
    (folder / COMPLETE).write_text(json.dumps({"rows": n_rows}))


def is_complete(folder: Location) -> bool:
    return (folder / COMPLETE).exists()


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
