"""Hardening (issue 12): nothing a site file, a command or a dead process does can escape the
lab, break it or leave a lie on disk. Each test is one of the issue's reproductions, or one
corruption per kind of file (source log, outgoing frame, point frame, replica base)."""

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from engine import Damaged, EnvironmentProblem, InvalidInput, Lab, Refused, SiteFileError, store
from engine.clock import LAB_TIME_MAX, parse_duration
from engine.disks import fingerprint
from engine.model import slug
from engine.replication import changelog
from engine.sites import parse_site
from tests.conftest import SAMPLES, SMALL_SITE, step2

M = 60


class Killed(BaseException):
    """The process dies here (not an Exception: nothing may catch it)."""


def problems_of(text):
    with pytest.raises(SiteFileError) as e:
        parse_site(text, "t.toml")
    return e.value.problems


def edit(old, new, text=SMALL_SITE, count=1):
    assert old in text, old
    return text.replace(old, new, count)


def protected(lab, *vms, **policy):
    step2(lab, **{"retention_h": 1, "app_consistent_h": 0, **policy})
    lab.run_until_done(lab.protect(list(vms)))
    return lab


def flip(path: Path, at: int | None = None, bit: int = 2) -> None:
    """Flip one bit of a file in place (the middle byte unless told)."""
    at = path.stat().st_size // 2 if at is None else at
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)[0] ^ (1 << bit)
        f.seek(at)
        f.write(bytes([b]))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- 1. names are data, paths are ours ---------------------------------------------------------


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "..\\x", "tab\there", "x" * 81, " lead", "bidi\u202e"])
def test_a_name_that_looks_like_a_path_is_refused(bad):
    text = edit('name = "WEB01"\nos', f'name = {json.dumps(bad)}\nos')
    assert any(p.startswith("vms[0].name: must") for p in problems_of(text)), problems_of(text)
    cloud = SMALL_SITE.replace('"OnPremise Cloud"', json.dumps(bad))
    assert any("clouds[0].name: must" in p for p in problems_of(cloud))
    disk = edit('name = "WEB01-data"', f'name = {json.dumps(bad)}')
    assert any("vms[0].disks[1].name: must" in p for p in problems_of(disk))


def test_the_issue_s_escape_is_refused_and_nothing_is_written(tmp_path):
    """A cloud named '..' and a VM named '..' with a disk 'ESCAPED' made init write <lab>/../ESCAPED.vhd."""
    text = SMALL_SITE.replace('"OnPremise Cloud"', '".."').replace('name = "WEB01"\nos', 'name = ".."\nos')
    text = text.replace('name = "WEB01"\n  role', 'name = "ESCAPED"\n  role')
    site = tmp_path / "escape.toml"
    site.write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SiteFileError) as e:
        Lab.create(tmp_path / "lab", site)
    assert any("vms[0].name" in p and "a name is not a path" in p for p in e.value.problems)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_names_that_share_a_file_name_are_refused_naming_both():
    text = edit('name = "IDLE01"', 'name = "MY SQL01"', edit('name = "WEB01"\nos', 'name = "MY_SQL01"\nos'))
    (p,) = [p for p in problems_of(text) if "both get the file name" in p]
    assert p.startswith("vms[1].name") and "'MY SQL01'" in p and "'MY_SQL01' (vms[0].name)" in p
    disks = edit('name = "WEB01-data"', 'name = "a_b"', edit('name = "WEB01"\n  role', 'name = "a b"\n  role'))
    assert problems_of(disks) == ["vms[0].disks[1].name: disk 'a_b' and 'a b' (vms[0].disks[0].name) both get "
                                  "the file name 'a_b'; rename one"]
    two_places = edit('name = "Japan East"', 'name = "OnPremise_Cloud"').replace(
        'target = "Japan East"', 'target = "OnPremise_Cloud"')
    assert any("place 'OnPremise_Cloud' and 'OnPremise Cloud'" in p for p in problems_of(two_places))


def test_slugs_are_single_safe_components():
    for name in ["..", ".", "...", "a/../b", ".hidden", "日本", "", "_", "x" * 300]:
        s = slug(name)
        assert s and s not in (".", "..") and "/" not in s and not s.startswith(".") and len(s) <= 100


def test_a_target_name_is_a_name_too(tmp_path):
    """VMM -> VMM targets take any name (Azure ones are checked by Azure's rule): a target name
    may not be a path, nor share its folder at the recovery side with another VM's."""
    with Lab.create(tmp_path / "lab", SAMPLES / "vmm-to-vmm.toml") as lab:
        lab.run_until_done([lab.register_server("SC01")])
        lab.run_until_done([lab.configure_cloud("Primary Cloud", "Backup Cloud - 2ndDC")])
        with pytest.raises(Refused, match="target name '..' must not contain"):
            lab.protect(["WEB01"], target_name="..")
        lab.protect(["WEB01"], target_name="WEB 01")
        with pytest.raises(Refused, match="would share its folder at Backup Cloud - 2ndDC with WEB01's VM 'WEB 01'"):
            lab.protect(["APP01"], target_name="WEB_01")
        lab.protect(["APP01"])
        with pytest.raises(InvalidInput, match="would share its folder"):
            lab.set_target("APP01", target_name="WEB_01-test")


# ---- 2. every site-file value in range ---------------------------------------------------------


@pytest.mark.parametrize("old, new, expected", [
    ("seed = 7", "seed = -1", "vms[0].workload.seed: must be 0-9223372036854775807, not -1"),
    ("seed = 7", "seed = 99999999999999999999999", "vms[0].workload.seed: must be 0-"),
    ("start = 2026-01-05T09:00:00Z", "start = 0001-01-01T00:00:00Z", "lab.start: must be from 1970-01-01"),
    ("start = 2026-01-05T09:00:00Z", "start = 9999-12-31T23:00:00Z", "lab.start: must be from 1970-01-01"),
    ("start = 2026-01-05T09:00:00Z", "start = 2100-01-01T00:00:01Z", "to 2100-01-01 00:00:00 (UTC)"),
    ("size_gb = 0.5", "size_gb = 0.000001", "vms[0].disks[1].size_gb: must be greater than 0 and at most 65536"),
    ("size_gb = 0.5", "size_gb = 60000000", "at least 1 MiB"),
    ("size_gb = 0.5", "size_gb = inf", "vms[0].disks[1].size_gb: must be greater than 0"),
    ("size_gb = 0.5", "size_gb = nan", "vms[0].disks[1].size_gb: must be greater than 0"),
    ("size_gb = 0.5", "size_gb = " + "9" * 400, "vms[0].disks[1].size_gb: must be a number in range"),
    ("mbps = 100", "mbps = inf", "links[0].mbps: must be greater than 0 and at most 1000000 (1 Tbps), not inf"),
    ("mbps = 100", "mbps = nan", "links[0].mbps: must be greater than 0"),
    ("mbps = 100", "mbps = 0", "links[0].mbps: must be greater than 0"),
    ("rate_kib_s = 4\n  pattern = \"random\"", "rate_kib_s = nan\n  pattern = \"random\"", "rate_kib_s: must be 0-102400"),
    ("content_mb = 2", "content_mb = inf", "content_mb: must be 0 or more"),
    ('name = "small"', 'name = "a\\u0000b"', "lab.name: must not contain control characters"),
    ('os = "CentOS 7.0"', 'os = "' + "x" * 300 + '"', "vms[1].os: must be at most 200 characters"),
    ("seed = 7", "seed = " + "9" * 5000, "not valid TOML"),
])
def test_every_value_is_in_range(old, new, expected):
    problems = problems_of(edit(old, new))
    assert any(expected in p for p in problems), problems
    assert all(len(p) < 400 for p in problems)


def test_a_disk_larger_than_a_file_can_be_here_is_refused_at_init(tmp_path, small_site, monkeypatch):
    import engine.lab

    real = engine.lab.create_disk

    def efbig(path, size, *a):
        if size > 2**30:
            raise OSError(errno.EFBIG, "File too large", str(path))
        return real(path, size, *a)

    monkeypatch.setattr(engine.lab, "create_disk", efbig)
    small_site.write_text(edit("size_gb = 0.5", 'size_gb = 60000\n  format = "vhdx"'))
    with pytest.raises(InvalidInput, match=r"vms\[0\].disks\[1\].size_gb: 60000 GB \(WEB01 disk WEB01-data\) is more "
                                           "than a file can be on the file system"):
        Lab.create(tmp_path / "lab", small_site)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.toml"]


def test_lab_time_never_passes_the_end_of_the_supported_range(tmp_path, small_site):
    small_site.write_text(edit("start = 2026-01-05T09:00:00Z", "start = 2100-01-01T00:00:00Z"))
    with Lab.create(tmp_path / "lab", small_site) as lab:
        lab.run(2 * 3600)
        now = lab.now
        with pytest.raises(Refused, match="lab time would pass 2200-01-01 00:00:00") as e:
            lab.run(LAB_TIME_MAX - now + 1)
        assert "run for at most" in e.value.hint
        assert lab.now == now  # a refused run changes no lab time
        assert lab.status()["now_text"].startswith("2100-01-01 02:00")


def test_durations_are_bounded():
    for text in ["99999999999999999999999d", "9" * 5000 + "s", "36501d"]:
        with pytest.raises(InvalidInput, match="too long|bad duration"):
            parse_duration(text)
    assert parse_duration("36500d") == 36500 * 86400


def test_old_labs_with_an_infinite_link_are_brought_into_range(lab):
    """srlab 0.1 accepted `link set --mbps inf`; the schema migration of this version clamps it."""
    (clamp,) = [m for m in store.MIGRATIONS if "UPDATE links SET mbps" in m]
    with store.transaction(lab.db):
        lab.db.execute("UPDATE links SET mbps=?", [float("inf")])
        lab.db.execute(clamp)
    assert lab.resources()["links"][0]["mbps"] == 1_000_000.0
    json.dumps(lab.resources(), allow_nan=False)


# ---- 3. every command's output written atomically ------------------------------------------


def test_a_killed_export_leaves_no_finished_looking_file_and_a_retry_works(lab, tmp_path, monkeypatch):
    protected(lab, "WEB01")
    lab.run(10 * M)
    out = tmp_path / "out"
    import engine.replication.replica as replica

    real = replica.sparse_copy
    calls = []

    def die_on_second_disk(src, dst, size):
        calls.append(dst)
        real(src, dst, size)
        if len(calls) == 2:
            raise Killed()

    monkeypatch.setattr(replica, "sparse_copy", die_on_second_disk)
    with pytest.raises(Killed):
        lab.export("WEB01", "latest", out)
    monkeypatch.undo()
    assert not out.exists() and not list(tmp_path.glob(".srlab-export-*"))  # nothing that looks finished
    # A SIGKILL'd export leaves its hidden work folder; the next export there removes it.
    (tmp_path / ".srlab-export-999999").mkdir()
    (tmp_path / ".srlab-export-999999" / "WEB01.vhd").write_bytes(b"half")
    r = lab.export("WEB01", "latest", out)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "lab") == ["out", "small.toml"]
    assert sorted(p.name for p in out.iterdir()) == ["WEB01-data.vhd", "WEB01.vhd"]
    expected = json.loads(lab.replication.point_rows("WEB01")[-1]["fingerprints"])
    assert [fingerprint(out / n, d.size_bytes) for n, d in zip(["WEB01.vhd", "WEB01-data.vhd"],
                                                               lab.vm("WEB01").disks)] == expected
    with pytest.raises(Refused, match="already holds"):
        lab.export("WEB01", r["point"], out)
    # Into a folder that exists: each file is renamed into place only when complete.
    there = tmp_path / "there"
    there.mkdir()
    import engine.protection as protection

    real_replace = protection.os.replace
    moved = []
    monkeypatch.setattr(protection.os, "replace", lambda a, b: moved.append(b) or (
        real_replace(a, b) if len(moved) == 1 else (_ for _ in ()).throw(Killed())))
    with pytest.raises(Killed):
        lab.export("WEB01", "latest", there)
    monkeypatch.undo()
    assert [p.name for p in there.iterdir()] == ["WEB01.vhd"]
    assert fingerprint(there / "WEB01.vhd", lab.vm("WEB01").disks[0].size_bytes) == expected[0]


def test_export_into_a_folder_that_cannot_be_written(lab):
    protected(lab, "WEB01")
    lab.run(6 * M)
    with pytest.raises(EnvironmentProblem, match="cannot export WEB01 into /proc/nope"):
        lab.export("WEB01", "latest", "/proc/nope")


def test_verify_scratch_is_removed_on_exit_and_swept_at_the_next_open(lab, monkeypatch):
    protected(lab, "WEB01")
    lab.run(6 * M)
    import engine.protection as protection

    monkeypatch.setattr(protection, "fingerprint", lambda *a: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        lab.verify("WEB01")
    monkeypatch.undo()
    assert not (lab.path / ".scratch" / f"verify-{os.getpid()}").exists()
    dead = lab.path / ".scratch" / "verify-999999"  # what a SIGKILL'd verify leaves
    dead.mkdir(parents=True)
    (dead / "WEB01.vhd").write_bytes(b"x" * 4096)
    alive = lab.path / ".scratch" / f"verify-{os.getppid()}"
    alive.mkdir()
    path = lab.path
    lab.close()
    with Lab.open(path):
        assert not dead.exists() and alive.exists()


def test_bench_bounds_its_arguments():
    from engine.bench import run_bench

    for kw in [{"change_pct": 500}, {"change_pct": float("nan")}, {"size_mb": 0}, {"content_mb": 600},
               {"size_mb": 10**9}]:
        with pytest.raises(InvalidInput):
            run_bench(**{"size_mb": 512, "content_mb": 192, "change_pct": 1.0, **kw})


# ---- 4. integrity end to end ------------------------------------------------------------------


def test_records_carry_checksums_and_every_damage_is_refused():
    buf = b"".join(changelog.record(i * 4096, os.urandom(64)) for i in range(4))
    assert [o for o, _ in changelog.records(buf, 1 << 20)] == [0, 4096, 8192, 12288]
    for i in range(len(buf) * 8):
        b = bytearray(buf)
        b[i // 8] ^= 1 << (i % 8)
        with pytest.raises(Damaged):
            changelog.records(bytes(b), 1 << 20)
    with pytest.raises(Damaged, match="past the end of the disk"):
        changelog.records(changelog.record(1 << 20, b"x"), 1 << 20)
    with pytest.raises(Damaged, match="cut short"):
        changelog.records(buf[:-1], 1 << 20)


def test_logs_of_older_labs_stay_readable():
    """Records of srlab 0.1 (no magic, no checksum) and new ones may share a log after an upgrade."""
    old = changelog._LEGACY.pack(4096, 3) + b"abc"
    buf = old + changelog.record(0, b"new") + old[:5]  # a torn old record at the end is ignored, as before
    assert changelog.records(buf, 1 << 20) == [(4096, b"abc"), (0, b"new")]
    with pytest.raises(Damaged, match="past the end"):
        changelog.records(changelog._LEGACY.pack(2**40, 3) + b"abc", 1 << 20)


def test_a_torn_last_record_is_cut_before_the_next_append(lab):
    protected(lab, "WEB01")
    lab.run(7 * M)
    log = lab.disk_path("WEB01", 0).with_suffix(".hrl")
    whole = log.read_bytes()
    log.write_bytes(whole + changelog.record(0, b"y" * 4096)[:100])  # a process killed mid-append
    path = lab.path
    lab.close()
    with Lab.open(path) as again:
        assert again.acquire_clock()
        assert log.read_bytes() == whole
        again.run(15 * M)
        assert all(again.verify("WEB01", p["id"])["identical"] for p in again.points("WEB01"))
        assert again.status()["vms"][0]["errors"] == []


def _two_vms(lab):
    """WEB01 and IDLE01 protected and running: damage to one must not stop the other."""
    lab.vm_power("IDLE01", "start")
    return protected(lab, "WEB01", "IDLE01")


def _assert_refused_not_applied(lab, before_points, why):
    """WEB01: the damaged log was not applied, its error says why and that a resync is needed
    (health Critical), an event says so; IDLE01 and the clock went on."""
    st = {v["name"]: v for v in lab.status()["vms"]}
    assert st["WEB01"]["health"] == "Critical"
    (err,) = st["WEB01"]["errors"]
    assert why in err and "resynchronization required" in err and "was not applied" in err
    assert any(e["level"] == "error" and e["subject"] == "WEB01" and why in e["message"] for e in lab.events())
    for p in before_points:
        assert lab.verify("WEB01", p)["identical"]
    assert st["IDLE01"]["health"] == "OK" and st["IDLE01"]["errors"] == []
    assert all(lab.verify("IDLE01", p["id"])["identical"] for p in lab.points("IDLE01")[-2:])


def test_damaged_source_log_is_never_applied(lab):
    _two_vms(lab)
    lab.run(11 * M)
    before = [p["id"] for p in lab.points("WEB01")]
    log = lab.disk_path("WEB01", 0).with_suffix(".hrl")
    assert log.stat().st_size > 1000
    flip(log, 500)
    t = lab.now
    lab.run(10 * M)
    assert lab.now == t + 10 * M
    _assert_refused_not_applied(lab, before, "the log was damaged before it was shipped")
    assert not list(lab.disk_path("WEB01", 0).parent.glob("outgoing/t*"))  # the transfer is dropped


def test_damaged_frame_on_the_link_is_never_applied(lab):
    _two_vms(lab)
    lab.run(11 * M)
    before = [p["id"] for p in lab.points("WEB01")]
    lab.set_link(mbps=0.0001)
    lab.run(5 * M)
    t = next(lab.db.query("SELECT * FROM transfers WHERE vm='WEB01' AND kind='delta'"))
    flip(lab.path / t["dir"] / "0.hrl.lz4")
    lab.set_link(mbps=100)
    lab.run(10 * M)
    _assert_refused_not_applied(lab, before, "was damaged on the way")
    assert not (lab.path / t["dir"]).exists()
    assert not [p for p in lab.points("WEB01") if p["id"] == t["id"]]


def test_damaged_initial_chunk_is_never_applied(lab, monkeypatch):
    step2(lab, retention_h=1, app_consistent_h=0)
    lab.set_link(mbps=0.01)
    lab.run_until_done(lab.protect(["WEB01"]))
    t = next(lab.db.query("SELECT * FROM transfers WHERE vm='WEB01' AND kind='initial'"))
    frame = lab.path / t["dir"] / "0.hrl.lz4"
    flip(frame)
    damaged = frame.read_bytes()
    import engine.replication.cycle as cycle

    # A frame is written into the replica only once it unsealed and checked (_unseal_frame).
    applied, written = [], []
    real_unseal, real_write = cycle._unseal_frame, cycle.replica.write_records

    def unsealed(f, key, label, size, blob=None):
        found = real_unseal(f, key, label, size, blob)
        applied.append(found[0])
        return found

    monkeypatch.setattr(cycle, "_unseal_frame", unsealed)
    monkeypatch.setattr(cycle.replica, "write_records", lambda *a, **k: written.append(a[0]) or real_write(*a, **k))
    lab.set_link(mbps=100)
    lab.run(M)
    assert applied and written and damaged not in applied
    # A re-send fixes it: the chunk is read again from the source (initial replication restarts).
    (ev,) = [e for e in lab.events_query("WEB01") if e["code"] == "DamagedTransfer"]
    assert "damaged initial-replication chunk" in ev["message"] and "starts again" in ev["message"]
    assert lab.status()["vms"][0]["errors"] == []
    lab.run(30 * M)
    assert lab.protection_state("WEB01") == "protected"
    assert lab.verify("WEB01")["identical"]


def test_damaged_point_frame_gives_a_verdict_and_stops_only_its_item(lab):
    _two_vms(lab)
    lab.run(16 * M)
    first = lab.replication.point_rows("WEB01")[0]
    frame = lab.path / first["dir"] / "1.hrl.lz4"
    flip(frame)
    r = lab.verify("WEB01", first["id"])
    assert r["identical"] is False and r["damaged"][0]["file"] == str(frame)
    assert "LZ4 checks" in r["damaged"][0]["reason"]
    later = lab.points("WEB01")[-1]["id"]  # built from the damaged point's log too
    assert lab.verify("WEB01", later)["damaged"][0]["file"] == str(frame)
    t = lab.now
    lab.run(70 * M)  # retention folds the damaged point: refused, for WEB01 only
    assert lab.now == t + 70 * M
    st = {v["name"]: v for v in lab.status()["vms"]}
    assert "retention cannot fold" in st["WEB01"]["errors"][0] and st["WEB01"]["health"] == "Critical"
    assert st["IDLE01"]["errors"] == [] and st["IDLE01"]["health"] == "OK"
    assert all(lab.verify("IDLE01", p["id"])["identical"] for p in lab.points("IDLE01"))


def test_a_flipped_offset_in_a_point_gives_a_verdict_not_a_crash(lab):
    protected(lab, "WEB01")
    lab.run(6 * M)
    pt = lab.replication.point_rows("WEB01")[-1]
    frame = lab.path / pt["dir"] / "1.hrl.lz4"
    for buf in (changelog._LEGACY.pack(2**40, 4) + b"abcd",  # a record of srlab 0.1 far past the disk
                bytearray(changelog.record(0, b"a" * 4096))):
        if isinstance(buf, bytearray):
            buf[4] ^= 0x40  # the high byte of the offset of a checksummed record
        frame.write_bytes(changelog.seal(bytes(buf), None, "x"))  # the frame itself is intact
        r = lab.verify("WEB01", pt["id"])
        assert not r["identical"] and r["damaged"][0]["file"] == str(frame)


def test_damaged_replica_base_gives_a_verdict(lab):
    protected(lab, "WEB01")
    lab.run(6 * M)
    base = lab.replication.base_path(lab.replication.item("WEB01"), 0)
    with open(base, "rb") as f:  # a byte of data the base holds
        from engine.disks import data_extents

        start, _ = next(data_extents(f.fileno(), lab.vm("WEB01").disks[0].size_bytes))
    flip(base, start + 100)
    r = lab.verify("WEB01")
    assert not r["identical"] and [d["identical"] for d in r["disks"]] == [False, True]
    os.truncate(base, base.stat().st_size - 512)  # its footer gone
    r = lab.verify("WEB01")
    assert r["damaged"][0]["file"] == str(base) and "replica base of WEB01/WEB01 is damaged" in r["damaged"][0]["reason"]


# ---- 5. environment failures are clear errors ---------------------------------------------------


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty", "foreign"])
def test_a_vault_that_is_not_a_vault_is_refused_and_left_untouched(lab, kind):
    path = lab.path
    lab.run(2 * M)
    lab.close()
    vault = path / "vault.db"
    for extra in path.glob("vault.db-*"):
        extra.unlink()
    if kind == "garbage":
        vault.write_bytes(os.urandom(50000))
    elif kind == "truncated":
        os.truncate(vault, 8192)
    elif kind == "empty":
        vault.write_bytes(b"")
    else:
        vault.unlink()
        import sqlite3

        c = sqlite3.connect(vault)
        c.execute("CREATE TABLE t(x)")
        c.commit()
        c.close()
    before = digest(vault)
    with pytest.raises(Refused) as e:
        Lab.open(path)
    assert "vault" in e.value.message and "replace the lab: srlab init --site FILE --force" in e.value.hint
    assert "\n" not in e.value.message
    assert digest(vault) == before and not list(path.glob("vault.db-*"))


def test_a_read_only_lab_can_be_read_and_refuses_changes(lab, tmp_path, monkeypatch):
    protected(lab, "WEB01")
    lab.run(6 * M)
    path = lab.path
    lab.close()
    import engine.lab

    monkeypatch.setattr(engine.lab.os, "access", lambda p, mode: mode != os.W_OK)  # chmod -R a-w, as a user
    with Lab.open(path) as ro:
        assert ro.read_only and not ro.acquire_clock()
        now = ro.now
        assert ro.status()["vms"][0]["protection"] == "protected"
        assert ro.verify("WEB01")["identical"]
        assert len(ro.export("WEB01", "latest", tmp_path / "exp")["files"]) == 2
        with pytest.raises(Refused, match="read-only: lab time cannot move"):
            ro.run(60)
        with pytest.raises(Refused, match="the lab is read-only"):
            ro.vm_power("WEB01", "stop")
        assert ro.now == now
    assert not list(path.glob(".scratch/*"))


def test_disk_full_during_a_run_stops_cleanly_and_carries_on(lab, monkeypatch):
    protected(lab, "WEB01")
    lab.run(6 * M)
    import engine.guests

    real = engine.guests.os.pwrite
    left = [150]

    def full(fd, data, offset):
        left[0] -= 1
        if left[0] < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(engine.guests.os, "pwrite", full)
    t = lab.now
    with pytest.raises(EnvironmentProblem, match=r"lab time stopped at 2026-01-05 .*: no space left on the device"):
        lab.run(30 * M)
    assert t < lab.now < t + 30 * M  # committed slices stay, the failed one is rolled back
    monkeypatch.undo()
    lab.run(15 * M)
    for p in lab.points("WEB01"):
        assert lab.verify("WEB01", p["id"])["identical"], p


def test_disk_full_at_init_leaves_nothing(tmp_path, small_site, monkeypatch):
    import engine.lab

    def full(path, *a):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(engine.lab, "create_disk", full)
    with pytest.raises(EnvironmentProblem, match="cannot create the lab at .*nothing was created: no space left"):
        Lab.create(tmp_path / "lab", small_site)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.toml"]


def test_job_ids_out_of_range(lab):
    for jid in (0, -1, 2**63, 10**30):
        with pytest.raises(InvalidInput, match=f"no job {jid}"):
            lab.job(jid)
        with pytest.raises(InvalidInput, match=f"no job {jid}"):
            lab.complete_job(jid)
    assert lab.jobs(10**30) == []


def test_link_bandwidth_must_be_finite_and_bounded(lab):
    step2(lab)
    for bad in (float("inf"), float("nan"), 1e309, 0, -1, 2e6):
        with pytest.raises(InvalidInput, match="at most 1000000 Mbps"):
            lab.set_link(mbps=bad)
    assert lab.set_link(mbps=1e6)["mbps"] == 1e6
    json.dumps(lab.resources(), allow_nan=False)
