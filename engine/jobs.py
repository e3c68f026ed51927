"""Durable jobs: named steps in SQLite, advanced by lab time.

A job kind is declared once, in the module of its family (setup, protection, ...), with
`define()`: its name, its steps in order, each step's lab-time duration (or None: it waits for a
user's action, e.g. Complete test) and the action the step runs when it ends, and what happens
when the job fails. This module runs whatever is registered and knows no kind by name.

An action that raises a LabError fails the step and the job with the error's message; what the
step did is rolled back. Step names follow the seeds where they give them (Enable protection,
004 L801). A job may have a parent (a recovery plan's job waits on its children).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from . import store
from .errors import LabError
from .states import JobState, StepState


@dataclass(frozen=True)
class Run:
    """What a step's action gets: the job, and the lab time at which the step ends."""

    id: int
    kind: str
    target: str
    data: dict
    t: int


Action = Callable[["object", Run], None]  # (lab, run)


def nothing(lab, run: Run) -> None:
    """A step whose passing time is all it does (a provider round-trip, a wait)."""


@dataclass(frozen=True)
class Step:
    name: str
    seconds: int | None  # None: waits for a user's action
    action: Action = nothing


@dataclass(frozen=True)
class Kind:
    kind: str
    name: str  # shown to users: "WEB01 (Enable protection)"
    steps: list[Step] | Callable[[dict], list[Step]]  # or made from the job's data (a recovery plan's groups)
    on_fail: Action | None = None  # (lab, run) after the failed step was rolled back; run.data has "error"

    def steps_for(self, data: dict) -> list[Step]:
        return self.steps(data) if callable(self.steps) else self.steps


KINDS: dict[str, Kind] = {}


# A step's `seconds` for "waits until its child jobs have run" (none in progress any more).
CHILDREN = -1
# A step's `seconds` for "ends when the engine's work for it is done": the family's work, done
# over lab time, says so with work_done() (a resync's compare ends with its last chunk).
WORK = -2


def define(kind: str, name: str, steps, on_fail: Action | None = None) -> Kind:
    k = Kind(kind, name, steps, on_fail)
    KINDS[kind] = k
    return k


def create(db, now: int, kind: str, target: str, data: dict | None = None, parent: int | None = None) -> int:
    k = KINDS[kind]
    with store.transaction(db):
        job_id = db["jobs"].insert({
            "kind": kind, "name": f"{target} ({k.name})", "target": target, "state": JobState.IN_PROGRESS.value,
            "started": now, "ended": None, "error": "", "step": 0, "data": json.dumps(data or {}),
            "parent": parent,
        }).last_pk
        for i, step in enumerate(k.steps_for(data or {})):
            db["job_steps"].insert({
                "job": job_id, "idx": i, "name": step.name, "seconds": step.seconds,
                "state": StepState.NOT_STARTED.value, "started": None, "ended": None,
            })
        _start_step(db, job_id, 0, now)
    return job_id


def _start_step(db, job_id: int, idx: int, now: int) -> None:
    """Start a step; a step without a duration waits for a user's action (Complete)."""
    manual = db.execute("SELECT seconds IS NULL FROM job_steps WHERE job=? AND idx=?", [job_id, idx]).fetchone()[0]
    job_state, step_state = (JobState.WAITING, StepState.WAITING) if manual else (JobState.IN_PROGRESS,
                                                                                  StepState.IN_PROGRESS)
    db.execute("UPDATE jobs SET step=?, state=? WHERE id=?", [idx, job_state.value, job_id])
    db.execute("UPDATE job_steps SET state=?, started=? WHERE job=? AND idx=?", [step_state.value, now, job_id, idx])


def running(db, kind: str, target: str) -> bool:
    """Is a job of this kind on this target still going (in progress or waiting)?"""
    return db.execute("SELECT COUNT(*) FROM jobs WHERE kind=? AND target=? AND state IN (?, ?)",
                      [kind, target, JobState.IN_PROGRESS.value, JobState.WAITING.value]).fetchone()[0] > 0


def complete(lab, job_id: int, now: int, note: str = "") -> None:
    """The user completes the step a job waits on (e.g. Complete test); the job carries on.
    The caller has checked that the job waits for action (Lab.allowed('complete_job'))."""
    db = lab.db
    kind, target, data, step = db.execute("SELECT kind, target, data, step FROM jobs WHERE id=?",
                                          [job_id]).fetchone()
    with store.transaction(db):
        run = Run(job_id, kind, target, {**json.loads(data), "note": note}, now)
        KINDS[kind].steps_for(run.data)[step].action(lab, run)
        _finish_step(db, job_id, step, now, StepState.SUCCEEDED)
        _next(db, job_id, kind, step, now)


def _next(db, job_id: int, kind: str, step: int, t: int) -> bool:
    """Start the step after `step`, or end the job; True if the job ended."""
    if db.execute("SELECT COUNT(*) FROM job_steps WHERE job=?", [job_id]).fetchone()[0] > step + 1:
        _start_step(db, job_id, step + 1, t)
        return False
    db.execute("UPDATE jobs SET state=?, ended=? WHERE id=?", [JobState.SUCCEEDED.value, t, job_id])
    return True


def next_due(db) -> int | None:
    row = db.execute(
        "SELECT MIN(s.started + s.seconds) FROM jobs j JOIN job_steps s ON s.job = j.id AND s.idx = j.step "
        "WHERE j.state = ? AND s.seconds >= 0", [JobState.IN_PROGRESS.value]
    ).fetchone()
    return row[0]


def advance(lab, now: int) -> list[int]:
    """Finish every step due by `now`, in time order, and every step whose child jobs have
    run; return ids of jobs that ended."""
    db = lab.db
    ended: list[int] = []
    while True:
        row = db.execute(
            "SELECT j.id, j.kind, j.target, j.data, j.step, s.started + s.seconds AS due FROM jobs j "
            "JOIN job_steps s ON s.job = j.id AND s.idx = j.step "
            "WHERE j.state = ? AND s.seconds >= 0 AND s.started + s.seconds <= ? ORDER BY due, j.id LIMIT 1",
            [JobState.IN_PROGRESS.value, now],
        ).fetchone() or _children_done(db)
        if row is None:
            return ended
        job_id, kind, target, data, step, due = row
        _end_step(lab, Run(job_id, kind, target, json.loads(data), due), step, ended)


def work_done(lab, job_id: int, t: int) -> bool:
    """The work the job's current step (a WORK step) waited for is done at `t`: run the step's
    action and go on, as at any step's end (a LabError fails the job). True if the job ended."""
    row = lab.db.execute(
        "SELECT j.id, j.kind, j.target, j.data, j.step FROM jobs j JOIN job_steps s ON s.job = j.id AND "
        "s.idx = j.step WHERE j.id = ? AND j.state = ? AND s.seconds = ?",
        [job_id, JobState.IN_PROGRESS.value, WORK]).fetchone()
    if row is None:
        return False
    ended: list[int] = []
    _end_step(lab, Run(row[0], row[1], row[2], json.loads(row[3]), t), row[4], ended)
    return bool(ended)


def current_step(db, job_id: int) -> int | None:
    """The index of the step a job is at while it runs; None once it has ended."""
    row = db.execute("SELECT step FROM jobs WHERE id=? AND state IN (?, ?)",
                     [job_id, JobState.IN_PROGRESS.value, JobState.WAITING.value]).fetchone()
    return row[0] if row else None


def _children_done(db):
    """A job whose step waits on child jobs that are no longer in progress (ended, or waiting
    for a user's action), as (id, kind, target, data, step, when the last one got there)."""
    row = db.execute(
        "SELECT j.id, j.kind, j.target, j.data, j.step, s.started FROM jobs j "
        "JOIN job_steps s ON s.job = j.id AND s.idx = j.step WHERE j.state = ? AND s.seconds = ? "
        "AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent = j.id AND c.state = ?) ORDER BY j.id LIMIT 1",
        [JobState.IN_PROGRESS.value, CHILDREN, JobState.IN_PROGRESS.value]).fetchone()
    if row is None:
        return None
    last = db.execute(
        "SELECT MAX(COALESCE(c.ended, cs.started)) FROM jobs c JOIN job_steps cs ON cs.job = c.id AND cs.idx = c.step "
        "WHERE c.parent = ?", [row[0]]).fetchone()[0]
    return (*row[:5], max(row[5], last or row[5]))


def _end_step(lab, run: Run, step: int, ended: list[int]) -> None:
    """Run the step's action at its end; a LabError fails the step and the job, rolled back."""
    db, k = lab.db, KINDS[run.kind]
    with store.transaction(db):
        db.execute("SAVEPOINT step")
        try:
            k.steps_for(run.data)[step].action(lab, run)
            db.execute("RELEASE step")
        except LabError as e:
            db.execute("ROLLBACK TO step")
            db.execute("RELEASE step")
            _finish_step(db, run.id, step, run.t, StepState.FAILED)
            db.execute("UPDATE jobs SET state=?, ended=?, error=? WHERE id=?",
                       [JobState.FAILED.value, run.t, str(e), run.id])
            lab.event(run.t, "error", run.target, f"job failed: {e.message}")
            if k.on_fail:
                k.on_fail(lab, Run(run.id, run.kind, run.target, {**run.data, "error": e.message}, run.t))
            ended.append(run.id)
            return
        _finish_step(db, run.id, step, run.t, StepState.SUCCEEDED)
        if _next(db, run.id, run.kind, step, run.t):
            ended.append(run.id)


def resume(lab, job_id: int, now: int) -> None:
    """Run a failed job's failed step again (after its cause was fixed: a recovery plan's script)."""
    db = lab.db
    step = db.execute("SELECT step FROM jobs WHERE id=?", [job_id]).fetchone()[0]
    with store.transaction(db):
        db.execute("UPDATE jobs SET state=?, ended=NULL, error='' WHERE id=?", [JobState.IN_PROGRESS.value, job_id])
        _start_step(db, job_id, step, now)


def children(db, job_id: int) -> list[dict]:
    return list(db.query("SELECT * FROM jobs WHERE parent=? ORDER BY id", [job_id]))


def _finish_step(db, job_id, idx, t, state: StepState):
    db.execute("UPDATE job_steps SET state=?, ended=? WHERE job=? AND idx=?", [state.value, t, job_id, idx])


def listing(db, now: int, limit: int = 100) -> list[dict]:
    rows = db.query("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", [max(0, min(limit, 2**62))])
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
    job["children"] = [r[0] for r in db.execute("SELECT id FROM jobs WHERE parent=? ORDER BY id", [job_id])]
    return job


def _public(r: dict, now: int) -> dict:
    return {
        "id": r["id"], "name": r["name"], "kind": r["kind"], "target": r["target"], "state": r["state"],
        "started": r["started"], "ended": r["ended"], "parent": r.get("parent"),
        "duration": (r["ended"] if r["ended"] is not None else now) - r["started"], "error": r["error"],
        "report": json.loads(r["report"]) if r.get("report") else None,
    }
