import os

from engine.disks import create_disk, fingerprint


def test_fingerprint_ignores_allocation_but_sees_every_byte(tmp_path):
    a, b = tmp_path / "a.vhd", tmp_path / "b.vhd"
    size = 64 * 1024 * 1024
    create_disk(a, size, 0, 4 * 1024 * 1024, seed=1)
    create_disk(b, size, 0, 4 * 1024 * 1024, seed=1)
    assert fingerprint(a, size) == fingerprint(b, size)
    # Written zeros in a hole: same content, same fingerprint.
    with open(b, "r+b") as f:
        f.seek(40 * 1024 * 1024)
        f.write(bytes(3 * 1024 * 1024))
    assert fingerprint(a, size) == fingerprint(b, size)
    # One byte changed: different.
    fd = os.open(b, os.O_RDWR)
    os.pwrite(fd, b"\x01", 50 * 1024 * 1024 + 7)
    os.close(fd)
    assert fingerprint(a, size) != fingerprint(b, size)


def test_source_fingerprints_follow_writes(tmp_path):
    from engine.disks import SourceFingerprints

    p = tmp_path / "d.vhd"
    size = 16 * 1024 * 1024
    create_disk(p, size, 0, 2 * 1024 * 1024, seed=3)
    live = SourceFingerprints()
    assert live.fingerprint(p, size) == fingerprint(p, size)
    fd = os.open(p, os.O_RDWR)
    for off, data in ((9 * 1024 * 1024 + 100, b"x" * 70000), (0, bytes(65536))):
        os.pwrite(fd, data, off)
        live.written(p, off, len(data))
        assert live.fingerprint(p, size) == fingerprint(p, size)
    os.close(fd)
