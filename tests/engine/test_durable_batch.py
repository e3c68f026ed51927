"""Durable writes batched per slice (issue 15): a slice's files are fsynced together, in one
round just before its transaction commits, and at every commit nothing a row can claim in the
replica store is left un-synced: no frame of a point, no folder entry, no write into a base."""

import os

import pytest

from engine.replication import changelog
from tests.conftest import step2


def _watch(monkeypatch, lab):
    """Record, at each COMMIT of the vault (before it runs), which store files are not durable:
    written by os.pwrite since their last fsync, or frames / folders never fsynced since the
    watch began (what the store held then was checked by an earlier watch, or is the test's)."""
    real_fsync, real_pwrite = os.fsync, os.pwrite
    storage = str(lab.path / "storage")
    dirty, fsyncs, problems, commits = set(), [], [], [0]
    synced = {str(p) for p in (lab.path / "storage").glob("**/*")} | {storage}

    def where(fd):
        return os.readlink(f"/proc/self/fd/{fd}")

    def fsync(fd):
        path = where(fd)
        dirty.discard(path)
        synced.add(path)
        fsyncs.append(path)
        real_fsync(fd)

    def pwrite(fd, data, offset):
        dirty.add(where(fd))
        return real_pwrite(fd, data, offset)

    def at_commit(sql):
        if sql.strip().upper() != "COMMIT":
            return
        commits[0] += 1
        problems.extend(f"written, not fsynced: {p}" for p in dirty if p.startswith(storage))
        for point in (lab.path / "storage").glob("*/*/points/p*"):
            for p in [*point.iterdir(), point, point.parent]:
                if str(p) not in synced:
                    problems.append(f"never fsynced: {p}")

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "pwrite", pwrite)
    lab.db.conn.set_trace_callback(at_commit)
    return fsyncs, problems, commits


@pytest.mark.parametrize("retention_h", [1, 0])
def test_every_commit_finds_the_store_durable(lab, monkeypatch, retention_h):
    """Initial replication (chunks applied into the bases), delta cycles (points moved into the
    store) and, with retention 0, every VM's expired point folded into its base after each slice:
    at no commit does the store hold a write or a frame that is not durable."""
    step2(lab, retention_h=retention_h, app_consistent_h=0)
    fsyncs, problems, commits = _watch(monkeypatch, lab)
    lab.run_until_done(lab.protect(["WEB01"]))
    lab.run(20 * 60)
    lab.db.conn.set_trace_callback(None)
    assert len(lab.points("WEB01")) == (1 if retention_h == 0 else 4)
    assert commits[0] and fsyncs
    assert not problems, problems[:5]
    assert lab.verify("WEB01")["identical"]


def test_a_point_staged_and_stored_in_one_slice_is_fsynced_once(lab, monkeypatch):
    """Its frames are written at the source side and moved into the store in the same slice:
    one fsync each, in the slice's one round, not one when staged and one when stored."""
    step2(lab, retention_h=1, app_consistent_h=1)
    lab.run_until_done(lab.protect(["WEB01"]))
    lab.run(10 * 60)
    before = {p["id"] for p in lab.points("WEB01")}
    fsyncs, problems, commits = _watch(monkeypatch, lab)
    lab.run(5 * 60)
    lab.db.conn.set_trace_callback(None)
    new = [r for r in lab.replication.point_rows("WEB01") if r["id"] not in before]
    assert new and not problems, problems[:5]
    for r in new:
        for frame in (lab.path / r["dir"]).iterdir():
            assert fsyncs.count(str(frame)) == 1, (frame, fsyncs)


def test_syncs_flush_every_file_and_folder_once_and_skip_what_is_gone(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    syncs = changelog.Syncs()
    for name in ("a/1", "a/2", "b/1"):
        changelog.write_durable(tmp_path / name, b"x", syncs)
    changelog.write_durable(tmp_path / "c/1", b"x", syncs)
    syncs.drop(tmp_path / "c")  # claimed by nothing any more
    (tmp_path / "b/1").unlink()  # removed before the flush
    assert calls == []  # nothing yet: all at the flush
    syncs.flush()
    assert sorted(calls) == sorted(str(tmp_path / p) for p in ("a", "a/1", "a/2", "b"))
    syncs.flush()
    assert len(calls) == 4  # a flush empties the batch


def test_a_batched_fold_never_leaves_an_older_point_claimed_over_a_newer_base(lab):
    """Several points expire into the base at once (retention cut from 1 h to none): all but the
    last are folded and forgotten one by one; only the last waits for the batch. Killed before
    the batch's commit (its rows never forgotten), every point the lab still claims builds disks
    equal to the source's at its instant."""
    from engine.replication.cycle import _Folds

    step2(lab, retention_h=1, app_consistent_h=0)
    lab.run_until_done(lab.protect(["WEB01"]))
    lab.run(30 * 60)
    assert len(lab.points("WEB01")) >= 4
    lab.db.execute("UPDATE protection_settings SET retention_h=0")
    lab.db.conn.commit()
    folds = _Folds()
    lab.replication.apply_retention(lab.replication.item("WEB01"), lab.now, folds)
    assert len(folds.rows) == 1  # the last one folded into the base; the older ones are gone
    folds.syncs.flush()  # the batch's data durable, its commit never made (killed here)
    claimed = lab.replication.point_rows("WEB01")
    assert len(claimed) == 2
    for r in claimed:
        assert lab.verify("WEB01", r["id"])["identical"], r
