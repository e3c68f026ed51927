import json
import os
import subprocess

import pytest
from engine import InvalidInput, Lab, Refused, SiteFileError
from engine import store
from engine.disks import allocated_bytes, check_footer, fingerprint
from engine.workload import writes_due
from tests.conftest import SAMPLES


def file_hash(path):
    return fingerprint(path, os.path.getsize(path))


def test_init_creates_vault_and_sparse_disks(lab):
    assert (lab.path / "vault.db").is_file()
    assert (lab.path / "sites").is_dir() and (lab.path / "storage").is_dir()
    assert lab.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version(lab.db) == store.SCHEMA_VERSION
    for vm in lab.site.vms:
        for i, d in enumerate(vm.disks):
            p = lab.disk_path(vm.name, i)
            assert os.path.getsize(p) == d.size_bytes + 512
            assert check_footer(p, d.size_bytes) is None
            # Sparse: only the installed content is allocated.
            assert allocated_bytes(p, d.size_bytes) == int(d.content_mb * 1024 * 1024)


def test_qemu_img_recognises_disks(lab, need_tool):
    qemu = need_tool("qemu-img")
    for vm in lab.site.vms:
        for i, d in enumerate(vm.disks):
            out = subprocess.run(
                [qemu, "info", "-f", "vpc", "--output=json", str(lab.disk_path(vm.name, i))],
                check=True, capture_output=True, text=True,
            ).stdout
            info = json.loads(out)
            assert info["format"] == "vpc"
            assert info["virtual-size"] == d.size_bytes


def test_sample_lab_init(tmp_path):
    with Lab.create(tmp_path / "lab", SAMPLES / "hyperv-to-azure.toml") as lab:
        st = lab.status()
        mywsv = next(v for v in st["vms"] if v["name"] == "MYWSV01")
        os_disk = mywsv["disks"][0]
        assert os_disk["logical_bytes"] == 127 * 1024**3
        # A few tens of MiB of "installed OS", not 127 GB.
        assert 10 * 1024**2 < os_disk["allocated_bytes"] < 100 * 1024**2


def test_init_refuses_existing_lab_without_force(lab, small_site):
    with pytest.raises(Refused, match="already exists"):
        Lab.create(lab.path, small_site)
    lab.run(600)
    with Lab.create(lab.path, small_site, force=True) as fresh:
        assert fresh.now == fresh.status()["now"]
        assert fresh.vm_row("WEB01")["writes_done"] == 0


def test_failed_init_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[lab]\nname = 1\n")
    with pytest.raises(SiteFileError):
        Lab.create(tmp_path / "lab", bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_init_refuses_a_non_empty_directory(tmp_path, small_site):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "notes.txt").write_text("mine")
    with pytest.raises(Refused, match="not empty"):
        Lab.create(tmp_path / "lab", small_site)
    assert (tmp_path / "lab" / "notes.txt").read_text() == "mine"


def test_open_missing_lab(tmp_path):
    with pytest.raises(Refused, match="no lab at"):
        Lab.open(tmp_path / "nothing")


def test_run_writes_about_rate_times_time_and_transactions_are_found(lab):
    vm = lab.vm("WEB01")
    before = sum(allocated_bytes(lab.disk_path("WEB01", i), d.size_bytes) for i, d in enumerate(vm.disks))
    lab.run(7200)
    assert lab.now - lab.status()["now"] == 0
    expected_writes = writes_due(7200, vm)  # 4 KiB/s x 2 h / 4 KiB
    assert expected_writes == 7200
    assert lab.vm_row("WEB01")["writes_done"] == expected_writes
    after = sum(allocated_bytes(lab.disk_path("WEB01", i), d.size_bytes) for i, d in enumerate(vm.disks))
    # Random 4 KiB writes over 1.5 GiB rarely collide: allocation grows by about rate x time.
    grown = after - before
    assert 0.9 * 7200 * 4096 <= grown <= 7200 * 4096
    scan = lab.last_transaction("WEB01")
    assert scan.last_seq == expected_writes
    assert lab.now - 2 <= scan.last_time <= lab.now


def test_stepping_does_not_change_the_bytes(tmp_path, small_site):
    with Lab.create(tmp_path / "a", small_site) as a, Lab.create(tmp_path / "b", small_site) as b:
        a.run(3600)
        for _ in range(12):
            b.run(300)
        for i in range(2):
            assert file_hash(a.disk_path("WEB01", i)) == file_hash(b.disk_path("WEB01", i))


def test_stopped_vm_disk_does_not_change(lab):
    path = lab.disk_path("IDLE01", 0)
    h = file_hash(path)
    lab.run(3600)
    assert file_hash(path) == h
    lab.vm_power("WEB01", "stop")
    web = [file_hash(lab.disk_path("WEB01", i)) for i in range(2)]
    lab.run(3600)
    assert [file_hash(lab.disk_path("WEB01", i)) for i in range(2)] == web


def test_power_transitions(lab):
    assert lab.vm_power("IDLE01", "start") == "running"
    with pytest.raises(Refused, match="already running"):
        lab.vm_power("IDLE01", "start")
    assert lab.vm_power("IDLE01", "shutdown") == "off"
    assert lab.vm_row("IDLE01")["last_shutdown"] == "clean"
    with pytest.raises(Refused, match="already off"):
        lab.vm_power("IDLE01", "stop")
    with pytest.raises(InvalidInput, match="no VM named"):
        lab.vm_power("NOPE", "start")
    lab.vm_power("IDLE01", "start")
    lab.run(600)
    assert lab.last_transaction("IDLE01").last_seq == writes_due(600, lab.vm("IDLE01"))


def test_run_needs_positive_duration(lab):
    with pytest.raises(InvalidInput):
        lab.run(0)


def test_forward_migration_from_an_older_schema(tmp_path):
    db = store.connect(tmp_path / "v.db")
    store.migrate(db)
    assert store.schema_version(db) == store.SCHEMA_VERSION
    store.set_meta(db, "schema_version", store.SCHEMA_VERSION + 1)
    with pytest.raises(Refused, match="newer srlab"):
        store.migrate(db)


def test_only_one_process_advances_the_clock(lab):
    other = Lab.open(lab.path)
    try:
        assert lab.acquire_clock()
        assert not other.acquire_clock()
        with pytest.raises(Refused, match="is advancing this lab's clock"):
            other.run(60)
        assert other.status()["now"] == lab.now  # observers still read everything
    finally:
        other.close()
    lab.close()
    again = Lab.open(lab.path)
    assert again.acquire_clock()  # released when the first one closed
    again.close()


def test_jobs_that_wait_for_a_users_action(lab, monkeypatch):
    from engine import jobs

    done = []

    def step(i):
        return lambda lab, run: done.append((run.kind, i, run.data.get("note")))

    drill = jobs.Kind("drill", "Drill", [jobs.Step("Prepare", 10, step(0)), jobs.Step("Complete test", None, step(1)),
                                         jobs.Step("Clean up", 10, step(2))])
    monkeypatch.setitem(jobs.KINDS, "drill", drill)
    job = jobs.create(lab.db, lab.now, "drill", "WEB01")
    assert "only a job waiting for action" in lab.allowed("complete_job", job)
    lab.run(60)
    j = lab.job(job)
    assert j["state"] == "waiting for action" and j["steps"][1]["state"] == "waiting for action"
    lab.run(3600)  # it waits however long it takes
    assert lab.job(job)["state"] == "waiting for action" and done == [("drill", 0, None)]
    assert lab.allowed("complete_job", job) is None
    lab.complete_job(job, note="test VM checked")
    lab.run(60)
    j = lab.job(job)
    assert j["state"] == "succeeded" and [s["state"] for s in j["steps"]] == ["succeeded"] * 3
    assert done == [("drill", 0, None), ("drill", 1, "test VM checked"), ("drill", 2, None)]
    with pytest.raises(Refused, match="is succeeded"):
        lab.complete_job(job)
