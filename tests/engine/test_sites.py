import pytest

from engine.errors import SiteFileError
from engine.sites import load_site, parse_site
from tests.conftest import SAMPLES, SMALL_SITE


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_sample_site_loads(path):
    site = load_site(path)
    assert site.vms


def test_seed_004_names():
    site = load_site(SAMPLES / "hyperv-to-azure.toml")
    assert "OnPremise Cloud" in site.clouds()
    assert site.clouds()["OnPremise Cloud"][0].name == "SC01"
    assert "HV01" in site.hosts()
    assert {"MYBSD01", "MYWSV01"} <= {v.name for v in site.vms}
    region = site.regions()["Japan East"]
    assert ("mysiterecovery", "geo") in [(s.name, s.redundancy) for s in region.storage_accounts]
    assert "AzureNetwork" in [n.name for n in region.virtual_networks]
    vm_networks = [n.name for n in site.vmm_servers[0].vm_networks]
    assert "VirtualSwitch - FrontEnd" in vm_networks
    assert site.vm("MYBSD01").os == "Other Linux (64-bit)"


def problems_of(text):
    with pytest.raises(SiteFileError) as e:
        parse_site(text, "t.toml")
    return e.value.problems


def edit(old, new, count=1):
    assert old in SMALL_SITE
    return SMALL_SITE.replace(old, new, count)


@pytest.mark.parametrize(
    "text, expected",
    [
        (edit('name = "small"', 'name = "small'), "not valid TOML"),
        (edit("cpus = 2", "cpus = 2\ncolor = 'red'"), "vms[0].color: unknown key"),
        (edit("size_gb = 0.5", "size_gb = -1"), "vms[0].disks[1].size_gb: must be greater than 0"),
        (edit("size_gb = 0.5", "size_gb = -1.6e299"), "vms[0].disks[1].size_gb: must be greater than 0"),
        (edit("size_gb = 0.5", "size_gb = 'big'"), "vms[0].disks[1].size_gb: must be a number"),
        (edit("size_gb = 0.5", "size_gb = 4000\n  format = 'vhd'"), "vms[0].disks[1].size_gb: a VHD holds at most 2040 GB"),
        (edit('os = "Windows Server 2012 R2"\n', ""), "vms[0].os: missing (required)"),
        (edit('pattern = "random"', 'pattern = "bursty"'), "vms[0].workload.pattern: must be one of random, sequential-log, hot-spot"),
        (edit('redundancy = "geo"', 'redundancy = "zone"'), "azure_subscriptions[0].regions[0].storage_accounts[0].redundancy"),
        (edit('name = "IDLE01"', 'name = "web01"'), "vms[1].name: duplicate VM name"),
        (edit('cloud = "OnPremise Cloud"\nhost = "HV01"\ncpus = 2', 'cloud = "Nowhere"\nhost = "HV01"\ncpus = 2'), "vms[0].cloud: no cloud named 'Nowhere'"),
        (edit('host = "HV01"\ncpus = 2', 'host = "HV09"\ncpus = 2'), "vms[0].host: 'HV09' is not a host of cloud"),
        (edit('network = "VirtualSwitch - FrontEnd"', 'network = "Nope"'), "vms[0].nics[0].network: no network named 'Nope'"),
        (edit("content_mb = 2", "content_mb = 2048"), "vms[0].disks[0].content_mb: larger than the disk"),
        (edit('target = "Japan East"', 'target = "Mars"'), "links[0].target: 'Mars' is not a cloud, region, physical or VMware site"),
        (edit('cloud = "OnPremise Cloud"\nhost = "HV01"\ncpus = 2', 'cloud = "OnPremise Cloud"\nregion = "Japan East"\nhost = "HV01"\ncpus = 2'), "vms[0]: give exactly one of cloud, region, physical_site"),
        (edit('scenario = "hyperv-to-azure"', 'scenario = "tape"'), "lab.scenario: must be one of"),
        (edit('start = 2026-01-05T09:00:00Z', 'start = "monday"'), "lab.start: must be a date-time"),
        (edit('hosts = ["HV01"]', 'hosts = ["HV07"]'), "vmm_servers[0].clouds[0].hosts: 'HV07' is not a host"),
    ],
)
def test_each_mistake_is_reported_with_its_place(text, expected):
    problems = problems_of(text)
    assert any(expected in p for p in problems), problems


def test_every_problem_is_reported_not_just_the_first():
    text = edit("cpus = 2", "cpus = 0\nram = 3").replace('pattern = "random"', 'pattern = "x"')
    problems = problems_of(text)
    assert len(problems) == 3, problems


def test_unreadable_file(tmp_path):
    with pytest.raises(SiteFileError) as e:
        load_site(tmp_path / "missing.toml")
    assert "cannot read the file" in e.value.problems[0]
