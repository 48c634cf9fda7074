"""Parquet parts committed one by one (temporary name, then rename), so a run can resume.

A part that is being written has a name starting with `.` and ending in `.tmp`; readers (pyarrow,
Ray) skip hidden files, so a killed run never leaves a file that looks finished. `_COMPLETE` is
written last, when every input has exactly one row.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

COMPLETE = "_COMPLETE"


class PartWriter:
    """Writes each table as `part-<session>-<n>.parquet` in `folder`, atomically."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.session = uuid.uuid4().hex[:8]
        self.paths: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, table: pa.Table) -> Path | None:
        """Commit one part; empty tables write nothing."""
        if table.num_rows == 0:
            return None
        name = f"part-{self.session}-{len(self.paths):06d}.parquet"
        staging = self.folder / f".{name}.tmp"
        pq.write_table(table, staging)
        final = self.folder / name
        staging.rename(final)
        self.paths.append(final)
        return final


def committed_parts(folder: Path) -> list[Path]:
    """Finished part files, by name."""
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def committed_rows(folder: Path) -> dict[str, str]:
    """image_id -> sha256 of every row already committed in `folder`."""
    parts = committed_parts(folder)
    if not parts:
        return {}
    table = pads.dataset([str(p) for p in parts], format="parquet").to_table(columns=["image_id", "sha256"])
    return {i: (s or "") for i, s in zip(table.column("image_id").to_pylist(), table.column("sha256").to_pylist())}


def drop_rows(folder: Path, image_ids: set[str], keep_parts: set[Path]) -> int:
    """Remove rows of `image_ids` from committed parts not in `keep_parts`; returns rows dropped.

    Only parts that hold such rows are rewritten, each atomically.
    """
    dropped = 0
    if not image_ids:
        return 0
    wanted = pa.array(sorted(image_ids), type=pa.string())
    for part in committed_parts(folder):
        if part in keep_parts:
            continue
        table = pq.read_table(part)
        stale = pc.is_in(table.column("image_id"), value_set=wanted)
        n_stale = pc.sum(stale).as_py() or 0
        if not n_stale:
            continue
        kept = table.filter(pc.invert(stale))
        dropped += n_stale
        if kept.num_rows == 0:
            part.unlink()
            continue
        staging = folder / f".{part.name}.tmp"
        pq.write_table(kept, staging)
        staging.replace(part)
    return dropped


def mark_complete(folder: Path, n_rows: int) -> None:
    """Write the marker that says every input has its row."""
    staging = folder / f".{COMPLETE}.tmp"
    staging.write_text(json.dumps({"rows": n_rows}))
    staging.replace(folder / COMPLETE)


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE).is_file()
