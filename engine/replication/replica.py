"""The recovery side: a replica store per protected item.

    storage/<store>/<vm>/<disk>.vhd          the replica base (fixed VHD, sparse)
    storage/<store>/<vm>/points/p<N>/<i>.hrl.lz4   a recovery point: the frozen log of disk i
                                                   (.enc when encrypted at rest)

A disk at a point = the base + every retained point's log up to it, applied in order. Expired
points are merged: the oldest into the base, a middle one into the next retained point.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..disks import FOOTER, data_extents, vhd_footer
from . import changelog


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


def apply_blob(disk: Path, blob: bytes, key: bytes | None, label: str) -> int:
    """Unseal a shipped frame and write its records into a disk file (durably)."""
    buf = changelog.unseal(blob, key, label)
    fd = os.open(disk, os.O_RDWR)
    try:
        n = changelog.apply_records(fd, buf)
        os.fsync(fd)
    finally:
        os.close(fd)
    return n


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


def build_disk(base: Path, point_dirs: list[Path], disk_index: int, out: Path, size: int,
               key: bytes | None, label: str) -> None:
    """The disk as it was at the last of `point_dirs` (all retained points up to it, in order)."""
    sparse_copy(base, out, size)
    fd = os.open(out, os.O_RDWR)
    try:
        for d in point_dirs:
            p = frame_path(d, disk_index)
            if p is not None:
                changelog.apply_records(fd, changelog.unseal(p.read_bytes(), key, label))
        os.fsync(fd)
    finally:
        os.close(fd)


def merge_into_next(older: Path, newer: Path, disk_count: int, key: bytes | None, labels: list[str]) -> None:
    """Fold an expired middle point into the next retained one: newer := older's log + newer's."""
    for i in range(disk_count):
        a, b = frame_path(older, i), frame_path(newer, i)
        if a is None:
            continue
        buf = changelog.unseal(a.read_bytes(), key, labels[i])
        if b is not None:
            buf += changelog.unseal(b.read_bytes(), key, labels[i])
        target = newer / frame_name(i, key is not None)
        changelog.write_durable(target, changelog.seal(buf, key, labels[i]))
        if b is not None and b != target:
            b.unlink()
    shutil.rmtree(older)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file()) if path.exists() else 0
