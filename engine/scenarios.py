"""Where a VM's protection lives and where its replica goes, per scenario, behind one interface.

- A **container** holds the protection settings of the VMs in it (seed 004's "protection
  settings of a cloud"): a VMM cloud for the Hyper-V scenarios, an Azure region for Azure VMs
  (seed 002), a configuration server for physical servers (seed 003). Policies, links and items hang off it
  (table protection_settings, keyed by the container's name).
- A **target** is the kind of place a container replicates to: Azure (a storage account in the
  vault's region), a recovery cloud, another Azure region (engine.azure), or, for a physical
  server failing back, a VMware site (engine.physical). Each one knows its own rules, so nothing else in the
  engine asks "is this Azure?".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from . import rules
from .errors import Refused
from .model import VM, Site, slug


@dataclass(frozen=True)
class Container:
    kind: str  # "VMM cloud" | "Azure region" | "configuration server"
    name: str


def container_of(vm: VM, site: Site) -> Container:
    if vm.cloud:
        return Container("VMM cloud", vm.cloud)
    if vm.region:
        return Container("Azure region", vm.region)
    return Container("configuration server", site.physical_site(vm.physical_site).configuration_server)


class Target(ABC):
    kind: str = ""
    picks_size = False  # does the target need a VM size (Azure does)
    encrypts = False  # can the policy encrypt replicas at rest (Azure storage can)
    vm_rules = "recovery cloud"  # whose VM requirements apply (rules.protection_problems)

    @abstractmethod
    def settings_problems(self, site: Site, cloud: str, target: str, storage_account: str | None,
                          encrypt: bool, has_agent, registered) -> tuple[str, list[str]]:
        """(the place replicas go, problems with these settings). has_agent(host) and
        registered(server) answer from the vault."""

    def vm_problems(self, vm: VM, target_name: str | None) -> list[rules.Problem]:
        return rules.protection_problems(vm, self.vm_rules == "azure", target_name)

    @abstractmethod
    def store_dir(self, policy: dict, vm: VM) -> Path:
        """The replica store of a VM, relative to the lab."""

    def check_reachable(self, site: Site, policy: dict) -> None:
        """Raise if the replica's place cannot be reached now (Enable protection's validation)."""


class AzureTarget(Target):
    kind = "azure"
    picks_size = True
    encrypts = True
    vm_rules = "azure"

    def settings_problems(self, site, cloud, target, storage_account, encrypt, has_agent, registered):
        _, c = site.clouds()[cloud]
        problems = []
        missing = [h for h in c.hosts if not has_agent(h)]
        if missing:
            problems.append(f"the Recovery Services agent is not installed on {', '.join(missing)} "
                            f"(srlab agent install {missing[0]})")
        accounts = site.storage_accounts()
        place = ""
        if not storage_account:
            problems.append("a storage account is required for an Azure target (--storage-account NAME)")
        elif storage_account not in accounts:
            problems.append(f"no storage account named {storage_account!r} (accounts: {', '.join(accounts) or 'none'})")
        else:
            region, acct = accounts[storage_account]
            place = region.name
            if region.name != site.vault_region():
                problems.append(f"storage account {acct.name} is in {region.name}; it must be in the vault's "
                                f"region {site.vault_region()}")
            if acct.redundancy != "geo":
                problems.append(f"storage account {acct.name} is {acct.redundancy}ly redundant; it must be geo-redundant")
        return place, problems

    def store_dir(self, policy, vm):
        return Path("storage") / slug(policy["storage_account"]) / slug(vm.name)

    def check_reachable(self, site, policy):
        if policy["storage_account"] not in site.storage_accounts():
            raise Refused(f"storage account {policy['storage_account']} is not reachable")


class RecoveryCloud(Target):
    kind = "cloud"

    def settings_problems(self, site, cloud, target, storage_account, encrypt, has_agent, registered):
        problems = []
        if storage_account:
            problems.append("--storage-account applies to Azure targets only")
        if encrypt:
            problems.append("encryption at rest applies to Azure targets only")
        clouds = site.clouds()
        rc = target if target in clouds else next((k for k in clouds if k.lower() == target.lower()), None)
        place = ""
        if rc is None:
            problems.append(f"target must be 'azure' or a recovery cloud; no cloud named {target!r}")
        elif rc == cloud:
            problems.append("a cloud cannot be its own recovery cloud")
        else:
            place = rc
            if not registered(clouds[rc][0].name):
                problems.append(f"the recovery cloud's VMM server {clouds[rc][0].name} is not registered")
        return place, problems

    def store_dir(self, policy, vm):
        return Path("storage") / slug(policy["target"]) / slug(vm.name)


class RegionTarget(Target):
    """Another Azure region (seed 002): set up per VM by `srlab protect --target-region`
    (engine.azure), not by `cloud configure`."""

    kind = "region"

    def settings_problems(self, site, cloud, target, storage_account, encrypt, has_agent, registered):
        return "", ["Azure VMs are protected with: srlab protect VM --target-region REGION"]

    def store_dir(self, policy, vm):
        raise AssertionError("an Azure VM's replica store is set by engine.azure.plan")


class VMwareTarget(Target):
    """A VMware site on premises (seed 003): where a physical server that failed over to Azure
    fails back, set up by `srlab reprotect` (engine.physical), not by `cloud configure`."""

    kind = "vmware"

    def settings_problems(self, site, cloud, target, storage_account, encrypt, has_agent, registered):
        return "", ["physical servers fail back to VMware with: srlab reprotect SERVER"]

    def store_dir(self, policy, vm):
        raise AssertionError("a failback's replica store is set by engine.physical.reprotect")


TARGETS: dict[str, Target] = {"azure": AzureTarget(), "cloud": RecoveryCloud(), "region": RegionTarget(),
                              "vmware": VMwareTarget()}


def target_named(target: str) -> Target:
    """The target a `cloud configure --target` value means: 'azure', else a recovery cloud."""
    return TARGETS["azure" if target.lower() == "azure" else "cloud"]


def target_of(policy: dict) -> Target:
    return TARGETS[policy["target_kind"]]
