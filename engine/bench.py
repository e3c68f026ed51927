"""`srlab bench`: srlab next to reference tools doing the same job on the same bytes, in one run.

Replication (run_bench): every line times srlab and one reference --repeat times each, the runs
interleaved so that a busy machine slows both alike, and gives the ratio of the medians:
reference seconds / srlab seconds (above 1: srlab is faster). Where bytes cross a link, the ratio
is reference bytes / srlab bytes (above 1: srlab sends fewer).

- initial replication (read the allocated extents, compress, stage durably, ship, apply durably,
  first point) next to `lz4 -1` writing srlab's frame (block checksums, no content checksum) of a
  file holding exactly those allocated bytes, and
  next to `cp --sparse=always --reflink=never` copying the image (the floor: no compression);
- delta replication: the guest's scattered 4 KiB writes through srlab's change tracking plus one
  copy cycle, next to `rsync -z --inplace --no-whole-file` finding and sending the same change
  (with --block-size=4096, the writes' size, and with rsync's default block size);
- a failover's disk build from the replica next to cp of the image;
- a resync (the change log lost) next to the 4 KiB rsync on the same change.

Scale (run_scale): an N-VM lab (engine.scale) run for H lab hours once its initial replication
is done: lab seconds per wall second, CPU seconds per VM-hour, peak RSS.

Both return plain data; figures() names every number for `--json`; the CLI prints them.
"""

from __future__ import annotations

import math
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .disks import data_extents
from .errors import EnvironmentProblem, InvalidInput, environment
from .lab import Lab
from .replication import changelog
from .scale import MAX_VMS, scale_site
from .states import JobState, Protection

_SITE = """
[lab]
name = "bench"
scenario = "hyperv-to-azure"
start = 2026-01-05T09:00:00Z
[[vmm_servers]]
name = "SC01"
  [[vmm_servers.hosts]]
  name = "HV01"
  [[vmm_servers.clouds]]
  name = "Cloud"
  hosts = ["HV01"]
[[azure_subscriptions]]
name = "sub"
  [[azure_subscriptions.regions]]
  name = "Japan East"
    [[azure_subscriptions.regions.storage_accounts]]
    name = "bench"
[[links]]
source = "Cloud"
target = "Japan East"
mbps = 1000000
[[vms]]
name = "BENCH01"
os = "Windows Server 2012 R2"
cloud = "Cloud"
host = "HV01"
cpus = 1
memory_mb = 512
  [[vms.disks]]
  name = "BENCH01"
  role = "os"
  controller = "ide"
  size_gb = {size_gb}
  content_mb = {content_mb}
  [vms.workload]
  rate_kib_s = 0
"""

SIZE_MB_MIN = 32  # an OS disk Azure accepts (20 MB at least), with room for content
SIZE_MB_MAX = 65536  # 64 GiB logical
CONTENT_MB_MAX = 8192  # written for real: 8 GiB
REPEAT_MAX = 50
HOURS_MAX = 168  # a week of lab time

# The references. --inplace: srlab updates its replica in place too (no whole new file);
# --ignore-times: compare every time, whatever the files' times say; -z: srlab's bytes are compressed.
CP = ["cp", "--sparse=always", "--reflink=never"]  # never a reflink: a copy-on-write clone copies nothing
# srlab's own frame: level 1, 4 MB independent blocks (the CLI's default), a checksum on every block
# and none on the content (the CLI's default hashes the whole content too: more work than srlab's).
LZ4 = ["lz4", "-1", "-BX", "--no-frame-crc"]
RSYNC = ["rsync", "-z", "--inplace", "--no-whole-file", "--ignore-times", "--stats"]
RSYNC_4K = [*RSYNC, "--block-size=4096"]
_INSTALL = {"lz4": "apt-get install lz4", "rsync": "apt-get install rsync", "cp": "apt-get install coreutils"}


# ---- pure helpers -------------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(reference: float | None, srlab: float | None) -> float | None:
    """reference / srlab: above 1, srlab took less (time) or sent less (bytes). None without both."""
    if reference is None or not srlab:
        return None
    return reference / srlab


def rsync_link_bytes(stats: str) -> int | None:
    """Bytes rsync moved over the link, both ways: the receiver's block checksums cross it too
    (srlab's resync counts its checksums the same way)."""
    found = re.findall(r"Total bytes (?:sent|received): ([\d,.]+)", stats)
    return sum(int(re.sub(r"[,.]", "", n)) for n in found) if len(found) == 2 else None


@dataclass
class Line:
    """One comparison: srlab and a reference doing the same job, timed once per repetition."""

    phase: str  # initial | delta | failover | resync: the figures' names start with it
    ref: str  # lz4 | cp | rsync | rsync_default: names the reference in the figures
    label: str  # the reference as printed
    srlab_s: list[float]  # lines of one phase share srlab's runs
    ref_s: list[float] = field(default_factory=list)
    srlab_bytes: list[int] | None = None  # bytes over the link, where the line compares them
    ref_bytes: list[int] = field(default_factory=list)
    skipped: str = ""  # why the reference did not run

    @property
    def key(self) -> str:
        return f"{self.phase}_vs_{self.ref}"


def figures(result: dict) -> dict:
    """Every number of a replication bench by name (--json): for each line, `<phase>_vs_<ref>` (the
    time ratio), the medians `<phase>_srlab_s` and `<phase>_<ref>_s`, and where bytes are compared
    `<phase>_bytes_vs_<ref>` with `<phase>_srlab_bytes` and `<phase>_<ref>_bytes`. A skipped
    reference's figures are null, with the reason under "skipped"."""
    out = {"repeat": result["repeat"], "image_logical_bytes": result["logical_bytes"],
           "image_allocated_bytes": result["allocated_bytes"], "changed_bytes": result["changed_bytes"],
           "writes": result["writes"], "delta_verified": result["delta_verified"],
           "resync_verified": result["resync_verified"], "skipped": {}}
    for ln in result["lines"]:
        ref_s = None if ln.skipped else median(ln.ref_s)
        out[f"{ln.phase}_srlab_s"] = median(ln.srlab_s)
        out[f"{ln.phase}_{ln.ref}_s"] = ref_s
        out[ln.key] = ratio(ref_s, median(ln.srlab_s))
        if ln.srlab_bytes is not None:
            ref_b = None if ln.skipped else median(ln.ref_bytes)
            out[f"{ln.phase}_srlab_bytes"] = median(ln.srlab_bytes)
            out[f"{ln.phase}_{ln.ref}_bytes"] = ref_b
            out[f"{ln.phase}_bytes_vs_{ln.ref}"] = ratio(ref_b, median(ln.srlab_bytes))
        if ln.skipped:
            out["skipped"][ln.key] = ln.skipped
    return out


def check_bench_args(size_mb: int, content_mb: int, change_pct: float, repeat: int = 3) -> None:
    if not SIZE_MB_MIN <= size_mb <= SIZE_MB_MAX:
        raise InvalidInput(f"--size-mb must be {SIZE_MB_MIN}-{SIZE_MB_MAX}, not {size_mb}")
    if not 0 <= content_mb <= min(size_mb, CONTENT_MB_MAX):
        raise InvalidInput(f"--content-mb must be 0-{min(size_mb, CONTENT_MB_MAX)} (at most --size-mb and "
                           f"{CONTENT_MB_MAX}), not {content_mb}")
    if not (math.isfinite(change_pct) and 0 < change_pct <= 100):
        raise InvalidInput(f"--change-pct must be greater than 0 and at most 100, not {change_pct}")
    if not 1 <= repeat <= REPEAT_MAX:
        raise InvalidInput(f"--repeat must be 1-{REPEAT_MAX}, not {repeat}")


def check_scale_args(vms: int, hours: float, rate_kib_s: float) -> None:
    if not 1 <= vms <= MAX_VMS:
        raise InvalidInput(f"--scale must be 1-{MAX_VMS} VMs, not {vms}")
    if not (math.isfinite(hours) and 0 < hours <= HOURS_MAX and hours * 3600 >= 1):
        raise InvalidInput(f"--hours must be above 0 (a lab second at least) and at most {HOURS_MAX}, not {hours:g}")
    scale_site(vms, rate_kib_s)  # says what is wrong with --rate


# ---- the temporary folder ---------------------------------------------------------------------

_PREFIX = "srlab-bench-"


def _in_temp_folder(work_fn):
    """Run work_fn(folder) in a new temporary folder, removed at the end (a SIGTERM'd or Ctrl-C'd
    bench too, by the CLI; one that was killed outright is removed by the next bench)."""
    for old in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = old.name[len(_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not changelog.process_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    with environment("the benchmark failed"):
        work = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        try:
            return work_fn(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    except subprocess.CalledProcessError as e:
        why = (e.stderr or "").strip()[:300]
        raise EnvironmentProblem(f"the benchmark failed: {cmd[0]} exited {e.returncode}: {why}",
                                 f"run it by hand to see why: {' '.join(cmd)}") from None
    return time.perf_counter() - t, out


def _missing(tool: str) -> str:
    return "" if shutil.which(tool) else f"{tool} not installed: no reference ({_INSTALL[tool]})"


# ---- the replication bench -------------------------------------------------------------------


def run_bench(size_mb: int = 512, content_mb: int = 192, change_pct: float = 1.0, seed: int = 1,
              repeat: int = 3) -> dict:
    """Run the replication bench in a temporary folder: {"lines": [Line], ...}; figures() names it all."""
    check_bench_args(size_mb, content_mb, change_pct, repeat)
    return _in_temp_folder(lambda work: _bench(work, size_mb, content_mb, change_pct, seed, repeat))


def _write_allocated(image: Path, size: int, out: Path) -> None:
    """The image's allocated extents, one after the other: exactly the bytes srlab's initial
    replication reads (the lz4 CLI would read the holes too if given the image)."""
    with open(image, "rb") as src, open(out, "wb") as dst:
        for start, length in data_extents(src.fileno(), size):
            for pos in range(start, start + length, 16 << 20):
                dst.write(os.pread(src.fileno(), min(16 << 20, start + length - pos), pos))


def _wait_jobs(lab: Lab) -> None:
    lab.run_until_done([j["id"] for j in lab.jobs() if j["state"] == JobState.IN_PROGRESS])


def _bench(work: Path, size_mb: int, content_mb: int, change_pct: float, seed: int, repeat: int) -> dict:
    site = work / "bench.toml"
    site.write_text(_SITE.format(size_gb=size_mb / 1024, content_mb=content_mb))
    lab = Lab.create(work / "lab", site)
    try:
        image = lab.disk_path("BENCH01", 0)
        size = lab.vm("BENCH01").disks[0].size_bytes
        allocated = lab.status()["vms"][0]["disks"][0]["allocated_bytes"]
        writes = max(1, int(allocated * change_pct / 100) // 4096)
        out = {"repeat": repeat, "logical_bytes": size, "allocated_bytes": allocated,
               "changed_bytes": writes * 4096, "writes": writes}
        lab.run_until_done([lab.register_server("SC01")])
        lab.run_until_done([lab.install_agent("HV01")])
        lab.run_until_done([lab.configure_cloud("Cloud", "azure", "bench", "5m", 0, 0)])
        lines = _initial(lab, work, image, size, allocated, repeat)
        lines += _delta(lab, work, image, size, writes, seed, repeat)
        out["delta_verified"] = lab.verify("BENCH01")["identical"]
        lines += _failover(lab, work, image, repeat)
        lines += _resync(lab, work, image, size, writes, seed, repeat)
        out["resync_verified"] = lab.verify("BENCH01")["identical"]
        out["lines"] = lines
    finally:
        lab.close()
    return out


def _initial(lab: Lab, work: Path, image: Path, size: int, allocated: int, repeat: int) -> list[Line]:
    """Enable protection, timed until the initial replication is done (on this fast link the job
    steps cost nothing); then disable it (not timed) for the next run."""
    mib = allocated / 2**20
    srlab: list[float] = []
    lz4 = Line("initial", "lz4", f"{' '.join(LZ4)} (srlab's frame, the same {mib:.0f} MiB allocated)", srlab,
               skipped=_missing("lz4"))
    cp = Line("initial", "cp", f"{' '.join(CP)} (the image: {mib:.0f} MiB allocated)", srlab,
              skipped=_missing("cp"))
    if not lz4.skipped:
        _write_allocated(image, size, work / "allocated.bin")
    for i in range(repeat):
        if i:
            _wait_jobs(lab)
            lab.run_until_done(lab.unprotect(["BENCH01"]))
        t = time.perf_counter()
        lab.run_until_done(lab.protect(["BENCH01"]))
        while lab.protection_state("BENCH01") == Protection.INITIAL:
            lab.run(60)
        srlab.append(time.perf_counter() - t)
        if not lz4.skipped:
            lz4.ref_s.append(_timed([*LZ4, "-f", "-q", str(work / "allocated.bin"), str(work / "a.lz4")])[0])
        if not cp.skipped:
            cp.ref_s.append(_timed([*CP, str(image), str(work / "copy.vhd")])[0])
            (work / "copy.vhd").unlink()
    _wait_jobs(lab)
    lab.run(300)
    (work / "allocated.bin").unlink(missing_ok=True)
    return [lz4, cp]


def _delta(lab: Lab, work: Path, image: Path, size: int, writes: int, seed: int, repeat: int) -> list[Line]:
    """Scattered 4 KiB writes, as a database guest makes them, through lab.guest_write (which
    tracks them) and one copy cycle, timed together; rsync brings a copy taken before the writes
    up to date, finding the change itself."""
    srlab: list[float] = []
    wire: list[int] = []
    missing = _missing("rsync")
    rs = [Line("delta", "rsync", "rsync -z --no-whole-file --block-size=4096", srlab, srlab_bytes=wire,
               skipped=missing),
          Line("delta", "rsync_default", "rsync -z --no-whole-file (its default block size)", srlab,
               srlab_bytes=wire, skipped=missing)]
    cmds = [RSYNC_4K, RSYNC]
    for i in range(repeat):
        copies = [work / f"rsync-{n}.vhd" for n in range(len(rs))]
        if not missing:  # taken while both sides agree
            for c in copies:
                subprocess.run([*CP, str(image), str(c)], check=True)
        rng = random.Random(seed * 1000 + i)
        before = {p["id"] for p in lab.points("BENCH01")}
        t = time.perf_counter()
        for _ in range(writes):
            lab.guest_write("BENCH01", 0, rng.randrange(size // 4096) * 4096, rng.randbytes(2048) + bytes(2048))
        lab.run(300)  # one copy cycle: freeze, compress, fingerprint, ship, store the point
        srlab.append(time.perf_counter() - t)
        new = [p for p in lab.points("BENCH01") if p["id"] not in before]
        wire.append(new[-1]["size"] if new else 0)
        if not missing:
            for line, cmd, copy in zip(rs, cmds, copies):
                secs, stats = _timed([*cmd, str(image), str(copy)])
                line.ref_s.append(secs)
                line.ref_bytes.append(rsync_link_bytes(stats) or 0)
                copy.unlink()
    return rs


def _failover(lab: Lab, work: Path, image: Path, repeat: int) -> list[Line]:
    """Build the VM's disks at the latest point from the replica, next to cp copying the image."""
    srlab: list[float] = []
    cp = Line("failover", "cp", f"{' '.join(CP)} (the image)", srlab, skipped=_missing("cp"))
    for i in range(repeat):
        t = time.perf_counter()
        lab.build_at_point("BENCH01", "latest", work / "failover")
        srlab.append(time.perf_counter() - t)
        shutil.rmtree(work / "failover")
        if not cp.skipped:
            cp.ref_s.append(_timed([*CP, str(image), str(work / "copy.vhd")])[0])
            (work / "copy.vhd").unlink()
    return [cp]


def _resync(lab: Lab, work: Path, image: Path, size: int, writes: int, seed: int, repeat: int) -> list[Line]:
    """Scattered 4 KiB changes whose change log is lost (as the 50% rule drops it), found by a
    resync (build the replica's disk, compare both sides by checksums, send the differing blocks,
    make the point), next to rsync bringing a copy taken at the same moment up to date."""
    srlab: list[float] = []
    sent: list[int] = []
    rs = Line("resync", "rsync", "rsync -z --no-whole-file --block-size=4096", srlab, srlab_bytes=sent,
              skipped=_missing("rsync"))
    copy = work / "resync-copy.vhd"
    for i in range(repeat):
        if not rs.skipped:
            subprocess.run([*CP, str(image), str(copy)], check=True)  # the sides agree now
        rng = random.Random(seed * 1000 + 500 + i)
        fd = os.open(image, os.O_RDWR)
        try:
            for _ in range(writes):  # written behind the tracker's back: no log holds them
                os.pwrite(fd, rng.randbytes(2048) + bytes(2048), rng.randrange(size // 4096) * 4096)
        finally:
            os.close(fd)
        lab.source_fingerprints.forget(image)
        t = time.perf_counter()
        job = lab.resync(["BENCH01"])[0]
        lab.run_until_done([job])
        srlab.append(time.perf_counter() - t)
        sent.append(lab.job(job)["report"]["resync"]["sent_bytes"])
        if not rs.skipped:
            secs, stats = _timed([*RSYNC_4K, str(image), str(copy)])
            rs.ref_s.append(secs)
            rs.ref_bytes.append(rsync_link_bytes(stats) or 0)
            copy.unlink()
    return [rs]


# ---- the scale bench -----------------------------------------------------------------------------

_SETTLING = {Protection.ENABLING, Protection.INITIAL_PENDING, Protection.INITIAL, Protection.FINALIZING}


def run_scale(vms: int, hours: float = 1.0, rate_kib_s: float = 1.0) -> dict:
    """Build the N-VM scale site's lab in a temporary folder, protect every VM, wait for the
    initial replication, then time `hours` of lab time: wall seconds, this process's CPU seconds
    (and any children's), and the process's peak RSS (its whole life: setup included)."""
    check_scale_args(vms, hours, rate_kib_s)
    return _in_temp_folder(lambda work: _scale(work, vms, hours, rate_kib_s))


def _cpu_seconds() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def _scale(work: Path, vms: int, hours: float, rate_kib_s: float) -> dict:
    (work / "scale.toml").write_text(scale_site(vms, rate_kib_s))
    t0 = time.perf_counter()
    lab = Lab.create(work / "lab", work / "scale.toml")
    try:
        names = [v.name for v in lab.site.vms]
        lab.run_until_done([lab.register_server("SC01")])
        lab.run_until_done([lab.install_agent("HV01")])
        lab.run_until_done([lab.configure_cloud("Scale Cloud", "azure", "scalestore", "5m", 0, 0)])
        lab.run_until_done(lab.protect(names))
        deadline = lab.now + 48 * 3600
        while any(lab.protection_state(n) in _SETTLING for n in names):
            if lab.now >= deadline:
                raise EnvironmentProblem("the benchmark failed: initial replication did not end in 48 lab hours")
            lab.run(60)
        setup = time.perf_counter() - t0
        lab_seconds = max(1, round(hours * 3600))
        cpu, t = _cpu_seconds(), time.perf_counter()
        lab.run(lab_seconds)
        wall, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
    finally:
        lab.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"vms": vms, "hours": lab_seconds / 3600, "rate_kib_s": rate_kib_s, "setup_wall_s": setup,
            "lab_seconds": lab_seconds, "wall_s": wall, "cpu_s": cpu,
            "lab_per_wall": lab_seconds / max(wall, 1e-9),
            "cpu_s_per_vm_hour": cpu / (vms * lab_seconds / 3600), "peak_rss_mib": peak}


# ---- as text -------------------------------------------------------------------------------------

_PHASES = {"initial": "initial replication", "delta": "delta replication", "failover": "failover build",
           "resync": "resync"}
_INDENT = " " * 21


def _s(seconds: float) -> str:
    return f"{seconds:.3g} s"


def _mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def text(result: dict) -> list[str]:
    """A replication bench as lines: each comparison with its medians and ratio."""
    r = result["repeat"]
    runs, each = (f"median of {r}", f"the medians of {r} runs each") if r > 1 else ("1 run", "1 run each")
    out = [f"image: {result['logical_bytes'] / 2**20:.0f} MiB logical, {result['allocated_bytes'] / 2**20:.0f} MiB "
           "allocated (fixed VHD, mixed text / zeros / random content)",
           f"ratio = reference seconds / srlab seconds, of {each} in this run (above 1x: srlab is faster);",
           "  on the link: reference bytes / srlab bytes (above 1x: srlab sends fewer)"]
    changed = f"{_mib(result['changed_bytes'])} changed per run in {result['writes']} scattered 4 KiB writes"
    notes = {"delta": [f"{changed}; srlab's time holds the writes with their change tracking and one copy cycle",
                       f"point verified {'identical' if result['delta_verified'] else 'DIFFERENT'}"],
             "resync": [f"{changed}, their log lost; srlab's time holds building the replica's disk, comparing",
                        "by checksums (its bytes count them) and the new point; point verified "
                        f"{'identical' if result['resync_verified'] else 'DIFFERENT'}"]}
    phase = None
    for ln in result["lines"]:
        head = f"{_PHASES[ln.phase]:<20} " if ln.phase != phase else _INDENT
        if phase is not None and ln.phase != phase:
            out += [_INDENT + n for n in notes.get(phase, [])]
        phase = ln.phase
        if ln.skipped:
            out.append(f"{head}{ln.label}: {ln.skipped}")
            continue
        ours, ref = median(ln.srlab_s), median(ln.ref_s)
        out.append(f"{head}srlab {_s(ours)}  {ln.label} {_s(ref)}  ratio {ratio(ref, ours):.2f}x ({runs})")
        if ln.srlab_bytes is not None:
            ob, rb = median(ln.srlab_bytes), median(ln.ref_bytes)
            b = ratio(rb, ob)
            out.append(f"{_INDENT}  on the link: srlab {_mib(ob)}, rsync {_mib(rb)} (both ways)  "
                       f"ratio {'-' if b is None else f'{b:.2f}x'}")
    out += [_INDENT + n for n in notes.get(phase, [])]
    return out


def scale_text(r: dict) -> list[str]:
    vm_hours = r["vms"] * r["hours"]
    return [f"scale: {r['vms']} VMs (1 GiB disks, {r['rate_kib_s']:g} KiB/s of writes each), {r['hours']:g} lab hours "
            f"timed after their initial replication (setup: {r['setup_wall_s']:.1f} s wall)",
            f"lab time / wall time  {r['lab_seconds']} s / {r['wall_s']:.2f} s = {r['lab_per_wall']:.0f}x",
            f"CPU per VM-hour       {r['cpu_s']:.2f} s / {vm_hours:g} VM-hours = {r['cpu_s_per_vm_hour']:.4f} s",
            f"peak memory           {r['peak_rss_mib']:.0f} MiB (the bench process's peak RSS, setup included)"]
