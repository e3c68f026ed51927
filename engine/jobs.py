"""Durable jobs: named steps in SQLite, advanced by lab time.

A job's steps run one after another; each takes its lab-time duration and then its action runs
(Lab._perform_step). An action that raises a LabError fails the step and the job, with the
error's message. Step names follow the seeds where they give them (Enable protection, 004 L801).
"""

from __future__ import annotations

import json

from . import store
from .errors import LabError

# kind -> (job name shown to users, [(step name, lab seconds, or None: waits for a user's action)])
JOB_KINDS: dict[str, tuple[str, list[tuple[str, int | None]]]] = {
    "register_server": ("Register server", [
        ("Validate the vault registration key", 20),
        ("Register the server with the vault", 40),
        ("Create the data-encryption key", 10),
        ("Synchronize cloud metadata", 30),
    ]),
    "install_agent": ("Install Recovery Services agent", [
        ("Check prerequisites", 10),
        ("Install the agent", 60),
        ("Connect the agent to the provider", 20),
    ]),
    "configure_cloud": ("Configure protection", [
        ("Validate protection settings", 20),
        ("Configure Hyper-V Replica on the cloud's hosts", 60),
        ("Save the cloud's protection settings", 10),
    ]),
    "enable_protection": ("Enable protection", [
        ("Enable protection operations", 20),
        ("Validating replication target", 30),
        ("Enable replication", 60),
        ("Starting initial replication", 30),
        ("Updating provider state", 20),
    ]),
    "finalize_protection": ("Finalize protection", [
        ("Apply the first delta replication", 20),
        ("Set post-replication settings", 30),
        ("Updating provider state", 10),
    ]),
    "disable_protection": ("Disable protection", [
        ("Stop replication", 20),
        ("Remove the replica and its recovery points", 30),
        ("Updating provider state", 10),
    ]),
}


def create(db, now: int, kind: str, target: str, data: dict | None = None) -> int:
    name, steps = JOB_KINDS[kind]
    with store.transaction(db):
        job_id = db["jobs"].insert({
            "kind": kind, "name": f"{target} ({name})", "target": target, "state": "in progress",
            "started": now, "ended": None, "error": "", "step": 0, "data": json.dumps(data or {}),
        }).last_pk
        for i, (step, seconds) in enumerate(steps):
            db["job_steps"].insert({
                "job": job_id, "idx": i, "name": step, "seconds": seconds, "state": "not started",
                "started": None, "ended": None,
            })
        _start_step(db, job_id, 0, now)
    return job_id


def _start_step(db, job_id: int, idx: int, now: int) -> None:
    """Start a step; a step without a duration waits for a user's action (Complete)."""
    manual = db.execute("SELECT seconds IS NULL FROM job_steps WHERE job=? AND idx=?", [job_id, idx]).fetchone()[0]
    state = "waiting for action" if manual else "in progress"
    db.execute("UPDATE jobs SET step=?, state=? WHERE id=?", [idx, state, job_id])
    db.execute("UPDATE job_steps SET state=?, started=? WHERE job=? AND idx=?", [state, now, job_id, idx])


def complete(db, job_id: int, now: int, perform, note: str = "") -> None:
    """The user completes the step a job waits on (e.g. Complete test); the job carries on.
    The caller has checked that the job waits for action (Lab.allowed('complete_job'))."""
    kind, target, data, step = db.execute("SELECT kind, target, data, step FROM jobs WHERE id=?",
                                          [job_id]).fetchone()
    with store.transaction(db):
        perform(kind, step, target, {**json.loads(data), "note": note}, now, job_id)
        _finish_step(db, job_id, step, now, "succeeded")
        _next(db, job_id, kind, step, now)


def _next(db, job_id: int, kind: str, step: int, t: int) -> bool:
    """Start the step after `step`, or end the job; True if the job ended."""
    if step + 1 < len(JOB_KINDS[kind][1]):
        _start_step(db, job_id, step + 1, t)
        return False
    db.execute("UPDATE jobs SET state='succeeded', ended=? WHERE id=?", [t, job_id])
    return True


def next_due(db) -> int | None:
    row = db.execute(
        "SELECT MIN(s.started + s.seconds) FROM jobs j JOIN job_steps s ON s.job = j.id AND s.idx = j.step "
        "WHERE j.state = 'in progress'"
    ).fetchone()
    return row[0]


def advance(db, now: int, perform, on_fail=None) -> list[int]:
    """Finish every step due by `now`, in time order; return ids of jobs that ended."""
    ended = []
    while True:
        row = db.execute(
            "SELECT j.id, j.kind, j.target, j.data, j.step, s.started + s.seconds AS due FROM jobs j "
            "JOIN job_steps s ON s.job = j.id AND s.idx = j.step "
            "WHERE j.state = 'in progress' AND s.started + s.seconds <= ? ORDER BY due, j.id LIMIT 1",
            [now],
        ).fetchone()
        if row is None:
            return ended
        job_id, kind, target, data, step, due = row
        with store.transaction(db):
            db.execute("SAVEPOINT step")
            try:
                perform(kind, step, target, json.loads(data), due, job_id)
                db.execute("RELEASE step")
            except LabError as e:
                db.execute("ROLLBACK TO step")
                db.execute("RELEASE step")
                _finish_step(db, job_id, step, due, "failed")
                db.execute("UPDATE jobs SET state='failed', ended=?, error=? WHERE id=?", [due, str(e), job_id])
                if on_fail:
                    on_fail(kind, target, due, e.message)
                ended.append(job_id)
                continue
            _finish_step(db, job_id, step, due, "succeeded")
            if _next(db, job_id, kind, step, due):
                ended.append(job_id)


def _finish_step(db, job_id, idx, t, state):
    db.execute("UPDATE job_steps SET state=?, ended=? WHERE job=? AND idx=?", [state, t, job_id, idx])


def fail(db, job_id: int, now: int, error: str) -> None:
    """Fail a running job from outside (e.g. the item it works on went away)."""
    row = db.execute("SELECT step FROM jobs WHERE id=?", [job_id]).fetchone()
    _finish_step(db, job_id, row[0], now, "failed")
    db.execute("UPDATE jobs SET state='failed', ended=?, error=? WHERE id=?", [now, error, job_id])


def listing(db, now: int, limit: int = 100) -> list[dict]:
    rows = db.query("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", [limit])
    return [_public(r, now) for r in rows]


def detail(db, job_id: int, now: int) -> dict | None:
    row = next(db.query("SELECT * FROM jobs WHERE id=?", [job_id]), None)
    if row is None:
        return None
    job = _public(row, now)
    job["steps"] = [
        {"name": s["name"], "state": s["state"], "started": s["started"], "ended": s["ended"],
         "duration": (s["ended"] or now) - s["started"] if s["started"] is not None else None}
        for s in db.query("SELECT * FROM job_steps WHERE job=? ORDER BY idx", [job_id])
    ]
    return job


def _public(r: dict, now: int) -> dict:
    return {
        "id": r["id"], "name": r["name"], "kind": r["kind"], "target": r["target"], "state": r["state"],
        "started": r["started"], "ended": r["ended"],
        "duration": (r["ended"] if r["ended"] is not None else now) - r["started"], "error": r["error"],
    }
