"""The vault's setup (seed 004, STEP 2): servers, agents, cloud protection, networks, links.

A mixin of engine.Lab: each command has a _check_ that raises with the reason, which
Lab.allowed() asks too, so the CLI and the TUI refuse for the same reasons.
"""

from __future__ import annotations

from . import jobs, rules, store
from .errors import InvalidInput, Refused
from .model import VM
from .replication.link import LINK_STATES


class VaultSetup:
    # ---- vault setup (seed 004, STEP 2) ---------------------------------------------------

    def _server(self, name: str):
        s = next((s for s in self.site.vmm_servers if s.name.lower() == name.lower()), None)
        if s is None:
            names = ", ".join(x.name for x in self.site.vmm_servers) or "none"
            raise InvalidInput(f"no VMM server named {name!r} in this lab", f"VMM servers: {names}")
        return s

    def _registered(self, server: str) -> dict | None:
        return next(self.db.query("SELECT * FROM servers WHERE name=?", [server]), None)

    def _running_job(self, kind: str, target: str) -> bool:
        return self.db.execute("SELECT COUNT(*) FROM jobs WHERE kind=? AND target=? AND state='in progress'",
                               [kind, target]).fetchone()[0] > 0

    def _check_register_server(self, name: str):
        s = self._server(name)
        if self._registered(s.name):
            raise Refused(f"{s.name} is already registered with the vault")
        if self._running_job("register_server", s.name):
            raise Refused(f"{s.name} is being registered (a Register server job is running)",
                          "wait for it: srlab run --for 5m")
        return s

    def register_server(self, name: str) -> int:
        """Install the provider on a VMM server and register it (creates the data-encryption key)."""
        s = self._check_register_server(name)
        return jobs.create(self.db, self.now, "register_server", s.name)

    def _host(self, name: str):
        found = self.site.hosts().get(name) or next(
            (v for k, v in self.site.hosts().items() if k.lower() == name.lower()), None)
        if found is None:
            names = ", ".join(self.site.hosts()) or "none"
            raise InvalidInput(f"no Hyper-V host named {name!r} in this lab", f"hosts: {names}")
        return found

    def _check_install_agent(self, host: str):
        server, h = self._host(host)
        if self.db.execute("SELECT 1 FROM agents WHERE host=?", [h.name]).fetchone():
            raise Refused(f"the Recovery Services agent is already installed on {h.name}")
        if not self._registered(server.name):
            raise Refused(f"{h.name}'s VMM server {server.name} is not registered with the vault",
                          f"register it first: srlab server register {server.name}")
        if self._running_job("install_agent", h.name):
            raise Refused(f"the agent is being installed on {h.name}", "wait for it: srlab run --for 5m")
        return h

    def install_agent(self, host: str) -> int:
        h = self._check_install_agent(host)
        return jobs.create(self.db, self.now, "install_agent", h.name)

    def encryption_key(self, vm: VM) -> bytes:
        server = self.site.clouds()[vm.cloud][0].name
        reg = self._registered(server)
        path = self.path / reg["key_file"] if reg and reg["key_file"] else None
        if path is None or not path.is_file():
            raise Refused(f"the data-encryption key of {server} is missing ({path})",
                          "restore the key file made at server registration")
        return path.read_bytes()

    def policy_place(self, cloud: str) -> str:
        """Where a cloud replicates to: its target region or recovery cloud (the link's far end)."""
        row = self.db.execute("SELECT target FROM cloud_protection WHERE cloud=?", [cloud]).fetchone()
        return row[0]

    def _cloud(self, name: str):
        clouds = self.site.clouds()
        key = name if name in clouds else next((c for c in clouds if c.lower() == name.lower()), None)
        if key is None:
            raise InvalidInput(f"no cloud named {name!r} in this lab", f"clouds: {', '.join(clouds) or 'none'}")
        return clouds[key]

    def _check_configure_cloud(self, cloud: str, target: str, storage_account: str | None, frequency: str,
                               retention_h: int, app_consistent_h: int, encrypt: bool, start: str) -> dict:
        server, c = self._cloud(cloud)
        problems = self._cloud_problems(cloud) + rules.policy_problems(frequency, retention_h, app_consistent_h, start)
        to_azure = target.lower() == "azure"
        place = ""
        if to_azure:
            missing = [h for h in c.hosts if not self.db.execute("SELECT 1 FROM agents WHERE host=?", [h]).fetchone()]
            if missing:
                problems.append(f"the Recovery Services agent is not installed on {', '.join(missing)} "
                                f"(srlab agent install {missing[0]})")
            accounts = self.site.storage_accounts()
            vault_region = self.site.vault_region()
            if not storage_account:
                problems.append("a storage account is required for an Azure target (--storage-account NAME)")
            elif storage_account not in accounts:
                problems.append(f"no storage account named {storage_account!r} (accounts: {', '.join(accounts) or 'none'})")
            else:
                region, acct = accounts[storage_account]
                place = region.name
                if region.name != vault_region:
                    problems.append(f"storage account {acct.name} is in {region.name}; it must be in the vault's region {vault_region}")
                if acct.redundancy != "geo":
                    problems.append(f"storage account {acct.name} is {acct.redundancy}ly redundant; it must be geo-redundant")
        else:
            if storage_account:
                problems.append("--storage-account applies to Azure targets only")
            if encrypt:
                problems.append("encryption at rest applies to Azure targets only")
            clouds = self.site.clouds()
            rc = target if target in clouds else next((k for k in clouds if k.lower() == target.lower()), None)
            if rc is None:
                problems.append(f"target must be 'azure' or a recovery cloud; no cloud named {target!r}")
            elif rc == c.name:
                problems.append("a cloud cannot be its own recovery cloud")
            else:
                place = rc
                if not self._registered(clouds[rc][0].name):
                    problems.append(f"the recovery cloud's VMM server {clouds[rc][0].name} is not registered")
        if encrypt and to_azure and self._registered(server.name) and not self._registered(server.name)["key_file"]:
            problems.append(f"encryption needs the data-encryption key made when {server.name} was registered")
        if problems:
            raise Refused(f"cannot configure protection for cloud {c.name}:\n  - " + "\n  - ".join(problems),
                          "fix the settings above and try again; nothing was changed")
        return {"cloud": c.name, "target_kind": "azure" if to_azure else "cloud", "target": place,
                "storage_account": storage_account or "", "frequency": rules.FREQUENCIES[frequency],
                "retention_h": retention_h, "app_consistent_h": app_consistent_h, "encrypt": int(encrypt),
                "start": start}

    def _cloud_problems(self, cloud: str) -> list[str]:
        """What stops any protection settings being saved for this cloud now."""
        server, c = self._cloud(cloud)
        problems = []
        if not self._registered(server.name):
            problems.append(f"VMM server {server.name} is not registered with the vault "
                            f"(srlab server register {server.name})")
        if "Hyper-V" not in c.capability_profiles:
            problems.append(f"cloud {c.name} has no Hyper-V capability profile; add it in VMM")
        members = [v.name for v in self.site.vms if v.cloud == c.name]
        if any(self.replication.item(m) for m in members):
            problems.append(f"cloud {c.name} has protected VMs; disable their protection before changing its settings")
        if self._running_job("configure_cloud", c.name):
            problems.append(f"cloud {c.name} is already being configured")
        return problems

    def _check_cloud_basics(self, cloud: str) -> None:
        problems = self._cloud_problems(cloud)
        if problems:
            raise Refused(problems[0])

    def configure_cloud(self, cloud: str, target: str, storage_account: str | None = None, frequency: str = "5m",
                        retention_h: int = 0, app_consistent_h: int = 0, encrypt: bool = False,
                        start: str = "now") -> int:
        """Set a cloud's replication policy (a 'Configure protection' job)."""
        settings = self._check_configure_cloud(cloud, target, storage_account, frequency, retention_h,
                                               app_consistent_h, encrypt, start)
        return jobs.create(self.db, self.now, "configure_cloud", settings["cloud"], settings)

    def _networks(self) -> tuple[set[str], set[str]]:
        vmm = {n.name for s in self.site.vmm_servers for n in s.vm_networks}
        azure = {n.name for r in self.site.regions().values() for n in r.virtual_networks}
        return vmm, azure

    def _check_map_network(self, source: str, target: str) -> None:
        vmm, azure = self._networks()
        if source not in vmm:
            raise InvalidInput(f"no VM network named {source!r}", f"VM networks: {', '.join(sorted(vmm)) or 'none'}")
        if target not in vmm | azure:
            raise InvalidInput(f"no network named {target!r} to map to",
                               f"Azure virtual networks: {', '.join(sorted(azure)) or 'none'}; "
                               f"VM networks: {', '.join(sorted(vmm))}")
        if target == source:
            raise Refused("a network cannot be mapped to itself")
        row = self.db.execute("SELECT target FROM network_mappings WHERE source=?", [source]).fetchone()
        if row:
            raise Refused(f"{source} is already mapped to {row[0]}", f"unmap it first: srlab network unmap {source!r}")

    def map_network(self, source: str, target: str) -> None:
        self._check_map_network(source, target)
        with store.transaction(self.db):
            self.db["network_mappings"].insert({"source": source, "target": target})
            self.event(self.now, "info", source, f"network mapped to {target}")

    def _check_unmap_network(self, source: str) -> None:
        if not self.db.execute("SELECT 1 FROM network_mappings WHERE source=?", [source]).fetchone():
            raise Refused(f"{source!r} is not mapped", "see mappings with: srlab resources")

    def unmap_network(self, source: str) -> None:
        self._check_unmap_network(source)
        with store.transaction(self.db):
            self.db.execute("DELETE FROM network_mappings WHERE source=?", [source])
            self.event(self.now, "info", source, "network mapping removed")

    # ---- links ----------------------------------------------------------------------------

    def _ensure_links(self) -> None:
        with store.transaction(self.db):
            for link in self.site.links:
                self.db.execute("INSERT OR IGNORE INTO links VALUES (?, ?, ?, ?)",
                                [link.source, link.target, link.mbps, link.state])

    def _check_set_link(self, source: str | None, target: str | None, mbps: float | None,
                        state: str | None) -> list[dict]:
        links = list(self.db.query("SELECT * FROM links"))
        if source or target:
            links = [l for l in links if l["source"] == source and l["target"] == target]
        if not links:
            raise InvalidInput(f"no link {source!r} -> {target!r}" if source else "this lab has no links yet",
                               "links: " + ", ".join(f"{l['source']} -> {l['target']}" for l in self.db.query(
                                   "SELECT * FROM links")) if source else "a link is made when a cloud is configured")
        if len(links) > 1:
            raise InvalidInput("this lab has several links: name one (SOURCE TARGET)")
        if mbps is not None and not mbps > 0:
            raise InvalidInput(f"bandwidth must be greater than 0 Mbps, not {mbps}")
        if state is not None and state not in LINK_STATES:
            raise InvalidInput(f"link state must be one of {', '.join(LINK_STATES)}, not {state!r}")
        if mbps is None and state is None:
            raise InvalidInput("nothing to change", "give --mbps N and/or --state up|down|lossy")
        return links

    def set_link(self, source: str | None = None, target: str | None = None, mbps: float | None = None,
                 state: str | None = None) -> dict:
        (link,) = self._check_set_link(source, target, mbps, state)
        with store.transaction(self.db):
            self.db.execute("UPDATE links SET mbps=COALESCE(?, mbps), state=COALESCE(?, state) "
                            "WHERE source=? AND target=?", [mbps, state, link["source"], link["target"]])
            self.event(self.now, "info", f"{link['source']} -> {link['target']}",
                       f"link set to {mbps or link['mbps']:g} Mbps, {state or link['state']}")
        return next(self.db.query("SELECT * FROM links WHERE source=? AND target=?", [link["source"], link["target"]]))
