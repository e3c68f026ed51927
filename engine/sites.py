"""Site files (TOML) -> engine.model.Site, reporting every problem with its place.

The schema is the dataclasses of engine.model: a key is allowed when it is a field, required
when the field has no default, and typed by the field's annotation. Value rules that types cannot
say (choices, ranges) are in CHECKS; rules across the file (names, references) in _cross_check.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
import types
import typing
import unicodedata
from datetime import datetime
from pathlib import Path

from . import model as m
from .clock import LAB_START_MAX, LAB_START_MIN, format_time, to_epoch
from .errors import SiteFileError

_BAD = object()


def _choice(*allowed):
    return lambda v: None if v in allowed else f"must be one of {', '.join(map(str, allowed))}"


NAME_MAX = 80
TEXT_MAX = 200
SITE_MAX_CHARS = 10_000_000


def _control(v: str) -> bool:
    """Control, format or unassigned characters (\\x00-\\x1f, DEL, bidi overrides...)."""
    return any(unicodedata.category(c).startswith("C") for c in v)


def name_problem(v: str) -> str | None:
    """Why a name (of a VM, disk, cloud, server...) cannot be used, or None. Names are data:
    files and folders get m.slug(name), so a name may not look like a path."""
    if not v or len(v) > NAME_MAX or v.strip() != v:
        return f"must be 1-{NAME_MAX} characters without leading or trailing spaces"
    if "/" in v or "\\" in v or v in (".", ".."):
        return "must not contain / or \\ or be . or .. (a name is not a path)"
    if _control(v):
        return "must not contain control characters"
    return None


def _text(v: str):
    if len(v) > TEXT_MAX:
        return f"must be at most {TEXT_MAX} characters"
    return "must not contain control characters" if _control(v) else None


def _name(v):
    return name_problem(v)


def _finite_range(low, high, what):
    """low < v <= high (low exclusive when given as a tuple (low,)), finite."""
    def check(v):
        lo_ok = v > low[0] if isinstance(low, tuple) else v >= low
        return None if math.isfinite(v) and lo_ok and v <= high else what
    return check


def _size_gb(v):
    if not math.isfinite(v) or not 0 < v <= m.DISK_MAX_GB or int(v * m.GIB) // 512 * 512 < m.DISK_MIN_BYTES:
        return (f"must be greater than 0 and at most {m.DISK_MAX_GB} (64 TB), and at least "
                f"{m.DISK_MIN_BYTES // m.MIB} MiB ({m.DISK_MIN_BYTES / m.GIB} GB: room for guest writes)")
    return None


def _start(v):
    t = to_epoch(v)
    if not LAB_START_MIN <= t <= LAB_START_MAX:
        return f"must be from {format_time(LAB_START_MIN)} to {format_time(LAB_START_MAX)} (UTC)"
    return None


CHECKS = {
    "LabInfo.scenario": _choice(*m.SCENARIOS),
    "VM.name": _name,
    "VM.bitness": _choice(32, 64),
    "VM.generation": _choice(1, 2),
    "VM.cpus": lambda v: None if 1 <= v <= 64 else "must be 1-64",
    "VM.memory_mb": lambda v: None if 32 <= v <= 4 * 1024 * 1024 else "must be 32-4194304 (MB)",
    "VM.dynamic_memory_max_mb": lambda v: None if 0 <= v <= 4 * 1024 * 1024 else (
        "must be 0 (static memory) to 4194304 (MB)"),
    "VM.power": _choice("running", "off"),
    "Disk.name": _name,
    "Disk.size_gb": _size_gb,
    "Disk.role": _choice("os", "data"),
    "Disk.controller": _choice("ide", "scsi"),
    "Disk.format": _choice("vhd", "vhdx"),
    "Disk.type": _choice("fixed", "dynamic", "differencing"),
    "Disk.attachment": _choice(*m.DISK_ATTACHMENTS),
    "Disk.content_mb": lambda v: None if math.isfinite(v) and v >= 0 else "must be 0 or more",
    "Nic.addressing": _choice("dhcp", "static"),
    "Workload.rate_kib_s": lambda v: None if 0 <= v <= 102400 else "must be 0-102400 (KiB/s)",
    "Workload.pattern": _choice(*m.PATTERNS),
    "Workload.seed": lambda v: None if 0 <= v <= m.SEED_MAX else f"must be 0-{m.SEED_MAX}",
    "Workload.block_kib": _choice(4, 8, 16, 32, 64),
    "StorageAccount.redundancy": _choice("geo", "local"),
    "Link.mbps": _finite_range((0,), m.MBPS_MAX, f"must be greater than 0 and at most {m.MBPS_MAX:.0f} (1 Tbps)"),
    "LabInfo.start": _start,
    "LabInfo.name": _text,
    "Link.state": _choice("up", "down", "lossy"),
    "ProcessServer.cache_mb": _finite_range((0,), 1_048_576, "must be greater than 0 and at most 1048576 (MB: 1 TB)"),
    "ProcessServer.port": lambda v: None if 1 <= v <= 65535 and v != 443 else (
        "must be a TCP port 1-65535 other than 443 (the configuration server's)"),
}

_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", datetime: "a date-time"}


def _convert(tp, value, path, problems):
    """Check `value` against annotation `tp`; return the converted value or _BAD."""
    if isinstance(tp, types.UnionType):  # X | None
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return _convert(inner, value, path, problems)
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            problems.append(f"{path}: must be a list")
            return _BAD
        out = [_convert(item, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
        return _BAD if any(v is _BAD for v in out) else out
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, problems)
    ok = {
        str: isinstance(value, str),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        datetime: isinstance(value, datetime),
    }[tp]
    if not ok:
        problems.append(f"{path}: must be {_TYPE_WORDS[tp]}, not {_show(value)}")
        return _BAD
    if tp is float and not isinstance(value, float) and abs(value) > 1e300:
        problems.append(f"{path}: must be a number in range, not {_show(value)}")
        return _BAD
    return float(value) if tp is float else value


def _show(value) -> str:
    """A value in a message, cut short (a site file may hold anything)."""
    if isinstance(value, datetime):
        return value.isoformat()
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit number"
    return text if len(text) <= 60 else text[:57] + "..."


@functools.cache
def _shape(cls) -> tuple[dict, dict]:
    """A model class's field types and fields, worked out once (a 1,000-VM site builds 4,000 objects)."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _build(cls, raw, path, problems):
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a table")
        return _BAD
    hints, fields = _shape(cls)
    for key in raw:
        if key not in fields:
            problems.append(f"{path}.{key}: unknown key (allowed: {', '.join(fields)})".lstrip("."))
    values = {}
    for name, f in fields.items():
        where = f"{path}.{name}".lstrip(".")
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{where}: missing (required)")
            continue
        v = _convert(hints[name], raw[name], where, problems)
        if v is _BAD:
            continue
        check = CHECKS.get(f"{cls.__name__}.{name}") or _default_check(name, v)
        msg = check(v) if check and v is not None else None
        if msg:
            problems.append(f"{where}: {msg}, not {_show(v)}")
            continue
        if isinstance(v, list) and v and isinstance(v[0], str):
            bad = [(i, x, _default_check(name, x)(x)) for i, x in enumerate(v)]
            for i, x, msg in (b for b in bad if b[2]):
                problems.append(f"{where}[{i}]: {msg}, not {_show(x)}")
            if any(b[2] for b in bad):
                continue
        values[name] = v
    try:
        return cls(**values)
    except TypeError:  # a required field was missing: already reported
        return _BAD


# Fields that hold a name of something in the file (used for file and folder names, or to refer
# to a named thing): the name rule applies. Other strings are free text.
_NAME_FIELDS = {"name", "cloud", "host", "hosts", "region", "physical_site", "network", "source", "target",
                "vault_region", "configuration_server", "master_targets", "vcenter", "datastores", "subnet",
                "resource_group", "availability_set", "storage_account", "resource_groups",
                "availability_sets", "paired_region"}


def _default_check(field: str, v):
    if not isinstance(v, str):
        return None
    return _name if field in _NAME_FIELDS else _text


def _dupes(names, where, what, problems):
    seen = set()
    for i, n in enumerate(names):
        if n in seen:
            problems.append(f"{where}[{i}].name: duplicate {what} name {n!r}")
        seen.add(n)


def _collisions(entries: list[tuple[str, str]], what: str, problems: list[str], ignore_case: bool = False) -> None:
    """Different names that get the same file or folder name (m.slug, compared without case, as
    some file systems do): two of them would share files. `entries` are (place in the file, name)."""
    seen: dict[str, tuple[str, str]] = {}
    for where, name in entries:
        key = m.slug(name).lower()
        first = seen.setdefault(key, (where, name))
        if first[1] == name or (ignore_case and first[1].lower() == name.lower()):
            continue  # the same name: a duplicate, reported as one
        problems.append(f"{where}: {what} {name!r} and {first[1]!r} ({first[0]}) both get the file name "
                        f"{m.slug(name)!r}; rename one")


def _cross_check(site: m.Site, problems: list[str]) -> None:
    clouds, regions, hosts = site.clouds(), site.regions(), site.hosts()
    _collisions([(f"vms[{i}].name", v.name) for i, v in enumerate(site.vms)], "VM", problems, ignore_case=True)
    _collisions([(f"vmm_servers[{si}].clouds[{ci}].name", c.name) for si, s in enumerate(site.vmm_servers)
                 for ci, c in enumerate(s.clouds)]
                + [(f"azure_subscriptions[{bi}].regions[{ri}].name", r.name)
                   for bi, b in enumerate(site.azure_subscriptions) for ri, r in enumerate(b.regions)]
                + [(f"physical_sites[{pi}].name", p.name) for pi, p in enumerate(site.physical_sites)]
                + [(f"vmware_sites[{wi}].name", w.name) for wi, w in enumerate(site.vmware_sites)],
                "place", problems)
    _collisions([(f"vmm_servers[{si}].name", s.name) for si, s in enumerate(site.vmm_servers)], "VMM server",
                problems)
    _collisions([(f"azure_subscriptions[{bi}].regions[{ri}].storage_accounts[{ai}].name", a.name)
                 for bi, b in enumerate(site.azure_subscriptions) for ri, r in enumerate(b.regions)
                 for ai, a in enumerate(r.storage_accounts)], "storage account", problems)
    _dupes([v.name.lower() for v in site.vms], "vms", "VM", problems)
    _dupes([s.name for s in site.vmm_servers], "vmm_servers", "VMM server", problems)
    _dupes([c for s in site.vmm_servers for c in (x.name for x in s.clouds)], "clouds", "cloud", problems)
    _dupes([h for s in site.vmm_servers for h in (x.name for x in s.hosts)], "hosts", "host", problems)
    _dupes(list(r.name for sub in site.azure_subscriptions for r in sub.regions), "regions", "region", problems)
    for si, s in enumerate(site.vmm_servers):
        host_names = {h.name for h in s.hosts}
        for ci, c in enumerate(s.clouds):
            for h in c.hosts:
                if h not in host_names:
                    problems.append(
                        f"vmm_servers[{si}].clouds[{ci}].hosts: {h!r} is not a host of VMM server {s.name!r}"
                    )
    _physical_checks(site, problems)
    if site.lab.vault_region and site.lab.vault_region not in regions:
        problems.append(f"lab.vault_region: no region named {site.lab.vault_region!r}")
    for li, link in enumerate(site.links):
        for end in ("source", "target"):
            name = getattr(link, end)
            if name not in site.places():
                problems.append(
                    f"links[{li}].{end}: {name!r} is not a cloud, region, physical or VMware site of this file"
                )
    for vi, vm in enumerate(site.vms):
        where = f"vms[{vi}]"
        placed = [k for k in ("cloud", "region", "physical_site") if getattr(vm, k)]
        if len(placed) != 1:
            problems.append(f"{where}: give exactly one of cloud, region, physical_site (where the VM runs)")
        if vm.cloud:
            if vm.cloud not in clouds:
                problems.append(f"{where}.cloud: no cloud named {vm.cloud!r}")
            elif not vm.host:
                problems.append(f"{where}.host: missing (a VM in a cloud runs on one of its Hyper-V hosts)")
            elif vm.host not in clouds[vm.cloud][1].hosts:
                problems.append(f"{where}.host: {vm.host!r} is not a host of cloud {vm.cloud!r}")
        elif vm.host and vm.host not in hosts:
            problems.append(f"{where}.host: no Hyper-V host named {vm.host!r}")
        if vm.region and vm.region not in regions:
            problems.append(f"{where}.region: no region named {vm.region!r}")
        _azure_vm_checks(vm, regions.get(vm.region), where, problems)
        if vm.physical_site and vm.physical_site not in {p.name for p in site.physical_sites}:
            problems.append(f"{where}.physical_site: no physical site named {vm.physical_site!r}")
        if vm.dynamic_memory_max_mb and vm.dynamic_memory_max_mb < vm.memory_mb:
            problems.append(f"{where}.dynamic_memory_max_mb: must be at least memory_mb ({vm.memory_mb})")
        if not vm.disks:
            problems.append(f"{where}.disks: a VM needs at least one disk")
        _dupes([d.name.lower() for d in vm.disks], f"{where}.disks", "disk", problems)
        _collisions([(f"{where}.disks[{di}].name", d.name) for di, d in enumerate(vm.disks)], "disk", problems,
                    ignore_case=True)
        for di, d in enumerate(vm.disks):
            if d.size_bytes < vm.workload.block_kib * 1024:
                problems.append(f"{where}.disks[{di}].size_gb: smaller than one guest write "
                                f"({vm.workload.block_kib} KiB)")
            if d.format == "vhd" and d.size_gb > 2040:
                problems.append(f"{where}.disks[{di}].size_gb: a VHD holds at most 2040 GB, not {d.size_gb}")
            if d.content_mb is not None and d.content_mb * m.MIB > d.size_bytes:
                problems.append(f"{where}.disks[{di}].content_mb: larger than the disk ({d.size_gb} GB)")
        nets = _networks_near(site, vm)
        for ni, nic in enumerate(vm.nics):
            if nic.network and nets is not None and nic.network not in nets:
                problems.append(f"{where}.nics[{ni}].network: no network named {nic.network!r} where the VM runs")
            if nic.addressing == "static" and not nic.ip:
                problems.append(f"{where}.nics[{ni}].ip: a static NIC needs an ip")


def _physical_checks(site: m.Site, problems: list[str]) -> None:
    """Configuration, process and master target servers are machines: one name, one machine;
    a VMware site's hosts and datastores are unique."""
    machines = [(f"vmm_servers[{si}].name", s.name) for si, s in enumerate(site.vmm_servers)]
    for pi, p in enumerate(site.physical_sites):
        where = f"physical_sites[{pi}]"
        machines.append((f"{where}.configuration_server", p.configuration_server))
        _dupes([x.name for x in p.process_servers], f"{where}.process_servers", "process server", problems)
        machines += [(f"{where}.process_servers[{i}].name", x.name) for i, x in enumerate(p.process_servers)
                     if x.name != p.configuration_server]
        machines += [(f"{where}.master_targets[{i}]", x) for i, x in enumerate(p.master_targets)
                     if x != p.configuration_server]
    vms = {v.name.lower() for v in site.vms}
    seen: dict[str, str] = {}
    for where, name in machines:
        if name.lower() in vms:
            problems.append(f"{where}: {name!r} is also the name of a VM of this file; a server is one machine")
        if name.lower() in seen and seen[name.lower()] != where:
            problems.append(f"{where}: {name!r} is already {seen[name.lower()]}")
        seen.setdefault(name.lower(), where)
    for wi, w in enumerate(site.vmware_sites):
        _dupes([h.name for h in w.hosts], f"vmware_sites[{wi}].hosts", "ESXi host", problems)
        if not w.hosts:
            problems.append(f"vmware_sites[{wi}].hosts: a VMware site needs at least one ESXi host (with a datastore)")
        for hi, h in enumerate(w.hosts):
            if not h.datastores:
                problems.append(f"vmware_sites[{wi}].hosts[{hi}].datastores: at least one datastore")
            if len(set(h.datastores)) < len(h.datastores):
                problems.append(f"vmware_sites[{wi}].hosts[{hi}].datastores: a datastore is named twice")


def _azure_vm_checks(vm: m.VM, region: m.Region | None, where: str, problems: list[str]) -> None:
    """An Azure VM's resource group, availability set, storage account and subnets are in its region."""
    fields = ("resource_group", "availability_set", "storage_account")
    if region is None:
        problems += [f"{where}.{f}: only an Azure VM (one with a region) has one" for f in fields if getattr(vm, f)]
        problems += [f"{where}.nics[{i}].subnet: only an Azure VM's NIC has one" for i, n in enumerate(vm.nics)
                     if n.subnet]
        return
    known = {"resource_group": region.resource_groups, "availability_set": region.availability_sets,
             "storage_account": [a.name for a in region.storage_accounts]}
    for f in fields:
        value = getattr(vm, f)
        if value and value not in known[f]:
            problems.append(f"{where}.{f}: no {f.replace('_', ' ')} named {value!r} in region {region.name} "
                            f"({', '.join(known[f]) or 'none'})")
    nets = {n.name: n for n in region.virtual_networks}
    for i, nic in enumerate(vm.nics):
        net = nets.get(nic.network)
        if nic.subnet and net is not None and nic.subnet not in net.subnets:
            problems.append(f"{where}.nics[{i}].subnet: no subnet {nic.subnet!r} in virtual network {net.name} "
                            f"({', '.join(net.subnets)})")


def _networks_near(site: m.Site, vm: m.VM) -> set[str] | None:
    """Networks a VM's NIC may join, or None when the file does not model them."""
    if vm.cloud in site.clouds():
        return {n.name for n in site.clouds()[vm.cloud][0].vm_networks}
    if vm.region in site.regions():
        return {n.name for n in site.regions()[vm.region].virtual_networks}
    return None


def parse_site(text: str, path: str = "<site>") -> m.Site:
    """Parse and validate a site file's text; raise SiteFileError listing every problem."""
    if len(text) > SITE_MAX_CHARS:
        raise SiteFileError(path, [f"larger than {SITE_MAX_CHARS // 1_000_000} MB: not a site file"])
    try:
        raw = tomllib.loads(text)
    except (ValueError, RecursionError) as e:  # TOMLDecodeError, an integer too long, nesting too deep
        raise SiteFileError(path, [f"not valid TOML: {str(e)[:200] or type(e).__name__}"]) from None
    problems: list[str] = []
    site = _build(m.Site, raw, "", problems)
    if site is not _BAD:
        _cross_check(site, problems)
    if problems:
        raise SiteFileError(path, problems)
    return site


def load_site(path: str | Path) -> m.Site:
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as f:
            text = f.read(SITE_MAX_CHARS + 1)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SiteFileError(str(p), [f"cannot read the file: {e}"]) from None
    return parse_site(text, str(p))
