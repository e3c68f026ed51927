"""Change logs and the frames that carry them.

A change log (the seeds' .hrl) is a file of records. Every write to a tracked disk is appended
to its log. At each copy interval the log is frozen and shipped as one LZ4 frame (a checksum
on every block, 4 MB independent blocks, so `lz4 -t` verifies it), optionally encrypted with
AES-GCM. Initial-replication chunks travel in the same form.

A record is a 28-byte header — magic b"\\xa5SR2", offset (u64), length (u32), xxh3-64 of the
data (u64), xxh32 of those 24 bytes (u32) — then the data. Every record is checked (header,
data, and that it lies inside the disk) before any record of its buffer is written anywhere:
damage is refused (errors.Damaged), never applied. The header's own checksum tells a torn last
record (a crash mid-append: its header is whole and its data runs past the end, or the header
itself is cut) from a damaged one. Records of srlab 0.1 (offset u64, length u32, data; no
checksum) are still read, so logs and frames of older labs stay usable: a record that does not
start with the magic is one of those (the magic's first byte could only start an offset past 64
PB), checked only for lying inside the disk.
"""

from __future__ import annotations

import os
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lz4.frame
import xxhash
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import Damaged, Refused

_LEGACY = struct.Struct(">QI")  # srlab 0.1: offset, length
REC_MAGIC = b"\xa5SR2"
_HEAD = struct.Struct(">4sQIQ")  # magic, offset, length, xxh3-64 of the data
_CHECK = struct.Struct(">I")  # xxh32 of _HEAD
HEADER = _HEAD.size + _CHECK.size
ENC_MAGIC = b"SRLABENC1\0"
FOOTER = 512  # a fixed VHD's footer: a disk file's logical size is its length less this


def record(offset: int, data: bytes) -> bytes:
    return _header(offset, data) + data


def _header(offset: int, data) -> bytes:
    head = _HEAD.pack(REC_MAGIC, offset, len(data), xxhash.xxh3_64_intdigest(data))
    return head + _CHECK.pack(xxhash.xxh32_intdigest(head))


def read_records(fd: int, extents: list[tuple[int, int]], buf: bytearray) -> memoryview:
    """The records of a file's extents [(offset, length)], read straight into their place in
    `buf` (grown when too small, and kept by the caller for the next ones: no new pages to fault
    in) and headed in place: no copy."""
    total = sum(HEADER + n for _, n in extents)
    if len(buf) < total:
        buf.extend(bytes(total - len(buf)))
    view = memoryview(buf)[:total]
    pos = 0
    for offset, length in extents:
        data = view[pos + HEADER : pos + HEADER + length]
        if os.preadv(fd, [data], offset) != length:
            raise OSError(f"short read at {offset:,} (the file shrank while it was read)")
        view[pos : pos + HEADER] = _header(offset, data)
        pos += HEADER + length
    return view


class _Torn(Exception):
    """The buffer ends inside its last record."""


def _walk(buf, size: int | None, check_data: bool = True):
    """Yield (offset, start, length) of each record: its data is buf[start:start + length].
    Raises Damaged (with the byte position) or _Torn (a cut last record)."""
    pos, end = 0, len(buf)
    while pos < end:
        if buf[pos : pos + 4] == REC_MAGIC:
            if end - pos < HEADER:
                raise _Torn(pos)
            magic, offset, length, digest = _HEAD.unpack_from(buf, pos)
            if xxhash.xxh32_intdigest(buf[pos : pos + _HEAD.size]) != _CHECK.unpack_from(buf, pos + _HEAD.size)[0]:
                raise Damaged(f"the change-log record at byte {pos} has a damaged header")
            start = pos + HEADER
            if start + length > end:
                raise _Torn(pos)
            if check_data and xxhash.xxh3_64_intdigest(buf[start : start + length]) != digest:
                raise Damaged(f"the data of the change-log record at byte {pos} fails its checksum")
        else:  # a record of srlab 0.1
            if end - pos < _LEGACY.size:
                raise _Torn(pos)
            offset, length = _LEGACY.unpack_from(buf, pos)
            start = pos + _LEGACY.size
            if start + length > end:
                if size is not None and offset + length > size:
                    raise Damaged(f"the change-log record at byte {pos} is not a valid record")
                raise _Torn(pos)
        if size is not None and offset + length > size:
            raise Damaged(f"the change-log record at byte {pos} writes at {offset:,} (+{length:,} bytes), "
                          f"past the end of the disk ({size:,} bytes)")
        yield offset, start, length
        pos = start + length


def _cut_new_record(buf, pos: int) -> bool:
    """Does the cut record at `pos` start as a checksummed one (its magic, or the start of it)?"""
    return buf[pos : pos + 4] == REC_MAGIC or (len(buf) - pos < 4 and REC_MAGIC.startswith(bytes(buf[pos:])))


def _checked(buf, size: int | None) -> list[tuple[int, int, int]]:
    """(offset, start, length) of every record, each checked; raise Damaged if any record is
    damaged, cut short, or (given the disk's size) outside the disk. A cut last record of srlab
    0.1 is ignored, as it always was."""
    try:
        return list(_walk(buf, size))
    except _Torn as t:
        pos = t.args[0]
        if _cut_new_record(buf, pos):
            raise Damaged(f"the change log is cut short inside its record at byte {pos}") from None
        return list(_walk(buf[:pos], size))


def records(buf: bytes, size: int | None = None) -> list[tuple[int, bytes]]:
    """Every (offset, data) of a change-log buffer, all checked first (see _checked)."""
    return [(offset, buf[start : start + length]) for offset, start, length in _checked(buf, size)]


def check(buf: bytes, size: int | None) -> int:
    """Check every record without applying any; return how many there are."""
    return len(_checked(buf, size))


def complete_length(buf: bytes) -> int:
    """How much of a change-log file is whole records: less than len(buf) only when the file ends
    in a torn checksummed record (a process killed while appending), which the next append must
    not follow. Damage is never cut off here: shipping it is refused at the recovery side."""
    try:
        for _ in _walk(buf, None, check_data=False):
            pass
    except _Torn as t:
        return t.args[0] if _cut_new_record(buf, t.args[0]) else len(buf)
    except Damaged:
        pass
    return len(buf)


def apply_records(fd: int, buf: bytes) -> int:
    """Write every record of `buf` into the open disk file (a fixed VHD: the records must lie
    before its footer), all of them checked before the first is written; return bytes written."""
    size = os.fstat(fd).st_size - FOOTER
    return write_checked(fd, buf, _checked(buf, size if size >= 0 else None))


def checked(buf: bytes, size: int | None) -> list[tuple[int, int, int]]:
    """check(), keeping what it found for write_checked (a buffer is walked once)."""
    return _checked(buf, size)


def write_checked(fd: int, buf: bytes, recs: list[tuple[int, int, int]]) -> int:
    """Write records already checked (checked()) into the open disk file; return bytes written."""
    view = memoryview(buf)
    for offset, start, length in recs:
        os.pwrite(fd, view[start : start + length], offset)
    return sum(length for _, _, length in recs)


def compress(buf: bytes) -> bytes:
    return lz4.frame.compress(
        buf,
        block_size=lz4.frame.BLOCKSIZE_MAX4MB,
        block_linked=False,
        # Each compressed block carries its xxh32 (what lz4 -t checks): damage on the way or at
        # rest fails the unseal. A content checksum would hash the data a second time for
        # nothing: every record's data has its own xxh3-64, checked before it is applied.
        block_checksum=True,
        content_checksum=False,
        store_size=True,
    )


def encrypt(frame: bytes, key: bytes, label: str) -> bytes:
    nonce = os.urandom(12)
    return ENC_MAGIC + nonce + AESGCM(key).encrypt(nonce, frame, label.encode())


def seal(buf: bytes, key: bytes | None, label: str) -> bytes:
    """Log records -> what goes on the wire and into the store: a frame, encrypted if keyed."""
    frame = compress(buf)
    return encrypt(frame, key, label) if key else frame


def unseal(blob: bytes, key: bytes | None, label: str) -> bytes:
    """The inverse of seal; a wrong key or tampered data is refused, not applied."""
    if blob.startswith(ENC_MAGIC):
        if key is None:
            raise Refused(f"{label} is encrypted and no data-encryption key is available",
                          "restore the key file made at server registration (lab/keys/)")
        nonce = blob[len(ENC_MAGIC) : len(ENC_MAGIC) + 12]
        try:
            blob = AESGCM(key).decrypt(nonce, blob[len(ENC_MAGIC) + 12 :], label.encode())
        except Exception:
            raise Damaged(f"{label} cannot be decrypted: wrong key or damaged data",
                          "use the key file made at server registration") from None
    try:
        return lz4.frame.decompress(blob)
    except (RuntimeError, ValueError, OverflowError, MemoryError) as e:
        raise Damaged(f"{label}: the frame fails its LZ4 checks ({str(e)[:120]})",
                      "it was damaged on the way or at rest; it is not applied") from None


def write_durable(path: Path, data: bytes, syncs: Syncs | None = None) -> None:
    """Temp file in the same folder, fsync, rename, fsync the folder. With `syncs`, both fsyncs
    wait for its flush (before the commit of the rows that claim the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if syncs is None:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # disk full, killed...: no half file left
        raise
    if syncs is None:
        fsync_dir(path.parent)
    else:
        syncs.add(path)


_FSYNCS = ThreadPoolExecutor(4, thread_name_prefix="srlab-fsync")  # a few fsyncs in flight at once


class Syncs:
    """The files (and their folders) a slice of lab time wrote, made durable in one round just
    before the slice's transaction commits: one fsync each, run side by side so the filesystem's
    journal commits them together, instead of an fsync (and a journal commit) per file as written."""

    def __init__(self) -> None:
        self.paths: set[Path] = set()
        self._within: dict[Path, set[Path]] = {}  # folder -> its entries in paths (drop() finds them at once)
        self._written: dict[Path, int] = {}  # file -> writes added since its last early fsync
        self._early: list = []

    def add(self, path: Path, soon: bool = False) -> None:
        """`soon`: a file written in many pieces (an initial copy's base) starts its fsync in the
        background every few pieces, so that the flush finds most of it on disk already."""
        for p in (path, path.parent):
            self.paths.add(p)
            self._within.setdefault(p.parent, set()).add(p)
        if soon:
            n = self._written[path] = self._written.get(path, 0) + 1
            if n % 4 == 0:
                self._early.append(_FSYNCS.submit(fsync_path, path))

    def drop(self, folder: Path) -> None:
        """`folder` and its files are claimed by no row any more (an arrival used them): no fsync.
        (Not a scan of every path: a 1,000-VM slice drops a thousand folders among thousands.)"""
        self.paths -= self._within.pop(folder, set())
        self.paths.discard(folder)

    def flush(self) -> None:
        early, self._early, self._written = self._early, [], {}
        for f in early:
            f.result()
        paths, self.paths, self._within = sorted(self.paths), set(), {}
        if len(paths) < 2:
            for p in paths:
                fsync_path(p)
            return
        list(_FSYNCS.map(fsync_path, paths))  # list(): an error is raised here, before the commit


def fsync_path(path: Path, missing_ok: bool = True) -> None:
    """fsync a file or a folder; one that is gone is skipped (removed in the slice: its new
    place, if moved, was added), unless `missing_ok` is False."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fsync_path(path, missing_ok=False)


def process_alive(pid: int) -> bool:
    """Is process `pid` still there? (Whose temporary folder is this?)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
