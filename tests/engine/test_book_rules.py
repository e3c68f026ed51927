"""Behaviours of seed 004's book that the rules once got wrong: a VM whose name Azure refuses can
be protected, a huge dynamic-memory maximum gets A7, network mappings stay inside the recovery
side, and protect names each VM once and lists every VM's problems."""

import pytest
from click.testing import CliRunner

from engine import InvalidInput, Lab, Protection, Refused, rules
from engine.model import VM, Disk, Nic
from tests.conftest import SAMPLES, SMALL_SITE, step2
from tui.cli import main


def vm(**kw):
    base = dict(name="MYWSV01", os="Windows Server 2012 R2", cpus=2, memory_mb=1024,
                disks=[Disk("os", 40, role="os", controller="ide")], nics=[Nic("n0", "net")])
    base.update(kw)
    return VM(**base)


def lab_from(tmp_path, text: str, name="lab"):
    site = tmp_path / f"{name}.toml"
    site.write_text(text)
    return Lab.create(tmp_path / name, site)


def rename_idle(text: str, new: str) -> str:
    return text.replace('name = "IDLE01"\nos', f'name = "{new}"\nos', 1)


# ---- a VM name Azure does not accept ----------------------------------------------------------------


def test_an_invalid_azure_name_stops_failover_not_protection():
    problems = rules.protection_problems(vm(name="MY_WSV01"), to_azure=True)
    (p,) = problems
    assert "not a valid Azure VM name" in p.rule and p.blocks == "failover"
    assert "srlab vm set-target MY_WSV01 --name NAME" in p.fix
    assert rules.blocking(problems) == []
    assert rules.blocking(rules.protection_problems(vm(generation=2), to_azure=True))  # still stops protection


def test_a_vm_with_an_invalid_azure_name_is_protected_and_named_before_failover(tmp_path):
    with lab_from(tmp_path, rename_idle(SMALL_SITE, "IDLE_01")) as lab:
        step2(lab)
        assert lab.allowed("protect", "IDLE_01") is None
        job = lab.protect(["IDLE_01"])[0]
        lab.run_until_done([job])
        assert lab.job(job)["state"] == "succeeded", lab.job(job)
        st = lab.item_status(lab.vm("IDLE_01"))
        assert st["target_name"] == "IDLE_01"
        assert any(e["level"] == "warning" and "'IDLE_01' is not a valid Azure VM name" in e["message"]
                   for e in lab.events(10))
        lab.run(30 * 60)
        assert lab.protection_state("IDLE_01") == Protection.PROTECTED
        assert lab.verify("IDLE_01")["identical"]
        # The failover rules refuse until a valid target name is set.
        for op in ("test_failover", "planned_failover", "unplanned_failover"):
            assert "not a valid Azure VM name" in lab.allowed(op, "IDLE_01")
        lab.set_target("IDLE_01", target_name="IDLE-01")
        assert lab.allowed("test_failover", "IDLE_01") is None


def test_target_name_at_protect_is_still_checked(tmp_path):
    with lab_from(tmp_path, rename_idle(SMALL_SITE, "IDLE_01")) as lab:
        step2(lab)
        with pytest.raises(Refused, match="--target-name 'bad_name' is not a valid Azure VM name"):
            lab.protect(["IDLE_01"], target_name="bad_name")
        assert lab.protection_state("IDLE_01") == Protection.NOT_PROTECTED
        assert not any(j["kind"] == "enable_protection" for j in lab.jobs())
        lab.run_until_done(lab.protect(["IDLE_01"], target_name="idle-01"))
        assert lab.item_status(lab.vm("IDLE_01"))["target_name"] == "idle-01"
        assert not any("not a valid Azure VM name" in e["message"] for e in lab.events(10))


# ---- target sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, size", [
    (dict(memory_mb=1024, dynamic_memory_max_mb=1024 * 1024), "A7"),  # seed 004: 2 CPU, 1 TB maximum -> A7
    (dict(cpus=8, memory_mb=1024, dynamic_memory_max_mb=100_000), "A7"),
    (dict(memory_mb=1024, dynamic_memory_max_mb=20_000), "A6"),  # a maximum some size holds: the cheapest
    (dict(cpus=16, memory_mb=1024, dynamic_memory_max_mb=1024 * 1024), None),
    (dict(memory_mb=1024, dynamic_memory_max_mb=1024 * 1024,
          disks=[Disk("os", 40, role="os", controller="ide")] + [Disk(f"d{i}", 1) for i in range(17)]), None),
    (dict(memory_mb=60_000, dynamic_memory_max_mb=1024 * 1024), None),  # the startup memory fits nothing
    (dict(memory_mb=100_000), None),  # static memory: nothing smaller will do
])
def test_target_size_for_dynamic_memory(kw, size):
    assert rules.pick_target_size(vm(**kw)) == size


@pytest.mark.parametrize("kw, reason", [
    (dict(cpus=16), "MYWSV01 has 16 CPUs; no target size has more than 8"),
    (dict(disks=[Disk("os", 40, role="os", controller="ide")] + [Disk(f"d{i}", 1) for i in range(17)]),
     "MYWSV01 has 17 data disks; no target size takes more than 16"),
    (dict(memory_mb=100_000), "MYWSV01 has 100000 MB of memory; no target size has more than 57344 MB"),
    (dict(memory_mb=60_000, dynamic_memory_max_mb=70_000),
     "MYWSV01 has 60000 MB of startup memory; no target size has more than 57344 MB"),
])
def test_no_target_size_says_why(kw, reason):
    assert rules.no_target_size_reason(vm(**kw)) == reason
    assert rules.no_target_size_reason(vm()) is None


def test_protect_picks_a7_for_a_huge_dynamic_maximum_and_refuses_too_many_cpus(tmp_path):
    text = SMALL_SITE.replace('cpus = 2\nmemory_mb = 2048',
                              'cpus = 2\nmemory_mb = 2048\ndynamic_memory_max_mb = 1048576', 1)
    text = text.replace('cpus = 1\nmemory_mb = 512', 'cpus = 16\nmemory_mb = 512', 1)
    with lab_from(tmp_path, text) as lab:
        assert lab.item_status(lab.vm("WEB01"))["target_size"] == "A7"
        step2(lab)
        lab.run_until_done(lab.protect(["WEB01"]))
        assert lab.item_status(lab.vm("WEB01"))["target_size"] == "A7"
        with pytest.raises(Refused) as e:
            lab.protect(["IDLE01"])
        assert "IDLE01 has 16 CPUs; no target size has more than 8" in e.value.message
        assert lab.protection_state("IDLE01") == Protection.NOT_PROTECTED


# ---- network mapping -----------------------------------------------------------------------------------

# A second region with its own network, and a second VM network on SC01 (which has one cloud).
WIDER = SMALL_SITE.replace('''  [[vmm_servers.vm_networks]]
  name = "VirtualSwitch - FrontEnd"
''', '''  [[vmm_servers.vm_networks]]
  name = "VirtualSwitch - FrontEnd"
  [[vmm_servers.vm_networks]]
  name = "VirtualSwitch - Backup"

[[vmm_servers]]
name = "SC02"
  [[vmm_servers.hosts]]
  name = "HV02"
  [[vmm_servers.clouds]]
  name = "Recovery Cloud"
  hosts = ["HV02"]
  [[vmm_servers.vm_networks]]
  name = "Recovery Net"

[[vmm_servers]]
name = "SC03"
  [[vmm_servers.vm_networks]]
  name = "Lonely Net"
''').replace('''    [[azure_subscriptions.regions.virtual_networks]]
    name = "AzureNetwork"
''', '''    [[azure_subscriptions.regions.virtual_networks]]
    name = "AzureNetwork"
  [[azure_subscriptions.regions]]
  name = "West US"
    [[azure_subscriptions.regions.virtual_networks]]
    name = "WestNetwork"
''').replace('start = 2026-01-05T09:00:00Z', 'start = 2026-01-05T09:00:00Z\nvault_region = "Japan East"', 1)


def test_network_mapping_targets_must_be_at_the_recovery_side(tmp_path):
    with lab_from(tmp_path, WIDER) as lab:
        src = "VirtualSwitch - FrontEnd"
        with pytest.raises(Refused) as e:
            lab.map_network(src, "WestNetwork")
        assert e.value.message == ("Azure virtual network WestNetwork is in West US; a target network must be in "
                                   "the vault's region Japan East")
        assert e.value.hint == "Azure virtual networks in Japan East: AzureNetwork"
        with pytest.raises(Refused, match="is on the source's own VMM server SC01, which has no second cloud"):
            lab.map_network(src, "VirtualSwitch - Backup")
        with pytest.raises(Refused, match="belongs to VMM server SC03, which manages no cloud to recover into"):
            lab.map_network(src, "Lonely Net")
        assert "in West US" in lab.allowed("map_network", (src, "WestNetwork"))
        assert lab.db.execute("SELECT COUNT(*) FROM network_mappings").fetchone()[0] == 0  # nothing changed
        lab.map_network(src, "Recovery Net")  # a VM network of another VMM server with a cloud
        lab.unmap_network(src)
        lab.map_network(src, "AzureNetwork")
        assert lab.resources()["mappings"] == [{"source": src, "target": "AzureNetwork"}]


def test_one_vmm_server_with_two_clouds_maps_between_its_networks(tmp_path):
    """Seed 001: one VMM server manages the primary and the recovery cloud."""
    with Lab.create(tmp_path / "lab", SAMPLES / "vmm-to-vmm.toml") as lab:
        assert lab.allowed("map_network", ("Tokyo FrontEnd", "Osaka FrontEnd")) is None
        lab.map_network("Tokyo FrontEnd", "Osaka FrontEnd")
        assert "cannot be mapped to itself" in lab.allowed("map_network", ("Osaka FrontEnd", "Osaka FrontEnd"))


# ---- protect: each VM once, every VM's problems -------------------------------------------------------


def test_protect_refuses_a_vm_named_twice(lab):
    step2(lab)
    with pytest.raises(InvalidInput, match="WEB01 is named twice"):
        lab.protect(["WEB01", "WEB01"])
    with pytest.raises(InvalidInput, match=r"WEB01 is named twice \(as 'WEB01' and 'web01'\)"):
        lab.protect(["WEB01", "web01"])
    assert lab.protection_state("WEB01") == Protection.NOT_PROTECTED
    assert not any(j["kind"] == "enable_protection" for j in lab.jobs())


def test_protect_lists_every_vms_problems(tmp_path):
    text = SMALL_SITE.replace('  name = "nic"\n  network = "VirtualSwitch - FrontEnd"\n',
                              '  name = "nic"\n  network = "VirtualSwitch - FrontEnd"\n  addressing = "static"\n'
                              '  ip = "10.0.0.5"\n', 1)
    text = text.replace('name = "IDLE01"\nos = "CentOS 7.0"', 'name = "IDLE01"\nos = "CentOS 7.0"\ngeneration = 2', 1)
    with lab_from(tmp_path, text) as lab:
        step2(lab)
        with pytest.raises(Refused) as e:
            lab.protect(["WEB01", "IDLE01", "NOPE"])
        msg = e.value.message
        assert msg.startswith("cannot enable protection for 3 of 3 VMs:\n")
        web, idle, nope = msg.index("\nWEB01:\n"), msg.index("\nIDLE01:\n"), msg.index("\nNOPE:\n")
        assert web < idle < nope  # in the order named
        assert "NIC nic uses a static IP address" in msg[web:idle]
        assert "generation 2 VM; Azure accepts generation 1 only" in msg[idle:nope]
        assert "no VM named 'NOPE'" in msg[nope:]
        assert lab.protection_state("WEB01") == lab.protection_state("IDLE01") == Protection.NOT_PROTECTED
        assert not any(j["kind"] == "enable_protection" for j in lab.jobs())


def test_protect_on_the_command_line(tmp_path, small_site):
    runner = CliRunner()

    def cli(*args, code=0):
        result = runner.invoke(main, ["--lab", str(tmp_path / "lab"), *args])
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert result.exit_code == code, result.output
        return result.output

    cli("init", "--site", str(small_site))
    out = cli("protect", "WEB01", "WEB01", code=2)
    assert "srlab: WEB01 is named twice" in out
    out = cli("protect", "WEB01", "IDLE01", code=1)
    assert "WEB01:\n  - cloud OnPremise Cloud is not configured for protection" in out
    assert "IDLE01:\n  - cloud OnPremise Cloud is not configured for protection" in out
