"""Real kills (issue 12): `srlab run`, `export` and `verify` are SIGKILLed at chosen points — just
before their N-th durable file operation (tests/crash_child.py), N drawn from a seeded random —
during initial replication, delta cycles and retention folds. After every kill the lab opens,
every recovery point it claims verifies, and no output that looks finished is wrong."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from engine import Lab
from engine.disks import fingerprint
from engine.replication import changelog, replica
from tests.conftest import ROOT, SMALL_SITE, step2

RUN_KILLS, EXPORT_KILLS, VERIFY_KILLS = 22, 6, 5


def child(kill_at: int, *args: str) -> subprocess.CompletedProcess:
    """srlab ARGS in a child process that SIGKILLs itself before its kill_at-th fsync/replace."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tests.crash_child", str(kill_at), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def ops(result: subprocess.CompletedProcess) -> int:
    return int(result.stderr.rsplit("crash_child: ", 1)[1].split()[0])


def points_verify(path, every: bool = False) -> int:
    """Open the lab: every point it claims has its frames, whole (checksums); each VM's latest
    point (every point, with `every`) builds disks equal to the source's at that instant."""
    with Lab.open(path) as lab:
        n = 0
        for vm in ("WEB01", "IDLE01"):
            rows = lab.replication.point_rows(vm)
            key, labels = lab.replication.key_for(vm), lab.replication.labels(vm)
            for r in rows:
                for i, d in enumerate(lab.vm(vm).disks):
                    frame = replica.frame_path(lab.path / r["dir"], i)
                    assert frame is not None, (vm, r)
                    changelog.check(changelog.unseal(frame.read_bytes(), key, labels[i]), d.size_bytes)
            for r in rows if every else rows[-1:]:
                v = lab.verify(vm, r["id"])
                assert v["identical"] and not v["damaged"], (vm, r["id"], v)
                n += 1
        assert all(not v["errors"] for v in lab.status()["vms"])
        return n


@pytest.fixture
def fast_tmp(tmp_path):
    """A folder in memory when the machine has one (/dev/shm): a SIGKILL loses nothing the page
    cache holds, so the kills are as real there, and the many fsyncs cost nothing."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="srlab-crash-", dir=shm))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.heavy
def test_kill_9_at_random_points_leaves_a_lab_that_verifies(fast_tmp, small_site, need_tool):
    lz4 = need_tool("lz4")
    rng = random.Random(12)
    tmp_path = fast_tmp
    path = tmp_path / "lab"
    small_site.write_text(SMALL_SITE.replace("size_gb = 1\n", "size_gb = 0.0625\n").replace("size_gb = 0.5",
                                                                                           "size_gb = 0.03125"))
    with Lab.create(path, small_site) as lab:
        step2(lab, retention_h=1, app_consistent_h=1)
        lab.vm_power("IDLE01", "start")
        lab.run_until_done(lab.protect(["WEB01"]))
        lab.set_link(mbps=2)  # IDLE01's initial replication takes a few minutes of lab time
        lab.protect(["IDLE01"])
    verified = kills = 0
    # `run`: 15 lab minutes each (about 60 fsyncs and renames); over the trials initial
    # replication, delta cycles, app-consistent points and retention folds all happen.
    full = ops(child(0, "--lab", str(path), "run", "--for", "15m"))
    for trial in range(RUN_KILLS):
        if trial == 4:
            with Lab.open(path) as lab:
                lab.set_link(mbps=100)
        r = child(rng.randint(1, full * 2 // 3), "--lab", str(path), "run", "--for", "15m")
        assert r.returncode in (0, -signal.SIGKILL), r.stderr
        kills += r.returncode == -signal.SIGKILL
        assert "Traceback" not in r.stderr
        verified += points_verify(path)
    with Lab.open(path) as lab:
        assert lab.now - lab.replication.point_rows("WEB01")[0]["time"] <= 2 * 3600  # folds happened
        assert lab.protection_state("IDLE01") == "protected"
    # `export`: into a new folder (one rename) and into an existing one (file by file).
    with Lab.open(path) as lab:
        point = lab.replication.point_rows("WEB01")[-1]
        expected = dict(zip(["WEB01.vhd", "WEB01-data.vhd"], json.loads(point["fingerprints"])))
        sizes = dict(zip(expected, [d.size_bytes for d in lab.vm("WEB01").disks]))
    full = ops(child(0, "--lab", str(path), "export", "WEB01", "--point", str(point["id"]), "--out",
                     str(tmp_path / "first")))
    for trial in range(EXPORT_KILLS):
        out = tmp_path / f"exp{trial}"
        if trial % 2:
            out.mkdir()
        r = child(rng.randint(1, full), "--lab", str(path), "export", "WEB01", "--point", str(point["id"]),
                  "--out", str(out))
        kills += r.returncode == -signal.SIGKILL
        for f in out.glob("*.vhd") if out.exists() else []:  # whatever looks finished is right
            assert fingerprint(f, sizes[f.name]) == expected[f.name], (trial, f)
        if not out.exists() or not list(out.glob("*.vhd")):  # a retry works
            assert child(0, "--lab", str(path), "export", "WEB01", "--point", str(point["id"]), "--out",
                         str(out)).returncode == 0
            assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    # `verify`: its scratch folder is removed by the next open.
    for trial in range(VERIFY_KILLS):
        r = child(rng.randint(1, 2), "--lab", str(path), "verify", "WEB01")
        kills += r.returncode == -signal.SIGKILL
        with Lab.open(path) as lab:
            assert not [d for d in (lab.path / ".scratch").glob("verify-*") if d.name != f"verify-{os.getpid()}"]
    assert kills >= 28, kills  # a few trials may end before their kill point
    # The lab carries on as if nothing happened.
    r = child(0, "--lab", str(path), "run", "--for", "30m")
    assert r.returncode == 0, r.stderr
    verified += points_verify(path, every=True)
    frames = [str(p) for p in (path / "storage").glob("*/*/points/*/*.lz4")]
    subprocess.run([lz4, "-t", "-m", *frames], check=True, capture_output=True)
    print(f"crash suite: {kills} SIGKILLs ({RUN_KILLS} run, {EXPORT_KILLS} export, {VERIFY_KILLS} verify trials), "
          f"{verified} recovery points verified")


@pytest.mark.heavy
def test_bench_cleans_up_when_terminated_and_after_a_kill(tmp_path):
    """`srlab bench` works in a temporary folder: a SIGTERM removes it at once; one a SIGKILL
    left behind is removed by the next bench."""
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    os.environ["TMPDIR"], old = str(env_tmp), os.environ.get("TMPDIR")
    try:
        args = ["bench", "--size-mb", "32", "--content-mb", "4"]
        r = child(-3, *args)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr  # Ctrl-C's "Aborted!"
        assert not list(env_tmp.iterdir())
        r = child(3, *args)
        assert r.returncode == -signal.SIGKILL and len(list(env_tmp.glob("srlab-bench-*"))) == 1
        r = child(0, *args)
        assert r.returncode == 0, r.stderr
        assert not list(env_tmp.iterdir())
    finally:
        if old is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = old


@pytest.mark.heavy
def test_kill_9_during_a_fast_initial_replication_leaves_a_replica_that_converges(fast_tmp, small_site):
    """On a fast link a whole initial replication lands in one slice: its windows are sealed
    ahead on one thread and written into the replica base on another, before the slice commits.
    Killed anywhere in it, the lab claims nothing it does not have, and the next run ends the
    copy with a first point equal to the source."""
    rng = random.Random(15)
    site = small_site.read_text().replace("content_mb = 2\n", "content_mb = 40\n", 1)
    small_site.write_text(site.replace("content_mb = 1\n", "content_mb = 24\n", 1))

    def fresh(name: str) -> Path:
        path = fast_tmp / name
        with Lab.create(path, small_site) as lab:
            step2(lab, retention_h=1, app_consistent_h=0)
            lab.protect(["WEB01"])
        return path

    full = ops(child(0, "--lab", str(fresh("probe")), "run", "--for", "10m"))
    kills = 0
    for trial in range(6):
        path = fresh(f"t{trial}")
        r = child(rng.randint(1, full), "--lab", str(path), "run", "--for", "10m")
        assert r.returncode in (0, -signal.SIGKILL) and "Traceback" not in r.stderr, r.stderr
        kills += r.returncode == -signal.SIGKILL
        points_verify(path)  # what it claims after the kill
        assert child(0, "--lab", str(path), "run", "--for", "10m").returncode == 0
        with Lab.open(path) as lab:
            assert lab.protection_state("WEB01") == "protected"
            assert lab.verify("WEB01")["identical"]
        shutil.rmtree(path)
    assert kills >= 4, kills
