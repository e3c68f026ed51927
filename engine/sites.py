"""Site files (TOML) -> engine.model.Site, reporting every problem with its place.

The schema is the dataclasses of engine.model: a key is allowed when it is a field, required
when the field has no default, and typed by the field's annotation. Value rules that types cannot
say (choices, ranges) are in CHECKS; rules across the file (names, references) in _cross_check.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from datetime import datetime
from pathlib import Path

from . import model as m
from .errors import SiteFileError

_BAD = object()


def _choice(*allowed):
    return lambda v: None if v in allowed else f"must be one of {', '.join(map(str, allowed))}"


def _positive(v):
    return None if v > 0 else "must be greater than 0"


_NAME = re.compile(r"^[^\x00-\x1f/\\]{1,80}$")


def _name(v):
    return None if _NAME.match(v) and v.strip() == v else (
        "must be 1-80 characters, no slashes or control characters, no leading/trailing spaces"
    )


CHECKS = {
    "LabInfo.scenario": _choice(*m.SCENARIOS),
    "VM.name": _name,
    "VM.bitness": _choice(32, 64),
    "VM.generation": _choice(1, 2),
    "VM.cpus": lambda v: None if 1 <= v <= 64 else "must be 1-64",
    "VM.memory_mb": lambda v: None if 32 <= v <= 4 * 1024 * 1024 else "must be 32-4194304 (MB)",
    "VM.dynamic_memory_max_mb": lambda v: None if v >= 0 else "must be 0 (static memory) or more",
    "VM.power": _choice("running", "off"),
    "Disk.name": _name,
    "Disk.size_gb": lambda v: None if 0 < v <= 65536 else "must be greater than 0 and at most 65536 (64 TB)",
    "Disk.role": _choice("os", "data"),
    "Disk.controller": _choice("ide", "scsi"),
    "Disk.format": _choice("vhd", "vhdx"),
    "Disk.type": _choice("fixed", "dynamic", "differencing"),
    "Disk.attachment": _choice(*m.DISK_ATTACHMENTS),
    "Disk.content_mb": lambda v: None if v >= 0 else "must be 0 or more",
    "Nic.addressing": _choice("dhcp", "static"),
    "Workload.rate_kib_s": lambda v: None if 0 <= v <= 102400 else "must be 0-102400 (KiB/s)",
    "Workload.pattern": _choice(*m.PATTERNS),
    "Workload.block_kib": _choice(4, 8, 16, 32, 64),
    "StorageAccount.redundancy": _choice("geo", "local"),
    "Link.mbps": _positive,
    "Link.state": _choice("up", "down", "lossy"),
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
        problems.append(f"{path}: must be {_TYPE_WORDS[tp]}, not {value!r}")
        return _BAD
    return float(value) if tp is float else value


def _build(cls, raw, path, problems):
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a table")
        return _BAD
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
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
        check = CHECKS.get(f"{cls.__name__}.{name}")
        msg = check(v) if check and v is not None else None
        if msg:
            problems.append(f"{where}: {msg}, not {v!r}")
            continue
        values[name] = v
    try:
        return cls(**values)
    except TypeError:  # a required field was missing: already reported
        return _BAD


def _dupes(names, where, what, problems):
    seen = set()
    for i, n in enumerate(names):
        if n in seen:
            problems.append(f"{where}[{i}].name: duplicate {what} name {n!r}")
        seen.add(n)


def _cross_check(site: m.Site, problems: list[str]) -> None:
    clouds, regions, hosts = site.clouds(), site.regions(), site.hosts()
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
    if site.lab.vault_region and site.lab.vault_region not in regions:
        problems.append(f"lab.vault_region: no region named {site.lab.vault_region!r}")
    for li, link in enumerate(site.links):
        for end in ("source", "target"):
            name = getattr(link, end)
            if name not in site.places():
                problems.append(
                    f"links[{li}].{end}: {name!r} is not a cloud, region or physical site of this file"
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
        if vm.physical_site and vm.physical_site not in {p.name for p in site.physical_sites}:
            problems.append(f"{where}.physical_site: no physical site named {vm.physical_site!r}")
        if vm.dynamic_memory_max_mb and vm.dynamic_memory_max_mb < vm.memory_mb:
            problems.append(f"{where}.dynamic_memory_max_mb: must be at least memory_mb ({vm.memory_mb})")
        if not vm.disks:
            problems.append(f"{where}.disks: a VM needs at least one disk")
        _dupes([d.name.lower() for d in vm.disks], f"{where}.disks", "disk", problems)
        for di, d in enumerate(vm.disks):
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


def _networks_near(site: m.Site, vm: m.VM) -> set[str] | None:
    """Networks a VM's NIC may join, or None when the file does not model them."""
    if vm.cloud in site.clouds():
        return {n.name for n in site.clouds()[vm.cloud][0].vm_networks}
    if vm.region in site.regions():
        return {n.name for n in site.regions()[vm.region].virtual_networks}
    return None


def parse_site(text: str, path: str = "<site>") -> m.Site:
    """Parse and validate a site file's text; raise SiteFileError listing every problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SiteFileError(path, [f"not valid TOML: {e}"]) from None
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
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SiteFileError(str(p), [f"cannot read the file: {e}"]) from None
    return parse_site(text, str(p))
