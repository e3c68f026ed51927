"""Disk files: fixed VHD (raw sectors + a 512-byte footer), sparse, with their real logical size.

qemu-img reads them as `vpc`; the footer's creator application is "win " so qemu takes the exact
current size instead of rounding to the CHS geometry.
"""

from __future__ import annotations

import errno
import functools
import os
import random
import struct
import uuid
from pathlib import Path

FOOTER = 512
_VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z


def chs_geometry(size: int) -> tuple[int, int, int]:
    """Cylinders, heads, sectors per track for a VHD footer (the VHD specification's algorithm)."""
    sectors = min(size // 512, 65535 * 16 * 255)
    if sectors >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = sectors // spt
    else:
        spt = 17
        cth = sectors // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = sectors // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = sectors // spt
    return cth // heads, heads, spt


def vhd_footer(size: int, created: int, disk_id: bytes) -> bytes:
    cyl, heads, spt = chs_geometry(size)
    body = struct.pack(
        ">8sIIQI4sI4sQQHBBII16sB",
        b"conectix", 2, 0x00010000, 0xFFFFFFFFFFFFFFFF,
        max(0, created - _VHD_EPOCH) & 0xFFFFFFFF, b"win ", 0x000A0000, b"Wi2k",
        size, size, cyl, heads, spt, 2, 0, disk_id, 0,
    )
    footer = bytearray(body.ljust(FOOTER, b"\0"))
    checksum = ~sum(footer) & 0xFFFFFFFF
    struct.pack_into(">I", footer, 64, checksum)
    return bytes(footer)


def check_footer(path: Path, size: int) -> str | None:
    """None if the file ends in a valid fixed-VHD footer for `size`, else what is wrong."""
    with open(path, "rb") as f:
        f.seek(size)
        footer = f.read(FOOTER)
    if len(footer) != FOOTER or footer[:8] != b"conectix":
        return "no VHD footer"
    stored = struct.unpack_from(">I", footer, 64)[0]
    blank = footer[:64] + b"\0\0\0\0" + footer[68:]
    if (~sum(blank) & 0xFFFFFFFF) != stored:
        return "VHD footer checksum mismatch"
    if struct.unpack_from(">Q", footer, 48)[0] != size:
        return "VHD footer size mismatch"
    return None


def create_disk(path: Path, size: int, created: int, content_bytes: int, seed: int) -> None:
    """A sparse fixed VHD whose first `content_bytes` of scattered extents hold an 'installed OS'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in installed_os_extents(size, content_bytes, rng):
            f.seek(offset)
            f.write(data)
        f.seek(size)
        f.write(vhd_footer(size, created, uuid.UUID(int=rng.getrandbits(128)).bytes))
        f.flush()
        os.fsync(f.fileno())


_WORDS = (
    b"kernel driver system32 registry hive boot loader config service update package "
    b"library module cache index journal inode block sector volume partition header "
).split()


def _text_like(rng: random.Random, n: int) -> bytes:
    lines = [b" ".join(rng.choices(_WORDS, k=rng.randint(4, 12))) + b"\n" for _ in range(256)]
    return b"".join(rng.choices(lines, k=n // 40 + 1))[:n]


def installed_os_extents(size: int, content_bytes: int, rng: random.Random):
    """Yield (offset, bytes): text-like, zero-filled and random regions, 1 MiB aligned, not overlapping.

    The mix (about 45% text, 20% zeros, 35% random) compresses roughly like a real OS image. The
    extents are spread over the first part of the disk (4x the content), as a fresh install is.
    """
    mib = 1024 * 1024
    content_bytes = min(content_bytes, size)
    sizes = []
    left = content_bytes
    while left > 0:
        n = min(left, rng.choice((1, 1, 2, 4)) * mib)
        sizes.append(n)
        left -= n
    area = min(size, max(4 * content_bytes, 16 * mib))
    # Whole MiB slots each extent takes; what is left over is spread as gaps between them.
    slots = [-(-n // mib) for n in sizes]
    spare = max(0, area // mib - sum(slots))
    pos = 0
    for i, n in enumerate(sizes):
        gap = rng.randint(0, 2 * spare // max(1, len(sizes) - i)) if spare else 0
        gap = min(gap, spare)
        spare -= gap
        pos += gap * mib
        kind = rng.random()
        if kind < 0.45:
            data = _text_like(rng, n)
        elif kind < 0.65:
            data = bytes(n)
        else:
            data = rng.randbytes(n)
        offset = min(pos, size - n)
        yield offset, data
        pos += slots[i] * mib


def data_extents(fd: int, size: int, pos: int = 0):
    """Allocated (offset, length) ranges in [pos, size), via SEEK_DATA/SEEK_HOLE."""
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                return
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end - start
        pos = end


def allocated_bytes(path: Path, size: int) -> int:
    with open(path, "rb") as f:
        return sum(n for _, n in data_extents(f.fileno(), size))


def allocated_bytes_shown(path: Path, size: int) -> int:
    """allocated_bytes for display (status, the app): walked again only when the file's stat
    changed, so a 1,000-VM lab's refresh does not walk 1,000 disks' extents each time."""
    st = os.stat(path)
    return _allocated_at(str(path), size, st.st_ino, st.st_size, st.st_blocks, st.st_mtime_ns, st.st_ctime_ns)


@functools.lru_cache(maxsize=8192)
def _allocated_at(path: str, size: int, *stat: int) -> int:
    return allocated_bytes(Path(path), size)


FP_CHUNK = 64 * 1024


def chunk_digests(path: Path, size: int, only: set[int] | None = None) -> dict[int, bytes]:
    """xxh3-128 digest of every 64 KiB chunk that is not all zeros (or of the `only` chunks)."""
    import xxhash

    zero = bytes(FP_CHUNK)
    out: dict[int, bytes] = {}
    with open(path, "rb") as f:
        fd = f.fileno()
        if only is not None:  # runs of consecutive chunks, each read at once
            runs = []
            for i in sorted(only):
                if runs and runs[-1][1] == i:
                    runs[-1][1] = i + 1
                else:
                    runs.append([i, i + 1, None])
        else:  # the chunks that hold allocated data, as runs of whole chunks with their extents
            runs = []
            for start, length in data_extents(fd, size):
                first, last = start // FP_CHUNK, (start + length - 1) // FP_CHUNK + 1
                if runs and first <= runs[-1][1]:
                    runs[-1][1] = max(last, runs[-1][1])
                    runs[-1][2].append((start, length))
                else:
                    runs.append([first, last, [(start, length)]])
        for first, last, extents in runs:
            buf = read_data(fd, first * FP_CHUNK, min(last * FP_CHUNK, size), extents)
            for i in range(0, len(buf), FP_CHUNK):
                chunk = buf[i : i + FP_CHUNK]
                if chunk != zero[: len(chunk)]:
                    out[first + i // FP_CHUNK] = xxhash.xxh3_128_digest(chunk)
    return out


def read_data(fd: int, start: int, end: int, extents: list[tuple[int, int]] | None = None) -> bytearray:
    """The bytes of [start, end) with holes as zeros, not read: reading a hole makes the kernel
    fill page-cache pages with zeros, about 15x the cost of reading cached data (a chunk that a
    guest wrote 4 KiB into is mostly hole). `extents`: the data in the range, when known."""
    buf = bytearray(end - start)
    view = memoryview(buf)
    for s, n in data_extents(fd, end, start) if extents is None else extents:
        os.preadv(fd, [view[s - start : s - start + n]], s)
    return buf


def combine_digests(digests: dict[int, bytes]) -> str:
    return _combine({i: _entry(i, d) for i, d in digests.items()})


def _entry(idx: int, digest: bytes) -> bytes:
    return struct.pack(">Q", idx) + digest


def _combine(entries: dict[int, bytes]) -> str:
    import xxhash

    return xxhash.xxh3_128_hexdigest(b"".join([entries[i] for i in sorted(entries)]))


def fingerprint(path: Path, size: int) -> str:
    """A disk's logical content as one xxh3-128, independent of how it is allocated.

    Combines (index, digest) of every 64 KiB chunk that is not all zeros, in order: a hole and a
    run of written zeros give the same fingerprint, and 127 GB of holes cost nothing.
    """
    return combine_digests(chunk_digests(path, size))


class SourceFingerprints:
    """Fingerprints of live source disks, kept current by re-hashing only the chunks written since
    (each chunk's entry of the combined hash kept ready: a copy cycle hashes no more than it must)."""

    def __init__(self):
        self._entries: dict[Path, dict[int, bytes]] = {}  # chunk index -> _entry(index, digest)
        self._dirty: dict[Path, set[int]] = {}

    def written(self, path: Path, offset: int, length: int) -> None:
        self.written_many(path, [(offset, length)])

    def written_many(self, path: Path, extents: list[tuple[int, int]]) -> None:
        dirty = self._dirty.get(path)
        if dirty is not None:
            for offset, length in extents:
                dirty.update(range(offset // FP_CHUNK, (offset + length - 1) // FP_CHUNK + 1))

    def forget(self, path: Path) -> None:
        """The file was rewritten behind our back (a failback's sync): hash it afresh next time."""
        self._entries.pop(path, None)
        self._dirty.pop(path, None)

    def fingerprint(self, path: Path, size: int) -> str:
        entries = self._entries.get(path)
        if entries is None:
            entries = self._entries[path] = {i: _entry(i, d) for i, d in chunk_digests(path, size).items()}
            self._dirty[path] = set()
        elif self._dirty[path]:
            dirty = self._dirty[path]
            fresh = chunk_digests(path, size, dirty)
            for idx in dirty:
                if idx in fresh:
                    entries[idx] = _entry(idx, fresh[idx])
                else:  # all zeros now: not in the fingerprint
                    entries.pop(idx, None)
            dirty.clear()
        return _combine(entries)
