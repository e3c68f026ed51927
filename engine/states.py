"""The states things move through, and the moves that are legal. The only place state names live.

Values are the words users see (and what vault.db stores), so a StrEnum compares equal to the
stored string. An item moves only through `move()`, which refuses a move the table does not
list: a bug that would put an item in an impossible state fails loudly instead.
"""

from __future__ import annotations

from enum import StrEnum


class Protection(StrEnum):
    """A protected item's protection state (seed 004's protected-items list)."""

    NOT_PROTECTED = "not protected"  # no item row
    ENABLING = "enabling protection"
    INITIAL_PENDING = "initial replication pending"
    INITIAL = "initial replication in progress"
    FINALIZING = "finalizing protection"
    PROTECTED = "protected"
    DISABLING = "disabling protection"


class Failover(StrEnum):
    """An item's failover state; empty until it is protected."""

    NONE = ""
    READY = "Ready"


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


P = Protection
# (from, to) -> the failover state the item has after the move (None: unchanged)
TRANSITIONS: dict[tuple[Protection, Protection], Failover | None] = {
    (P.NOT_PROTECTED, P.ENABLING): Failover.NONE,
    (P.ENABLING, P.INITIAL_PENDING): None,
    (P.INITIAL_PENDING, P.INITIAL): None,
    (P.INITIAL, P.FINALIZING): None,
    (P.FINALIZING, P.PROTECTED): Failover.READY,
    **{(s, P.DISABLING): None for s in (P.INITIAL_PENDING, P.INITIAL, P.FINALIZING, P.PROTECTED)},
    (P.DISABLING, P.NOT_PROTECTED): None,
    (P.ENABLING, P.NOT_PROTECTED): None,  # the Enable protection job failed: nothing stays
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
    return next(db.query("SELECT * FROM items WHERE vm=?", [vm]), None)


def items(db, *states: Protection) -> list[dict]:
    """Items in any of `states` (all items when none is given), oldest first."""
    q = "SELECT * FROM items"
    if states:
        q += f" WHERE state IN ({','.join('?' * len(states))})"
    return list(db.query(q + " ORDER BY enabled_at, vm", [s.value for s in states]))


def current(db, vm: str) -> Protection:
    row = db.execute("SELECT state FROM items WHERE vm=?", [vm]).fetchone()
    return Protection(row[0]) if row else Protection.NOT_PROTECTED


def move(db, vm: str, to: Protection, **columns) -> None:
    """Move an item to `to` (and set other item columns with it), or raise IllegalMove.
    Moving to NOT_PROTECTED deletes the item row; creating one is `enter()`."""
    failover = check_move(current(db, vm), to)
    if to == Protection.NOT_PROTECTED:
        db.execute("DELETE FROM items WHERE vm=?", [vm])
        return
    columns["state"] = to.value
    if failover is not None:
        columns["failover_state"] = failover.value
    sets = ", ".join(f"{k}=?" for k in columns)
    db.execute(f"UPDATE items SET {sets} WHERE vm=?", [*columns.values(), vm])


def enter(db, item: dict) -> None:
    """Create a protected item: the move from NOT_PROTECTED to ENABLING."""
    check_move(current(db, item["vm"]), Protection.ENABLING)
    db["items"].insert({**item, "state": Protection.ENABLING.value, "failover_state": Failover.NONE.value})
