"""`srlab bench`: srlab's replication against reference tools, in the same run, as ratios.

Initial replication of a generated disk image is timed next to the `lz4` CLI compressing the
same image; one delta cycle after scattered 4 KiB changes is timed next to `rsync --inplace
--no-whole-file` bringing a copy of the image up to date; building a failed-over VM's disks from
the replica at its latest point is timed next to `cp --sparse=always` of the source image; a resync
finding scattered changes whose log was lost is timed next to rsync on the same change. Returns
plain data; the CLI prints it.
"""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .errors import InvalidInput, environment
from .lab import Lab
from .replication import changelog
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


def _timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t, out


SIZE_MB_MIN = 32  # an OS disk Azure accepts (20 MB at least), with room for content
SIZE_MB_MAX = 65536  # 64 GiB logical
CONTENT_MB_MAX = 8192  # written for real: 8 GiB


def check_bench_args(size_mb: int, content_mb: int, change_pct: float) -> None:
    if not SIZE_MB_MIN <= size_mb <= SIZE_MB_MAX:
        raise InvalidInput(f"--size-mb must be {SIZE_MB_MIN}-{SIZE_MB_MAX}, not {size_mb}")
    if not 0 <= content_mb <= min(size_mb, CONTENT_MB_MAX):
        raise InvalidInput(f"--content-mb must be 0-{min(size_mb, CONTENT_MB_MAX)} (at most --size-mb and "
                           f"{CONTENT_MB_MAX}), not {content_mb}")
    if not (math.isfinite(change_pct) and 0 < change_pct <= 100):
        raise InvalidInput(f"--change-pct must be greater than 0 and at most 100, not {change_pct}")


_PREFIX = "srlab-bench-"


def run_bench(size_mb: int = 512, content_mb: int = 192, change_pct: float = 1.0, seed: int = 1) -> dict:
    """Run the benchmark in a temporary folder, removed at the end (a SIGTERM'd or Ctrl-C'd bench
    too, by the CLI; one that was killed outright is removed by the next bench)."""
    check_bench_args(size_mb, content_mb, change_pct)
    for old in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = old.name[len(_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not changelog.process_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    with environment("the benchmark failed"):
        work = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        try:
            return _bench(work, size_mb, content_mb, change_pct, seed)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _rsync_sent(text: str) -> int | None:
    m = re.search(r"Total bytes sent: ([\d,.]+)", text)
    return int(re.sub(r"[,.]", "", m[1])) if m else None


def _bench_resync(lab: Lab, work: Path, image: Path, size: int, allocated: int, change_pct: float, seed: int) -> dict:
    """Scattered 4 KiB changes whose change log is lost (as the 50% rule drops it), found by a
    resync (build the replica's disk, compare both sides by checksums, send the differing blocks,
    make the point), next to rsync bringing a copy taken at the same moment up to date."""
    copy = work / "resync-copy.vhd"
    subprocess.run(["cp", "--sparse=always", str(image), str(copy)], check=True)  # the sides agree now
    rng = random.Random(seed + 1)
    writes = max(1, int(allocated * change_pct / 100) // 4096)
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
    out = {"changed_bytes": writes * 4096, "writes": writes, "srlab_seconds": time.perf_counter() - t}
    r = lab.job(job)["report"]["resync"]
    out.update(srlab_sent_bytes=r["sent_bytes"], differing_chunks=r["differing_chunks"], blocks=r["blocks"],
               verified=lab.verify("BENCH01")["identical"])
    if shutil.which("rsync"):
        secs, text = _timed(["rsync", "--ignore-times", "--inplace", "--no-whole-file", "--stats", str(image), str(copy)])
        out["rsync_seconds"], out["rsync_sent_bytes"] = secs, _rsync_sent(text)
    return out


def _bench(work: Path, size_mb: int, content_mb: int, change_pct: float, seed: int) -> dict:
    site = work / "bench.toml"
    site.write_text(_SITE.format(size_gb=size_mb / 1024, content_mb=content_mb))
    lab = Lab.create(work / "lab", site)
    out: dict = {}
    try:
        image = lab.disk_path("BENCH01", 0)
        size = lab.vm("BENCH01").disks[0].size_bytes
        allocated = lab.status()["vms"][0]["disks"][0]["allocated_bytes"]
        out["image"] = {"logical_bytes": size, "allocated_bytes": allocated, "path": str(image)}
        lab.run_until_done([lab.register_server("SC01")])
        lab.run_until_done([lab.install_agent("HV01")])
        lab.run_until_done([lab.configure_cloud("Cloud", "azure", "bench", "5m", 0, 0)])
        # Enable protection; initial replication (chunk, compress, ship, apply at the target,
        # first point) runs inside it on this fast link. The job steps themselves cost nothing.
        t = time.perf_counter()
        lab.run_until_done(lab.protect(["BENCH01"]))
        while lab.protection_state("BENCH01") == Protection.INITIAL:
            lab.run(60)
        srlab_initial = time.perf_counter() - t
        out["initial"] = {"srlab_seconds": srlab_initial}
        if shutil.which("lz4"):
            secs, _ = _timed(["lz4", "-1", "-f", "-q", str(image), str(work / "image.lz4")])
            out["initial"]["lz4_seconds"] = secs
            out["initial"]["lz4_bytes"] = (work / "image.lz4").stat().st_size
        lab.run_until_done([j["id"] for j in lab.jobs() if j["state"] == JobState.IN_PROGRESS])
        lab.run(300)
        # A copy of the image for rsync to bring up to date, taken while the two sides agree.
        replica = work / "replica.vhd"
        subprocess.run(["cp", "--sparse=always", str(image), str(replica)], check=True)
        # Scattered 4 KiB changes, as a database guest makes them.
        rng = random.Random(seed)
        writes = max(1, int(allocated * change_pct / 100) // 4096)
        for _ in range(writes):
            lab.guest_write("BENCH01", 0, rng.randrange(size // 4096) * 4096, rng.randbytes(2048) + bytes(2048))
        changed = writes * 4096
        before = {p["id"] for p in lab.points("BENCH01")}
        t = time.perf_counter()
        lab.run(300)  # one copy cycle: freeze, compress, fingerprint, ship, store the point
        srlab_delta = time.perf_counter() - t
        new = [p for p in lab.points("BENCH01") if p["id"] not in before]
        out["delta"] = {"changed_bytes": changed, "writes": writes, "srlab_seconds": srlab_delta,
                        "srlab_wire_bytes": new[-1]["size"] if new else 0,
                        "verified": lab.verify("BENCH01")["identical"]}
        # Failover: build the VM's disks at the latest point, next to cp copying the same image.
        t = time.perf_counter()
        _, built = lab.build_at_point("BENCH01", "latest", work / "failover")
        out["failover"] = {"srlab_seconds": time.perf_counter() - t,
                           "bytes": sum(p.stat().st_blocks * 512 for p in built)}
        secs, _ = _timed(["cp", "--sparse=always", str(image), str(work / "copy.vhd")])
        out["failover"]["cp_seconds"] = secs
        if shutil.which("rsync"):
            secs, text = _timed(["rsync", "--ignore-times", "--inplace", "--no-whole-file", "--stats", str(image), str(replica)])
            m = re.search(r"Total bytes sent: ([\d,.]+)", text)
            out["delta"]["rsync_seconds"] = secs
            out["delta"]["rsync_sent_bytes"] = int(re.sub(r"[,.]", "", m[1])) if m else None
        out["resync"] = _bench_resync(lab, work, image, size, allocated, change_pct, seed)
    finally:
        lab.close()
    return out
