"""Replication with real bytes: setup rules, initial and delta replication, points, proof."""

import json
import subprocess
from pathlib import Path

import lz4.frame
import pytest

from engine import InvalidInput, Lab, Refused
from engine.replication import changelog
from tests.conftest import SAMPLES, SMALL_SITE, step2

H = 3600


def setup_vault(lab, **policy):
    """STEP 2 of seed 004 up to (not including) enable protection: 5 minutes, 2 h, app 1 h."""
    step2(lab, **{"retention_h": 2, "app_consistent_h": 1, **policy})


def protected(lab, *vms, **policy):
    setup_vault(lab, **policy)
    lab.run_until_done(lab.protect(list(vms)))
    return lab


class Killed(BaseException):
    """The process dies here (not an Exception: nothing may catch it)."""


def point_frames(lab, vm):
    return sorted((lab.path / "storage").glob(f"*/{vm}/points/*/*.hrl.lz4*"))


# ---- setup rules ------------------------------------------------------------------------------

def test_setup_steps_are_jobs_with_the_seed_steps(lab):
    job = lab.register_server("SC01")
    assert lab.job(job)["state"] == "in progress"
    with pytest.raises(Refused, match="being registered"):
        lab.register_server("SC01")
    lab.run_until_done([job])
    j = lab.job(job)
    assert j["state"] == "succeeded" and all(s["state"] == "succeeded" for s in j["steps"])
    key = lab.path / lab.resources()["servers"][0]["key_file"]
    assert key.is_file() and len(key.read_bytes()) == 32
    lab.run_until_done([lab.install_agent("HV01")])
    lab.run_until_done([lab.configure_cloud("OnPremise Cloud", "azure", "mysiterecovery")])
    ids = lab.protect(["WEB01"])
    steps = [s["name"] for s in lab.job(ids[0])["steps"]]
    assert steps == ["Enable protection operations", "Validating replication target", "Enable replication",
                     "Starting initial replication", "Updating provider state"]
    assert lab.status()["vms"][0]["protection"] == "enabling protection"


def test_cloud_configuration_rules(lab):
    def refused(**kw):
        args = dict(cloud="OnPremise Cloud", target="azure", storage_account="mysiterecovery")
        args.update(kw)
        with pytest.raises(Refused) as e:
            lab.configure_cloud(**args)
        return e.value.message

    assert "SC01 is not registered" in refused()
    lab.run_until_done([lab.register_server("SC01")])
    assert "agent is not installed on HV01" in refused()
    lab.run_until_done([lab.install_agent("HV01")])
    assert "must be geo-redundant" in refused(storage_account="localonly")
    assert "no storage account named 'nope'" in refused(storage_account="nope")
    assert "a storage account is required" in refused(storage_account=None)
    assert "retention must be 0-24" in refused(retention_h=30)
    assert "cannot be longer than the recovery point retention" in refused(retention_h=1, app_consistent_h=2)
    assert "30-minute boundary" in refused(start="10:15")
    assert "copy frequency must be one of" in refused(frequency="10m")
    assert "no cloud named 'Elsewhere'" in refused(target="Elsewhere")
    with pytest.raises(InvalidInput, match="no cloud named"):
        lab.configure_cloud("Nowhere", "azure", "mysiterecovery")
    assert lab.jobs()[0]["kind"] == "install_agent"  # nothing was started


def test_network_mapping(lab):
    with pytest.raises(InvalidInput, match="no VM network"):
        lab.map_network("Nope", "AzureNetwork")
    with pytest.raises(InvalidInput, match="no network named 'Sky'"):
        lab.map_network("VirtualSwitch - FrontEnd", "Sky")
    lab.map_network("VirtualSwitch - FrontEnd", "AzureNetwork")
    with pytest.raises(Refused, match="already mapped"):
        lab.map_network("VirtualSwitch - FrontEnd", "AzureNetwork")
    assert lab.resources()["mappings"] == [{"source": "VirtualSwitch - FrontEnd", "target": "AzureNetwork"}]
    lab.unmap_network("VirtualSwitch - FrontEnd")
    assert lab.resources()["mappings"] == []
    with pytest.raises(Refused, match="is not mapped"):
        lab.unmap_network("VirtualSwitch - FrontEnd")


def test_protect_rules_and_allowed(lab):
    assert "not configured for protection" in lab.allowed("protect", "WEB01")
    setup_vault(lab)
    assert lab.allowed("protect", "WEB01") is None
    with pytest.raises(Refused, match="no NIC named 'eth9'"):
        lab.protect(["WEB01"], nic="eth9")
    with pytest.raises(Refused, match="unknown target size 'XXL'"):
        lab.protect(["WEB01"], target_size="XXL")
    lab.run_until_done(lab.protect(["WEB01"]))
    assert lab.allowed("protect", "WEB01").startswith("WEB01 is already initial replication")
    assert lab.allowed("register_server", "SC01") == "SC01 is already registered with the vault"
    st = lab.item_status(lab.vm("WEB01"))
    assert st["target_size"] == "M" and st["nic"] == "nic"
    lab.set_target("WEB01", size="L", target_name="web01-azure")
    assert lab.item_status(lab.vm("WEB01"))["target_size"] == "L"
    with pytest.raises(Refused, match="not protected"):
        lab.set_target("IDLE01", size="S")


def test_gen2_refused_for_azure_with_rule_and_fix(tmp_path, small_site):
    text = small_site.read_text().replace('name = "IDLE01"', 'name = "IDLE01"\ngeneration = 2', 1)
    site = tmp_path / "gen2.toml"
    site.write_text(text)
    with Lab.create(tmp_path / "lab2", site) as lab:
        setup_vault(lab)
        with pytest.raises(Refused) as e:
            lab.protect(["WEB01", "IDLE01"])
        assert "generation 1 only" in e.value.message and "protect to a recovery cloud" in e.value.message
        assert lab.protection_state("WEB01") == "not protected"  # all checked before any starts


# ---- the data path ----------------------------------------------------------------------------

@pytest.fixture
def small_disks_lab(tmp_path, small_site):
    """SMALL_SITE with WEB01's disks at 64 and 32 MiB (1 GB and 512 MB there): the same content and
    the same writes, in less disk for every verify to rebuild and read."""
    small_site.write_text(SMALL_SITE.replace("size_gb = 1\n", "size_gb = 0.0625\n")
                          .replace("size_gb = 0.5", "size_gb = 0.03125"))
    with Lab.create(tmp_path / "lab", small_site) as lab:
        yield lab


def test_three_hours_every_retained_point_verifies(small_disks_lab, need_tool):
    lab = small_disks_lab
    lz4_cli = need_tool("lz4")
    protected(lab, "WEB01")
    lab.run(3 * H)
    st = lab.status()["vms"][0]
    assert st["protection"] == "protected" and st["failover_state"] == "Ready" and st["health"] == "OK"
    assert st["rpo_seconds"] <= 600
    pts = lab.points("WEB01")
    # First hour: 60 / 5 = 12 points; then hourly back to the 2 h retention.
    ref = max(p["arrived"] for p in pts)  # retention runs as each point arrives
    recent = [p for p in pts if p["time"] > ref - H]
    assert len(recent) == 12
    assert all(p["time"] >= ref - 2 * H for p in pts)
    older = [p["time"] // H for p in pts if p["time"] <= ref - H]
    assert older and len(older) == len(set(older))  # beyond the first hour: one per clock hour
    # App-consistent points at the 1 h frequency.
    app = [p["time"] for p in pts if p["kind"] == "app-consistent"]
    assert app and all(b - a == H for a, b in zip(app, app[1:]))
    for p in pts:
        r = lab.verify("WEB01", p["id"])
        assert r["identical"], r
        assert r["last_transaction"] == p["last_transaction"]
    # Expired points are gone from disk: exactly the retained points' folders remain.
    dirs = sorted(d.name for d in (lab.path / "storage" / "mysiterecovery" / "WEB01" / "points").iterdir())
    assert dirs == sorted(Path(r["dir"]).name for r in lab.replication.point_rows("WEB01"))
    # The stored frames are standard LZ4 frames: the lz4 CLI tests and decompresses them.
    frames = point_frames(lab, "WEB01")
    assert frames
    subprocess.run([lz4_cli, "-t", "-m", *map(str, frames)], check=True, capture_output=True)
    out = subprocess.run([lz4_cli, "-dc", str(frames[-1])], check=True, capture_output=True).stdout
    assert out == lz4.frame.decompress(frames[-1].read_bytes())


def test_export_equals_the_source_when_the_guest_is_quiet(lab, tmp_path, need_tool):
    qemu = need_tool("qemu-img")
    protected(lab, "WEB01")
    lab.run(20 * 60)
    lab.vm_power("WEB01", "shutdown")
    lab.run(10 * 60)  # a cycle after the last write
    r = lab.export("WEB01", "latest", tmp_path / "out")
    for i, f in enumerate(r["files"]):
        assert Path(f).name == lab.disk_path("WEB01", i).name
        subprocess.run([qemu, "compare", "-s", "-f", "vpc", "-F", "vpc", f, str(lab.disk_path("WEB01", i))],
                       check=True, capture_output=True)
    with pytest.raises(Refused, match="already holds"):
        lab.export("WEB01", "latest", tmp_path / "out")


def test_encryption_at_rest(lab, need_tool):
    lz4_cli = need_tool("lz4")
    protected(lab, "WEB01", encrypt=True)
    lab.run(15 * 60)
    frames = point_frames(lab, "WEB01")
    assert frames and all(f.name.endswith(".enc") for f in frames)
    assert all(f.read_bytes().startswith(changelog.ENC_MAGIC) for f in frames)
    assert subprocess.run([lz4_cli, "-t", str(frames[0])], capture_output=True).returncode != 0
    assert lab.verify("WEB01")["identical"]
    # Without the key made at registration, encrypted data cannot be used.
    key = lab.path / lab.resources()["servers"][0]["key_file"]
    key.unlink()
    with pytest.raises(Refused, match="data-encryption key"):
        lab.verify("WEB01")


def test_scheduled_start_and_initial_progress_on_a_slow_link(lab):
    setup_vault(lab, start="21:30")
    lab.set_link(mbps=0.1)  # 12.5 KB/s: ~3 MiB of content takes minutes
    lab.run_until_done(lab.protect(["WEB01"]))
    assert lab.protection_state("WEB01") == "initial replication pending"
    assert "starts 2026-01-05 21:30:00" in lab.status()["vms"][0]["protection"]
    lab.run(12 * H)
    assert lab.protection_state("WEB01") == "initial replication pending"
    lab.run(H)  # past 21:30
    progress = []
    for _ in range(6):
        lab.run(60)
        progress.append(lab.status()["vms"][0]["progress"])
    assert progress == sorted(progress) and 0 < progress[0] < progress[-1] < 100
    lab.set_link(mbps=100)
    lab.run(10 * 60)
    assert lab.protection_state("WEB01") == "protected"
    assert lab.verify("WEB01")["identical"]


def test_link_down_rpo_grows_health_degrades_then_recovers(lab):
    protected(lab, "WEB01", retention_h=0, app_consistent_h=0)
    lab.run(15 * 60)
    assert lab.status()["vms"][0]["health"] == "OK"
    assert len(lab.points("WEB01")) == 1  # retention 0: only the latest
    lab.set_link(state="down")
    lab.run(20 * 60)
    assert lab.status()["vms"][0]["health"] == "Warning"
    lab.run(20 * 60)
    st = lab.status()["vms"][0]
    assert st["health"] == "Critical" and st["rpo_seconds"] > 30 * 60
    lab.set_link(state="up")
    lab.run(11 * 60)
    st = lab.status()["vms"][0]
    assert st["health"] == "OK"
    assert lab.verify("WEB01")["identical"]


def test_killed_mid_arrival_claims_no_point(lab, monkeypatch):
    protected(lab, "WEB01")
    lab.run(10 * 60)
    before = [p["id"] for p in lab.points("WEB01")]

    import engine.replication.cycle as cycle

    real_replace = cycle.os.replace

    def die(*a, **k):
        raise Killed()

    monkeypatch.setattr(cycle.os, "replace", die)
    with pytest.raises(Killed):
        lab.run(10 * 60)
    monkeypatch.setattr(cycle.os, "replace", real_replace)
    path = lab.path
    lab.close()
    with Lab.open(path) as again:
        # Every point claimed has its data; the interrupted one is not claimed.
        assert [p["id"] for p in again.points("WEB01")] == before
        for r in again.replication.point_rows("WEB01"):
            assert (again.path / r["dir"]).is_dir()
        again.run(15 * 60)
        assert len(again.points("WEB01")) > len(before)
        assert again.verify("WEB01")["identical"]


@pytest.mark.heavy
def test_sample_lab_three_hours(tmp_path, need_tool):
    """Issue 3's done-when: the sample lab, 5-minute policy, 2-hour retention, for 3 hours."""
    lz4_cli = need_tool("lz4")
    with Lab.create(tmp_path / "lab", SAMPLES / "hyperv-to-azure.toml") as lab:
        setup_vault(lab)
        vms = ["MYBSD01", "MYWSV01", "MYSQL01"]
        lab.run_until_done(lab.protect(vms))
        lab.run(3 * H)
        for vm in vms:
            pts = lab.points(vm)
            assert sum(p["kind"] == "app-consistent" for p in pts) >= 2
            for p in pts:
                assert lab.verify(vm, p["id"])["identical"], (vm, p)
            kept = {Path(r["dir"]).name for r in lab.replication.point_rows(vm)}
            on_disk = {d.name for d in next((lab.path / "storage").glob(f"*/{vm}/points")).iterdir()}
            assert kept == on_disk
        subprocess.run([lz4_cli, "-t", "-m", *map(str, (lab.path / "storage").glob("*/*/points/*/*.lz4"))],
                       check=True, capture_output=True)
        assert json.loads(json.dumps(lab.status()))["vms"][0]["protection"] == "protected"


def test_disable_protection_removes_the_replica(lab):
    protected(lab, "WEB01")
    lab.run(15 * 60)
    store = lab.path / lab.replication.item("WEB01")["store"]
    assert store.is_dir()
    assert "not protected" in lab.allowed("unprotect", "IDLE01")
    lab.run_until_done(lab.unprotect(["WEB01"]))
    assert lab.protection_state("WEB01") == "not protected"
    assert not store.exists() and lab.points("WEB01") == []
    assert not any(lab.disk_path("WEB01", 0).parent.glob("*.hrl"))
    with pytest.raises(Refused, match="cloud OnPremise Cloud is not configured|not protected"):
        lab.unprotect(["WEB01"])
    # With no protected VM left the cloud's settings can change, and protection starts over.
    lab.run_until_done([lab.configure_cloud("OnPremise Cloud", "azure", "mysiterecovery", frequency="15m")])
    lab.run_until_done(lab.protect(["WEB01"]))
    lab.run(20 * 60)
    assert lab.verify("WEB01")["identical"]


def test_killed_after_a_log_is_frozen_loses_no_write(lab, monkeypatch):
    """Ctrl-C (or kill) after a copy cycle froze the logs but before its slice committed: the
    frozen writes must still reach the replica, so every later point verifies."""
    protected(lab, "WEB01")  # 5 minutes: a frozen log holds writes of several committed slices
    lab.run(5 * 60)

    import engine.replication.cycle as cycle

    real = cycle.Replication._enqueue

    def die(self, vm, kind, *a, **k):
        if kind == "delta":
            raise Killed()
        return real(self, vm, kind, *a, **k)

    monkeypatch.setattr(cycle.Replication, "_enqueue", die)
    with pytest.raises(Killed):
        lab.run(5 * 60)
    monkeypatch.setattr(cycle.Replication, "_enqueue", real)
    path = lab.path
    lab.close()
    with Lab.open(path) as again:
        again.run(15 * 60)
        for p in again.points("WEB01"):
            assert again.verify("WEB01", p["id"])["identical"], p


def test_several_expired_points_merge_in_order(lab):
    """Points that expire together are folded in time order, however many at once: here the
    retention is applied 90 minutes ahead, so all but one point of each clock hour expire."""
    protected(lab, "WEB01", retention_h=3, app_consistent_h=0)
    lab.run(115 * 60)
    before = lab.points("WEB01")
    item = lab.replication.item("WEB01")
    lab.replication.apply_retention(item, lab.now + 90 * 60)
    kept = lab.points("WEB01")
    assert len(before) - len(kept) >= 3
    for p in kept:
        assert lab.verify("WEB01", p["id"])["identical"], p


def test_killed_after_an_arrival_moved_its_frames(lab, monkeypatch):
    """The frames of an arriving point were moved into the store, then the slice was rolled
    back: the redone arrival finds them there and the point is claimed once, with its data."""
    protected(lab, "WEB01")
    lab.run(10 * 60)

    import engine.replication.cycle as cycle

    real_replace = cycle.os.replace

    def move_then_die(src, dst):
        real_replace(src, dst)
        if "/points/" in str(dst):
            raise Killed()

    monkeypatch.setattr(cycle.os, "replace", move_then_die)
    with pytest.raises(Killed):
        lab.run(10 * 60)
    monkeypatch.undo()
    path = lab.path
    lab.close()
    with Lab.open(path) as again:
        again.run(10 * 60)
        pts = again.points("WEB01")
        assert len({p["time"] for p in pts}) == len(pts)
        for p in pts:
            assert again.verify("WEB01", p["id"])["identical"], p


def test_the_clock_holder_sweeps_what_killed_processes_left(lab):
    protected(lab, "WEB01")
    lab.run(12 * 60)
    pts = lab.replication.point_rows("WEB01")
    store = (lab.path / pts[0]["dir"]).parent
    outgoing = lab.disk_path("WEB01", 0).parent / "outgoing"
    orphans = [outgoing / "t9999", store / "p9998"]
    for d in orphans:
        d.mkdir(parents=True)
        (d / "0.hrl.lz4").write_bytes(b"left over")
    path = lab.path
    lab.close()
    with Lab.open(path) as again:
        assert all(d.exists() for d in orphans)  # opening (e.g. srlab status) touches nothing
        assert again.acquire_clock()
        assert not any(d.exists() for d in orphans)
        assert all((again.path / r["dir"]).is_dir() for r in again.replication.point_rows("WEB01"))
        again.run(10 * 60)
        for p in again.points("WEB01"):
            assert again.verify("WEB01", p["id"])["identical"]
