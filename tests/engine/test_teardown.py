"""Seed 004 STEP 4, taking the service down: disable protection (and stop managing), remove a
cloud's protection settings, unregister a server. Each removes what it should and nothing else."""

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine import InvalidInput, Lab, Protection, Refused
from engine import states
from engine.disks import fingerprint
from engine.replication import replica
from tests.conftest import SMALL_SITE, step2
from tui.cli import main

# Two VMM servers: SC01 with two clouds (OnPremise Cloud and Second Cloud), SC02 with one.
TWO_SERVERS = SMALL_SITE.replace('''  [[vmm_servers.vm_networks]]
  name = "VirtualSwitch - FrontEnd"
''', '''  [[vmm_servers.hosts]]
  name = "HV02"
  [[vmm_servers.clouds]]
  name = "Second Cloud"
  hosts = ["HV02"]
  [[vmm_servers.vm_networks]]
  name = "VirtualSwitch - FrontEnd"

[[vmm_servers]]
name = "SC02"
  [[vmm_servers.hosts]]
  name = "HV03"
  [[vmm_servers.clouds]]
  name = "Branch Cloud"
  hosts = ["HV03"]
  [[vmm_servers.vm_networks]]
  name = "Branch Net"
''') + '''
[[vms]]
name = "APP02"
os = "CentOS 7.0"
cloud = "Second Cloud"
host = "HV02"
cpus = 1
memory_mb = 512
power = "off"
  [[vms.disks]]
  name = "APP02"
  role = "os"
  controller = "ide"
  size_gb = 0.25
  content_mb = 1
  [vms.workload]
  seed = 9

[[vms]]
name = "BR01"
os = "CentOS 7.0"
cloud = "Branch Cloud"
host = "HV03"
cpus = 1
memory_mb = 512
power = "off"
  [[vms.disks]]
  name = "BR01"
  role = "os"
  controller = "ide"
  size_gb = 0.25
  content_mb = 1
  [vms.workload]
  seed = 10
'''


@pytest.fixture
def lab2(tmp_path):
    site = tmp_path / "two.toml"
    site.write_text(TWO_SERVERS)
    lab = Lab.create(tmp_path / "lab2", site)
    yield lab
    lab.close()


def configured(lab, *clouds, **policy):
    """Register both servers, install every agent, configure each cloud to Azure."""
    for s in ("SC01", "SC02"):
        lab.run_until_done([lab.register_server(s)])
    for h in ("HV01", "HV02", "HV03"):
        lab.run_until_done([lab.install_agent(h)])
    for c in clouds:
        job = lab.configure_cloud(c, "azure", "mysiterecovery", **policy)
        lab.run_until_done([job])
        assert lab.job(job)["state"] == "succeeded", lab.job(job)


def protected(lab, *vms, minutes=30):
    lab.run_until_done(lab.protect(list(vms)))
    lab.run(minutes * 60)
    for vm in vms:
        assert lab.protection_state(vm) == Protection.PROTECTED


CHUNK = 64 * 1024


def content_hash(path: Path) -> str:
    """A hash of a file's bytes that reads only where it holds data (a replica base is a sparse
    1.5 GB file, most of it holes): its length, then each 64 KiB chunk that is not all zeros with
    its index. Two files get the same hash exactly when their bytes are the same."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(size.to_bytes(8, "big"))
    zero = bytes(CHUNK)
    with open(path, "rb") as f:
        fd, pos, done = f.fileno(), 0, 0  # chunks below `done` are hashed already
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno != errno.ENXIO:  # no data after pos
                    raise
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            for i in range(max(start // CHUNK, done), (end - 1) // CHUNK + 1):
                chunk = os.pread(fd, CHUNK, i * CHUNK)
                if chunk != zero[: len(chunk)]:
                    h.update(i.to_bytes(8, "big") + chunk)
            done = max(done, (end - 1) // CHUNK + 1)
            pos = end
    return h.hexdigest()


def tree(folder: Path) -> dict[str, str]:
    """Every file under a folder (hidden ones aside) and a hash of its bytes."""
    return {str(p.relative_to(folder)): content_hash(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def table(lab, sql):
    return [tuple(r) for r in lab.db.execute(sql).fetchall()]


def recovered_vm(lab, vm="WEB01"):
    return next(v for v in lab.status()["vms"] if v["name"] == vm)["recovered"]


# ---- disable protection ------------------------------------------------------------------------------


@pytest.mark.parametrize("commit", [False, True])
def test_disabling_a_vm_that_runs_in_azure_leaves_it_running_there(lab, commit):
    """Seed 004 FAQ (migration): fail over, then disable protection; the Azure VM and its disks
    stay and keep running; only the item, its replica and its points go."""
    step2(lab, retention_h=1)
    protected(lab, "WEB01", "IDLE01")
    other_store = lab.path / lab.replication.item("IDLE01")["store"]
    other_points = lab.points("IDLE01")
    store = lab.path / lab.replication.item("WEB01")["store"]
    lab.run_until_done(lab.failover(["WEB01"], "planned"))
    if commit:
        lab.run_until_done(lab.commit(["WEB01"]))
    (away,) = recovered_vm(lab)
    assert away["power"] == "running"

    job = lab.unprotect(["WEB01"])[0]
    lab.run_until_done([job])
    assert lab.job(job)["state"] == "succeeded"
    assert lab.protection_state("WEB01") == Protection.NOT_PROTECTED
    assert not store.exists() and lab.points("WEB01") == []
    assert table(lab, "SELECT COUNT(*) FROM points WHERE vm='WEB01'") == [(0,)]
    # The VM in Azure is untouched: same name, place and disks, running, and it keeps writing.
    (left,) = recovered_vm(lab)
    assert (left["name"], left["place"], left["power"], left["disks"]) == (away["name"], away["place"], "running",
                                                                           away["disks"])
    assert left["role"] == "migrated"
    before = lab.scan_disks([Path(p) for p in left["disks"]], lab.vm("WEB01")).last_seq
    lab.run(10 * 60)
    after = lab.scan_disks([Path(p) for p in left["disks"]], lab.vm("WEB01")).last_seq
    assert after > before and recovered_vm(lab)[0]["last_transaction"] == after
    assert any(f"{left['name']} stays at Japan East (running)" in e["message"] for e in lab.events(10))
    # The other protected VM is untouched: still protected, its replica still there and sound.
    assert lab.protection_state("IDLE01") == Protection.PROTECTED and other_store.is_dir()
    assert other_points and lab.points("IDLE01")
    assert lab.verify("IDLE01")["identical"]
    # Protecting WEB01 again may not take over the migrated VM's name (a failover would replace it).
    with pytest.raises(Refused, match="a VM named WEB01 already exists at Japan East"):
        lab.protect(["WEB01"])
    lab.run_until_done(lab.protect(["WEB01"], target_name="WEB01-b"))
    assert lab.item_status(lab.vm("WEB01"))["target_name"] == "WEB01-b"
    assert recovered_vm(lab)[0]["power"] == "running"


def test_stop_managing_leaves_the_replica_where_it_says(lab):
    step2(lab, retention_h=1)
    protected(lab, "WEB01", "IDLE01")
    item = lab.replication.item("WEB01")
    store = lab.path / item["store"]
    rows = lab.replication.point_rows("WEB01")
    last = rows[-1]
    files = tree(store)
    assert any(f.startswith("points/") for f in files)
    other = tree(lab.path / lab.replication.item("IDLE01")["store"])

    job = lab.unprotect(["WEB01"], stop_managing=True)[0]
    lab.run_until_done([job])
    j = lab.job(job)
    assert j["state"] == "succeeded" and j["name"] == "WEB01 (Disable protection and stop managing)"
    assert [s["name"] for s in j["steps"]] == ["Stop replication", "Stop managing the virtual machine"]
    assert j["report"]["replica_left"] == str(store)
    assert lab.protection_state("WEB01") == Protection.NOT_PROTECTED and lab.points("WEB01") == []
    assert table(lab, "SELECT COUNT(*) FROM transfers WHERE vm='WEB01'") == [(0,)]
    assert not any(lab.disk_path("WEB01", 0).parent.glob("*.hrl"))  # tracking at the source stopped
    # The replica is left byte for byte (its points folder renamed so no housekeeping claims it),
    # with a note saying what it holds.
    left = tree(store)
    note = left.pop("UNMANAGED.txt")
    assert note and left == {f.replace("points/", "recovery-points/", 1): h for f, h in files.items()}
    text = (store / "UNMANAGED.txt").read_text()
    assert "--stop-managing" in text and f"recovery-points/{Path(last['dir']).name}" in text
    assert any("replica is left at" in e["message"] and str(store) in e["message"] for e in lab.events(5))
    # Another process taking the clock (which sweeps what nothing claims) leaves it alone.
    lab.close()
    with Lab.open(lab.path) as again:
        again.run(10 * 60)
        assert {k: v for k, v in tree(store).items() if k != "UNMANAGED.txt"} == left
        # ... and it is still the replica: base + points rebuild the disks as they were at the last point.
        expected = json.loads(last["fingerprints"])
        vm = again.vm("WEB01")
        point_dirs = [store / "recovery-points" / Path(r["dir"]).name for r in rows]
        for i, d in enumerate(vm.disks):
            out = again.path / ".scratch" / f"rebuilt-{i}.vhd"
            out.parent.mkdir(exist_ok=True)
            replica.build_disk(store / f"{i}-{d.name}.vhd", point_dirs, i, out, d.size_bytes, None, f"WEB01/{d.name}")
            assert fingerprint(out, d.size_bytes) == expected[i]
        # The other VM is untouched.
        assert again.protection_state("IDLE01") == Protection.PROTECTED and other
        assert all((again.path / r["dir"]).is_dir() for r in again.replication.point_rows("IDLE01"))
        assert again.verify("IDLE01")["identical"]
        # Protecting WEB01 again starts a new replica beside the one left behind.
        again.run_until_done(again.protect(["WEB01"]))
        again.run(30 * 60)
        new_store = again.path / again.replication.item("WEB01")["store"]
        assert new_store != store and new_store.parent == store.parent and new_store.is_dir()
        assert {k: v for k, v in tree(store).items() if k != "UNMANAGED.txt"} == left
        assert again.verify("WEB01")["identical"]


def test_unprotect_names_each_vm_once_and_lists_every_refusal(lab):
    step2(lab)
    with pytest.raises(InvalidInput, match="WEB01 is named twice"):
        lab.unprotect(["WEB01", "web01"])
    with pytest.raises(Refused) as e:
        lab.unprotect(["WEB01", "IDLE01"])
    assert "WEB01:\n  - WEB01 is not protected" in e.value.message
    assert "IDLE01:\n  - IDLE01 is not protected" in e.value.message


# ---- cloud unprotect ---------------------------------------------------------------------------------


def test_cloud_unprotect_removes_only_that_clouds_settings(lab2):
    lab = lab2
    configured(lab, "OnPremise Cloud", "Second Cloud")
    lab.map_network("VirtualSwitch - FrontEnd", "AzureNetwork")
    protected(lab, "WEB01", "APP02", minutes=20)
    links, mappings = table(lab, "SELECT * FROM links"), table(lab, "SELECT * FROM network_mappings")
    second = table(lab, "SELECT * FROM protection_settings WHERE container='Second Cloud'")

    assert lab.allowed("unprotect_cloud", "OnPremise Cloud") == "cloud OnPremise Cloud has protected VMs: WEB01"
    with pytest.raises(Refused) as e:
        lab.unprotect_cloud("OnPremise Cloud")
    assert e.value.hint == "disable their protection first: srlab unprotect WEB01"
    assert "has no protection settings" in lab.allowed("unprotect_cloud", "Branch Cloud")
    with pytest.raises(InvalidInput, match="no cloud named 'Sky'"):
        lab.unprotect_cloud("Sky")

    lab.run_until_done(lab.unprotect(["WEB01"]))
    assert lab.allowed("unprotect_cloud", "OnPremise Cloud") is None
    job = lab.unprotect_cloud("onpremise cloud")
    assert "already being removed" in lab.allowed("unprotect_cloud", "OnPremise Cloud")
    assert "are being removed" in lab.allowed("protect", "WEB01")
    assert "are being removed" in lab.allowed("configure_cloud", "OnPremise Cloud")
    lab.run_until_done([job])
    j = lab.job(job)
    assert j["state"] == "succeeded" and j["name"] == "OnPremise Cloud (Remove protection settings)"
    assert [s["name"] for s in j["steps"]] == ["Validate that no VM of the cloud is protected",
                                               "Remove Hyper-V Replica settings from the cloud's hosts",
                                               "Remove the cloud's protection settings"]
    assert table(lab, "SELECT container FROM protection_settings") == [("Second Cloud",)]
    clouds = {c["name"]: c["protection"] for c in lab.resources()["clouds"]}
    assert clouds["OnPremise Cloud"] is None and clouds["Second Cloud"]["target"] == "Japan East"
    # Nothing else changed: the other cloud's settings and item, links, mappings, servers, agents.
    assert table(lab, "SELECT * FROM protection_settings WHERE container='Second Cloud'") == second
    assert table(lab, "SELECT * FROM links") == links and table(lab, "SELECT * FROM network_mappings") == mappings
    assert table(lab, "SELECT name FROM servers ORDER BY name") == [("SC01",), ("SC02",)]
    assert len(table(lab, "SELECT * FROM agents")) == 3
    assert lab.protection_state("APP02") == Protection.PROTECTED
    assert "not configured for protection" in lab.allowed("protect", "WEB01")
    assert "has no protection settings" in lab.allowed("unprotect_cloud", "OnPremise Cloud")


def test_cloud_unprotect_waits_for_a_configure_job(lab2):
    lab = lab2
    configured(lab)
    job = lab.configure_cloud("OnPremise Cloud", "azure", "mysiterecovery")
    assert "is being configured" in lab.allowed("unprotect_cloud", "OnPremise Cloud")
    lab.run_until_done([job])
    assert lab.allowed("unprotect_cloud", "OnPremise Cloud") is None
    # A VM protected while the removal job runs makes the job fail, changing nothing.
    removal = lab.unprotect_cloud("OnPremise Cloud")
    # As if another process protected a VM between the check and the job's last step:
    states.enter(lab.db, {"vm": "WEB01", "target_kind": "azure", "target": "Japan East", "store": "storage/x",
                          "target_name": "WEB01", "target_size": "M", "nic": "nic", "enabled_at": lab.now})
    lab.run_until_done([removal])
    assert lab.job(removal)["state"] == "failed" and "has protected VMs: WEB01" in lab.job(removal)["error"]
    assert table(lab, "SELECT container FROM protection_settings") == [("OnPremise Cloud",)]


# ---- server unregister -------------------------------------------------------------------------------


def test_server_unregister_removes_the_server_its_key_and_agents_only(lab2):
    lab = lab2
    configured(lab, "OnPremise Cloud", "Second Cloud", "Branch Cloud")
    keys = {r[0]: lab.path / r[1] for r in table(lab, "SELECT name, key_file FROM servers")}
    assert all(k.is_file() for k in keys.values())
    branch_key = keys["SC02"].read_bytes()

    reason = lab.allowed("unregister_server", "SC01")
    assert reason == "SC01's clouds OnPremise Cloud, Second Cloud have protection settings"
    with pytest.raises(Refused) as e:
        lab.unregister_server("SC01")
    assert e.value.hint == ("remove them first: srlab cloud unprotect 'OnPremise Cloud'; "
                            "srlab cloud unprotect 'Second Cloud'")
    lab.run_until_done([lab.unprotect_cloud("OnPremise Cloud")])
    assert lab.allowed("unregister_server", "SC01") == "SC01's cloud Second Cloud has protection settings"
    lab.run_until_done([lab.unprotect_cloud("Second Cloud")])
    assert lab.allowed("unregister_server", "SC01") is None

    job = lab.unregister_server("sc01")
    assert "already being unregistered" in lab.allowed("unregister_server", "SC01")
    assert "is being unregistered" in lab.allowed("configure_cloud", "OnPremise Cloud")
    lab.run_until_done([job])
    j = lab.job(job)
    assert j["state"] == "succeeded" and j["name"] == "SC01 (Unregister server)"
    assert table(lab, "SELECT name FROM servers") == [("SC02",)]
    assert not keys["SC01"].exists()
    assert table(lab, "SELECT host FROM agents") == [("HV03",)]
    # SC02, its key, its agent and its cloud's settings are untouched.
    assert keys["SC02"].read_bytes() == branch_key
    assert table(lab, "SELECT container FROM protection_settings") == [("Branch Cloud",)]
    assert any("Uninstall the provider from SC01 and the agent from HV01, HV02" in e["message"]
               for e in lab.events(5))
    assert lab.allowed("unregister_server", "SC01") == "SC01 is not registered with the vault"
    # SC01 can be registered again, with a new key.
    lab.run_until_done([lab.register_server("SC01")])
    assert (lab.path / table(lab, "SELECT key_file FROM servers WHERE name='SC01'")[0][0]).is_file()


def test_a_server_holding_another_clouds_recovery_cloud_stays_registered(lab2):
    lab = lab2
    configured(lab)
    lab.run_until_done([lab.configure_cloud("Branch Cloud", "Second Cloud")])  # SC02 -> SC01's cloud
    assert lab.allowed("unregister_server", "SC01") == "SC01 manages the recovery cloud of Branch Cloud"
    with pytest.raises(Refused) as e:
        lab.unregister_server("SC01")
    assert e.value.hint == "remove those settings first: srlab cloud unprotect 'Branch Cloud'"


def test_server_unregister_refusals(lab2):
    lab = lab2
    assert lab.allowed("unregister_server", "SC01") == "SC01 is not registered with the vault"
    with pytest.raises(InvalidInput, match="no VMM server named 'SC09'"):
        lab.unregister_server("SC09")
    job = lab.register_server("SC01")
    assert "is being registered" in lab.allowed("unregister_server", "SC01")
    lab.run_until_done([job])
    agent = lab.install_agent("HV01")
    assert lab.allowed("unregister_server", "SC01") == "the agent is being installed on HV01"
    lab.run_until_done([agent])
    job = lab.unregister_server("SC01")
    assert "is being unregistered" in lab.allowed("install_agent", "HV02")
    lab.run_until_done([job])
    assert table(lab, "SELECT * FROM agents") == [] and table(lab, "SELECT * FROM servers") == []


def test_the_lab_knows_the_teardown_commands():
    assert "unprotect_cloud" in Lab.actions("cloud") and "unregister_server" in Lab.actions("server")


# ---- the command line ----------------------------------------------------------------------------------


def test_teardown_on_the_command_line(tmp_path, small_site):
    runner = CliRunner()

    def cli(*args, code=0):
        result = runner.invoke(main, ["--lab", str(tmp_path / "lab"), *args])
        assert "Traceback" not in result.output
        assert result.exit_code == code, result.output
        return result.output

    cli("init", "--site", str(small_site))
    cli("server", "register", "SC01")
    cli("agent", "install", "HV01")
    cli("cloud", "configure", "OnPremise Cloud", "--target", "azure", "--storage-account", "mysiterecovery")
    cli("protect", "WEB01")
    cli("run", "--for", "20m")
    out = cli("server", "unregister", "SC01", code=1)
    assert "OnPremise Cloud has protection settings" in out and "srlab cloud unprotect 'OnPremise Cloud'" in out
    out = cli("cloud", "unprotect", "OnPremise Cloud", code=1)
    assert "has protected VMs: WEB01" in out and "srlab unprotect WEB01" in out
    assert "--stop-managing" in cli("unprotect", "--help")
    out = cli("unprotect", "WEB01", "--stop-managing")
    assert "Disable protection and stop managing): succeeded" in out
    assert f"replica left at {tmp_path / 'lab' / 'storage' / 'mysiterecovery' / 'WEB01'}" in out
    assert "Remove protection settings): succeeded" in cli("cloud", "unprotect", "OnPremise Cloud")
    assert "Unregister server): succeeded" in cli("server", "unregister", "SC01")
    assert "not registered with the vault" in cli("server", "unregister", "SC01", code=1)
