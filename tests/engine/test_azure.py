"""Azure -> Azure (seed 002): target resources, continuous replication through the cache,
failover to any point proven by bytes, reprotect sending only differences, failback, and the
vault made by the previous schema still opening."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from engine import Lab
from engine.errors import Refused

from ..conftest import small_a2a_site

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def a2a_site(tmp_path) -> Path:
    return small_a2a_site(tmp_path)


@pytest.fixture
def a2a(tmp_path, a2a_site):
    lab = Lab.create(tmp_path / "lab", a2a_site)
    yield lab
    lab.close()


def protected(lab, *vms, minutes=30, **opts):
    ids = lab.protect(list(vms or ["WEB01"]), **opts)
    lab.run_until_done(ids)
    assert all(lab.job(i)["state"] == "succeeded" for i in ids), [lab.job(i) for i in ids]
    lab.run(minutes * 60)


def created(lab):
    return {(r["kind"], r["name"], r["region"]) for r in lab.resources()["created_by_site_recovery"]}


def test_enable_replication_creates_the_target_resources_with_the_portals_names(a2a):
    job = a2a.protect(["WEB01"])[0]
    a2a.run_until_done([job])
    steps = [s["name"] for s in a2a.job(job)["steps"]]
    assert a2a.job(job)["name"] == "WEB01 (Enable replication)"
    assert "Create target resources" in steps and "Install the Site Recovery extension (mobility service)" in steps
    assert created(a2a) == {("resource group", "ContosoRG-asr", "West US"),
                            ("virtual network", "ContosoVNet-asr", "West US"),
                            ("storage account", "contosostorageasr", "West US"),
                            ("storage account", "eastusasrcache", "East US"),
                            ("availability set", "WebAvSet-asr", "West US")}
    res = a2a.resources()
    assert {(m["source"], m["target"]) for m in res["mappings"]} == {("ContosoVNet", "ContosoVNet-asr"),
                                                                     ("ContosoVNet-asr", "ContosoVNet")}
    pol = next(r for r in res["regions"] if r["name"] == "East US")["protection"]
    assert (pol["name"], pol["target"], pol["retention_h"], pol["app_consistent_h"], pol["batch"],
            pol["frequency"]) == ("24-hour-retention-policy", "West US", 24, 4, 30, 300)
    dst = a2a.item_status(a2a.vm("WEB01"))["azure"]["sides"]["recovery"]
    assert (dst["resource_group"], dst["network"], dst["subnet"], dst["availability_set"]) == (
        "ContosoRG-asr", "ContosoVNet-asr", "Web", "WebAvSet-asr")
    # the next VM reuses what exists; SQL01 is in no availability set and in the Data subnet
    a2a.run_until_done(a2a.protect(["SQL01"]))
    assert len(created(a2a)) == 5
    sql = a2a.item_status(a2a.vm("SQL01"))["azure"]["sides"]["recovery"]
    assert (sql["subnet"], sql["availability_set"]) == ("Data", "")


def test_given_resources_are_used_and_bad_ones_refused_changing_nothing(a2a):
    before = a2a.status()
    with pytest.raises(Refused) as e:
        a2a.protect(["WEB02"], target_resource_group="NoSuchRG", cache_storage="contosostorage",
                    target_region="East US")
    assert "the target region must be another one" in e.value.message
    with pytest.raises(Refused) as e:
        a2a.protect(["WEB02"], target_resource_group="NoSuchRG", retention_h=80)
    assert "no resource group named 'NoSuchRG' in West US (DR-Drills)" in e.value.message
    assert "0-72 hours" in e.value.message
    with pytest.raises(Refused) as e:
        a2a.protect(["WEB02"], target_size="XS", cache_storage="contosostorageasr")
    assert "an Azure VM keeps its size" in e.value.message and "does not exist" in e.value.message
    assert a2a.status()["vms"] == before["vms"] and created(a2a) == set()
    a2a.run_until_done(a2a.protect(["WEB02"], target_resource_group="DR-Drills", target_network="DrillVNet",
                                   retention_h=2, app_consistent_h=1))
    dst = a2a.item_status(a2a.vm("WEB02"))["azure"]["sides"]["recovery"]
    assert (dst["resource_group"], dst["network"], dst["subnet"]) == ("DR-Drills", "DrillVNet", "Drill")
    assert ("resource group", "ContosoRG-asr", "West US") not in created(a2a)
    # the region's policy is shared: a different retention for the next VM is refused
    with pytest.raises(Refused) as e:
        a2a.protect(["WEB01"], retention_h=24)
    assert "every VM of the region shares it" in e.value.message


def test_the_vault_must_not_be_in_the_source_region(tmp_path, a2a_site):
    a2a_site.write_text(a2a_site.read_text().replace('vault_region = "West US"', 'vault_region = "East US"'))
    with Lab.create(tmp_path / "lab", a2a_site) as lab:
        with pytest.raises(Refused) as e:
            lab.protect(["WEB01"])
        assert "the vault must be in another region" in e.value.message


def test_writes_pass_through_the_cache_and_points_come_every_5_minutes(a2a, need_tool):
    protected(a2a, "WEB01", "SQL01", minutes=60)
    st = a2a.item_status(a2a.vm("SQL01"))
    assert st["rpo_seconds"] < 60  # continuous: far below the Hyper-V path's copy interval
    now = a2a.now
    recent = [p for p in a2a.points("SQL01") if p["time"] > now - 3600]
    assert all(p["time"] % 300 == 0 for p in recent[:-1]) and len(recent) >= 12
    # the link to West US goes down: batches keep leaving the VM and wait in the cache
    a2a.fault_inject("link-down")
    a2a.run(300)
    st = a2a.item_status(a2a.vm("SQL01"))
    cache = a2a.path / st["azure"]["cache_dir"]
    frames = sorted(cache.glob("t*/*.hrl.lz4"))
    assert st["azure"]["cache_bytes"] > 0 and frames
    assert st["azure"]["cache_dir"].startswith("storage/eastusasrcache/")
    lz4 = need_tool("lz4")
    assert subprocess.run([lz4, "-t", str(frames[0])], capture_output=True).returncode == 0
    assert st["health"] == "OK" or "writes wait in the cache" in st["health_reason"]
    a2a.fault_clear("link-down")
    a2a.run(120)
    assert a2a.item_status(a2a.vm("SQL01"))["azure"]["cache_bytes"] == 0 and not list(cache.glob("t*"))
    assert a2a.verify("SQL01")["identical"]


def test_outbound_blocked_stops_replication_with_the_documented_error(a2a):
    protected(a2a, "WEB01", minutes=10)
    a2a.fault_inject("outbound-blocked", "WEB01")
    a2a.run(1200)
    st = a2a.item_status(a2a.vm("WEB01"))
    assert st["health"] in ("Warning", "Critical") and "151037" in st["health_reason"]
    assert "crash-consistent point intervals (5m 00s)" in st["health_reason"]  # it has no copy interval
    assert "outbound 443" in st["health_action"] and st["azure"]["cache_bytes"] == 0
    assert any(e["code"] == "151037" for e in a2a.events_query("WEB01"))
    a2a.fault_clear("outbound-blocked")
    a2a.run(1800)
    assert a2a.item_status(a2a.vm("WEB01"))["rpo_seconds"] < 60


def test_planned_failover_is_refused_with_the_rules_tables_reason(a2a):
    protected(a2a, minutes=10)
    assert "planned failover is not supported for Azure VMs" in a2a.allowed("planned_failover", "WEB01")
    with pytest.raises(Refused):
        a2a.failover(["WEB01"], "planned")


def test_failover_to_an_older_point_reprotect_failback_and_reprotect_again(a2a, need_tool):
    protected(a2a, "WEB01", minutes=40)
    older = a2a.points("WEB01")[-4]
    job = a2a.failover(["WEB01"], "unplanned", point=str(older["id"]))[0]
    a2a.run_until_done([job])
    r = a2a.job(job)["report"]
    assert r["verified"] and r["point"] == older["id"] and r["last_transaction"] == older["last_transaction"]
    assert r["placement"] == {"region": "West US", "resource_group": "ContosoRG-asr", "network": "ContosoVNet-asr",
                              "subnet": "Web", "availability_set": "WebAvSet-asr"}
    copy = a2a.status()["vms"][0]["recovered"][0]
    qemu = need_tool("qemu-img")
    out = a2a.path / "older"
    a2a.export("WEB01", older["id"], out)
    assert subprocess.run([qemu, "compare", "-q", str(out / "WEB01-os.vhd"), copy["disks"][0]]).returncode == 0
    a2a.run_until_done(a2a.commit(["WEB01"]))
    assert "reprotect it first" in a2a.allowed("unplanned_failover", "WEB01")
    a2a.run(600)  # the VM in West US writes on
    # reprotect: West US -> East US, the disks in East US seed the replica; only differences travel
    a2a.run_until_done(a2a.reprotect(["WEB01"]))
    resync = next(j for j in a2a.jobs() if "Resynchronize" in j["name"])
    a2a.run_until_done([resync["id"]])
    rep = a2a.job(resync["id"])["report"]["resync"]
    assert 0 < rep["sent_bytes"] < rep["full_copy_bytes"] / 2
    st = a2a.item_status(a2a.vm("WEB01"))
    assert (st["protection"], st["active_location"], st["azure"]["from"]) == ("protected", "West US", "West US")
    assert st["azure"]["cache_dir"].startswith("storage/westusasrcache/")
    # the same policy on the reverse mapping: it says where the VM replicates now, as does its region
    assert (st["policy"]["container"], st["policy"]["target"]) == ("West US", "East US")
    west = next(r for r in a2a.resources()["regions"] if r["name"] == "West US")
    assert west["replicating"] == ["WEB01"] and west["protection"] is None
    a2a.run(900)
    assert a2a.verify("WEB01")["identical"]
    # fail back to East US the same way (unplanned, shutting the copy down: nothing lost)
    job = a2a.failover(["WEB01"], "unplanned", shutdown_sync=True)[0]
    a2a.run_until_done([job])
    r = a2a.job(job)["report"]
    assert r["zero_data_loss_proven"] and r["placement"]["resource_group"] == "ContosoRG"
    a2a.run_until_done(a2a.commit(["WEB01"]))
    vm = a2a.status()["vms"][0]
    assert vm["power"] == "running" and vm["active_location"] == "East US"
    a2a.run_until_done(a2a.reprotect(["WEB01"]))
    a2a.run(1200)
    st = a2a.item_status(a2a.vm("WEB01"))
    assert (st["protection"], st["azure"]["to"]) == ("protected", "West US")
    assert not a2a.status()["vms"][0]["recovered"]  # the copy in West US became the replica
    assert a2a.verify("WEB01")["identical"]


def test_a_lab_made_by_schema_7_opens_and_carries_on(tmp_path):
    with tarfile.open(FIXTURES / "lab-schema7.tar.xz") as tar:
        tar.extractall(tmp_path, filter="tar")
    with Lab.open(tmp_path / "lab") as lab:
        res = lab.resources()
        pol = res["clouds"][0]["protection"]
        assert (pol["container"], pol["container_kind"], pol["retention_h"], pol["encrypt"]) == (
            "OnPremise Cloud", "VMM cloud", 2, True)
        before = lab.points("MYSQL01")[-1]["id"]
        lab.run(1800)
        assert lab.points("MYSQL01")[-1]["id"] > before
        assert lab.verify("MYSQL01")["identical"] and lab.verify("MYBSD01")["identical"]
        assert lab.allowed("protect", "MYBSD01") and lab.item_status(lab.vm("MYSQL01"))["health"] == "OK"


A2A = dict(vm="WEB01", scenario="azure-to-azure", protection="protected", failover="Ready", has_points=True)


@pytest.mark.parametrize("op, facts, reason", [
    ("planned_failover", A2A, "not supported for Azure VMs"),
    ("unplanned_failover", dict(A2A, active="recovery"), None),  # after a reprotect: the other way alike
    ("test_failover", dict(A2A, active="recovery"), None),
    ("unplanned_failover", dict(A2A, active="recovery", protection="failed over", failover="Failover committed"),
     "reprotect it first"),
    ("change_point", dict(A2A, protection="failed over", failover="Commit pending"), None),  # a failover home too
    ("reprotect", dict(A2A, active="recovery", protection="failed over", failover="Failover committed"), None),
    ("reprotect", dict(A2A, protection="failed over", failover="Failover committed"), None),
    ("reprotect", A2A, "follows a committed failover"),
])
def test_the_rules_table_for_azure_vms(op, facts, reason):
    from engine.rules import ItemFacts, operation_reason

    got = operation_reason(op, ItemFacts(**facts))
    assert got is None if reason is None else (got is not None and reason in got), got


@pytest.mark.heavy
def test_kill_9_during_continuous_replication_and_reprotect_leaves_a_lab_that_verifies(tmp_path, a2a_site):
    """SIGKILL `srlab run` at random durable operations while batches go through the cache, and
    while a reprotect's resync runs: every point the lab claims still verifies."""
    import random
    import signal

    from .test_crash import child, ops

    rng = random.Random(2)
    path = tmp_path / "lab"
    with Lab.create(path, a2a_site) as lab:
        lab.run_until_done(lab.protect(["WEB01"]))

    def check():
        with Lab.open(path) as lab:
            rows = lab.points("WEB01")
            if rows:
                assert lab.verify("WEB01")["identical"]
            return len(rows)

    kills = 0
    for phase in ("continuous", "reprotect"):
        if phase == "reprotect":
            with Lab.open(path) as lab:
                lab.run_until_done(lab.failover(["WEB01"], "unplanned"))
                lab.run_until_done(lab.commit(["WEB01"]))
                lab.reprotect(["WEB01"])
        full = ops(child(0, "--lab", str(path), "run", "--for", "4m"))
        for _ in range(4):
            r = child(rng.randint(1, max(1, full * 2 // 3)), "--lab", str(path), "run", "--for", "4m")
            assert r.returncode in (0, -signal.SIGKILL) and "Traceback" not in r.stderr, r.stderr
            kills += r.returncode == -signal.SIGKILL
            check()
    with Lab.open(path) as lab:
        lab.run(1800)
        st = lab.item_status(lab.vm("WEB01"))
        assert (st["protection"], st["azure"]["from"]) == ("protected", "West US")
        assert all(lab.verify("WEB01", p["id"])["identical"] for p in lab.points("WEB01"))
    assert kills >= 6, kills


def test_a_plan_fails_azure_vms_over_and_back_after_their_reprotect(a2a):
    """An Azure VM's plan works both ways: after its failover, commit and reprotect (West US ->
    East US now), the same plan drills and fails them back to East US."""
    protected(a2a, "WEB01", "SQL01")
    a2a.plan_create("P", "East US", "West US", ["WEB01", "SQL01"])
    for kind in ("unplanned", "commit", "reprotect"):
        job = a2a.plan_start("P", kind)
        a2a.run_until_done([job])
        assert a2a.job(job)["state"] == "succeeded", a2a.job(job)
    a2a.run_until_done([j["id"] for j in a2a.jobs() if j["state"] == "in progress"])
    a2a.run(1800)
    assert a2a.plan_check("P", "test")["problems"] == []
    for kind in ("test", "unplanned", "commit"):
        job = a2a.plan_start("P", kind)
        a2a.run_until_done([job])
        if kind == "test":  # both test VMs run in East US: complete the test, which cleans them up
            assert a2a.job(job)["state"] == "waiting for action"
            tests = [(v["name"], r["place"]) for v in a2a.status()["vms"] for r in v["recovered"] if r["role"] == "test"]
            assert sorted(tests) == [("SQL01", "East US"), ("WEB01", "East US")]
            a2a.complete_job(job, note="drill done")
            a2a.run_until_done([job])
        assert a2a.job(job)["state"] == "succeeded", a2a.job(job)
    st = {v["name"]: v for v in a2a.status()["vms"]}
    assert st["WEB01"]["active_location"] == st["SQL01"]["active_location"] == "East US"
    # a VM replicating elsewhere is refused, with where it does replicate
    a2a.plan_create("Q", "East US", "West US", ["WEB01"])
    with pytest.raises(Refused, match="replicates from"):
        a2a.plan_create("R", "Central US", "West US", ["WEB01"])
