"""Change logs and the frames that carry them.

A change log (the seeds' .hrl) is a file of records: offset (u64), length (u32), data. Every write
to a tracked disk is appended to its log. At each copy interval the log is frozen and shipped as
one LZ4 frame (content checksum on, 4 MB independent blocks, so `lz4 -t` verifies it), optionally
encrypted with AES-GCM. Initial-replication chunks travel in the same form.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import lz4.frame
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import Refused

_REC = struct.Struct(">QI")
ENC_MAGIC = b"SRLABENC1\0"


def record(offset: int, data: bytes) -> bytes:
    return _REC.pack(offset, len(data)) + data


def records(buf: bytes):
    """Yield (offset, data) from a change-log buffer; a torn last record (a crash mid-append) is ignored."""
    pos, end = 0, len(buf)
    while pos + _REC.size <= end:
        offset, length = _REC.unpack_from(buf, pos)
        pos += _REC.size
        if pos + length > end:
            return
        yield offset, buf[pos : pos + length]
        pos += length


def apply_records(fd: int, buf: bytes) -> int:
    """Write every record of `buf` into the open disk file; return bytes written."""
    n = 0
    for offset, data in records(buf):
        os.pwrite(fd, data, offset)
        n += len(data)
    return n


def compress(buf: bytes) -> bytes:
    return lz4.frame.compress(
        buf,
        block_size=lz4.frame.BLOCKSIZE_MAX4MB,
        block_linked=False,
        content_checksum=True,
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
            raise Refused(f"{label} cannot be decrypted: wrong key or damaged data",
                          "use the key file made at server registration") from None
    try:
        return lz4.frame.decompress(blob)
    except RuntimeError as e:
        raise Refused(f"{label} is not a valid LZ4 frame ({e})", "the replica store is damaged") from None


def write_durable(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
