"""Recovery plans: groups in order, manual actions, scripts, plan failover on real bytes, drill reports."""

import json
import os
import stat

import pytest

from engine import Failover, InvalidInput, Protection, Refused
from tests.conftest import step2

H = 3600


@pytest.fixture
def plan_lab(lab):
    step2(lab, retention_h=2)
    lab.run_until_done(lab.protect(["WEB01", "IDLE01"]))
    lab.vm_power("IDLE01", "start")
    lab.run(H)
    lab.plan_create("App", "OnPremise Cloud", "Japan East", ["WEB01", "IDLE01"], rto_target=20 * 60)
    lab.plan_add_group("App")
    lab.plan_move("App", "WEB01", 2)  # IDLE01 (the "database") first, then WEB01
    return lab


def steps(lab, job):
    return [s["name"] for s in lab.job(job)["steps"]]


def started(lab, job, vm):
    return next(c for c in lab.jobs() if c["parent"] == job and c["target"] == vm)["started"]


def test_plan_rules_and_limits(plan_lab):
    lab = plan_lab
    with pytest.raises(Refused, match="exists"):
        lab.plan_create("App", "OnPremise Cloud", "Japan East", ["WEB01"])
    with pytest.raises(Refused, match="not from OnPremise Cloud to Nowhere"):
        lab.plan_create("B", "OnPremise Cloud", "Nowhere", ["WEB01"])
    with pytest.raises(InvalidInput, match="groups 1-2, not 3"):
        lab.plan_move("App", "WEB01", 3)
    for _ in range(5):
        lab.plan_add_group("App")
    with pytest.raises(Refused, match="7 groups"):
        lab.plan_add_group("App")
    with pytest.raises(InvalidInput, match="custom point"):
        lab.plan_start("App", "unplanned", point="3")
    assert [g["vms"] for g in lab.plan("App")["groups"][:2]] == [["IDLE01"], ["WEB01"]]


def test_planned_failover_groups_in_order_shutdown_in_reverse_then_failback(plan_lab):
    lab = plan_lab
    job = lab.plan_start("App", "planned")
    names = steps(lab, job)
    assert names.index("Group 2: shut down WEB01") < names.index("Group 1: shut down IDLE01") \
        < names.index("Group 1: fail over IDLE01") < names.index("Group 2: fail over WEB01")
    lab.run_until_done([job])
    j = lab.job(job)
    assert j["state"] == "succeeded", j
    assert started(lab, job, "IDLE01") < started(lab, job, "WEB01")  # group 2 waited for group 1
    r = j["report"]
    g1, g2 = r["groups"]["1"], r["groups"]["2"]
    assert g1["running"] <= g2["started"] and r["rto_seconds"] == g2["rto_seconds"]
    for g in (g1, g2):
        for vm, v in g["vms"].items():
            assert v["transactions_lost"] == 0 and v["verified"] and v["zero_data_loss_proven"], vm
    lab.run_until_done([lab.plan_start("App", "commit")])
    assert {lab.item_status(lab.vm(v))["failover_state"] for v in ("WEB01", "IDLE01")} == {Failover.COMMITTED}
    lab.run(20 * 60)
    back = lab.plan_start("App", "planned", sync="during")
    lab.run_until_done([back])
    assert lab.job(back)["state"] == "succeeded" and all(
        v["identical"] for g in lab.job(back)["report"]["groups"].values() for v in g["vms"].values())
    lab.run_until_done([lab.plan_start("App", "commit")])
    lab.run_until_done([lab.plan_start("App", "reprotect")])
    lab.run(H)
    for vm in ("WEB01", "IDLE01"):
        assert lab.protection_state(vm) == Protection.PROTECTED and lab.verify(vm)["identical"]
    d = lab.drill_report(job)
    assert [v["vm"] for v in d["vms"]] == ["IDLE01", "WEB01"] and d["rto_seconds"] <= d["rto_target"]
    md = lab.drill_markdown(d)
    assert "within the target of 20m" in md and "identical to the point" in md


def test_a_manual_action_pauses_the_test_failover_and_keeps_its_note(plan_lab):
    lab = plan_lab
    lab.plan_add_action("App", 1, "after", manual="Check the database")
    job = lab.plan_start("App", "test")
    lab.run(10 * 60)
    j = lab.job(job)
    assert j["state"] == "waiting for action"
    assert any(s["state"] == "waiting for action" and "Check the database" in s["name"] for s in j["steps"])
    assert not any(c["target"] == "WEB01" for c in lab.jobs() if c["parent"] == job)  # group 2 waits
    lab.complete_job(job, note="consistent")
    lab.run(10 * 60)
    assert lab.job(job)["state"] == "waiting for action"  # at Complete test: both test VMs run
    assert {r["name"] for v in lab.status()["vms"] for r in v["recovered"]} == {"WEB01-test", "IDLE01-test"}
    lab.complete_job(job, note="app answers")
    lab.run(5 * 60)
    j = lab.job(job)
    assert j["state"] == "succeeded" and j["report"]["manual_actions"][0]["note"] == "consistent"
    assert all(v["recovered"] == [] for v in lab.status()["vms"])
    assert {lab.item_status(lab.vm(v))["failover_state"] for v in ("WEB01", "IDLE01")} == {Failover.READY}


def _script(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_script_gets_the_runbook_context_and_a_failing_one_stops_the_job_until_resumed(plan_lab, tmp_path):
    lab = plan_lab
    out = tmp_path / "context.json"
    good = _script(tmp_path / "ok.sh", f'cat > {out}; echo "group $SRLAB_GROUP $SRLAB_KIND"\n')
    flag = tmp_path / "fixed"
    bad = _script(tmp_path / "dns.sh", f'test -f {flag} || {{ echo "DNS update failed" >&2; exit 3; }}\n')
    lab.plan_add_action("App", 2, "after", script=good)
    lab.plan_add_action("App", 1, "before", script=bad)
    job = lab.plan_start("App", "unplanned")
    lab.run(10 * 60)
    j = lab.job(job)
    assert j["state"] == "failed" and "exited 3: DNS update failed" in j["error"]
    assert lab.jobs()[0]["id"] == job  # nothing failed over
    flag.touch()
    lab.resume_job(job)
    lab.run_until_done([job])
    j = lab.job(job)
    assert j["state"] == "succeeded", j
    ctx = json.loads(out.read_text())
    assert ctx["kind"] == "unplanned" and ctx["group"] == 2 and ctx["direction"] == "primary to recovery"
    assert ctx["vms"]["WEB01"]["recovered_vm"] == "WEB01" and ctx["vms"]["WEB01"]["network"] == "AzureNetwork"
    assert [s["exit"] for s in j["report"]["scripts"]] == [0, 0] or j["report"]["scripts"][-1]["output"]
    with pytest.raises(Refused, match="only a failed recovery plan job"):
        lab.resume_job(job)


def test_plan_check_is_a_dry_run(plan_lab):
    lab = plan_lab
    before = len(lab.jobs())
    c = lab.plan_check("App", "planned")
    assert c["problems"] == [] and c["rto_seconds"] > 0 and len(lab.jobs()) == before
    c = lab.plan_check("App", "commit")
    assert any("only while commit is pending" in p for p in c["problems"])


def test_replication_group_members_share_points_and_fail_over_only_together(plan_lab):
    lab = plan_lab
    lab.create_replication_group("tier", ["WEB01", "IDLE01"])
    lab.run(H)
    web = {p["time"] for p in lab.points("WEB01")}
    idle = {p["time"] for p in lab.points("IDLE01")}
    newest = max(web)
    assert newest in idle and len(web & idle) >= 3  # their points share each instant since grouping
    assert "replication group tier" in lab.allowed("test_failover", "WEB01")
    lab.plan_delete("App")
    lab.plan_create("Half", "OnPremise Cloud", "Japan East", ["WEB01"])
    with pytest.raises(Refused, match="put them in the plan too"):
        lab.plan_start("Half", "test")
    lab.plan_move("Half", "IDLE01", 1)
    job = lab.plan_start("Half", "test")
    lab.run(10 * 60)
    assert lab.job(job)["state"] == "waiting for action"
    points = {v["name"]: r["point"] for v in lab.status()["vms"] for r in v["recovered"]}
    times = {vm: next(p["time"] for p in lab.points(vm) if p["id"] == pid) for vm, pid in points.items()}
    assert len(set(times.values())) == 1  # both recovered to the same instant


def test_a_plan_failback_synced_before_waits_then_fails_back_group_by_group(plan_lab):
    lab = plan_lab
    lab.run_until_done([lab.plan_start("App", "planned")])
    lab.run_until_done([lab.plan_start("App", "commit")])
    lab.run(20 * 60)
    back = lab.plan_start("App", "planned")  # sync before (the default): the VMs keep running in Azure
    lab.run(30 * 60)
    j = lab.job(back)
    waiting = [s["name"] for s in j["steps"] if s["state"] == "waiting for action"]
    assert waiting == ["Start the failover (complete this step when ready)"]
    assert all(r["power"] == "running" for v in lab.status()["vms"] for r in v["recovered"])
    lab.complete_job(back)
    lab.run_until_done([back])
    j = lab.job(back)
    assert j["state"] == "succeeded", j
    kids = {lab.job(c)["target"]: lab.job(c) for c in j["children"]}
    assert kids["IDLE01"]["ended"] <= kids["WEB01"]["steps"][-3]["started"]  # WEB01 shut down after IDLE01 ran
    assert all(v["identical"] for g in j["report"]["groups"].values() for v in g["vms"].values())
    c = lab.plan_check("App", "commit")
    assert c["problems"] == []


def test_groups_reorder_and_empty_ones_go(plan_lab):
    lab = plan_lab
    a = lab.plan_add_action("App", 2, "after", manual="smoke test the web tier")
    lab.plan_add_group("App")
    lab.plan_move_group("App", 2, 1)  # WEB01's group first
    assert [g["vms"] for g in lab.plan("App")["groups"]] == [["WEB01"], ["IDLE01"], []]
    assert lab.plan("App")["groups"][0]["after"][0]["id"] == a
    with pytest.raises(Refused, match="has VMs"):
        lab.plan_remove_group("App", 1)
    lab.plan_remove_group("App", 3)
    lab.plan_remove_action("App", a)
    assert [(g["vms"], g["after"]) for g in lab.plan("App")["groups"]] == [(["WEB01"], []), (["IDLE01"], [])]
    with pytest.raises(InvalidInput, match="no action"):
        lab.plan_remove_action("App", a)
