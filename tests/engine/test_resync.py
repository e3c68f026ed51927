"""Resynchronization on real bytes: only the differing 4 KiB blocks travel, a new point that
verifies, every retained point still verifying, resuming after a kill or a fault, damaged points
and staged files never applied, the off-hours schedule, and every refusal."""

import json
import os
import random

import pytest
from click.testing import CliRunner

from engine import InvalidInput, Lab, Protection, Refused, resync, store
from engine.replication import changelog
from engine.replication import resync as chunks
from tests.conftest import step2
from tui.cli import main

H = 3600
MIB = 1024 * 1024


class Killed(BaseException):
    """The process dies here (not an Exception: nothing may catch it)."""


def protected(lab, vm="WEB01", minutes=20, **policy):
    step2(lab, **{"retention_h": 2, **policy})
    lab.run_until_done(lab.protect([vm]))
    lab.run(minutes * 60)
    assert lab.protection_state(vm) == Protection.PROTECTED
    return lab


def quiet(lab, vm="WEB01"):
    """Shut the VM down and let a copy interval ship its last writes: the replica equals the source."""
    lab.vm_power(vm, "shutdown")
    lab.run(10 * 60)


def lose_writes(lab, blocks: int, seed=1, vm="WEB01", disk=0) -> int:
    """`blocks` scattered 4 KiB writes to a disk whose change log is lost (as the 50% rule drops it):
    only a resync can find them. Returns the bytes changed."""
    rng = random.Random(seed)
    path = lab.disk_path(vm, disk)
    size = lab.vm(vm).disks[disk].size_bytes
    fd = os.open(path, os.O_RDWR)
    try:
        for b in rng.sample(range(size // chunks.BLOCK), blocks):
            os.pwrite(fd, rng.randbytes(chunks.BLOCK), b * chunks.BLOCK)
    finally:
        os.close(fd)
    lab.source_fingerprints.forget(path)
    return blocks * chunks.BLOCK


def report(lab, job):
    j = lab.job(job)
    assert j["state"] == "succeeded", j
    return j["report"]["resync"]


def all_points_verify(lab, vm="WEB01"):
    pts = lab.points(vm)
    assert pts
    for p in pts:
        v = lab.verify(vm, p["id"])
        assert v["identical"] and not v["damaged"], v


def test_resync_sends_only_the_differing_blocks_and_makes_a_point_that_verifies(lab):
    protected(lab)
    quiet(lab)
    before = lab.points("WEB01")
    changed = lose_writes(lab, 40)
    (job,) = lab.resync(["WEB01"])
    assert lab.item_status(lab.vm("WEB01"))["protection"] == "resynchronization in progress 0%"
    lab.run_until_done([job])
    r = report(lab, job)
    disk_bytes = sum(d.size_bytes for d in lab.vm("WEB01").disks)
    assert r["compared_bytes"] == disk_bytes and r["chunks"] == disk_bytes // MIB
    assert r["blocks"] == 40 and r["differing_chunks"] <= 40
    # the wire: 16 bytes a chunk of the replica's data (or a run of its holes), 8 a block of a
    # differing chunk that has data there, the blocks, an empty log (exact sums: the next test)
    assert 16 <= r["checksum_bytes"] < r["chunks"] * 16 + r["differing_chunks"] * 256 * 8
    assert changed <= r["block_bytes"] < changed * 1.05
    assert r["sent_bytes"] == r["checksum_bytes"] + r["block_bytes"] + r["log_bytes"] and r["log_bytes"] < 200
    assert r["sent_bytes"] < r["full_copy_bytes"] / 5  # far below a full copy
    assert r["share_of_full_copy"] == round(r["sent_bytes"] * 100 / r["full_copy_bytes"], 2)
    new = lab.points("WEB01")[-1]
    assert r["point"] == new["id"] and new["id"] not in {p["id"] for p in before}
    assert lab.verify("WEB01")["identical"]
    item = lab.item_status(lab.vm("WEB01"))
    assert item["protection"] == Protection.PROTECTED and not item["errors"]
    assert "resynchronization completed" in lab.events(5)[0]["message"]
    # delta replication resumes: the VM writes again, the next cycles ship, every point verifies
    lab.vm_power("WEB01", "start")
    lab.run(20 * 60)
    assert lab.points("WEB01")[-1]["time"] > new["time"]
    all_points_verify(lab)


def test_compare_sends_a_checksum_per_chunk_of_data_and_one_entry_per_run_of_holes(tmp_path):
    """Level 1 and 2 on two sparse 8 MiB files: the replica has data in chunks 0 and 5 only."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for p in (src, dst):
        with open(p, "wb") as f:
            f.truncate(8 * MIB)
            os.pwrite(f.fileno(), b"x" * 4096, 0)
            os.pwrite(f.fileno(), b"y" * 4096, 5 * MIB)
    with open(src, "r+b") as f:
        os.pwrite(f.fileno(), b"a" * 4096, 3 * MIB + 8192)  # in a hole of the replica
        os.pwrite(f.fileno(), b"b" * 4096, 5 * MIB + 4096)  # next to the replica's data
    with open(src, "rb") as a, open(dst, "rb") as b:
        batch = chunks.compare(a.fileno(), b.fileno(), 8 * MIB, 0, 8 * MIB, 1 << 30)
    # chunks 0 and 5: a checksum each; holes 1-4 and 6-7: an entry each; chunk 5 differs: its
    # 256 block checksums; chunk 3 lies in a hole: compared with zeros, no block checksums
    assert (batch.chunks, batch.differing, batch.blocks) == (8, 2, 2)
    assert batch.checksum_bytes == 4 * 16 + 256 * 8
    assert [off for off, _ in changelog.records(bytes(batch.records))] == [3 * MIB + 8192, 5 * MIB + 4096]


def test_a_scattered_one_percent_change_sends_about_one_percent_not_whole_chunks(lab):
    protected(lab, encrypt=True)  # the blocks travel sealed: LZ4, then AES-GCM
    quiet(lab)
    size = lab.vm("WEB01").disks[0].size_bytes
    changed = lose_writes(lab, size // chunks.BLOCK // 100)  # 1% of the disk, scattered
    (job,) = lab.resync(["WEB01"])
    lab.run_until_done([job])
    r = report(lab, job)
    assert r["blocks"] == changed // chunks.BLOCK
    assert r["differing_chunks"] > 500  # most 1 MiB chunks hold a change ...
    assert r["sent_bytes"] < 1.3 * changed  # ... yet about the changed bytes travel
    assert r["sent_bytes"] < r["differing_chunks"] * MIB / 50  # not whole chunks
    assert lab.verify("WEB01")["identical"]
    assert any(lab.path.glob("storage/*/WEB01/points/*/*.enc"))


def test_resync_resumes_where_it_stopped_after_the_process_is_killed(lab, monkeypatch):
    protected(lab, minutes=30)
    lose_writes(lab, 30, disk=1)
    monkeypatch.setattr(resync, "READ_RATE", 8 * MIB)  # a slow disk: the compare spans several slices
    (job,) = lab.resync(["WEB01"])
    lab.run(60)  # the prerequisites (20 s), then 40 s of compare
    row = dict(next(lab.db.query("SELECT * FROM resyncs WHERE vm='WEB01'")))
    assert row["offset"] == 40 * 8 * MIB and 0 < resync.progress(lab, lab.vm("WEB01")) < 100
    path = lab.path
    lab.close()  # the process stops; the next one goes on from the cursor
    lab = Lab.open(path)
    try:
        assert dict(next(lab.db.query("SELECT * FROM resyncs WHERE vm='WEB01'"))) == row
        real = resync._compare

        def dies(*a, **k):
            real(*a, **k)  # chunks compared, blocks staged durably, the cursor moved: not committed
            raise Killed()

        monkeypatch.setattr(resync, "_compare", dies)
        with pytest.raises(Killed):
            lab.run(60)
        monkeypatch.setattr(resync, "_compare", real)
        lab.close()
        lab = Lab.open(path)
        assert dict(next(lab.db.query("SELECT * FROM resyncs WHERE vm='WEB01'"))) == row  # rolled back
        lab.run_until_done([job])
        r = report(lab, job)
        total = sum(d.size_bytes for d in lab.vm("WEB01").disks)
        assert r["compared_bytes"] == total  # the killed slice's work was redone, nothing twice
        assert r["blocks"] >= 30
        assert lab.verify("WEB01")["identical"]
        assert not list(lab.path.glob("storage/*/WEB01/resync"))  # the staged data is gone
    finally:
        lab.close()


def test_a_fault_pauses_the_resync_once_and_it_continues_where_it_stopped(lab, monkeypatch):
    protected(lab)
    monkeypatch.setattr(resync, "READ_RATE", 8 * MIB)
    (job,) = lab.resync(["WEB01"])
    lab.run(60)
    lab.set_link(state="down")
    at = resync.progress(lab, lab.vm("WEB01"))
    lab.run(30 * 60)
    assert resync.progress(lab, lab.vm("WEB01")) == at and lab.job(job)["state"] == "in progress"
    paused = [e for e in lab.events(50) if "resynchronization paused" in e["message"]]
    assert len(paused) == 1 and paused[0]["code"] == "NetworkError" and paused[0]["action"]
    lab.set_link(state="up")
    lab.run_until_done([job])
    assert lab.job(job)["state"] == "succeeded"
    assert any("resynchronization resumed" in e["message"] for e in lab.events(50))
    assert lab.verify("WEB01")["identical"]


def test_the_link_bandwidth_limits_what_a_slice_sends(lab):
    protected(lab)
    quiet(lab)
    lab.set_link(mbps=1)  # 125,000 bytes a lab second
    lose_writes(lab, 400, disk=1)  # about 1.6 MB of blocks: more than 12 s of this link
    (job,) = lab.resync(["WEB01"])
    lab.run_until_done([job])
    j = lab.job(job)
    compare = next(s for s in j["steps"] if s["name"].startswith("Compare"))
    assert compare["duration"] * 125_000 >= j["report"]["resync"]["sent_bytes"] - j["report"]["resync"]["log_bytes"]
    assert lab.verify("WEB01")["identical"]


def test_a_damaged_point_is_dropped_and_the_resync_ends_identical(lab):
    protected(lab, minutes=40)
    pts = lab.points("WEB01")
    bad = pts[-3]
    frame = next((lab.path / next(lab.db.query("SELECT dir FROM points WHERE id=?", [bad["id"]]))["dir"]).iterdir())
    data = bytearray(frame.read_bytes())
    data[len(data) // 2] ^= 0xFF
    frame.write_bytes(bytes(data))
    assert not lab.verify("WEB01")["identical"]
    (job,) = lab.resync(["WEB01"])
    lab.run_until_done([job])
    r = report(lab, job)
    # the damaged point and every later one (a log still on the wire at the start arrived since)
    assert r["dropped_points"][:3] == [p["id"] for p in pts[-3:]] and r["base_point"] == pts[-4]["id"]
    said = next(e for e in lab.events(20) if "is damaged" in e["message"])
    assert frame.name in said["message"] and said["code"] == "ReplicaInvalid"
    assert not frame.exists()  # its folder went once the drop was committed
    kept = {p["id"] for p in lab.points("WEB01")}
    assert not kept & set(r["dropped_points"])
    all_points_verify(lab)


def test_a_damaged_base_starts_the_replica_afresh_a_full_copy(lab):
    protected(lab)
    base = next(lab.path.glob("storage/*/WEB01/0-*.vhd"))
    with open(base, "r+b") as f:
        f.seek(-512, os.SEEK_END)
        f.write(b"\xde\xad" * 256)
    (job,) = lab.resync(["WEB01"])
    lab.run_until_done([job])
    r = report(lab, job)
    assert r["fresh_base"] and r["base_point"] is None and r["dropped_points"]
    assert r["block_bytes"] > r["full_copy_bytes"] * 0.4  # the data travels again (compressed)
    assert [p["id"] for p in lab.points("WEB01")] == [r["point"]]
    assert lab.verify("WEB01")["identical"]
    lab.run(15 * 60)
    all_points_verify(lab)


def test_a_staged_file_that_fails_its_checksum_is_never_applied(lab, monkeypatch):
    protected(lab)
    quiet(lab)
    lose_writes(lab, 20, disk=0)
    monkeypatch.setattr(resync, "READ_RATE", 16 * MIB)
    (job,) = lab.resync(["WEB01"])
    lab.run(20 + 70)  # the first disk is compared and staged; the second is not done yet
    staged = sorted(f for f in lab.path.glob("storage/*/WEB01/resync/*") if chunks.parse_staged(f.name))[0]
    data = bytearray(staged.read_bytes())
    data[-8] ^= 0xFF
    staged.write_bytes(bytes(data))
    lab.run_until_done([job])
    assert any("fails its checks" in e["message"] and staged.name in e["message"] for e in lab.events(30))
    r = report(lab, job)
    assert r["compared_bytes"] > sum(d.size_bytes for d in lab.vm("WEB01").disks)  # compared again
    assert lab.verify("WEB01")["identical"]


def test_automatic_resync_at_the_off_hours_time(lab):
    protected(lab)  # 09:27
    assert lab.resync_schedule() == "22:00"
    lab.set_resync_schedule("10:00")
    with store.transaction(lab.db):  # what the 50% rule leaves: the log dropped, a resync needed
        lab.db.execute("UPDATE items SET resync_required=1, error='the change log reached 50%', "
                       "error_code='ResyncRequired' WHERE vm='WEB01'")
        lab.replication.drop_pending("WEB01")
    lab.replication.after_commit(lab.now)
    lab.run(30 * 60)  # 09:57: not yet
    assert not [j for j in lab.jobs() if j["kind"] == "resync"]
    lab.run(10 * 60)
    (job,) = [j for j in lab.jobs() if j["kind"] == "resync"]
    assert 10 * H <= job["started"] % (24 * H) < 10 * H + 60
    assert lab.job(job["id"])["state"] == "succeeded"
    assert any("automatic, at the vault's off-hours time 10:00" in e["message"] for e in lab.events(30))
    item = dict(next(lab.db.query("SELECT * FROM items WHERE vm='WEB01'")))
    assert (item["resync_required"], item["error"], item["error_code"], item["state"]) == (0, "", "", "protected")
    assert lab.verify("WEB01")["identical"]
    lab.set_resync_schedule("off")  # no more automatic resyncs
    lab.vm_power("WEB01", "shutdown")
    with store.transaction(lab.db):
        lab.db.execute("UPDATE items SET resync_required=1 WHERE vm='WEB01'")
    lab.run(24 * H)
    assert len([j for j in lab.jobs() if j["kind"] == "resync"]) == 1


def test_refusals_say_why(lab):
    with pytest.raises(Refused, match="WEB01 is not protected"):
        lab.resync(["WEB01"])
    with pytest.raises(InvalidInput, match="no VM named"):
        lab.resync(["NOPE"])
    step2(lab, retention_h=2)
    lab.run_until_done(lab.protect(["WEB01"]))
    assert "a resynchronization needs a protected item" in lab.allowed("resync", "WEB01")  # still initial
    lab.run(20 * 60)
    assert lab.allowed("resync", "WEB01") is None
    with pytest.raises(InvalidInput, match="named twice"):
        lab.resync(["WEB01", "web01"])
    lab.set_link(state="down")
    with pytest.raises(Refused, match="link") as e:
        lab.resync(["WEB01"])
    assert e.value.hint.startswith("first:")
    lab.set_link(state="up")
    lab.resync(["WEB01"])
    with pytest.raises(Refused, match="already being resynchronized"):
        lab.resync(["WEB01"])
    assert "being resynchronized" in lab.allowed("planned_failover", "WEB01")
    for bad in ("25:00", "7", "12:60", "noon", ""):
        with pytest.raises(InvalidInput, match="off-hours time"):
            lab.set_resync_schedule(bad)
    assert lab.set_resync_schedule(" 2:30 ") == "02:30" and lab.resources()["resync_schedule"] == "02:30"


def test_an_unplanned_failover_during_a_resync_abandons_it(lab, monkeypatch):
    protected(lab)
    monkeypatch.setattr(resync, "READ_RATE", 8 * MIB)
    (job,) = lab.resync(["WEB01"])
    lab.run(60)
    assert lab.allowed("unplanned_failover", "WEB01") is None  # a disaster does not wait for a resync
    (fo,) = lab.failover(["WEB01"], "unplanned")
    lab.run_until_done([fo])
    assert lab.job(fo)["state"] == "succeeded" and lab.job(job)["state"] == "failed"
    assert not list(lab.db.query("SELECT * FROM resyncs"))
    lab.run(5 * 60)
    assert not list(lab.path.glob("storage/*/WEB01/resync"))


def test_disabling_protection_during_a_resync(lab, monkeypatch):
    protected(lab)
    monkeypatch.setattr(resync, "READ_RATE", 8 * MIB)
    (job,) = lab.resync(["WEB01"])
    lab.run(60)
    lab.run_until_done(lab.unprotect(["WEB01"]))
    assert lab.protection_state("WEB01") == Protection.NOT_PROTECTED
    assert lab.job(job)["state"] == "failed" and not list(lab.db.query("SELECT * FROM resyncs"))


def test_the_command_line(tmp_path, small_site):
    runner = CliRunner()

    def cli(*args, code=0):
        result = runner.invoke(main, ["--lab", str(tmp_path / "lab"), *args])
        assert "Traceback" not in result.output
        assert result.exit_code == code, result.output
        return result.output

    cli("init", "--site", str(small_site))
    assert "give the VMs to resynchronize" in cli("resync", code=2)
    assert "not both" in cli("resync", "WEB01", "--schedule", "02:00", code=2)
    assert "no VM named" in cli("resync", "NOPE", code=2)
    assert "WEB01 is not protected" in cli("resync", "WEB01", code=1)
    assert "off-hours time" in cli("resync", "--schedule", "24:00", code=2)
    assert "at 02:00" in cli("resync", "--schedule", "2:00")
    assert "automatic at 02:00" in cli("resources")
    assert "off" in cli("resync", "--schedule", "off")
    with Lab.open(tmp_path / "lab") as lab:
        protected(lab)
    out = cli("resync", "WEB01")
    assert "(Resynchronize): succeeded" in out and "of a full copy" in out and "new recovery point" in out
    job = json.loads(cli("jobs", "--json"))[0]
    assert job["kind"] == "resync" and "Compare checksums and send differences" in cli("job", str(job["id"]))
    out = cli("resync", "WEB01", "--no-wait")
    assert "in progress" in out
    assert "already being resynchronized" in cli("resync", "WEB01", code=1)


@pytest.mark.heavy
def test_kill_9_during_resyncs_never_leaves_a_point_without_its_data(tmp_path, small_site):
    """Real SIGKILLs (tests/crash_child.py) at random durable file operations of `srlab run` while
    resyncs go on: every point the lab claims verifies, and the next process finishes the resync."""
    from tests.engine.test_crash import child, ops, points_verify

    rng = random.Random(9)
    path = tmp_path / "lab"
    small_site.write_text(small_site.read_text().replace("size_gb = 1\n", "size_gb = 0.0625\n")
                          .replace("size_gb = 0.5", "size_gb = 0.03125"))
    with Lab.create(path, small_site) as lab:
        protected(lab, minutes=15)
        lab.resync(["WEB01"])
    full = ops(child(0, "--lab", str(path), "run", "--for", "1m"))
    kills = 0
    for trial in range(10):
        with Lab.open(path) as lab:
            if lab.protection_state("WEB01") == Protection.PROTECTED:
                lose_writes(lab, 8, seed=trial)
                lab.resync(["WEB01"])
        r = child(rng.randint(1, max(2, full * 2 // 3)), "--lab", str(path), "run", "--for", "1m")
        assert r.returncode in (0, -9) and "Traceback" not in r.stderr, r.stderr
        kills += r.returncode == -9
        points_verify(path)
    assert kills >= 6, kills
    with Lab.open(path) as lab:
        lab.run(5 * 60)
        assert lab.protection_state("WEB01") == Protection.PROTECTED
        done = [j["state"] for j in lab.jobs() if j["kind"] == "resync"]
        assert done.count("succeeded") >= 2 and "in progress" not in done, done
    points_verify(path, every=True)
