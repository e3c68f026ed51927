"""Resynchronization's bytes: compare a source disk with the replica's disk by checksums, in
two levels, and keep only the 4 KiB blocks that differ, as change-log records.

Level 1: fixed 1 MiB chunks, an xxh3-128 on each side; a chunk whose checksums agree costs 16
bytes on the wire. Level 2, only for a chunk that differs: the recovery side's xxh3-64 of each
of its 4 KiB blocks (8 bytes a block) goes to the source, which sends the blocks whose checksum
differs. So a scattered change sends its 4 KiB blocks, not whole chunks (a 1 MiB chunk per 4 KiB
write would send 256 times too much), and an unchanged disk sends 16 bytes a MiB of its data.

Both sides are sparse files: a chunk in a hole is all zeros, whose checksum is known without
reading it. The recovery side's holes travel as its map (16 bytes, an offset and a length, a run
of chunks in a hole), not as checksums: the source compares such a chunk with zeros itself and
sends its blocks that are not zeros (a failback's replica of 127 GB of holes costs a few bytes).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

import xxhash

from . import changelog

CHUNK = 1024 * 1024
BLOCK = 4096
CHUNK_SUM = 16  # bytes on the wire per chunk: its xxh3-128
BLOCK_SUM = 8  # per 4 KiB block of a chunk that differs: its xxh3-64
_ZERO_SUM = xxhash.xxh3_128_digest(bytes(CHUNK))


def _extents(fd: int, offset: int, end: int) -> list[tuple[int, int]]:
    """The allocated (start, stop) ranges of the file within [offset, end)."""
    out = []
    pos = offset
    while pos < end:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # no data from pos to the end of the file
                break
            raise
        if start >= end:
            break
        stop = min(os.lseek(fd, start, os.SEEK_HOLE), end)
        out.append((start, stop))
        pos = stop
    return out


def _read(fd: int, offset: int, length: int) -> bytes | bytearray | None:
    """The chunk's bytes, or None when it lies in a hole (all zeros). Only its allocated
    extents are read: a sparse chunk with a few written blocks costs those blocks."""
    found = _extents(fd, offset, offset + length)
    if not found:
        return None
    if found == [(offset, offset + length)]:
        return os.pread(fd, length, offset)
    buf = bytearray(length)
    view = memoryview(buf)
    for start, stop in found:
        os.preadv(fd, [view[start - offset : stop - offset]], start)
    return buf


def _sum(buf: bytes | None, length: int) -> bytes:
    if buf is None:
        return _ZERO_SUM if length == CHUNK else xxhash.xxh3_128_digest(bytes(length))
    return xxhash.xxh3_128_digest(buf)


@dataclass
class Batch:
    """What comparing a run of chunks found: where it stopped, and what travels."""

    end: int  # the offset of the next chunk to compare
    chunks: int = 0
    differing: int = 0  # chunks whose level-1 checksums differ
    blocks: int = 0  # 4 KiB blocks whose level-2 checksums differ (sent)
    checksum_bytes: int = 0  # level-1 and level-2 checksums on the wire
    records: bytearray = field(default_factory=bytearray)  # the differing blocks, source data


def compare(src_fd: int, dst_fd: int, size: int, start: int, max_bytes: int, max_wire: int) -> Batch:
    """Compare the chunks of [start, size) of two open disk files (the source, the replica's
    disk) until `max_bytes` of disk are compared or about `max_wire` bytes would travel (the
    records before compression), at least one chunk. The records hold the source's blocks that
    differ (absolute writes)."""
    out = Batch(start)
    pos = start
    in_hole = False  # the chunk before lies in a hole of the recovery side's disk
    while pos < size and (out.chunks == 0 or (pos - start < max_bytes
                                              and out.checksum_bytes + len(out.records) < max_wire)):
        n = min(CHUNK, size - pos)
        a, b = _read(src_fd, pos, n), _read(dst_fd, pos, n)
        out.chunks += 1
        if b is not None or not in_hole:  # its checksum, or a new run of the hole map
            out.checksum_bytes += CHUNK_SUM
        in_hole = b is None
        if _sum(a, n) != _sum(b, n):
            out.differing += 1
            a = a if a is not None else bytes(n)
            b = b if b is not None else bytes(n)
            view_a, view_b = memoryview(a), memoryview(b)
            for j in range(0, n, BLOCK):
                if not in_hole:  # a hole's blocks are zeros: the source knows their checksums
                    out.checksum_bytes += BLOCK_SUM
                if xxhash.xxh3_64_intdigest(view_a[j : j + BLOCK]) != xxhash.xxh3_64_intdigest(view_b[j : j + BLOCK]):
                    out.blocks += 1
                    out.records += changelog.record(pos + j, a[j : j + BLOCK])
        pos += n
    out.end = pos
    return out


def staged_name(disk: int, offset: int, encrypted: bool) -> str:
    """A staged batch of disk `disk` whose compare started at `offset`: a redone slice starts at
    the same committed cursor, so it writes the same file again (nothing is staged twice)."""
    return f"{disk}-{offset:014x}.hrl.lz4" + (".enc" if encrypted else "")


def parse_staged(name: str) -> tuple[int, int] | None:
    """(disk, offset) of a staged batch's file name, or None for any other file."""
    head = name.split(".", 1)[0]
    disk, _, offset = head.partition("-")
    if not (name.endswith((".hrl.lz4", ".hrl.lz4.enc")) and disk.isdigit() and offset):
        return None
    try:
        return int(disk), int(offset, 16)
    except ValueError:
        return None
