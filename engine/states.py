"""The states things move through, and the moves that are legal. The only place state names live.

Values are the words users see (and what vault.db stores), so a StrEnum compares equal to the
stored string. An item moves only through `move()`, which refuses a move the table does not
list: a bug that would put an item in an impossible state fails loudly instead.
"""

from __future__ import annotations

from enum import StrEnum

from . import store


class Protection(StrEnum):
    """A protected item's protection state (seed 004's protected-items list)."""

    NOT_PROTECTED = "not protected"  # no item row
    ENABLING = "enabling protection"
    INITIAL_PENDING = "initial replication pending"
    INITIAL = "initial replication in progress"
    FINALIZING = "finalizing protection"
    PROTECTED = "protected"
    RESYNC = "resynchronization in progress"  # delta cycles stop; the disks are compared by checksum
    FAILED_OVER = "failed over"  # replication primary -> recovery has stopped: the item is in its failover life
    REVERSE = "reverse replication"  # VMM -> VMM: the recovered VM replicates back to the primary cloud
    DISABLING = "disabling protection"


class Failover(StrEnum):
    """An item's failover state; empty until it is protected."""

    NONE = ""
    READY = "Ready"
    TEST = "Test failover in progress"
    FAILOVER = "Failover in progress"
    COMMIT_PENDING = "Commit pending"
    COMMITTED = "Failover committed"
    FAILBACK = "Failback in progress"
    REVERSE_PENDING = "Reverse replication pending"


class JobState(StrEnum):
    IN_PROGRESS = "in progress"
    WAITING = "waiting for action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepState(StrEnum):
    NOT_STARTED = "not started"
    IN_PROGRESS = "in progress"
    WAITING = "waiting for action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


P, F = Protection, Failover
# (from, to) -> the failover state the item has after the move (None: unchanged)
TRANSITIONS: dict[tuple[Protection, Protection], Failover | None] = {
    (P.NOT_PROTECTED, P.ENABLING): Failover.NONE,
    (P.ENABLING, P.INITIAL_PENDING): None,
    (P.INITIAL_PENDING, P.INITIAL): None,
    (P.INITIAL, P.FINALIZING): None,
    (P.FINALIZING, P.PROTECTED): Failover.READY,
    **{(s, P.DISABLING): None for s in (P.INITIAL_PENDING, P.INITIAL, P.FINALIZING, P.PROTECTED,
                                         P.RESYNC, P.FAILED_OVER, P.REVERSE)},
    (P.DISABLING, P.NOT_PROTECTED): None,
    (P.ENABLING, P.NOT_PROTECTED): None,  # the Enable protection job failed: nothing stays
    (P.PROTECTED, P.FAILED_OVER): None,  # a planned or unplanned failover starts
    (P.PROTECTED, P.RESYNC): None,  # a resynchronization starts (by hand, or at the off-hours time)
    (P.RESYNC, P.PROTECTED): None,  # ... its new point arrived (or it failed): delta replication again
    (P.RESYNC, P.FAILED_OVER): None,  # a disaster during a resync: unplanned failover from a retained point
    (P.FAILED_OVER, P.PROTECTED): F.READY,  # ... and failed before the source was touched
    (P.FAILED_OVER, P.REVERSE): F.READY,  # VMM -> VMM: reverse replicate; ready to fail back
    (P.REVERSE, P.FAILED_OVER): None,  # the planned failover back starts
    (P.FAILED_OVER, P.INITIAL_PENDING): F.NONE,  # reprotect after failback: initial replication again
    # Azure -> Azure reprotect: the other way, seeded from the disks there, sending what differs
    (P.FAILED_OVER, P.RESYNC): F.READY,
}

# The failover state's own moves (seed 004 §3.3-3.6); a move to the same state is always allowed.
FAILOVER_MOVES: set[tuple[Failover, Failover]] = {
    (F.READY, F.TEST), (F.TEST, F.READY),
    (F.READY, F.FAILOVER), (F.FAILOVER, F.READY), (F.FAILOVER, F.COMMIT_PENDING),
    (F.COMMIT_PENDING, F.COMMITTED),
    (F.COMMITTED, F.FAILBACK), (F.READY, F.FAILBACK),  # from Azure / from the reverse-replicated cloud
    (F.FAILBACK, F.COMMITTED), (F.FAILBACK, F.READY), (F.FAILBACK, F.COMMIT_PENDING),
    (F.COMMIT_PENDING, F.REVERSE_PENDING),
    (F.COMMITTED, F.READY), (F.REVERSE_PENDING, F.NONE),
}


class IllegalMove(AssertionError):
    """A move the transitions table does not allow: an engine bug, never a user's mistake."""


def check_move(current: str, to: Protection) -> Failover | None:
    try:
        return TRANSITIONS[(Protection(current), to)]
    except KeyError:
        raise IllegalMove(f"an item cannot go from {current!r} to {to.value!r}") from None


def item(db, vm: str) -> dict | None:
    """A protected item's row, or None when the VM is not protected."""
    return store.row(db, "SELECT * FROM items WHERE vm=?", [vm])


def items(db, *states: Protection) -> list[dict]:
    """Items in any of `states` (all items when none is given), oldest first."""
    q = "SELECT * FROM items"
    if states:
        q += f" WHERE state IN ({','.join('?' * len(states))})"
    return store.rows(db, q + " ORDER BY enabled_at, vm", [s.value for s in states])


def current(db, vm: str) -> Protection:
    row = db.execute("SELECT state FROM items WHERE vm=?", [vm]).fetchone()
    return Protection(row[0]) if row else Protection.NOT_PROTECTED


def check_failover_move(current: str, to: Failover) -> None:
    if Failover(current) != to and (Failover(current), to) not in FAILOVER_MOVES:
        raise IllegalMove(f"an item cannot go from failover state {current!r} to {to.value!r}")


def move(db, vm: str, to: Protection | None = None, failover: Failover | None = None, **columns) -> None:
    """Move an item to protection state `to` and/or failover state `failover` (and set other
    item columns with it), or raise IllegalMove. Moving to NOT_PROTECTED deletes the item row;
    creating one is `enter()`."""
    implied = None
    if to is not None:
        implied = check_move(current(db, vm), to)
        if to == Protection.NOT_PROTECTED:
            db.execute("DELETE FROM items WHERE vm=?", [vm])
            return
        columns["state"] = to.value
    if failover is None:
        failover = implied
    elif failover != implied:
        check_failover_move(db.execute("SELECT failover_state FROM items WHERE vm=?", [vm]).fetchone()[0], failover)
    if failover is not None:
        columns["failover_state"] = failover.value
    sets = ", ".join(f"{k}=?" for k in columns)
    db.execute(f"UPDATE items SET {sets} WHERE vm=?", [*columns.values(), vm])


def enter(db, item: dict) -> None:
    """Create a protected item: the move from NOT_PROTECTED to ENABLING."""
    check_move(current(db, item["vm"]), Protection.ENABLING)
    db["items"].insert({**item, "state": Protection.ENABLING.value, "failover_state": Failover.NONE.value})
