"""Guest workload: reproducible writes that carry numbered application transactions.

Write number n of a VM (0-based) is a pure function of the VM's seed, its disks and n, so the
same lab replays the same bytes however time is stepped. Each write is one block (block_kib)
starting with a transaction header: magic, VM tag, sequence number (n + 1), lab timestamp,
payload length, disk index and an xxh64 checksum of header and payload. A disk can be scanned
for the last transaction it holds (`scan_transactions`).
"""

from __future__ import annotations

import _random
import functools
import os
import random
import struct
from dataclasses import dataclass
from typing import NamedTuple

import xxhash

from .model import VM

TX_MAGIC = b"SRLABTX1"
_HEADER = struct.Struct(">8sQQQII")  # magic, vm tag, seq, lab time, payload length, disk index
HEADER_SIZE = _HEADER.size + 8  # + checksum
_HOT_REGION = 8 * 1024 * 1024
_LOG_REGION = 64 * 1024 * 1024


@functools.lru_cache(maxsize=8192)
def vm_tag(name: str) -> int:
    return xxhash.xxh64_intdigest(name.lower().encode())


class Write(NamedTuple):  # a tuple: built 25,000 times a wall second at scale
    disk: int  # index into the VM's disks
    offset: int
    data: bytes
    seq: int
    time: int


def writes_due(active_seconds: int, vm: VM) -> int:
    """How many writes a VM has made after running `active_seconds` in total."""
    w = vm.workload
    return int(active_seconds * w.rate_kib_s) // w.block_kib


def write_time(n: int, vm: VM) -> float:
    """Active seconds at which write n happens."""
    w = vm.workload
    return n * w.block_kib / w.rate_kib_s if w.rate_kib_s else 0.0


def _pick_disk(h: int, vm: VM) -> int:
    if len(vm.disks) == 1:
        return 0
    data = [i for i, d in enumerate(vm.disks) if d.role == "data"] or list(range(len(vm.disks)))
    os_disks = [i for i, d in enumerate(vm.disks) if d.role == "os"]
    # Applications write mostly to data disks; the OS disk gets about a fifth.
    if os_disks and h % 5 == 0:
        return os_disks[0]
    return data[(h >> 8) % len(data)]


def _offset(h: int, n: int, size: int, block: int, pattern: str) -> int:
    blocks = max(1, size // block)
    if pattern == "sequential-log":
        # A circular log in the last part of the disk.
        region = min(_LOG_REGION, size) // block or 1
        return ((blocks - region) + n % region) * block
    if pattern == "hot-spot" and (h >> 20) % 10 < 8:
        region = min(_HOT_REGION, size) // block or 1
        return (blocks // 2 - region // 2 + (h >> 24) % region) * block if blocks > region else (h >> 24) % blocks * block
    return (h >> 24) % blocks * block


_POOL: bytes | None = None
_POOL_SEED = 0x5EED


def _text_pool() -> bytes:
    """1 MiB of table-like text, the same in every process and for every VM (a write's hash
    picks where in it its payload starts): built once per process, not once per VM, so a
    1,000-VM lab neither pays 1,000 builds at start nor keeps 1 GiB of pools."""
    global _POOL
    if _POOL is None:
        rng = random.Random(_POOL_SEED)
        words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(400)]
        out = bytearray()
        while len(out) < 1 << 20:
            row = rng.choices(words, k=6 * 1024)  # 1024 rows at a time
            out += b"".join(b"INSERT INTO orders VALUES (" + b", ".join(row[i : i + 6]) + b");\n"
                            for i in range(0, len(row), 6))
        _POOL = bytes(out[: 1 << 20])
    return _POOL


def make_write(vm: VM, n: int, time: int, disk_sizes: list[int]) -> Write:
    w = vm.workload
    block = w.block_kib * 1024
    h = xxhash.xxh64_intdigest(struct.pack(">QQ", w.seed, n))
    disk = _pick_disk(h, vm)
    offset = _offset(h, n, disk_sizes[disk], block, w.pattern)
    # Payload: table-like text from the VM's pool with a random quarter (compresses ~2-3x).
    body = block - HEADER_SIZE
    pool = _text_pool()
    start = h % (len(pool) - body)
    rand = _randbytes(h, body // 4)
    payload = rand + pool[start : start + body - len(rand)]
    header = _HEADER.pack(TX_MAGIC, vm_tag(vm.name), n + 1, time, len(payload), disk)
    checksum = xxhash.xxh64_intdigest(header + payload)
    return Write(disk, offset, b"".join((header, struct.pack(">Q", checksum), payload)), n + 1, time)


_RNG = random.Random()


def _randbytes(seed: int, n: int) -> bytes:
    """random.Random(seed).randbytes(n), the same bytes, without building a generator per write
    (the C seed on one generator; randbytes is getrandbits(8n) as little-endian bytes)."""
    _random.Random.seed(_RNG, seed)
    return _RNG.getrandbits(n * 8).to_bytes(n, "little") if n else b""


def parse_transaction(buf: bytes | memoryview, pos: int, tag: int | None = None):
    """(seq, time) of a valid transaction at buf[pos:], or None."""
    if len(buf) - pos < HEADER_SIZE:
        return None
    magic, vtag, seq, time, plen, _disk = _HEADER.unpack_from(buf, pos)
    if magic != TX_MAGIC or (tag is not None and vtag != tag):
        return None
    end = pos + HEADER_SIZE + plen
    if end > len(buf):
        return None
    (checksum,) = struct.unpack_from(">Q", buf, pos + _HEADER.size)
    h = xxhash.xxh64()
    h.update(buf[pos : pos + _HEADER.size])
    h.update(buf[pos + HEADER_SIZE : end])
    return (seq, time) if h.intdigest() == checksum else None


@dataclass
class TxScan:
    count: int = 0  # valid transactions found (older ones may have been overwritten)
    last_seq: int = 0
    last_time: int | None = None

    def add(self, seq: int, time: int) -> None:
        self.count += 1
        if seq > self.last_seq:
            self.last_seq, self.last_time = seq, time


def scan_buffer(buf: bytes, base: int, tag: int | None, scan: TxScan, align: int = 4096) -> None:
    """Add every valid transaction in buf (which starts at disk offset `base`) to `scan`."""
    pos = buf.find(TX_MAGIC)
    while pos >= 0:
        if (base + pos) % align == 0:
            found = parse_transaction(buf, pos, tag)
            if found:
                scan.add(*found)
        pos = buf.find(TX_MAGIC, pos + 1)


def scan_file(path, size: int, tag: int | None = None) -> TxScan:
    """Scan a disk file's allocated extents for application transactions."""
    from .disks import data_extents

    scan = TxScan()
    chunk = 8 * 1024 * 1024
    with open(path, "rb") as f:
        for start, length in data_extents(f.fileno(), size):
            pos = start - start % 65536  # blocks never straddle a 64 KiB boundary
            end = start + length
            while pos < end:
                n = min(chunk, size - pos, end - pos + (-(end - pos)) % 65536)
                buf = os.pread(f.fileno(), n, pos)
                scan_buffer(buf, pos, tag, scan)
                pos += n
    return scan
