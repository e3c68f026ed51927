"""Shared fixtures: small sites and labs. Lab time is the manual clock: tests call lab.run()."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from engine import Lab

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_sites"


def memory_folder() -> Path | None:
    """/dev/shm when it is a usable folder in memory: writable, scripts may run there, 2 GiB free.
    None elsewhere, or when SRLAB_TESTS_ON_DISK is set."""
    shm = Path("/dev/shm")
    if os.environ.get("SRLAB_TESTS_ON_DISK"):
        return None
    try:
        st = os.statvfs(shm)
    except OSError:
        return None
    if not os.access(shm, os.W_OK) or st.f_flag & os.ST_NOEXEC or st.f_bavail * st.f_frsize < 2 << 30:
        return None
    return shm


@contextlib.contextmanager
def shared_folder(tmp_path_factory, name: str):
    """A folder for a lab a module's tests share (a module-scoped fixture): in memory as tmp_path
    is (removed after the module), else tmp_path_factory.mktemp(name)."""
    shm = memory_folder()
    if shm is None:
        yield tmp_path_factory.mktemp(name)
        return
    d = Path(tempfile.mkdtemp(prefix=f"srlab-{name}-", dir=shm))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmp_path(request, tmp_path):
    """pytest's tmp_path, in memory when the machine has a folder there (memory_folder).

    The engine fsyncs every durable step; on a disk those fsyncs (and the discards of the large
    sparse files verify builds) are much of a test's wall time, yet a test in this process can
    never observe them: only losing the machine's power could. So an in-process test proves the
    same thing in memory. Tests of kills (a name with "kill", and the crash suite) keep the disk
    they always had; the crash suite's kill -9 test chooses its own folder (fast_tmp). The folder
    is removed after the test (memory is not disk): SRLAB_TESTS_ON_DISK=1 keeps every test on
    pytest's tmp_path, to look at what a failed test left."""
    shm = memory_folder()
    if shm is None or "kill" in request.node.name or request.node.module.__name__.endswith(".test_crash"):
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="srlab-test-", dir=shm))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def step2(lab, map_network: bool = True, **policy) -> None:
    """STEP 2 of seed 004 through the engine, up to (not including) enable protection:
    register SC01, the agent on HV01, the cloud's policy (to Azure unless `target` says), and
    the network mapping."""
    lab.run_until_done([lab.register_server("SC01")])
    lab.run_until_done([lab.install_agent("HV01")])
    args = {"target": "azure", "storage_account": "mysiterecovery", **policy}
    job = lab.configure_cloud("OnPremise Cloud", **args)
    lab.run_until_done([job])
    assert lab.job(job)["state"] == "succeeded", lab.job(job)
    if map_network:
        lab.map_network("VirtualSwitch - FrontEnd", "AzureNetwork")

# A tiny site for fast tests: one cloud to Azure, small disks, little content.
SMALL_SITE = """
[lab]
name = "small"
scenario = "hyperv-to-azure"
start = 2026-01-05T09:00:00Z

[[vmm_servers]]
name = "SC01"
  [[vmm_servers.hosts]]
  name = "HV01"
  [[vmm_servers.clouds]]
  name = "OnPremise Cloud"
  hosts = ["HV01"]
  [[vmm_servers.vm_networks]]
  name = "VirtualSwitch - FrontEnd"

[[azure_subscriptions]]
name = "sub"
  [[azure_subscriptions.regions]]
  name = "Japan East"
    [[azure_subscriptions.regions.storage_accounts]]
    name = "mysiterecovery"
    redundancy = "geo"
    [[azure_subscriptions.regions.storage_accounts]]
    name = "localonly"
    redundancy = "local"
    [[azure_subscriptions.regions.virtual_networks]]
    name = "AzureNetwork"

[[links]]
source = "OnPremise Cloud"
target = "Japan East"
mbps = 100

[[vms]]
name = "WEB01"
os = "Windows Server 2012 R2"
cloud = "OnPremise Cloud"
host = "HV01"
cpus = 2
memory_mb = 2048
  [[vms.disks]]
  name = "WEB01"
  role = "os"
  controller = "ide"
  size_gb = 1
  content_mb = 2
  [[vms.disks]]
  name = "WEB01-data"
  size_gb = 0.5
  content_mb = 1
  [[vms.nics]]
  name = "nic"
  network = "VirtualSwitch - FrontEnd"
  [vms.workload]
  rate_kib_s = 4
  pattern = "random"
  seed = 7

[[vms]]
name = "IDLE01"
os = "CentOS 7.0"
cloud = "OnPremise Cloud"
host = "HV01"
cpus = 1
memory_mb = 512
power = "off"
  [[vms.disks]]
  name = "IDLE01"
  role = "os"
  controller = "ide"
  size_gb = 0.25
  content_mb = 1
  [vms.workload]
  rate_kib_s = 4
  pattern = "hot-spot"
  seed = 8
"""


@pytest.fixture
def small_site(tmp_path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(SMALL_SITE)
    return p


def small_a2a_site(where: Path) -> Path:
    """The Azure -> Azure sample with 1 GiB disks (the same names, regions and resources)."""
    text = (SAMPLES / "azure-to-azure.toml").read_text()
    text = re.sub(r"size_gb = \d+", "size_gb = 1", text)
    text = re.sub(r"content_mb = \d+", "content_mb = 2", text)
    p = where / "a2a.toml"
    p.write_text(text)
    return p


@pytest.fixture
def lab(tmp_path, small_site):
    lab = Lab.create(tmp_path / "lab", small_site)
    yield lab
    lab.close()


@pytest.fixture
def need_tool():
    def need(name: str) -> str:
        path = shutil.which(name)
        if not path:
            pytest.skip(f"{name} is not installed (Debian package: see .ci/run)")
        return path

    return need
