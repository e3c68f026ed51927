"""Failover on real bytes: every kind, commit, failback, reverse replication, and the rules table."""

import json
import subprocess
from pathlib import Path

import pytest

from engine import Failover, InvalidInput, Lab, Protection, Refused, rules
from engine.disks import fingerprint
from engine.rules import OPERATIONS, ItemFacts, operation_reason
from tests.conftest import SAMPLES, step2

H = 3600


class Killed(BaseException):
    """The process dies here (not an Exception: nothing may catch it)."""


def protected(lab, vm="WEB01", hours=1, **policy):
    step2(lab, **{"retention_h": 2, **policy})
    lab.run_until_done(lab.protect([vm]))
    lab.run(hours * H)
    assert lab.protection_state(vm) == Protection.PROTECTED
    return lab


def item(lab, vm="WEB01"):
    return lab.item_status(lab.vm(vm))


def recovered(lab, vm="WEB01"):
    return next(v for v in lab.status()["vms"] if v["name"] == vm)["recovered"]


def scan(lab, paths, vm="WEB01"):
    return lab.scan_disks([Path(p) for p in paths], lab.vm(vm)).last_seq


# ---- the rules table, pure ----------------------------------------------------------------------

READY = dict(vm="A", scenario="hyperv-to-azure", protection="protected", failover="Ready", has_points=True)
AWAY = dict(READY, protection="failed over", active="recovery")
CASES = [
    # (operation, facts, a piece of the reason, or None when allowed)
    ("test_failover", READY, None),
    ("test_failover", dict(READY, source_reachable=False), None),  # needs a point, not the source
    ("test_failover", dict(READY, has_points=False), "no recovery point yet"),
    ("test_failover", dict(READY, failover="Test failover in progress"), "complete it first"),
    ("test_failover", dict(READY, encrypted=True, key_given=False), "--key-file"),
    ("test_failover", dict(READY, protection="not protected", failover=""), "is not protected"),
    ("planned_failover", READY, None),
    ("planned_failover", dict(READY, source_reachable=False), "needs the source site reachable"),
    ("planned_failover", dict(READY, target_name_ok=False), "not a valid Azure VM name"),
    ("planned_failover", dict(READY, scenario="azure-to-azure"), "not supported for Azure VMs"),
    ("planned_failover", dict(READY, scenario="physical-to-azure"), "not supported for physical servers"),
    ("planned_failover", dict(AWAY, failover="Failover committed"), None),  # failback from Azure
    ("planned_failover", dict(AWAY, failover="Commit pending"), "waits for commit"),
    ("planned_failover", dict(AWAY, scenario="vmm-to-vmm", failover="Failover committed"), "reverse replicate first"),
    ("planned_failover", dict(AWAY, scenario="vmm-to-vmm", protection="reverse replication"), None),
    ("planned_failover", dict(READY, failover="Reverse replication pending", protection="failed over"),
     "reverse replicate it first"),
    ("unplanned_failover", READY, None),
    ("unplanned_failover", dict(READY, source_reachable=False), None),
    ("unplanned_failover", dict(AWAY, failover="Failover committed"), "not offered while"),  # greyed in failback
    ("unplanned_failover", dict(AWAY, failover="Failback in progress"), "is busy"),
    ("unplanned_failover", dict(READY, scenario="physical-to-azure"), None),
    ("commit", dict(AWAY, failover="Commit pending"), None),
    ("commit", READY, "only while commit is pending"),
    ("change_point", dict(AWAY, failover="Commit pending"), None),
    ("change_point", dict(AWAY, failover="Failover committed"), "only while commit is pending"),
    ("change_point", dict(READY, failover="Commit pending", protection="failed over"), "failed back"),
    ("cancel_failover", dict(AWAY, failover="Commit pending"), "disable protection and enable it again"),
    ("cancel_failover", dict(READY, failover="Failover in progress"), "runs to its end"),
    ("cancel_failover", READY, "no failover to cancel"),
    ("reprotect", dict(READY, failover="Reverse replication pending", protection="failed over"), None),
    ("reprotect", dict(AWAY, failover="Failover committed"), "fail it back first"),
    ("reprotect", dict(AWAY, scenario="vmm-to-vmm", failover="Failover committed"), None),
    ("reprotect", dict(AWAY, scenario="physical-to-azure", failover="Failover committed"), "VMware"),
    ("reprotect", READY, "follows a committed failover"),
    ("start_source", dict(AWAY, failover="Commit pending", last_failover="planned"), "stays off"),
    ("start_source", dict(AWAY, failover="Commit pending", last_failover="unplanned"), None),
    ("start_source", dict(AWAY, protection="reverse replication"), "replica"),
    ("disable", READY, None),
    ("disable", dict(READY, failover="Test failover in progress"), "complete it first"),
    ("disable", dict(READY, failover="Failover in progress"), "is busy"),
    ("disable", dict(READY, protection="resynchronization in progress"), None),
    ("resync", READY, None),  # a protected VM can always be resynchronized
    ("resync", dict(READY, failover="Test failover in progress"), None),  # the test VM is built already
    ("resync", dict(READY, protection="resynchronization in progress"), "already being resynchronized"),
    ("resync", dict(READY, protection="not protected", failover=""), "is not protected"),
    ("resync", dict(AWAY, failover="Commit pending"), "nothing replicates from its primary site"),
    ("resync", dict(AWAY, scenario="vmm-to-vmm", protection="reverse replication"), "nothing replicates"),
    ("resync", dict(READY, failover="Failover in progress", protection="failed over"), "is busy"),
    ("resync", dict(READY, protection="initial replication in progress", failover=""), "needs a protected item"),
    ("resync", dict(READY, protection="disabling protection"), "being disabled"),
    ("test_failover", dict(READY, protection="resynchronization in progress"), None),  # from retained points
    ("unplanned_failover", dict(READY, protection="resynchronization in progress"), None),
    ("planned_failover", dict(READY, protection="resynchronization in progress"), "being resynchronized"),
]


@pytest.mark.parametrize("op, facts, reason", CASES)
def test_the_rules_table(op, facts, reason):
    got = operation_reason(op, ItemFacts(**facts))
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got, got


def test_every_operation_of_the_table_is_tested_and_every_scenario_has_its_kinds():
    assert {op for op, _, _ in CASES} == set(OPERATIONS)
    assert set(rules.FAILOVER_KINDS) == set(rules.FAILBACK)
    assert all("test" in k and "unplanned" in k for k in rules.FAILOVER_KINDS.values())


# ---- test failover --------------------------------------------------------------------------------


def test_test_failover_builds_an_isolated_copy_and_complete_test_deletes_it(lab):
    protected(lab)
    job = lab.failover(["WEB01"], "test")[0]
    lab.run(5 * 60)
    j = lab.job(job)
    assert j["state"] == "waiting for action" and item(lab)["failover_state"] == Failover.TEST
    (test_vm,) = recovered(lab)
    assert test_vm["name"] == "WEB01-test" and test_vm["network"] == "(isolated)" and test_vm["power"] == "running"
    point = next(p for p in lab.points("WEB01") if p["id"] == j["report"]["point"])
    assert j["report"]["last_transaction"] == point["last_transaction"]
    newest = lab.points("WEB01")[-1]["id"]
    lab.run(20 * 60)  # replication goes on, untouched; the test VM runs its workload
    assert lab.points("WEB01")[-1]["id"] > newest and item(lab)["protection"] == "protected"
    assert recovered(lab)[0]["last_transaction"] > point["last_transaction"]
    assert "complete it first" in lab.allowed("planned_failover", "WEB01")
    lab.complete_job(job, note="app answered on port 443")
    lab.run(60)
    j = lab.job(job)
    assert j["state"] == "succeeded" and j["report"]["note"] == "app answered on port 443"
    assert recovered(lab) == [] and not Path(test_vm["disks"][0]).exists()
    assert item(lab)["failover_state"] == Failover.READY


# ---- planned failover -------------------------------------------------------------------------------


def test_planned_failover_loses_nothing_proven_by_fingerprint(lab, need_tool):
    protected(lab)
    job = lab.failover(["WEB01"], "planned")[0]
    lab.run_until_done([job])
    r = lab.job(job)["report"]
    assert r["zero_data_loss_proven"] and r["transactions_lost"] == 0
    assert lab.vm_row("WEB01")["power"] == "off"
    st = item(lab)
    assert st["failover_state"] == Failover.COMMIT_PENDING and st["active_location"] == "Microsoft Azure"
    # The recovered disks hold every write the source made, byte for byte.
    (vm,) = recovered(lab)
    qemu = need_tool("qemu-img")
    for i, d in enumerate(lab.vm("WEB01").disks):
        assert fingerprint(Path(vm["disks"][i]), d.size_bytes) == fingerprint(lab.disk_path("WEB01", i), d.size_bytes)
        subprocess.run([qemu, "compare", "-f", "vpc", "-F", "vpc", vm["disks"][i], str(lab.disk_path("WEB01", i))],
                       check=True, capture_output=True)
    assert scan(lab, vm["disks"]) == lab.vm_row("WEB01")["writes_done"] == r["last_transaction"]
    # The source may not start while its copy runs in Azure after a planned failover.
    assert "stays off" in lab.allowed("vm_start", "WEB01")
    with pytest.raises(Refused, match="stays off"):
        lab.vm_power("WEB01", "start")
    assert "not offered" in lab.allowed("unplanned_failover", "WEB01")
    # The recovered VM runs on: its transactions continue from the last one its disks held.
    lab.run(10 * 60)
    assert recovered(lab)[0]["last_transaction"] > r["last_transaction"]


# ---- unplanned failover, change point, commit ---------------------------------------------------------


def test_unplanned_to_an_older_point_then_change_point_then_commit(lab):
    protected(lab, hours=1)
    pts = lab.points("WEB01")
    older, newest = pts[-4], pts[-1]
    job = lab.failover(["WEB01"], "unplanned", point=str(older["id"]), network="AzureNetwork")[0]
    lab.run_until_done([job])
    r = lab.job(job)["report"]
    assert r["point"] == older["id"] and r["last_transaction"] == older["last_transaction"]
    assert r["transactions_lost"] == r["source_last_transaction"] - older["last_transaction"] > 0
    assert r["data_loss_seconds"] > 0 and r["rto_seconds"] > 0
    (vm,) = recovered(lab)
    assert vm["network"] == "AzureNetwork" and scan(lab, vm["disks"]) == older["last_transaction"]
    # The source was not shut down (no --shutdown-sync): starting it again is allowed after an unplanned.
    assert lab.vm_row("WEB01")["power"] == "running"

    j2 = lab.change_point("WEB01", str(newest["id"]))
    lab.run_until_done([j2])
    assert lab.job(j2)["report"]["point"] == newest["id"]
    assert scan(lab, recovered(lab)[0]["disks"]) == newest["last_transaction"]
    with pytest.raises(InvalidInput, match="has no recovery point 999999"):
        lab.change_point("WEB01", "999999")

    lab.run_until_done(lab.commit(["WEB01"]))
    assert item(lab)["failover_state"] == Failover.COMMITTED
    assert lab.points("WEB01") == []  # merged into the VM's disks: the replica is done with
    assert "only while commit is pending" in lab.allowed("change_point", "WEB01")
    assert "only while commit is pending" in lab.allowed("commit", "WEB01")


def test_unplanned_with_shutdown_sync_loses_nothing(lab):
    protected(lab)
    job = lab.failover(["WEB01"], "unplanned", shutdown_sync=True)[0]
    lab.run_until_done([job])
    r = lab.job(job)["report"]
    assert r["transactions_lost"] == 0 and r["zero_data_loss_proven"]


def test_refusals_change_nothing(lab):
    protected(lab)
    with pytest.raises(Exception, match="unknown failover kind"):
        lab.failover(["WEB01"], "sideways")
    with pytest.raises(Exception, match="planned failover always uses the latest data"):
        lab.failover(["WEB01"], "planned", point="1")
    with pytest.raises(Exception, match="--sync applies to a failback"):
        lab.failover(["WEB01"], "planned", sync="before")
    with pytest.raises(Exception, match="no network named"):
        lab.failover(["WEB01"], "test", network="Nowhere")
    with pytest.raises(Refused, match="is not protected"):
        lab.failover(["WEB01", "IDLE01"], "test")
    assert item(lab)["failover_state"] == Failover.READY and lab.jobs()[0]["kind"] != "test_failover"


# ---- failback and reverse replication ------------------------------------------------------------------


@pytest.mark.parametrize("sync", ["before", "during"])
def test_failback_sends_only_what_differs_then_reprotect(lab, sync):
    protected(lab)
    lab.run_until_done(lab.failover(["WEB01"], "planned"))
    lab.run_until_done(lab.commit(["WEB01"]))
    lab.run(30 * 60)  # the VM runs in Azure and writes
    away_last = recovered(lab)[0]["last_transaction"]
    job = lab.failover(["WEB01"], "planned", sync=sync)[0]
    lab.run_until_done([job])
    if sync == "before":
        assert lab.job(job)["state"] == "waiting for action"  # the Azure VM still runs; the user starts
        lab.run(10 * 60)
        lab.complete_job(job)
        lab.run_until_done([job])
    j = lab.job(job)
    assert j["state"] == "succeeded", j
    r = j["report"]
    phases = list(r["sync"])
    assert len(phases) == (2 if sync == "before" else 1)
    disk_bytes = sum(d.size_bytes for d in lab.vm("WEB01").disks)
    for s in r["sync"].values():  # only differing chunks travel
        assert 0 < s["sent"] < disk_bytes / 4
    if sync == "before":
        assert r["sync"][phases[1]]["sent"] < r["sync"][phases[0]]["sent"]  # the last sync is small
        assert r["downtime_seconds"] < r["rto_seconds"]
    assert r["identical"] and r["transactions_lost"] == 0 and r["last_transaction"] > away_last
    st = item(lab)
    assert st["failover_state"] == Failover.COMMIT_PENDING and st["active_location"] == "OnPremise Cloud"
    assert lab.vm_row("WEB01")["power"] == "running"

    lab.run_until_done(lab.commit(["WEB01"]))
    assert recovered(lab) == [] and item(lab)["failover_state"] == Failover.REVERSE_PENDING
    lab.run(10 * 60)
    assert lab.last_transaction("WEB01").last_seq > r["last_transaction"]  # numbering goes on at home
    lab.run_until_done(lab.reprotect(["WEB01"]))
    lab.run(H)
    st = item(lab)
    assert st["protection"] == "protected" and st["failover_state"] == Failover.READY
    assert lab.verify("WEB01")["identical"]


@pytest.mark.heavy
def test_vmm_to_vmm_disaster_procedure(tmp_path):
    """Seed 001: unplanned failover to the recovery cloud, commit, reverse replicate, planned
    failover back, commit, reverse again."""
    lab = Lab.create(tmp_path / "lab", SAMPLES / "vmm-to-vmm.toml")
    try:
        lab.run_until_done([lab.register_server("SC01")])
        lab.run_until_done([lab.configure_cloud("Primary Cloud", "Backup Cloud - 2ndDC", retention_h=1)])
        lab.map_network("Tokyo FrontEnd", "Osaka FrontEnd")
        lab.run_until_done(lab.protect(["WEB01"]))
        lab.run(40 * 60)
        lab.vm_power("WEB01", "stop")  # the primary site is lost
        lab.run_until_done(lab.failover(["WEB01"], "unplanned"))
        assert item(lab)["active_location"] == "Backup Cloud - 2ndDC"
        lab.run_until_done(lab.commit(["WEB01"]))
        assert "reverse replicate first" in lab.allowed("planned_failover", "WEB01")
        lab.run_until_done(lab.reprotect(["WEB01"]))
        assert lab.protection_state("WEB01") == Protection.REVERSE
        assert "replica" in lab.allowed("vm_start", "WEB01")
        lab.run(30 * 60)
        assert item(lab)["rpo_seconds"] <= 300
        job = lab.failover(["WEB01"], "planned", sync="during")[0]
        lab.run_until_done([job])
        r = lab.job(job)["report"]
        assert r["identical"] and r["transactions_lost"] == 0
        # Reverse replication kept the primary current: the failback sends little.
        assert sum(s["sent"] for s in r["sync"].values()) < 2 * 1024 * 1024
        lab.run_until_done(lab.commit(["WEB01"]))
        lab.run_until_done(lab.reprotect(["WEB01"]))
        lab.run(H)
        assert lab.protection_state("WEB01") == Protection.PROTECTED
        assert lab.verify("WEB01")["identical"]
    finally:
        lab.close()


# ---- encryption and names ------------------------------------------------------------------------------


def test_encrypted_replicas_need_the_key_file(lab, tmp_path):
    protected(lab, encrypt=True)
    with pytest.raises(Refused, match="--key-file"):
        lab.failover(["WEB01"], "test")
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(b"\0" * 32)
    with pytest.raises(Refused, match="is not the data-encryption key"):
        lab.failover(["WEB01"], "test", key_file=str(wrong))
    key = lab.path / lab.resources()["servers"][0]["key_file"]
    job = lab.failover(["WEB01"], "test", key_file=str(key))[0]
    lab.run(5 * 60)
    assert lab.job(job)["state"] == "waiting for action"
    assert lab.allowed("test_failover", "WEB01") is not None  # one test at a time


def test_an_invalid_azure_name_blocks_failover_until_a_target_name_is_set(lab):
    protected(lab)
    lab.db.execute("UPDATE items SET target_name='bad_name' WHERE vm='WEB01'")  # as protect now allows
    assert "not a valid Azure VM name" in lab.allowed("planned_failover", "WEB01")
    lab.set_target("WEB01", target_name="web-01")
    job = lab.failover(["WEB01"], "planned")[0]
    lab.run_until_done([job])
    assert recovered(lab)[0]["name"] == "web-01"


# ---- a killed engine mid-failover -----------------------------------------------------------------------


def test_killed_mid_failover_reopens_consistent(lab, monkeypatch):
    protected(lab)
    job = lab.failover(["WEB01"], "planned")[0]

    import engine.failover as fo

    real = fo.protection.build_at_point

    def die(*a, **k):
        real(*a, **k)  # the disks are written, the rows are not yet committed
        raise Killed()

    monkeypatch.setattr(fo.protection, "build_at_point", die)
    with pytest.raises(Killed):
        lab.run_until_done([job])
    monkeypatch.undo()
    path = lab.path
    lab.close()  # the open transaction is never committed: the process is gone
    with Lab.open(path) as again:
        st = again.item_status(again.vm("WEB01"))
        assert st["failover_state"] == Failover.FAILOVER and again.job(job)["state"] == "in progress"
        assert recovered(again) == []  # no VM claims disks it may not have
        again.run_until_done([job])
        j = again.job(job)
        assert j["state"] == "succeeded" and j["report"]["zero_data_loss_proven"]
        assert json.loads(json.dumps(recovered(again)))[0]["power"] == "running"
