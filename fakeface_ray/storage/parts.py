"""Parquet parts committed atomically (temporary name, then move), sized for readers, so a run can resume.

A part being written has a hidden temporary name; readers (pyarrow, Ray, Spark, DuckDB) skip hidden
and `_` files, so a killed run never leaves a file that looks finished. `_COMPLETE` is written last,
when every input has exactly one row.

Parts are named `part-<session>-<seq>.parquet`. The writer buffers rows and commits a part when it
holds `max_rows` rows or `max_bytes` bytes. So that a crash loses at most `commit_interval_s` of
work, rows buffered that long are committed as a checkpoint part; the next full part then holds
them again and is named `part-<session>-<first>-<seq>.parquet`, for the checkpoints `first..seq-1`
it replaces, which are deleted right after it. A crash between the two leaves rows twice; `settle`
(run before a folder is read for a resume) deletes the checkpoints a full part already holds.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import UserError
from .locations import Location

COMPLETE = "_COMPLETE"
QUARANTINE = "_quarantine"
PART = re.compile(r"^part-(?P<session>[0-9a-f]+)-(?P<first>\d{6})(?:-(?P<last>\d{6}))?\.parquet$")
COMPACT_TABLES = 64  # buffered tables copied into one (see PartWriter._compact)
# What a resume reads of the committed rows: who, and the listing each row was made from.
RESUME_COLUMNS = ("image_id", "sha256", "file_size", "file_mtime_ns")


class DamagedPartsError(UserError):
    """A folder holds parts that cannot be read (cut short by a crash or a full disk)."""


class PartWriter:
    """Commits rows as `part-<session>-<seq>.parquet` files in `folder`, each atomically.

    Thread-safe: the pipeline writes from its drain thread and calls `commit_if_due` from the main one.

    Args:
        max_rows, max_bytes: a part is committed once its rows reach either (Arrow bytes in memory).
        commit_interval_s: rows buffered this long are committed as a checkpoint part.
        row_group_rows: Parquet row group size inside a part.
        durable: fsync each local part and its folder (see `Location.staged`).
        clock: seconds, monotonic; tests pass a fake one.
    """

    def __init__(self, folder: Location, max_rows: int = 50_000, max_bytes: int = 128 << 20,
                 commit_interval_s: float = 60.0, row_group_rows: int = 50_000, durable: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.folder = folder
        self.session = uuid.uuid4().hex[:8]
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self.commit_interval_s = commit_interval_s
        self.row_group_rows = row_group_rows
        self.durable = durable
        self.clock = clock
        self.parts: list[Location] = []  # committed parts of this session that hold rows now
        self.rows_committed = 0
        self._lock = threading.Lock()
        self._pending: list[pa.Table] = []  # every row since the last full part
        self._pending_rows = self._pending_bytes = 0
        self._checkpointed = 0  # how many of `_pending` are in checkpoint parts already
        self._compacted = 0  # `_pending[:_compacted]` are compacted tables
        self._checkpoints: list[tuple[int, Location, int]] = []  # seq, part, rows
        self._seq = 0
        self._last_commit = clock()
        self._closed = False
        folder.mkdir()

    def write(self, table: pa.Table) -> None:
        """Buffer rows; commit a part when the buffer is full. Empty tables write nothing."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the part writer is closed")
            if table.num_rows == 0:
                return
            self._pending.append(table)
            self._pending_rows += table.num_rows
            self._pending_bytes += table.nbytes
            if self._pending_rows >= self.max_rows or self._pending_bytes >= self.max_bytes:
                self._roll()
            elif self.clock() - self._last_commit >= self.commit_interval_s:
                self._checkpoint()
            elif len(self._pending) - self._compacted >= COMPACT_TABLES:
                self._compact(self._compacted)

    def commit_if_due(self) -> None:
        """Commit buffered rows as a checkpoint part if they have waited `commit_interval_s`."""
        with self._lock:
            if not self._closed and self.clock() - self._last_commit >= self.commit_interval_s:
                self._checkpoint()

    def close(self) -> None:
        """Commit whatever is buffered; later writes are refused."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._checkpointed < len(self._pending) or len(self._checkpoints) > 1:
                self._roll()

    @property
    def buffered_rows(self) -> int:
        """Rows written to the writer but not yet in any committed part."""
        with self._lock:
            return sum(t.num_rows for t in self._pending[self._checkpointed:])

    def _checkpoint(self) -> None:
        if self._checkpointed == len(self._pending):
            self._last_commit = self.clock()
            return
        tables = self._pending[self._checkpointed:]
        part = self._commit(tables, f"{self._seq:06d}")
        self._checkpoints.append((self._seq, part, sum(t.num_rows for t in tables)))
        self._compact(self._checkpointed)
        self._checkpointed = len(self._pending)
        self._seq += 1

    def _compact(self, start: int) -> None:
        # Rows arrive as one small table per Ray Data block, each with its own buffers: tens of
        # KB of driver memory per block for a few rows. One table holds them at their size.
        self._pending[start:] = [pa.concat_tables(self._pending[start:]).combine_chunks()]
        self._compacted = len(self._pending)

    def _roll(self) -> None:
        first = f"{self._checkpoints[0][0]:06d}-" if self._checkpoints else ""
        self._commit(self._pending, f"{first}{self._seq:06d}")
        self._seq += 1
        for _, checkpoint, rows in self._checkpoints:  # the full part holds their rows now
            checkpoint.delete()
            self.parts.remove(checkpoint)
            self.rows_committed -= rows
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        self._checkpointed, self._compacted, self._checkpoints = 0, 0, []

    def _commit(self, tables: list[pa.Table], seq: str) -> Location:
        table = pa.concat_tables(tables)
        part = self.folder / f"part-{self.session}-{seq}.parquet"
        write_part(part, table, self.row_group_rows, self.durable)
        self.parts.append(part)
        self.rows_committed += table.num_rows
        self._last_commit = self.clock()
        return part


def write_part(part: Location, table: pa.Table, row_group_rows: int = 50_000, durable: bool = True) -> None:
    """Write `table` as one Parquet file, atomically."""
    with part.staged(durable) as stream:
        pq.write_table(table, stream, row_group_size=row_group_rows)


def committed_parts(folder: Location) -> list[Location]:
    """Finished part files, by name."""
    return folder.glob("part-*.parquet")


def settle(folder: Location) -> list[Location]:
    """Delete checkpoint parts that a full part of their session already holds; returns them."""
    names = {p.name: PART.match(p.name) for p in committed_parts(folder)}
    covered = set()
    for match in names.values():
        if match and match["last"]:
            covered |= {(match["session"], seq) for seq in range(int(match["first"]), int(match["last"]))}
    stale = [folder / name for name, match in names.items()
             if match and not match["last"] and (match["session"], int(match["first"])) in covered]
    for part in stale:
        part.delete()
    return stale


@dataclass
class Committed:
    """What a folder holds, read for a resume: one row per committed row, and what was set aside."""

    rows: pa.Table  # RESUME_COLUMNS (null where a part predates a column)
    quarantined: list[Location] = field(default_factory=list)


def read_committed(folder: Location, quarantine: bool = True) -> Committed:
    """The rows of every readable part, after `settle`; unreadable parts move to `_quarantine/`.

    A part is unreadable when its footer or the resume columns cannot be read (cut short by a
    power loss or a full disk). With `quarantine=False` such parts raise DamagedPartsError instead.
    """
    settle(folder)
    tables, moved = [], []
    schema = pa.schema([("image_id", pa.string()), ("sha256", pa.string()), ("file_size", pa.int64()),
                        ("file_mtime_ns", pa.int64())])
    for part in committed_parts(folder):
        try:
            table = _read_resume_columns(part, schema)
        except (pa.ArrowException, OSError) as exc:
            if not quarantine:
                raise DamagedPartsError(f"{part} cannot be read ({_first_line(exc)})") from None
            target = folder / QUARANTINE / part.name
            part.move_to(target)
            moved.append(target)
            continue
        tables.append(table)
    rows = pa.concat_tables(tables) if tables else schema.empty_table()
    return Committed(rows, moved)


@dataclass
class ResumePlan:
    """What a resume does with each listed input, decided from listings alone (no input is read)."""

    todo: pa.Table  # listing rows to process, plus `done_sha256` ("" = redo whatever the bytes)
    vanished: pa.Array  # image_ids with a row but no input any more
    unchanged: int  # inputs skipped: their row was made from the same size and mtime
    duplicated: int  # image_ids with more than one row (a crash mid-resume, a folder two runs wrote)
    redone: pa.Array  # image_ids of `todo` that already have a row: the rows a resume replaces


def plan_resume(listing: pa.Table, committed: pa.Table, verify: bool = False) -> ResumePlan:
    """Which inputs to process again, the way rsync decides: by size and modification time.

    An input whose row records the size and mtime it has now is skipped without being opened; a
    new input, or one whose listing differs, is processed (and its old row replaced afterwards).
    `verify` sends the skipped ones too, with the row's sha256, so that only those whose bytes
    changed are redone. Rows from before the listing was recorded are checked by sha256 the same
    way. Image_ids that have several rows are redone from scratch.

    Args:
        listing: `image_id`, `file_size`, `file_mtime_ns` and the rest of a listing, one row per input.
        committed: RESUME_COLUMNS, one row per committed row.
    """
    ids = committed.column("image_id")
    counts = pc.value_counts(ids)
    doubled = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    # Copies of every row are what a resume's driver holds per input: filter only when needed.
    single = committed.filter(pc.invert(pc.is_in(ids, value_set=doubled))) if len(doubled) else committed
    rows = single.select(list(RESUME_COLUMNS)).rename_columns(
        ["image_id", "row_sha256", "row_size", "row_mtime_ns"])
    joined = listing.join(rows, "image_id", join_type="left outer")
    # A row without sha256 is a read error: always tried again, as before size and mtime were kept.
    readable = pc.is_valid(joined.column("row_sha256"))
    same = pc.fill_null(pc.and_(pc.equal(joined.column("row_size"), joined.column("file_size")),
                                pc.equal(joined.column("row_mtime_ns"), joined.column("file_mtime_ns"))), False)
    skip = pc.and_(pc.and_(readable, same), pa.scalar(not verify))
    unrecorded = pc.or_(pc.is_null(joined.column("row_size")), pc.is_null(joined.column("row_mtime_ns")))
    by_hash = pc.and_(readable, pc.or_(unrecorded, same))
    done = pc.if_else(by_hash, joined.column("row_sha256"), "")
    todo = joined.select(listing.column_names).append_column("done_sha256", done).filter(pc.invert(skip))
    todo = todo.take(pc.sort_indices(todo, [("image_id", "ascending")]))  # the join does not keep order
    vanished = pc.unique(ids.filter(pc.invert(pc.is_in(ids, value_set=listing.column("image_id")))))
    todo_ids = todo.column("image_id").combine_chunks()
    return ResumePlan(todo=todo.combine_chunks(), vanished=vanished,
                      unchanged=int(pc.sum(skip).as_py() or 0), duplicated=len(doubled),
                      redone=todo_ids.filter(pc.is_in(todo_ids, value_set=ids)))


def _read_resume_columns(part: Location, schema: pa.Schema) -> pa.Table:
    with part.fs.open_input_file(part.path) as handle:
        reader = pq.ParquetFile(handle)
        present = [c for c in schema.names if c in reader.schema_arrow.names]
        table = reader.read(columns=present)
    return pa.table({name: table.column(name).cast(schema.field(name).type) if name in present
                     else pa.nulls(table.num_rows, schema.field(name).type) for name in schema.names})


def check_readable(folder: Location) -> None:
    """Refuse a folder with parts whose footer cannot be read; names them and the way out."""
    bad = []
    for part in committed_parts(folder):
        try:
            with part.fs.open_input_file(part.path) as handle:
                pq.read_metadata(handle)
        except (pa.ArrowException, OSError) as exc:
            bad.append(f"{part.name} ({_first_line(exc)})")
    if bad:
        raise DamagedPartsError(f"{folder} holds {len(bad)} unreadable part{'s' * (len(bad) > 1)}: "
                                f"{', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}; run extract with "
                                "--resume on its --out to set them aside and redo their rows")


def read_parts(parts: list[Location], columns: list[str] | None = None) -> pa.Table:
    """The rows of some parts of one folder as one table."""
    if not parts:
        raise ValueError("no parts to read")
    return pads.dataset([p.path for p in parts], filesystem=parts[0].fs, format="parquet").to_table(columns=columns)


def read_folder(folder: Location, columns: list[str] | None = None) -> pa.Table:
    """Every committed row in `folder` (hidden and `_` files and folders are skipped)."""
    return pads.dataset(folder.path, filesystem=folder.fs, format="parquet").to_table(columns=columns)


def drop_rows(folder: Location, image_ids: pa.Array | set[str], keep_parts: set[str],
              row_group_rows: int = 50_000) -> int:
    """Remove rows of `image_ids` from committed parts whose path is not in `keep_parts`.

    Only parts that hold such rows are rewritten, each atomically; returns the rows dropped. Each
    part builds its own lookup of `image_ids`: pass only ids that may have a row there.
    """
    wanted = image_ids if isinstance(image_ids, pa.Array) else pa.array(sorted(image_ids), type=pa.string())
    if len(wanted) == 0:
        return 0
    dropped = 0
    for part in committed_parts(folder):
        if part.path in keep_parts:
            continue
        ids = pq.read_table(part.path, filesystem=part.fs, columns=["image_id"]).column("image_id")
        n_stale = pc.sum(pc.is_in(ids, value_set=wanted)).as_py() or 0
        if not n_stale:
            continue
        table = pq.read_table(part.path, filesystem=part.fs)
        kept = table.filter(pc.invert(pc.is_in(table.column("image_id"), value_set=wanted)))
        dropped += n_stale
        if kept.num_rows == 0:
            part.delete()
        else:
            write_part(part, kept, row_group_rows)
    return dropped


def rewrite_parts(folder: Location, change: Callable[[pa.Table], pa.Table], row_group_rows: int = 50_000) -> int:
    """Replace every committed part with `change(part's rows)`, each atomically; returns the rows.

    The complete marker is taken away first and put back last, so a rewrite stopped midway does
    not look finished.
    """
    clear_complete(folder)
    n_rows = 0
    for part in committed_parts(folder):
        table = change(pq.read_table(part.path, filesystem=part.fs))
        write_part(part, table, row_group_rows)
        n_rows += table.num_rows
    mark_complete(folder, n_rows)
    return n_rows


def mark_complete(folder: Location, n_rows: int) -> None:
    """Write the marker that says every input has its row."""
    (folder / COMPLETE).write_text(json.dumps({"rows": n_rows}))


def clear_complete(folder: Location) -> None:
    """Remove the marker before rows change, so that a run stopped midway does not look finished."""
    (folder / COMPLETE).delete()


def is_complete(folder: Location) -> bool:
    """Whether `folder` holds the marker `mark_complete` writes: every input has its row."""
    return (folder / COMPLETE).exists()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
