import pytest

from engine import rules
from engine.model import VM, Disk, Nic
from engine.replication.points import PointInfo, points_to_keep


def vm(**kw):
    base = dict(name="MYWSV01", os="Windows Server 2012 R2", cpus=2, memory_mb=1024,
                disks=[Disk("os", 40, role="os", controller="ide")], nics=[Nic("n0", "net")])
    base.update(kw)
    return VM(**base)


@pytest.mark.parametrize("freq, ret, app, start, msg", [
    ("5m", 2, 1, "now", None),
    ("30s", 24, 12, "21:30", None),
    ("1m", 2, 0, "now", "copy frequency must be one of 30s, 5m, 15m"),
    ("5m", 25, 0, "now", "retention must be 0-24"),
    ("5m", 2, 13, "now", "app-consistent snapshot frequency must be 0 (none) to 12"),
    ("5m", 2, 3, "now", "cannot be longer than the recovery point retention"),
    ("5m", 2, 0, "21:15", "30-minute boundary"),
    ("5m", 2, 0, "25:00", "30-minute boundary"),
])
def test_policy_rules(freq, ret, app, start, msg):
    problems = rules.policy_problems(freq, ret, app, start)
    if msg is None:
        assert problems == []
    else:
        assert any(msg in p for p in problems), problems


def test_next_start_time():
    nine = 1767603600  # 2026-01-05 09:00 UTC
    assert rules.next_start_time(nine, "now") == nine
    assert rules.next_start_time(nine, "21:30") == nine + 12 * 3600 + 1800
    assert rules.next_start_time(nine, "08:00") == nine + 23 * 3600


@pytest.mark.parametrize("cpus, mem, dyn, data_disks, size", [
    (1, 512, 0, 0, "XS"),
    (1, 1024, 0, 0, "S"),
    (2, 1024, 3584, 0, "M"),      # dynamic memory: its maximum decides (seed 004)
    (2, 1024, 8192, 0, "A5"),
    (4, 6144, 0, 1, "L"),
    (8, 8192, 0, 0, "XL"),
    (4, 20000, 0, 0, "A6"),
    (8, 40000, 0, 0, "A7"),
    (16, 1024, 0, 0, None),
    (1, 512, 0, 3, "M"),          # 3 data disks need a size that takes them
])
def test_target_size_pick(cpus, mem, dyn, data_disks, size):
    disks = [Disk("os", 40, role="os", controller="ide")] + [Disk(f"d{i}", 10) for i in range(data_disks)]
    assert rules.pick_target_size(vm(cpus=cpus, memory_mb=mem, dynamic_memory_max_mb=dyn, disks=disks)) == size


def test_target_size_change_checks_disks():
    v = vm(disks=[Disk("os", 40, role="os", controller="ide"), Disk("a", 1), Disk("b", 1)])
    assert rules.target_size_problem(v, "XS") == "size XS takes at most 1 data disks; MYWSV01 has 2"
    assert "unknown target size" in rules.target_size_problem(v, "XXL")
    assert rules.target_size_problem(v, "M") is None


@pytest.mark.parametrize("kw, rule", [
    (dict(generation=2), "generation 1 only"),
    (dict(bitness=32), "only 64-bit guests"),
    (dict(os="Windows 95"), "is not supported"),
    (dict(disks=[Disk("os", 128, role="os", controller="ide")]), "must be 20 MB to 127 GB"),
    (dict(disks=[Disk("os", 0.01, role="os", controller="ide")]), "must be 20 MB to 127 GB"),
    (dict(disks=[Disk("os", 40, role="os", controller="scsi")]), "must be on IDE"),
    (dict(disks=[Disk("a", 40, role="os", controller="ide"), Disk("b", 40, role="os", controller="ide")]), "exactly one is required"),
    (dict(disks=[Disk("os", 40, role="os", controller="ide"), Disk("d", 1024)]), "must be 20 MB to 1023 GB"),
    (dict(disks=[Disk("os", 40, role="os", controller="ide")] + [Disk(f"d{i}", 1) for i in range(17)]), "at most 16"),
    (dict(disks=[Disk("os", 40, role="os", controller="ide"), Disk("d", 10, attachment="passthrough")]), "passthrough disk"),
    (dict(disks=[Disk("os", 40, role="os", controller="ide"), Disk("d", 10, attachment="shared")]), "shared disk"),
    (dict(nics=[Nic("n0", "net", addressing="static", ip="10.0.0.5")]), "static IP"),
    (dict(name="-bad_name-"), "not a valid Azure VM name"),
])
def test_each_protection_requirement(kw, rule):
    problems = rules.protection_problems(vm(**kw), to_azure=True)
    assert any(rule in p.rule for p in problems), problems
    assert all(p.fix for p in problems)


def test_requirements_pass_and_differ_for_recovery_clouds():
    assert rules.protection_problems(vm(), to_azure=True) == []
    assert rules.protection_problems(vm(generation=2), to_azure=False) == []
    # A bad name is allowed when a target name is given.
    assert rules.protection_problems(vm(name="my_vm"), to_azure=True, target_name="my-vm") == []


def test_health_thresholds():
    assert rules.health(None, 300) == "OK"
    assert rules.health(900, 300) == "OK"
    assert rules.health(901, 300) == "Warning"
    assert rules.health(1801, 300) == "Critical"
    assert rules.health(10, 300, failed=True) == "Critical"


def test_allowed_table():
    assert rules.item_action_reason("protect", "A", "not protected") is None
    assert rules.item_action_reason("protect", "A", "protected") == "A is already protected"
    assert rules.item_action_reason("set_target", "A", "not protected").startswith("A is not protected")


H = 3600


def pts(times, app=()):
    return [PointInfo(i, t, i in app) for i, t in enumerate(times)]


def test_retention_zero_keeps_only_latest():
    p = pts([0, 300, 600])
    assert points_to_keep(p, 600, 0) == {2}


def test_retention_first_hour_every_point_then_hourly():
    now = 3 * H
    times = list(range(0, now + 1, 300))  # a point every 5 minutes for 3 hours
    p = pts(times)
    keep = points_to_keep(p, now, 2)
    kept_times = sorted(times[i] for i in keep)
    recent = [t for t in kept_times if t > now - H]
    assert len(recent) == 12  # 60 / 5 minutes
    older = [t for t in kept_times if t <= now - H]
    # One per clock hour back to the retention horizon (hour 1 and hour 2 buckets).
    assert older == [H + 55 * 60, 2 * H]
    assert all(t >= now - 2 * H for t in kept_times)


def test_retention_prefers_app_consistent_in_an_hour():
    now = 3 * H
    times = list(range(0, now + 1, 300))
    app = {times.index(H + 600)}
    keep = points_to_keep(pts(times, app), now, 2)
    assert times.index(H + 600) in keep
    assert times.index(H + 55 * 60) not in keep
