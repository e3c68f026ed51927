"""The states table: every legal move, and illegal moves refused loudly."""

import pytest

from engine import jobs, protection, resync, setup  # noqa: F401  (importing the families registers their job kinds)
from engine.states import TRANSITIONS, Failover, IllegalMove, Protection, check_move


def test_the_life_of_a_protected_item_is_a_path_through_the_table():
    life = [Protection.NOT_PROTECTED, Protection.ENABLING, Protection.INITIAL_PENDING, Protection.INITIAL,
            Protection.FINALIZING, Protection.PROTECTED, Protection.DISABLING, Protection.NOT_PROTECTED]
    for a, b in zip(life, life[1:]):
        check_move(a, b)
    assert check_move(Protection.FINALIZING, Protection.PROTECTED) == Failover.READY


def test_a_resync_leaves_protected_and_comes_back_or_ends_with_the_item():
    for a, b in [(Protection.PROTECTED, Protection.RESYNC), (Protection.RESYNC, Protection.PROTECTED),
                 (Protection.RESYNC, Protection.DISABLING), (Protection.RESYNC, Protection.FAILED_OVER)]:
        assert check_move(a, b) is None  # the failover state stays as it was (Ready, or a test running)
    with pytest.raises(IllegalMove):
        check_move(Protection.INITIAL, Protection.RESYNC)  # initial replication makes the first replica


@pytest.mark.parametrize("a", list(Protection))
@pytest.mark.parametrize("b", list(Protection))
def test_moves_outside_the_table_are_refused(a, b):
    if (a, b) in TRANSITIONS:
        check_move(a, b)
    else:
        with pytest.raises(IllegalMove):
            check_move(a, b)


def test_every_state_is_reachable_and_every_job_kind_has_named_steps():
    reached = {b for _, b in TRANSITIONS} | {Protection.NOT_PROTECTED}
    assert reached == set(Protection)
    assert {"register_server", "install_agent", "configure_cloud", "enable_protection",
            "finalize_protection", "disable_protection", "resync"} <= set(jobs.KINDS)
    plan = {"kind": "test", "back": False, "groups": [{"group": 1, "vms": ["A"], "before": [], "after": []}]}
    for kind in jobs.KINDS.values():
        steps = kind.steps_for(plan)  # a recovery plan's steps come from its groups
        assert steps and all(s.name and callable(s.action) for s in steps)


def test_a_refused_move_changes_nothing(lab):
    from engine import states

    with pytest.raises(IllegalMove):
        states.move(lab.db, "WEB01", Protection.PROTECTED)  # not protected -> protected skips the way
    assert states.current(lab.db, "WEB01") == Protection.NOT_PROTECTED
