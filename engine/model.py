"""The site model: what a site file describes. Plain dataclasses, built by engine.sites."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

GIB = 1024**3
MIB = 1024**2

# Ranges a site file's values must be in (engine.sites says so with the range).
DISK_MIN_BYTES = MIB  # room for the largest guest write (64 KiB) and the VHD footer
DISK_MAX_GB = 65536  # 64 TB, a VHDX's limit
SEED_MAX = 2**63 - 1
MBPS_MAX = 1_000_000.0  # 1 Tbps


def slug(name: str) -> str:
    """A name as a safe file or folder name: letters, digits, '.', '_' and '-' only, never
    empty, '.', '..' or hidden. Different names may give one slug: engine.sites refuses a site
    file where two of a kind do (so file names never collide), and commands check theirs."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_").lstrip(".")
    return s[:100] or "x"


SCENARIOS = ("hyperv-to-azure", "vmm-to-vmm", "azure-to-azure", "physical-to-azure")
PATTERNS = ("random", "sequential-log", "hot-spot")
DISK_ATTACHMENTS = ("virtual", "passthrough", "iscsi", "virtual-fc", "shared")


@dataclass
class Workload:
    rate_kib_s: float = 8.0  # guest write rate while the VM runs
    pattern: str = "random"
    seed: int = 1
    block_kib: int = 4  # size of one write (one application transaction)


@dataclass
class Disk:
    name: str
    size_gb: float
    role: str = "data"  # os | data
    controller: str = "scsi"  # ide | scsi
    format: str = "vhd"  # vhd | vhdx (as declared; stored as fixed VHD, see README)
    type: str = "dynamic"  # fixed | dynamic | differencing
    attachment: str = "virtual"
    content_mb: float | None = None  # "installed OS" content at init; default by role

    @property
    def size_bytes(self) -> int:
        # Whole 512-byte sectors, as a virtual disk has.
        return int(self.size_gb * GIB) // 512 * 512


@dataclass
class Nic:
    name: str
    network: str = ""
    addressing: str = "dhcp"  # dhcp | static
    ip: str = ""
    subnet: str = ""  # an Azure VM's NIC: the subnet of its virtual network (default: the first)


@dataclass
class VM:
    name: str
    os: str
    cpus: int
    memory_mb: int
    disks: list[Disk]
    nics: list[Nic] = field(default_factory=list)
    cloud: str = ""  # where it runs: exactly one of cloud / region / physical_site
    host: str = ""
    region: str = ""
    physical_site: str = ""
    # An Azure VM (seed 002): its resource group, availability set and the storage account its
    # disks are in (defaults: the region's first resource group and storage account, no set).
    resource_group: str = ""
    availability_set: str = ""
    storage_account: str = ""
    bitness: int = 64
    generation: int = 1
    dynamic_memory_max_mb: int = 0
    power: str = "running"  # running | off
    workload: Workload = field(default_factory=Workload)

    @property
    def location(self) -> str:
        return self.cloud or self.region or self.physical_site


@dataclass
class Host:
    name: str
    os: str = "Windows Server 2012 R2"


@dataclass
class Cloud:
    name: str
    hosts: list[str] = field(default_factory=list)
    capability_profiles: list[str] = field(default_factory=lambda: ["Hyper-V"])


@dataclass
class VMNetwork:
    name: str
    logical_network: str = ""


@dataclass
class VMMServer:
    name: str
    fqdn: str = ""
    hosts: list[Host] = field(default_factory=list)
    clouds: list[Cloud] = field(default_factory=list)
    vm_networks: list[VMNetwork] = field(default_factory=list)


@dataclass
class StorageAccount:
    name: str
    redundancy: str = "geo"  # geo | local


@dataclass
class VirtualNetwork:
    name: str
    address_space: str = "10.0.0.0/16"
    subnets: list[str] = field(default_factory=lambda: ["Subnet-1"])


@dataclass
class Region:
    name: str
    paired_region: str = ""
    storage_accounts: list[StorageAccount] = field(default_factory=list)
    virtual_networks: list[VirtualNetwork] = field(default_factory=list)
    resource_groups: list[str] = field(default_factory=list)
    availability_sets: list[str] = field(default_factory=list)


@dataclass
class Subscription:
    name: str
    regions: list[Region] = field(default_factory=list)


@dataclass
class ProcessServer:
    """A process server (seed 003): it receives the mobility services' data on its data port,
    caches it in a folder of at most cache_mb, compresses and encrypts it and sends it to Azure."""

    name: str
    cache_mb: float = 1024.0
    port: int = 9443  # inbound replication data from the mobility service (configurable)


@dataclass
class PhysicalSite:
    """Physical Windows/Linux servers and their configuration server (seed 003). The
    configuration server holds the default process server (named like it) and master target."""

    name: str
    configuration_server: str
    process_servers: list[ProcessServer] = field(default_factory=list)  # the default one's settings, and more
    master_targets: list[str] = field(default_factory=list)  # separate ones, for heavy failback
    push_account: str = ""  # the account a process server push-installs the mobility service with

    def all_process_servers(self) -> list[ProcessServer]:
        """The default one on the configuration server first, then the separate ones."""
        default = next((p for p in self.process_servers if p.name == self.configuration_server),
                       ProcessServer(self.configuration_server))
        return [default] + [p for p in self.process_servers if p.name != self.configuration_server]

    def all_master_targets(self) -> list[str]:
        return [self.configuration_server] + [m for m in self.master_targets if m != self.configuration_server]


@dataclass
class EsxiHost:
    name: str
    datastores: list[str] = field(default_factory=lambda: ["datastore1"])


@dataclass
class VMwareSite:
    """VMware infrastructure on premises: where physical servers fail back to (seed 003)."""

    name: str
    vcenter: str
    hosts: list[EsxiHost] = field(default_factory=list)


@dataclass
class Link:
    source: str  # a place: a cloud, a region or a physical site
    target: str
    mbps: float = 100.0
    state: str = "up"  # up | down | lossy


@dataclass
class LabInfo:
    name: str
    scenario: str
    start: datetime  # the lab clock's first reading
    description: str = ""
    vault_region: str = ""  # the Recovery Services vault's region; default: the first region


@dataclass
class Site:
    lab: LabInfo
    vms: list[VM]
    vmm_servers: list[VMMServer] = field(default_factory=list)
    azure_subscriptions: list[Subscription] = field(default_factory=list)
    physical_sites: list[PhysicalSite] = field(default_factory=list)
    vmware_sites: list[VMwareSite] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    # Lookups used by validation and the lab.
    def clouds(self) -> dict[str, tuple[VMMServer, Cloud]]:
        return {c.name: (s, c) for s in self.vmm_servers for c in s.clouds}

    def regions(self) -> dict[str, Region]:
        return {r.name: r for sub in self.azure_subscriptions for r in sub.regions}

    def hosts(self) -> dict[str, tuple[VMMServer, Host]]:
        return {h.name: (s, h) for s in self.vmm_servers for h in s.hosts}

    def places(self) -> set[str]:
        """Names a link may join."""
        return (set(self.clouds()) | set(self.regions()) | {p.name for p in self.physical_sites}
                | {v.name for v in self.vmware_sites})

    def physical_site(self, name: str) -> PhysicalSite | None:
        return next((p for p in self.physical_sites if p.name == name), None)

    def configuration_servers(self) -> dict[str, PhysicalSite]:
        return {p.configuration_server: p for p in self.physical_sites}

    def vault_region(self) -> str:
        return self.lab.vault_region or next(iter(self.regions()), "")

    def storage_accounts(self) -> dict[str, tuple[Region, StorageAccount]]:
        return {a.name: (r, a) for r in self.regions().values() for a in r.storage_accounts}

    def vm(self, name: str) -> VM | None:
        index = self.__dict__.get("_vm_index")  # by name: a 1,000-VM lab asks it thousands of times a read
        if index is None or len(index) != len(self.vms):
            index = self.__dict__["_vm_index"] = {v.name: v for v in self.vms}
        return index.get(name)
