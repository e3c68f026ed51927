"""Physical servers -> Azure (seed 003): the configuration server, push and manual installs of the
mobility service, policies, bytes through a process server's cache (compressed and encrypted
there), a full cache, blocked ports, group-consistent points, and failover proven by bytes."""

from __future__ import annotations

import re
from pathlib import Path

import lz4.frame
import pytest

from engine import Lab
from engine.errors import InvalidInput, Refused
from engine.replication import changelog

from ..conftest import SAMPLES


def small_physical_site(where: Path, cache_mb: float | None = None, push_account: bool = True) -> Path:
    """The physical sample with 1 GiB disks (the same names and components)."""
    text = (SAMPLES / "physical-to-azure.toml").read_text()
    text = re.sub(r"size_gb = \d+", "size_gb = 1", text)
    text = re.sub(r"content_mb = \d+", "content_mb = 2", text)
    if cache_mb is not None:
        text = re.sub(r"cache_mb = \d+", f"cache_mb = {cache_mb}", text)
    if not push_account:
        text = re.sub(r"push_account = .*\n", "", text)
    p = where / "physical.toml"
    p.write_text(text)
    return p


def done(lab, ids):
    lab.run_until_done(ids)
    for i in ids:
        assert lab.job(i)["state"] == "succeeded", lab.job(i)
    return [lab.job(i) for i in ids]


def set_up(lab, push=("WEB01", "APP01"), manual=("SQL01", "SQL02")):
    if not any(s["registered"] for s in lab.resources()["servers"]):
        done(lab, [lab.register_server("CS01")])
    done(lab, lab.install_mobility(list(push), push=True) + lab.install_mobility(list(manual)))
    lab.create_policy("Gold")
    lab.associate_policy("Gold", "CS01")


def protect(lab, minutes=30):
    set_up(lab)
    done(lab, lab.protect(["WEB01", "APP01"], policy="Gold")
         + lab.protect(["SQL01", "SQL02"], policy="Gold", process_server="PS02", group="SQLGroup"))
    lab.run(minutes * 60)


@pytest.fixture
def lab(tmp_path):
    lab = Lab.create(tmp_path / "lab", small_physical_site(tmp_path))
    yield lab
    lab.close()


def component(lab, ps: str) -> dict:
    return next(p for p in lab.components()[0]["process_servers"] if p["name"] == ps)


def test_the_configuration_server_registers_and_pushes_the_mobility_service(lab):
    with pytest.raises(Refused, match="configuration server CS01 is not registered"):
        lab.install_mobility(["WEB01"], push=True)
    job = done(lab, [lab.register_server("CS01")])[0]
    assert job["name"] == "CS01 (Register configuration server)"
    assert "Install the configuration server, process server and master target" in [s["name"] for s in job["steps"]]
    key = next(s for s in lab.resources()["servers"] if s["name"] == "CS01")["key_file"]
    assert (lab.path / key).stat().st_size == 32
    done(lab, lab.install_mobility(["WEB01"], push=True) + lab.install_mobility(["SQL01"]))
    servers = {s["name"]: s for s in lab.components()[0]["servers"]}
    assert (servers["WEB01"]["mobility"], servers["WEB01"]["method"]) == ("installed", "push")
    assert (servers["SQL01"]["mobility"], servers["SQL01"]["method"]) == ("installed", "manual")
    assert servers["APP01"]["mobility"] == "not installed"
    assert any("pushed by process server CS01 with account CONTOSO\\asr-push" in e["message"] for e in lab.events(1000))
    with pytest.raises(Refused, match="already installed on WEB01"):
        lab.install_mobility(["WEB01"])
    lab.vm_power("APP01", "stop")
    with pytest.raises(Refused, match="APP01 is off: the process server pushes"):
        lab.install_mobility(["APP01"], push=True)
    with pytest.raises(InvalidInput, match="no VM named .CS01."):
        lab.install_mobility(["CS01"])


def test_a_push_install_needs_the_sites_account(tmp_path):
    lab = Lab.create(tmp_path / "lab", small_physical_site(tmp_path, push_account=False))
    done(lab, [lab.register_server("CS01")])
    with pytest.raises(Refused, match="no push_account in the site file"):
        lab.install_mobility(["WEB01"], push=True)
    done(lab, lab.install_mobility(["WEB01"]))  # by hand: no account needed
    lab.close()


def test_a_policy_is_made_with_its_failback_policy_then_associated(lab):
    done(lab, [lab.register_server("CS01")])
    with pytest.raises(InvalidInput, match="retention must be 0-72 hours for physical servers"):
        lab.create_policy("Bad", retention_h=100)
    lab.create_policy("Gold", retention_h=12, app_consistent_h=2)
    assert {(p["name"], p["kind"]) for p in lab.policies()} == {("Gold", "replication"), ("Gold-failback", "failback")}
    with pytest.raises(Refused, match="a policy named Gold exists"):
        lab.create_policy("Gold")
    with pytest.raises(Refused, match="Gold-failback is a failback policy"):
        lab.associate_policy("Gold-failback", "CS01")
    row = lab.associate_policy("Gold", "cs01")
    assert (row["container"], row["storage_account"], row["target"], row["retention_h"], row["encrypt"]) == \
        ("CS01", "physrecovery", "Japan East", 12, 1)
    assert {p["server"] for p in lab.policies()} == {"CS01"}
    lab.create_policy("Silver")
    with pytest.raises(Refused, match="CS01 has replication policy Gold associated"):
        lab.associate_policy("Silver", "CS01")


def test_protection_needs_the_mobility_service_and_the_policy(lab):
    done(lab, [lab.register_server("CS01")])
    with pytest.raises(Refused) as e:
        lab.protect(["WEB01"], policy="Gold")
    assert "mobility service is not installed on WEB01" in e.value.message
    assert "CS01 has no replication policy associated" in e.value.message
    set_up(lab)
    with pytest.raises(Refused, match="no process server named 'PS09'"):
        lab.protect(["WEB01"], policy="Gold", process_server="PS09")
    with pytest.raises(Refused, match="has policy Gold associated, not 'Silver'"):
        lab.protect(["WEB01"], policy="Silver")
    with pytest.raises(InvalidInput, match="apply to Azure VMs only"):
        lab.protect(["WEB01"], target_region="Japan West")


def test_bytes_pass_through_the_process_servers_cache_compressed_and_encrypted(lab):
    protect(lab, minutes=10)
    lab.fault_inject("port-blocked", "PS02:443-out")
    lab.run(10 * 60)
    ps02, cs01 = component(lab, "PS02"), component(lab, "CS01")
    assert ps02["bytes"] > 0 and ps02["shipments"] > 0 and ps02["raw_bytes"] > ps02["bytes"]  # compressed
    assert cs01["shipments"] <= 2  # CS01's servers' batches leave every 30 s
    cache = lab.path / ps02["cache_dir"]
    frames = sorted(cache.glob("SQL01/t*/*"))
    assert frames and all(f.name.endswith(".hrl.lz4.enc") for f in frames)
    blob = frames[-1].read_bytes()
    assert blob.startswith(changelog.ENC_MAGIC)  # encrypted: no LZ4 frame header, no guest text in the clear
    with pytest.raises(RuntimeError):
        lz4.frame.decompress(blob)
    key = (lab.path / next(s for s in lab.resources()["servers"] if s["name"] == "CS01")["key_file"]).read_bytes()
    disk = frames[-1].name.split(".")[0]
    records = changelog.unseal(blob, key, f"SQL01/{lab.vm('SQL01').disks[int(disk)].name}")
    assert changelog.records(records)  # the server's writes, whole once decrypted and decompressed
    assert sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) == ps02["bytes"]
    item = lab.item_status(lab.vm("SQL01"))
    assert "process server PS02 cannot send to Azure storage: outbound port 443 is blocked" in item["health_reason"]
    assert lab.item_status(lab.vm("WEB01"))["health"] == "OK"
    lab.fault_clear("port-blocked")
    lab.run(5 * 60)
    assert component(lab, "PS02")["shipments"] <= 4
    assert lab.verify("SQL01")["identical"]


def test_a_full_cache_throttles_its_servers_until_it_drains(tmp_path):
    lab = Lab.create(tmp_path / "lab", small_physical_site(tmp_path, cache_mb=0.05))
    protect(lab, minutes=10)
    lab.fault_inject("port-blocked", "PS02:443-out")
    lab.run(30 * 60)
    use = component(lab, "PS02")
    assert use["full"]
    waiting = use["shipments"]
    lab.run(30 * 60)
    assert component(lab, "PS02")["shipments"] == waiting  # throttled: nothing more enters the cache
    health = lab.item_status(lab.vm("SQL01"))
    events = [e["message"] for e in lab.events(1000) if e["code"] == "ProcessServerCacheFull"]
    assert any("process server PS02's cache is full" in m and "SQL01 is throttled and keeps its changes" in m
               for m in events)
    assert health["health"] in ("Warning", "Critical")
    log = lab.disk_path("SQL01", 1).with_suffix(".hrl")
    assert log.exists() and log.stat().st_size > 0  # the changes wait on the server
    lab.fault_clear("port-blocked")
    lab.run(30 * 60)
    assert not component(lab, "PS02")["full"]
    assert lab.item_status(lab.vm("SQL01"))["health"] == "OK"
    assert lab.verify("SQL01")["identical"]
    lab.close()


def test_a_blocked_data_port_stops_only_what_goes_through_it(lab):
    protect(lab, minutes=10)
    assert "PS02:9443-in" in lab.ports() and "CS01:443-in" in lab.ports()
    lab.fault_inject("port-blocked", "PS02:9443-in")
    before = {v: len(lab.points(v)) for v in ("WEB01", "SQL01")}
    lab.run(20 * 60)
    assert len(lab.points("SQL01")) == before["SQL01"]
    assert len(lab.points("WEB01")) > before["WEB01"]
    reason = lab.item_status(lab.vm("SQL01"))["health_reason"]
    assert "cannot send replication data to process server PS02: inbound port 9443 is blocked" in reason
    lab.fault_clear("port-blocked")
    lab.run(15 * 60)
    assert len(lab.points("SQL01")) > before["SQL01"]


def test_a_blocked_management_port_fails_the_mobility_services_registration(lab):
    done(lab, [lab.register_server("CS01")])
    lab.fault_inject("port-blocked", "CS01:443-in")
    job = lab.install_mobility(["WEB01"], push=True)[0]
    lab.run_until_done([job])
    assert lab.job(job)["state"] == "failed"
    assert "cannot reach configuration server CS01: inbound port 443 is blocked" in lab.job(job)["error"]
    with pytest.raises(InvalidInput, match="needs --target SERVER:PORT"):
        lab.fault_inject("port-blocked")


def test_a_replication_groups_servers_share_their_points_and_fail_over_together(lab):
    protect(lab, minutes=150)
    times = {v: {(p["time"], p["kind"]) for p in lab.points(v)} for v in ("SQL01", "SQL02")}
    assert times["SQL01"] == times["SQL02"]
    assert any(k == "app-consistent" for _, k in times["SQL01"])
    with pytest.raises(Refused, match="shares recovery points with replication group SQLGroup"):
        lab.failover(["SQL01"], "test")
    lab.plan_create("SQL", "CS01", "Japan East", ["SQL01", "SQL02"])  # a plan goes from the configuration server
    job = lab.plan_start("SQL", "test")
    lab.run(10 * 60)
    children = [c for c in lab.jobs() if c["parent"] == job]
    points = {lab.job(c["id"])["report"]["point_time"] for c in children}
    assert len(children) == 2 and len(points) == 1


def test_failover_to_azure_is_proven_by_bytes_and_planned_failover_is_refused(lab):
    protect(lab, minutes=20)
    assert "planned failover is not supported for physical servers" in lab.allowed("planned_failover", "WEB01")
    with pytest.raises(Refused, match="not supported for physical servers"):
        lab.failover(["WEB01"], "planned")
    job = done(lab, lab.failover(["WEB01"], "unplanned"))[0]
    assert job["report"]["verified"]
    assert lab.verify("WEB01")["identical"]
    older = lab.points("WEB01")[0]
    job = done(lab, [lab.change_point("WEB01", str(older["id"]))])[0]  # while commit is pending
    assert job["report"]["point"] == older["id"] and job["report"]["verified"]
    done(lab, lab.commit(["WEB01"]))
    assert "fail back to VMware VMs only" in lab.allowed("reprotect", "WEB01")


def test_the_configuration_server_unregisters_once_nothing_is_protected_through_it(lab):
    protect(lab, minutes=5)
    with pytest.raises(Refused, match="CS01 protects WEB01, APP01, SQL01, SQL02"):
        lab.unregister_server("CS01")
    done(lab, lab.unprotect(["WEB01", "APP01", "SQL01", "SQL02"]))
    key = lab.path / next(s for s in lab.resources()["servers"] if s["name"] == "CS01")["key_file"]
    job = done(lab, [lab.unregister_server("CS01")])[0]
    assert job["name"] == "CS01 (Unregister configuration server)"
    assert not key.exists() and not lab.resources()["servers"][0]["registered"]
    assert {p["server"] for p in lab.policies()} == {""}
    assert {s["mobility"] for s in lab.components()[0]["servers"]} == {"not installed"}


def failed_over_to_azure(lab, vm="WEB01"):
    protect(lab, minutes=20)
    done(lab, lab.failover([vm], "unplanned"))
    done(lab, lab.commit([vm]))


def test_failback_goes_to_a_vmware_vm_sending_only_differences(lab):
    failed_over_to_azure(lab)
    with pytest.raises(Refused, match="never fails back to a physical server, only to a VMware VM"):
        lab.failover(["WEB01"], "planned")  # the Hyper-V way home is not the physical server's
    assert "deploy the process server first" in lab.allowed("reprotect", "WEB01")
    assert "reprotect it to VMware first" in lab.allowed("unplanned_failover", "WEB01")
    job = done(lab, [lab.deploy_process_server("PSAZ01", "japan east")])[0]
    assert job["name"] == "PSAZ01 (Deploy process server in Azure)"
    assert lab.allowed("reprotect", "WEB01") is None
    with pytest.raises(InvalidInput, match="no master target named 'MT09'"):
        lab.reprotect(["WEB01"], master_target="MT09")
    with pytest.raises(InvalidInput, match="no datastore named 'ds9'"):
        lab.reprotect(["WEB01"], datastore="ds9")
    job = done(lab, lab.reprotect(["WEB01"], master_target="MT01", datastore="datastore2"))[0]
    assert job["name"] == "WEB01 (Reprotect (to VMware))"
    lab.run(30 * 60)
    resync = next(j for j in lab.jobs() if j["kind"] == "resync" and j["target"] == "WEB01")
    report = lab.job(resync["id"])["report"]["resync"]
    assert report["differing_chunks"] < report["chunks"] and report["share_of_full_copy"] < 50  # only differences
    st = lab.item_status(lab.vm("WEB01"))
    assert (st["protection"], st["active_location"]) == ("protected", "Microsoft Azure")
    assert lab.resources()["links"] and lab.replication.link_of("WEB01") == ("Japan East", "Contoso vSphere")
    with pytest.raises(Refused, match="carries the failback of WEB01"):
        lab.remove_process_server("PSAZ01")
    job = done(lab, lab.failover(["WEB01"], "unplanned"))[0]
    assert job["report"]["verified"]
    assert lab.verify("WEB01")["identical"]
    done(lab, lab.commit(["WEB01"]))
    st = lab.item_status(lab.vm("WEB01"))
    assert (st["protection"], st["active_location"]) == ("not protected", "Contoso vSphere")
    assert lab.disk_path("WEB01", 0).parent == lab.path / "sites" / "Contoso_vSphere" / "datastore2" / "WEB01"
    assert not (lab.path / "sites" / "Contoso_DC" / "WEB01").exists()
    assert lab.vm_row("WEB01")["power"] == "running"
    lab.remove_process_server("PSAZ01")
    done(lab, lab.protect(["WEB01"], policy="Gold"))  # replication to Azure again, from the VMware VM
    lab.run(20 * 60)
    assert lab.verify("WEB01")["identical"]


def test_a_process_server_in_azure_needs_a_vpn_to_the_vmware_site(tmp_path):
    site = small_physical_site(tmp_path)
    text = site.read_text().replace('source = "Japan East"\ntarget = "Contoso vSphere"',
                                    'source = "Contoso DC"\ntarget = "Contoso vSphere"')
    site.write_text(text)
    lab = Lab.create(tmp_path / "lab", site)
    done(lab, [lab.register_server("CS01")])
    with pytest.raises(Refused, match="no VPN or ExpressRoute joins Japan East to a VMware site"):
        lab.deploy_process_server("PSAZ01", "Japan East")
    lab.close()


def test_a_datacenter_disaster_takes_the_servers_down_and_unplanned_failover_recovers_them(lab):
    protect(lab, minutes=20)
    lab.fault_inject("site-disaster", "Contoso DC")
    assert lab.vm_row("WEB01")["power"] == "off" and lab.vm_row("SQL01")["power"] == "off"
    with pytest.raises(Refused, match="not supported for physical servers"):
        lab.failover(["WEB01"], "planned")
    job = done(lab, lab.failover(["WEB01"], "unplanned"))[0]
    assert job["report"]["verified"] and lab.verify("WEB01")["identical"]
    lab.fault_clear("site-disaster")
    lab.vm_power("APP01", "start")
    lab.fault_inject("auth-failure", "CS01")  # the configuration server's credentials: its servers stop, not retried
    lab.run(5 * 60)
    assert lab.item_status(lab.vm("APP01"))["error_code"] == "AuthenticationFailed"


@pytest.mark.heavy
def test_kill_9_while_data_passes_the_process_server_leaves_every_claimed_point_whole(tmp_path):
    import random
    import signal

    from engine.replication import replica

    from .test_crash import child, ops

    site = small_physical_site(tmp_path)
    site.write_text(site.read_text().replace("size_gb = 1\n", "size_gb = 0.0625\n"))
    path = tmp_path / "lab"
    with Lab.create(path, site) as lab:
        set_up(lab)
        done(lab, lab.protect(["WEB01"], policy="Gold") + lab.protect(["SQL01"], policy="Gold", process_server="PS02"))
        lab.fault_inject("port-blocked", "PS02:443-out", duration=20 * 60)  # SQL01's data piles up in PS02's cache
    rng = random.Random(3)
    full = ops(child(0, "--lab", str(path), "run", "--for", "5m"))
    kills = 0
    for _ in range(8):
        r = child(rng.randint(1, full), "--lab", str(path), "run", "--for", "10m")
        assert r.returncode in (0, -signal.SIGKILL) and "Traceback" not in r.stderr, r.stderr
        kills += r.returncode == -signal.SIGKILL
        with Lab.open(path) as lab:
            for vm in ("WEB01", "SQL01"):
                key, labels = lab.replication.key_for(vm), lab.replication.labels(vm)
                item = lab.replication.item(vm)
                for t in lab.db.query("SELECT * FROM transfers WHERE vm=?", [vm]):  # what waits in a cache is whole
                    # (or already moved into the store by a slice the kill rolled back: it arrives again)
                    moved = lab.replication.store_dir(item) / "points" / f"p{t['id']}"
                    for i in [t["disk"]] if t["kind"] == "initial" else range(len(lab.vm(vm).disks)):
                        at = 0 if t["kind"] == "initial" else i
                        frame = replica.frame_path(lab.path / t["dir"], at) or replica.frame_path(moved, at)
                        assert frame is not None, t
                        changelog.check(changelog.unseal(frame.read_bytes(), key, labels[i]), None)
                rows = lab.replication.point_rows(vm)
                if rows:
                    assert lab.verify(vm, rows[-1]["id"])["identical"]
    assert kills >= 5, kills
    r = child(0, "--lab", str(path), "run", "--for", "30m")
    assert r.returncode == 0, r.stderr
    with Lab.open(path) as lab:
        assert lab.verify("SQL01")["identical"] and lab.verify("WEB01")["identical"]


def test_a_replication_group_fails_back_to_vmware_through_its_plan(lab):
    protect(lab, minutes=20)
    lab.plan_create("SQL", "CS01", "Japan East", ["SQL01", "SQL02"])
    for kind in ("unplanned", "commit"):
        lab.run_until_done([lab.plan_start("SQL", kind)])
    done(lab, [lab.deploy_process_server("PSAZ01", "Japan East")])
    lab.run_until_done([lab.plan_start("SQL", "reprotect")])
    lab.run(30 * 60)
    job = lab.plan_start("SQL", "unplanned")
    lab.run_until_done([job])
    vms = [v for g in lab.job(job)["report"]["groups"].values() for v in g["vms"].values()]
    assert len(vms) == 2 and all(v["verified"] for v in vms) and len({v["point_time"] for v in vms}) == 1
    lab.run_until_done([lab.plan_start("SQL", "commit")])
    assert {lab.item_status(lab.vm(v))["active_location"] for v in ("SQL01", "SQL02")} == {"Contoso vSphere"}
    assert not list(lab.db.query("SELECT * FROM replication_groups"))  # protection ended: so did the group
    done(lab, lab.protect(["SQL01", "SQL02"], policy="Gold", group="SQLGroup"))  # replicated to Azure again, grouped
