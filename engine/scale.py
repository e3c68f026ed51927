"""A many-VM site for scale measurements (`srlab sample scale --vms N`, `srlab bench --scale N`).

N small Hyper-V VMs (1 KiB/s each by default, one 1 GiB OS disk with 1 MiB of content) in one
VMM cloud, protected to Azure over a link wide enough that bandwidth is not what is measured.
The same N always gives the same site, so anyone can reproduce a measurement.
"""

from __future__ import annotations

from .errors import InvalidInput

MAX_VMS = 5000

_HEAD = """# A scale site: {n} small VMs in one VMM cloud, protected to Azure (srlab sample scale --vms {n}).
[lab]
name = "scale {n}"
scenario = "hyperv-to-azure"
start = 2026-01-05T09:00:00Z

[[vmm_servers]]
name = "SC01"
  [[vmm_servers.hosts]]
  name = "HV01"
  [[vmm_servers.clouds]]
  name = "Scale Cloud"
  hosts = ["HV01"]
  [[vmm_servers.vm_networks]]
  name = "FrontEnd"

[[azure_subscriptions]]
name = "sub"
  [[azure_subscriptions.regions]]
  name = "Japan East"
    [[azure_subscriptions.regions.storage_accounts]]
    name = "scalestore"
    redundancy = "geo"
    [[azure_subscriptions.regions.virtual_networks]]
    name = "AzureNetwork"

[[links]]
source = "Scale Cloud"
target = "Japan East"
mbps = 100000
"""

_VM = """
[[vms]]
name = "VM{i:04d}"
os = "Windows Server 2012 R2"
cloud = "Scale Cloud"
host = "HV01"
cpus = 1
memory_mb = 1024
  [[vms.disks]]
  name = "VM{i:04d}"
  role = "os"
  controller = "ide"
  size_gb = 1
  content_mb = 1
  [[vms.nics]]
  name = "nic"
  network = "FrontEnd"
  [vms.workload]
  rate_kib_s = {rate:g}
  pattern = "{pattern}"
  seed = {seed}
"""

_PATTERNS = ("random", "hot-spot", "sequential-log")


def scale_site(vms: int, rate_kib_s: float = 1.0) -> str:
    """The site file's text for `vms` VMs writing `rate_kib_s` each."""
    if not 1 <= vms <= MAX_VMS:
        raise InvalidInput(f"--vms must be 1 to {MAX_VMS}, not {vms}")
    if not 0 < rate_kib_s <= 1024:
        raise InvalidInput(f"--rate must be above 0 and at most 1024 KiB/s, not {rate_kib_s:g}")
    parts = [_HEAD.format(n=vms)]
    parts += [_VM.format(i=i, rate=rate_kib_s, pattern=_PATTERNS[i % 3], seed=1000 + i) for i in range(1, vms + 1)]
    return "".join(parts)
