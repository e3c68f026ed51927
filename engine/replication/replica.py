"""The recovery side: a replica store per protected item.

    storage/<store>/<vm>/<disk>.vhd          the replica base (fixed VHD, sparse)
    storage/<store>/<vm>/points/p<N>/<i>.hrl.lz4   a recovery point: the frozen log of disk i
                                                   (.enc when encrypted at rest)

A disk at a point = the base + every retained point's log up to it, applied in order. Expired
points are merged: the oldest into the base, a middle one into the next retained point.

Replaying a log is idempotent when the logs after it are replayed too, in order (each record is
an absolute write): a fold interrupted between its file work and its commit leaves a store that
still builds every claimed point exactly.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from ..disks import FOOTER, check_footer, data_extents, vhd_footer
from ..errors import Damaged
from . import changelog


@contextmanager
def store_lock(store: Path, exclusive: bool):
    """Folding expired points rewrites the base and frames in place: it holds this lock
    exclusively, and builders (verify, export) hold it shared, so no build reads a half fold.
    A builder on a read-only lab (where nothing folds) reads without it."""
    if not exclusive and not os.access(store, os.W_OK):
        try:
            f = open(store / ".lock", "rb")
        except OSError:
            yield
            return
        with f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            yield
        return
    store.mkdir(parents=True, exist_ok=True)
    with open(store / ".lock", "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


def frame_name(disk_index: int, encrypted: bool) -> str:
    return f"{disk_index}.hrl.lz4" + (".enc" if encrypted else "")


def frame_path(point_dir: Path, disk_index: int) -> Path | None:
    for enc in (False, True):
        p = point_dir / frame_name(disk_index, enc)
        if p.exists():
            return p
    return None


def create_base(path: Path, size: int, created: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(size)
        f.write(vhd_footer(size, created, os.urandom(16)))
        f.flush()
        os.fsync(f.fileno())


def apply_blob(disk: Path, blob: bytes, key: bytes | None, label: str, checked: tuple | None = None,
               syncs: changelog.Syncs | None = None) -> int:
    """Unseal a shipped frame and write its records into a disk file, durably: now, or by the
    flush of `syncs` (the slice's, before its commit). `checked`: the frame's records, already
    unsealed and checked (buffer, changelog.checked()), so that it is not unsealed twice."""
    buf, recs = checked if checked is not None else (changelog.unseal(blob, key, label), None)
    n = write_records(disk, buf, recs, sync=syncs is None)
    if syncs is not None:
        syncs.add(disk)
    return n


def write_records(disk: Path, buf: bytes, recs: list | None, sync: bool = False) -> int:
    """Write a buffer's records (`recs`: already checked, or None to check them now) into a disk
    file; fsync it if `sync`. Return the bytes written."""
    fd = os.open(disk, os.O_RDWR)
    try:
        if recs is None:
            n = changelog.apply_records(fd, buf)
        else:
            end = max((offset + length for offset, _, length in recs), default=0)
            if end > os.fstat(fd).st_size - FOOTER:  # the file is not the disk it should be
                raise Damaged(f"{disk}: its records run to byte {end:,}, past the end of the disk file", _RESYNC,
                              file=str(disk))
            n = changelog.write_checked(fd, buf, recs)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return n


def seed_base(seed: Path | None, base: Path, size: int, created: int) -> None:
    """A replica base seeded from the disk on the other side (a reprotect: a resync then sends
    only what differs), durable before the row that claims it commits; empty without that disk."""
    if seed is None or not seed.exists():
        create_base(base, size, created)
        return
    sparse_copy(seed, base, size)
    with open(base, "rb+") as f:
        os.fsync(f.fileno())


def sparse_copy(src: Path, dst: Path, size: int) -> None:
    """Copy a disk file's allocated extents (and its footer) to a new sparse file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as s, open(dst, "wb") as d:
        d.truncate(size)
        for start, length in data_extents(s.fileno(), size):
            pos = start
            while pos < start + length:
                n = min(8 << 20, start + length - pos)
                os.pwrite(d.fileno(), os.pread(s.fileno(), n, pos), pos)
                pos += n
        d.seek(size)
        s.seek(size)
        d.write(s.read(FOOTER))


def check_base(base: Path, size: int, label: str) -> None:
    """Raise Damaged when a replica base is missing, of the wrong length or without its footer."""
    try:
        length = base.stat().st_size
    except OSError:
        raise Damaged(f"{base}: the replica base of {label} is missing", _RESYNC, file=str(base)) from None
    problem = check_footer(base, size) if length == size + FOOTER else f"{length:,} bytes long, not {size + FOOTER:,}"
    if problem:
        raise Damaged(f"{base}: the replica base of {label} is damaged ({problem})", _RESYNC, file=str(base))


_RESYNC = "the replica needs a resynchronization (or disable and re-enable protection)"


def build_disk(base: Path, point_dirs: list[Path], disk_index: int, out: Path, size: int,
               key: bytes | None, label: str) -> None:
    """The disk as it was at the last of `point_dirs` (all retained points up to it, in order).
    Damage in the base or a point's frame raises Damaged naming the file."""
    check_base(base, size, label)
    sparse_copy(base, out, size)
    fd = os.open(out, os.O_RDWR)
    try:
        for d in point_dirs:
            p = frame_path(d, disk_index)
            if p is None:  # every point holds a frame per disk (an empty log too)
                raise Damaged(f"the replica is in an invalid state: recovery point data {d.name} of {label} "
                              "is missing", "disable and re-enable protection to rebuild the replica", file=str(d))
            try:
                changelog.apply_records(fd, changelog.unseal(p.read_bytes(), key, label))
            except Damaged as e:
                raise Damaged(f"{p}: {e.message}", _RESYNC, file=str(p)) from None
        os.fsync(fd)
    finally:
        os.close(fd)


def merge_into_next(olders: list[Path], newer: Path, disk_count: int, key: bytes | None, labels: list[str]) -> None:
    """Fold expired points (oldest first) into the next retained one: newer := their logs + its
    own, in time order. The expired folders stay: the caller removes them once the fold is committed."""
    for i in range(disk_count):
        parts = [f for f in (frame_path(d, i) for d in [*olders, newer]) if f is not None]
        bufs = []
        for f in parts:  # every part checked before anything is written
            try:
                bufs.append(changelog.unseal(f.read_bytes(), key, labels[i]))
                changelog.check(bufs[-1], None)
            except Damaged as e:
                raise Damaged(f"{f}: {e.message}", _RESYNC, file=str(f)) from None
        changelog.write_durable(newer / frame_name(i, key is not None), changelog.seal(b"".join(bufs), key, labels[i]))


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file()) if path.exists() else 0
