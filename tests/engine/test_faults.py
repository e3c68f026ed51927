"""Faults injected on purpose (issue 9): seed 000's retry logic, the 50% rule, unrecoverable errors,
a site disaster (seed 001), and a fault stopping only what it touches. Lab time only."""

from __future__ import annotations

import pytest

from engine import InvalidInput, Lab, Refused
from engine.rules import RETRY_EVERY, RETRY_WAITS, retry_wait
from tests.conftest import SMALL_SITE, step2

M = 60


def _protected(lab, *vms, **policy):
    """WEB01 (and the other VMs named, started first) protected to Azure, replicating every 5 minutes."""
    step2(lab, retention_h=policy.pop("retention_h", 2), app_consistent_h=0, **policy)
    for name in vms:
        if lab.vm_row(name)["power"] != "running":
            lab.vm_power(name, "start")
    lab.run_until_done(lab.protect(["WEB01", *vms]))
    lab.run(20 * M)
    for name in ("WEB01", *vms):
        assert lab.protection_state(name) == "protected"


def _attempts(lab, vm, code):
    """Lab times of the failed attempts of `vm` with error `code`, oldest first."""
    return [e["time"] for e in reversed(lab.events_query(vm)) if e["code"] == code and "attempt" in e["message"]]


def _health(lab, vm):
    st = next(v for v in lab.status()["vms"] if v["name"] == vm)
    return st["health"], st["health_reason"], st["health_action"]


def _all_points_identical(lab, vm):
    """The oldest and the latest retained points build disks identical to the source's then
    (every point in between is the same chain; building each costs a disk copy)."""
    pts = lab.points(vm)
    for p in {pts[0]["id"], pts[-1]["id"]}:
        assert lab.verify(vm, p)["identical"], p


def test_retry_waits_are_seed_000s():
    assert [retry_wait(n) for n in range(1, 9)] == [60, 120, 240, 480, 600, 1800, 1800, 1800]
    assert RETRY_WAITS == (60, 120, 240, 480, 600) and RETRY_EVERY == 1800


def test_link_down_is_retried_at_exact_lab_times_then_replication_resumes(lab):
    _protected(lab)
    points_before = len(lab.points("WEB01"))
    lab.fault_inject("link-down")
    t0 = lab.now
    lab.run(3 * 3600)
    times = _attempts(lab, "WEB01", "NetworkError")
    first = times[0]
    assert first - t0 <= 5 * M  # the next cycle is the first failed attempt
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[:5] == [60, 120, 240, 480, 600] and set(gaps[5:]) == {1800}
    assert len(lab.points("WEB01")) <= points_before + 1  # nothing arrives while the link is down
    health, reason, action = _health(lab, "WEB01")
    assert health == "Critical" and "NetworkError" in reason and "fault clear link-down" in action
    # The log grows beside the disk meanwhile.
    assert lab.disk_path("WEB01", 0).with_suffix(".hrl").stat().st_size > 100_000
    lab.fault_clear("link-down")
    cleared = lab.now
    lab.run(45 * M)
    resumed = [e for e in lab.events_query("WEB01") if "replication resumed" in e["message"]]
    assert resumed and resumed[0]["time"] > cleared
    # The first attempt after the fault cleared is the next one of the schedule (every 30 min).
    assert resumed[0]["time"] - times[-1] <= RETRY_EVERY + 5 * M
    assert _health(lab, "WEB01")[0] == "OK"
    assert lab.status()["vms"][0]["retry"] is None
    _all_points_identical(lab, "WEB01")


def test_a_fault_for_a_while_clears_itself(lab):
    _protected(lab)
    lab.fault_inject("link-down", duration=20 * M)
    assert lab.faults()[0]["until"] == lab.now + 20 * M
    lab.run(21 * M)
    assert lab.faults() == []
    assert any("its time was up" in e["message"] for e in lab.events_query())


def test_flaky_link_loses_transfers_which_are_sent_again(lab):
    _protected(lab)
    lab.fault_inject("link-flaky", amount=0.5)
    lab.run(3600)
    lost = [e for e in lab.events_query("WEB01") if e["code"] == "TransferInterrupted"]
    assert lost, "half the transfers fail: some are lost"
    lab.fault_clear("link-flaky")
    lab.run(40 * M)
    assert _health(lab, "WEB01")[0] == "OK"
    _all_points_identical(lab, "WEB01")


def test_slow_link_raises_the_rpo_and_health_names_the_books_remedy(lab):
    _protected(lab)
    lab.set_link(mbps=0.05)
    lab.fault_inject("link-slow", amount=0.01)
    lab.run(90 * M)
    health, reason, action = _health(lab, "WEB01")
    assert health == "Critical" and "more than 6 copy intervals" in reason
    assert "--frequency 15m" in action and "bandwidth" in action


def test_planned_failover_needs_replication_working(lab):
    _protected(lab)
    lab.fault_inject("link-down")
    assert "cannot replicate now (NetworkError" in lab.allowed("planned_failover", "WEB01")
    jobs = lab.failover(["WEB01"], "unplanned", shutdown_sync=True)
    lab.run_until_done(jobs)
    assert lab.job(jobs[0])["state"] == "succeeded"
    assert any("failing over without its latest data" in e["message"] for e in lab.events_query("WEB01"))


def test_storage_full_is_retried_and_nothing_arrives(lab):
    _protected(lab)
    n = len(lab.points("WEB01"))
    lab.fault_inject("storage-full", target="mysiterecovery")
    lab.run(30 * M)
    assert len(_attempts(lab, "WEB01", "TargetStorageFull")) >= 3
    assert len(lab.points("WEB01")) <= n + 1
    lab.fault_clear("storage-full")
    lab.run(40 * M)
    assert len(lab.points("WEB01")) > n + 1


def test_out_of_memory_on_a_host_is_recoverable(lab):
    _protected(lab)
    lab.fault_inject("out-of-memory", target="HV01")
    lab.run(20 * M)
    assert _attempts(lab, "WEB01", "OutOfMemory")
    assert not lab.status()["vms"][0]["errors"]


@pytest.mark.parametrize("kind,code", [("auth-failure", "AuthenticationFailed"),
                                       ("authorization-failure", "AuthorizationFailed")])
def test_unrecoverable_errors_are_never_retried(lab, kind, code):
    _protected(lab)
    lab.fault_inject(kind, target="SC01")
    lab.run(2 * 3600)
    evs = [e for e in lab.events_query("WEB01") if e["code"] == code]
    assert len(evs) == 1 and evs[0]["level"] == "error" and "resync" in evs[0]["action"]
    health, reason, action = _health(lab, "WEB01")
    assert health == "Critical" and code in reason and "srlab resync WEB01" in action
    item = lab.db.execute("SELECT resync_required, failures FROM items WHERE vm='WEB01'").fetchone()
    assert tuple(item) == (1, 0)


def test_vm_missing_stops_its_writes_and_its_replication_only(lab):
    _protected(lab, "IDLE01")
    writes = lab.vm_row("WEB01")["writes_done"]
    other = len(lab.points("IDLE01"))
    lab.fault_inject("vm-missing", target="WEB01")
    lab.run(30 * M)
    assert lab.vm_row("WEB01")["writes_done"] == writes
    assert [e for e in lab.events_query("WEB01") if e["code"] == "VmNotFound"]
    assert len(lab.points("IDLE01")) > other  # the other VM goes on
    with pytest.raises(Refused, match="deleted at the source"):
        lab.vm_power("WEB01", "stop")


def test_chain_broken_is_found_by_the_shipment_checks_and_no_point_is_recorded(lab):
    _protected(lab)
    r = lab.fault_inject("chain-broken", target="WEB01")
    damaged_at = lab.now
    assert r["damaged"].endswith(".hrl") and lab.faults() == []
    lab.run(10 * M)
    assert not [p for p in lab.points("WEB01") if p["time"] > damaged_at]  # the log frozen after it
    health, reason, _ = _health(lab, "WEB01")
    assert health == "Critical" and "VhdChainBroken" in reason and "resynchronization required" in reason
    _all_points_identical(lab, "WEB01")  # the points there are stay whole


def test_replica_invalid_is_found_at_the_next_arrival(lab):
    _protected(lab)
    lab.fault_inject("replica-invalid", target="WEB01")
    lab.run(10 * M)
    health, reason, _ = _health(lab, "WEB01")
    assert health == "Critical" and "ReplicaInvalid" in reason
    assert not lab.verify("WEB01")["identical"]  # verify finds it too, and says which file
    assert lab.verify("WEB01")["damaged"]


@pytest.fixture
def tiny_lab(tmp_path):
    """SMALL_SITE with a 64 MiB data disk: its log reaches 50% in seconds at 1 MiB/s."""
    site = tmp_path / "tiny.toml"
    site.write_text(SMALL_SITE.replace("size_gb = 0.5", "size_gb = 0.0625"))
    lab = Lab.create(tmp_path / "tiny", site)
    yield lab
    lab.close()


def test_the_50_percent_rule_drops_the_log_and_asks_for_a_resync(tiny_lab):
    lab = tiny_lab
    _protected(lab)
    lab.fault_inject("link-down")
    lab.vm_workload("WEB01", 1024)  # 1 MiB/s, 80% of it to the data disk: half of it in 40 s
    lab.run(2 * M)
    lab.vm_workload("WEB01", 4)
    (ev,) = [e for e in lab.events_query("WEB01") if e["code"] == "ResyncRequired"]
    assert "50% of the disk" in ev["message"] and "srlab resync WEB01" in ev["action"]
    for i in range(2):
        disk = lab.disk_path("WEB01", i)
        assert disk.with_suffix(".hrl").stat().st_size * 2 < lab.vm("WEB01").disks[i].size_bytes
    assert lab.db.execute("SELECT COUNT(*) FROM transfers WHERE vm='WEB01'").fetchone()[0] == 0
    # no more attempts: it waits for its resync
    n = len(_attempts(lab, "WEB01", "NetworkError"))
    lab.run(30 * M)
    assert len(_attempts(lab, "WEB01", "NetworkError")) == n


def test_retention_runs_during_an_outage(lab):
    _protected(lab, retention_h=1)
    lab.fault_inject("link-down")
    lab.run(3 * 3600)
    times = [p["time"] for p in lab.points("WEB01")]
    assert len(times) == 1  # only the latest: nothing within the retention window arrives


def test_site_disaster_then_unplanned_failover(lab):
    _protected(lab, "IDLE01")
    lab.fault_inject("site-disaster")
    assert lab.vm_row("WEB01")["power"] == "off" and lab.vm_row("IDLE01")["power"] == "off"
    with pytest.raises(Refused, match="site is down"):
        lab.vm_power("WEB01", "start")
    assert "source site reachable" in lab.allowed("planned_failover", "WEB01")
    assert lab.allowed("unplanned_failover", "WEB01") is None
    lab.run(10 * M)
    assert _attempts(lab, "WEB01", "PrimarySiteUnreachable")
    jobs = lab.failover(["WEB01"], "unplanned", shutdown_sync=True)
    lab.run_until_done(jobs)
    assert lab.job(jobs[0])["state"] == "succeeded"
    assert lab.status()["vms"][0]["failover_state"] == "Commit pending"
    lab.fault_clear("site-disaster")
    assert lab.allowed("vm_start", "IDLE01") is None


def test_a_missing_key_file_stops_only_its_servers_items(lab):
    _protected(lab, encrypt=True)
    key = lab.path / lab.resources()["servers"][0]["key_file"]
    saved = key.read_bytes()
    key.unlink()
    t = lab.now
    lab.run(20 * M)
    assert lab.now == t + 20 * M  # the clock goes on
    assert _attempts(lab, "WEB01", "KeyUnavailable")
    key.write_bytes(saved)
    lab.run(40 * M)
    assert _health(lab, "WEB01")[0] == "OK"
    _all_points_identical(lab, "WEB01")


def test_faults_show_in_status_and_events_filter(lab):
    _protected(lab)
    lab.fault_inject("link-down", target="OnPremise Cloud->Japan East")
    st = lab.status()
    assert st["faults"][0]["kind"] == "link-down" and st["faults"][0]["touches"] == ["WEB01"]  # IDLE01 is not protected
    lab.run(10 * M)
    since = lab.now - 5 * M
    assert all(e["time"] >= since for e in lab.events_query(since=since))
    assert all(e["subject"] == "WEB01" for e in lab.events_query("WEB01"))
    assert st["containers"][0]["name"] == "OnPremise Cloud"


def test_fault_mistakes_are_refused_and_change_nothing(lab):
    _protected(lab)
    with pytest.raises(InvalidInput, match="no fault kind"):
        lab.fault_inject("meteor")
    with pytest.raises(InvalidInput, match="not one in this lab"):
        lab.fault_inject("link-down", target="Mars")
    with pytest.raises(InvalidInput, match="needs --target VM"):
        lab.fault_inject("vm-missing")
    with pytest.raises(InvalidInput, match="takes no --amount"):
        lab.fault_inject("link-down", amount=0.5)
    with pytest.raises(InvalidInput, match="no duration"):
        lab.fault_inject("chain-broken", target="WEB01", duration=60)
    with pytest.raises(Refused, match="not replicating"):
        lab.fault_inject("chain-broken", target="IDLE01")
    lab.fault_inject("link-down")
    with pytest.raises(Refused, match="already in effect"):
        lab.fault_inject("link-down")
    with pytest.raises(Refused, match="no storage-full"):
        lab.fault_clear("storage-full")
    assert [f["kind"] for f in lab.faults()] == ["link-down"]
    assert lab.allowed("fault_inject", ("meteor",)) and lab.allowed("fault_clear", ("link-down",)) is None


def test_workload_rate_changes_the_churn_from_now_on(lab):
    _protected(lab)
    before = lab.vm_row("WEB01")["writes_done"]
    lab.vm_workload("WEB01", 0)
    lab.run(10 * M)
    assert lab.vm_row("WEB01")["writes_done"] == before
    lab.vm_workload("WEB01", 40)  # 10x the site's 4 KiB/s
    lab.run(10 * M)
    assert lab.vm_row("WEB01")["writes_done"] - before == 40 * 600 // 4
    assert lab.last_transaction("WEB01").last_seq == lab.vm_row("WEB01")["writes_done"]
    with pytest.raises(InvalidInput, match="--rate"):
        lab.vm_workload("WEB01", -1)


def test_after_every_fault_is_cleared_and_a_resync_every_retained_point_verifies(lab):
    """The issue's end-to-end promise: break everything, clear it, resynchronize, and every
    recovery point the lab keeps builds disks byte-identical to the source at its instant."""
    _protected(lab, "IDLE01", retention_h=1)
    lab.fault_inject("link-flaky", amount=0.4)
    lab.fault_inject("link-slow", amount=0.5)
    lab.fault_inject("out-of-memory", target="HV01", duration=15 * M)
    lab.run(30 * M)
    lab.fault_inject("chain-broken", target="WEB01")
    lab.fault_inject("replica-invalid", target="IDLE01")
    lab.fault_inject("auth-failure", target="SC01")
    lab.run(20 * M)
    for vm in ("WEB01", "IDLE01"):
        assert _health(lab, vm)[0] == "Critical"
    lab.fault_clear()
    jobs = lab.resync(["WEB01", "IDLE01"])
    lab.run_until_done(jobs)
    assert [lab.job(j)["state"] for j in jobs] == ["succeeded", "succeeded"]
    lab.run(20 * M)
    for vm in ("WEB01", "IDLE01"):
        assert _health(lab, vm)[0] == "OK"
        for p in lab.points(vm):
            assert lab.verify(vm, p["id"])["identical"], (vm, p)


def test_health_during_a_resync_says_so_and_reprotect_owes_no_resync(lab):
    _protected(lab)
    lab.fault_inject("chain-broken", target="WEB01")
    lab.run(10 * M)
    assert _health(lab, "WEB01")[0] == "Critical"
    lab.resync(["WEB01"])
    lab.run(30)  # past the Prerequisites check
    assert lab.protection_state("WEB01") == "resynchronization in progress"
    health, reason, action = _health(lab, "WEB01")
    assert health == "Warning" and "VhdChainBroken" in reason and "Resynchronize job" in action
    # A new initial replication (as a reprotect starts) owes nothing of an old error.
    item = lab.replication.item("WEB01")
    lab.db.execute("UPDATE items SET resync_required=1, error='old', error_code='X' WHERE vm='WEB01'")
    lab.replication.start_initial(item, lab.now, again=True)
    row = lab.replication.item("WEB01")
    assert (row["resync_required"], row["error"], row["error_code"]) == (0, "", "")


def test_initial_chunks_lost_on_a_flaky_link_are_staged_and_sent_again(lab):
    """An initial chunk expected to arrive within its slice is held in memory, not staged; one the
    link loses is staged before the slice commits: every queued chunk the vault claims has its
    frame on disk, and the replica still verifies."""
    from engine.replication import replica

    step2(lab, retention_h=1, app_consistent_h=0)
    lab.set_link(mbps=1000)
    lab.fault_inject("link-flaky", amount=0.5)
    lab.run_until_done(lab.protect(["WEB01"]))
    for _ in range(40):
        lab.run(30)
        for t in lab.db.query("SELECT * FROM transfers WHERE kind='initial'"):
            assert replica.frame_path(lab.path / t["dir"], 0) is not None, t
        if lab.protection_state("WEB01") == "protected":
            break
    assert any(e["code"] == "TransferInterrupted" for e in lab.events_query("WEB01"))
    lab.fault_clear("link-flaky")
    lab.run(20 * M)
    assert lab.protection_state("WEB01") == "protected" and lab.verify("WEB01")["identical"]
