"""Faults in the app (key 7): inject and clear each kind through the keyboard, and see what the
engine does about it: the item's health with its reason, the recommended action and the retries,
the events with their codes; resync as an action with live progress; refusals in the engine's
words; an observer offers nothing that changes the lab. The lab clock stays paused: lab time
moves only with t / T, so nothing here depends on the wall clock."""

from __future__ import annotations

import pytest
from textual.screen import ModalScreen

from engine import JobState, Lab, Protection
from tui.dialogs import ConfirmDialog, FaultDialog, VmDetailScreen, WorkloadDialog

from tests.conftest import SMALL_SITE, shared_folder, step2

from .helpers import filter_to, keys, make_app, settle, type_text


def protect(lab) -> None:
    """The small site after STEP 2, WEB01 protected for an hour."""
    step2(lab, retention_h=1, app_consistent_h=1)
    lab.run_until_done(lab.protect(["WEB01"]))
    lab.run(3600)


def text_of(app, selector: str) -> str:
    return app.screen.query_one(selector).content.plain


def web01(app) -> dict:
    return app.state.vm("WEB01")


async def test_inject_and_clear_link_down_health_and_events_follow(lab):
    protect(lab)
    app = make_app(lab)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await keys(pilot, "7")
        kinds = app.query_one("#fault-kinds")
        assert [k.removeprefix("kind:") for k in kinds.row_keys] == [k["kind"] for k in lab.fault_kinds()]
        assert kinds.get_cell("kind:link-down", "code").plain == "NetworkError"
        assert kinds.get_cell("kind:link-down", "retried").plain == "yes"
        assert kinds.get_cell("kind:vm-missing", "retried").plain == "never"
        await filter_to(pilot, "link-down")
        await keys(pilot, "i")
        dialog = app.screen
        assert isinstance(dialog, FaultDialog) and dialog.kind == "link-down"
        # the target list: everything it can touch first, then the lab's links and their ends
        values = [v for _label, v in dialog.targets]
        assert values[0] == "" and "OnPremise Cloud->Japan East" in values
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, ModalScreen)
        assert [(f["kind"], f["target"]) for f in lab.faults()] == [("link-down", "")]
        table = app.query_one("#faults-table")
        fid = lab.faults()[0]["id"]
        assert table.get_cell(f"fault:{fid}", "target").plain == "everything"
        assert "WEB01" in table.get_cell(f"fault:{fid}", "touches").plain
        # the same kind on everything again: refused in the engine's words
        assert app.state.reason("fault_inject", "link-down:") == lab.allowed("fault_inject", ("link-down",))

        # an hour of outage: retried, Critical past six copy intervals, the reason and what to do
        await keys(pilot, "T")
        v = web01(app)
        assert v["health"] == "Critical" and "NetworkError" in v["health_reason"]
        assert v["retry"] and v["retry"]["failures"] >= 5
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        assert app.query_one("#items").get_cell("vm:WEB01", "health").plain == "Critical"
        detail = text_of(app, "#item-detail")
        assert "Health" in detail and "NetworkError" in detail
        assert "Action" in detail and "fault clear link-down" in detail
        assert f"next attempt {v['retry']['failures'] + 1} at" in detail
        # the dashboard: the cloud's health with the worst item's reason, the fault in effect
        await keys(pilot, "1")
        health = text_of(app, "#dash-health")
        assert "OnPremise Cloud Critical: WEB01" in health
        assert "Fault link-down on everything" in text_of(app, "#dash-alerts")

        # the events: each failed attempt with its code; the selected one's recommended action
        await keys(pilot, "6")
        events = app.query_one("#events-table")
        codes = [events.get_cell(k, "code").plain for k in events.row_keys]
        assert "NetworkError" in codes
        attempt = next(k for k in events.row_keys if "attempt" in events.get_cell(k, "message").plain)
        events.move_cursor(row=events.get_row_index(attempt))
        await settle(pilot)
        assert "Recommended action: restore the network" in text_of(app, "#event-detail")
        # s: only the selected event's subject
        await keys(pilot, "s")
        assert events.filter_text == "WEB01"
        assert all("WEB01" in " ".join(c.plain for c in events.get_row(k)) for k in events.row_keys)
        await keys(pilot, "escape")
        assert events.filter_text == ""

        # clear it from the faults in effect: replication resumes, health OK again
        await keys(pilot, "7", "tab")
        assert app.focused is table
        await keys(pilot, "c")
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "enter")
        assert lab.faults() == []
        assert table.row_keys == ["none"]
        await keys(pilot, "T")
        assert web01(app)["health"] == "OK" and web01(app)["retry"] is None
        assert any("replication resumed" in e["message"] for e in app.state.events)


async def test_unrecoverable_fault_critical_with_reason_then_resync_with_live_progress(lab):
    protect(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "7")
        await filter_to(pilot, "vm-missing")
        await keys(pilot, "i")
        dialog = app.screen
        assert isinstance(dialog, FaultDialog)
        assert [v for _label, v in dialog.targets][:2] == ["WEB01", "IDLE01"]  # a VM kind: no "everything"
        await keys(pilot, "ctrl+s")
        assert [(f["kind"], f["target"]) for f in lab.faults()] == [("vm-missing", "WEB01")]
        await keys(pilot, "t")
        v = web01(app)
        assert v["health"] == "Critical" and v["health_reason"].startswith("VmNotFound")
        assert v["retry"] is None  # unrecoverable: never retried
        # while the cause is there, resync is refused in the engine's words
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        why = lab.allowed("resync", "WEB01")
        assert why and "VmNotFound" in why
        await keys(pilot, "r")
        assert not isinstance(app.screen, ModalScreen) and app.last_refusal == why
        detail = text_of(app, "#item-detail")
        assert "Critical · VmNotFound" in detail and "resync WEB01" in detail
        # the VM's details: the whole reason and the action, wrapped
        await keys(pilot, "enter")
        assert isinstance(app.screen, VmDetailScreen)
        health = text_of(app, "#vm-health")
        assert health.startswith("Critical · VmNotFound") and "\nAction " in health
        await keys(pilot, "escape")

        # clear the cause (c on the kind clears its faults), then resync: a job, live progress
        await keys(pilot, "7")
        await filter_to(pilot, "vm-missing")
        await keys(pilot, "c", "enter")
        assert lab.faults() == []
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        assert app.state.reason("resync", "WEB01") is None
        await keys(pilot, "r")
        assert isinstance(app.screen, ConfirmDialog) and app.screen.title_text == "Resynchronize"
        await keys(pilot, "enter")
        job = next(j for j in app.state.jobs if "Resynchronize" in j["name"])
        assert job["state"] == JobState.IN_PROGRESS
        seen = []
        for _ in range(40):  # lab time in steps of 2 seconds (ctrl+r): the percentage moves
            v = web01(app)
            if not v["protection"].startswith(Protection.RESYNC):
                break
            seen.append(v["progress"])
            assert app.query_one("#items").get_cell("vm:WEB01", "status").plain == f"{v['progress']:>3}% resync"
            await keys(pilot, "ctrl+r")
            await type_text(pilot, "2s")
            await keys(pilot, "enter")
        assert seen == sorted(seen) and any(0 < p < 100 for p in seen), seen
        assert web01(app)["protection"] == Protection.PROTECTED and web01(app)["health"] == "OK"
        # the job: its steps and its report, on Jobs (it opens on the job the key started)
        await keys(pilot, "4")
        jobs = app.query_one("#jobs")
        assert jobs.selected_job()["id"] == job["id"]
        steps = app.query_one("#steps-table")
        assert [steps.get_cell(k, "name").plain for k in steps.row_keys][0] == "Prerequisites check"
        assert all(steps.get_cell(k, "state").plain == "succeeded" for k in steps.row_keys)
        assert "compared" in text_of(app, "#job-report")


async def test_inject_refused_and_bad_values_say_why(lab):
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "7")
        # nothing replicates yet: there is no change log to damage, in the engine's words
        await filter_to(pilot, "chain-broken")
        await keys(pilot, "i")
        assert not isinstance(app.screen, ModalScreen)
        assert "not replicating" in app.last_refusal
        assert "not replicating" in text_of(app, "#fault-detail")
        # nothing to clear
        await keys(pilot, "C")
        assert app.last_refusal == lab.allowed("fault_clear", (None, None))
        # a duration the engine cannot read: said in the dialog, which stays open
        await keys(pilot, "escape")
        await filter_to(pilot, "link-slow")
        await keys(pilot, "i")
        dialog = app.screen
        assert isinstance(dialog, FaultDialog) and dialog.takes_amount
        await keys(pilot, "tab")
        await type_text(pilot, "soon")
        await keys(pilot, "ctrl+s")
        assert app.screen is dialog and dialog.error is not None and "bad duration 'soon'" in dialog.error.plain
        await keys(pilot, "tab")
        await type_text(pilot, "7")
        dialog.query_one("#duration").value = "3h"
        await keys(pilot, "ctrl+s")
        assert app.screen is dialog and "amount" in dialog.error.plain.lower()
        dialog.query_one("#amount").value = "0.25"
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, ModalScreen)
        (f,) = lab.faults()
        assert (f["kind"], f["amount"], f["until"] - f["since"]) == ("link-slow", 0.25, 3 * 3600)
        assert app.query_one("#faults-table").get_cell(f"fault:{f['id']}", "until").plain != "-"


async def test_workload_rate_from_the_app(lab):
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        await keys(pilot, "w")
        dialog = app.screen
        assert isinstance(dialog, WorkloadDialog) and dialog.rate == 4
        dialog.query_one("#rate").value = "2048"
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, ModalScreen)
        assert app.state.workloads["WEB01"] == 2048
        assert any("workload rate set to 2048" in e["message"] for e in lab.events(5))


async def test_observer_offers_nothing_that_changes_the_lab(lab):
    protect(lab)
    lab.fault_inject("link-down", duration=3 * 3600)
    before = (lab.faults(), [e["id"] for e in lab.events(1000)], lab.now)
    app = make_app(lab, observer=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "7")
        panel = app.query_one("#faults")
        for action in ("inject", "clear", "clear_all"):
            assert "observer" in panel.disabled_reason(action)
        for key in ("i", "c", "C", "tab", "c", "C"):
            await keys(pilot, key)
            assert not isinstance(app.screen, ModalScreen)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        for key in ("r", "w"):
            await keys(pilot, key)
            assert not isinstance(app.screen, ModalScreen)
        assert "observer" in app.last_refusal
        # everything is still visible
        await keys(pilot, "7")
        assert len(app.query_one("#faults-table").row_keys) == 1
    assert (lab.faults(), [e["id"] for e in lab.events(1000)], lab.now) == before


# ---- snapshots: the faults panel, and an item Critical with its reason -----------------------


@pytest.fixture(scope="module")
def fault_lab(tmp_path_factory):
    """The small site after STEP 2, WEB01 protected for two hours; then WEB01 deleted at the
    source (vm-missing: Critical, never retried), and ten minutes later the link cut for three
    hours."""
    with shared_folder(tmp_path_factory, "faults") as d:
        (d / "small.toml").write_text(SMALL_SITE)
        lab = Lab.create(d / "lab", d / "small.toml")
        step2(lab, retention_h=1, app_consistent_h=1)
        lab.run_until_done(lab.protect(["WEB01"]))
        lab.run(2 * 3600)
        lab.fault_inject("vm-missing", "WEB01")
        lab.run(600)
        lab.fault_inject("link-down", duration=3 * 3600)
        lab.run(600)
        yield lab
        lab.close()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_faults_panel_snapshot(snap_compare, fault_lab, size):
    app = make_app(fault_lab)
    assert snap_compare(app, press=["7"], terminal_size=size, run_before=settle)


def test_critical_item_snapshot(snap_compare, fault_lab):
    """Protected items, WEB01 Critical: its reason and the recommended action in the details."""
    app = make_app(fault_lab)
    assert snap_compare(app, press=["2", "slash", *"WEB01", "enter"], terminal_size=(80, 24), run_before=settle)


def test_critical_item_details_snapshot(snap_compare, fault_lab):
    """enter on WEB01: the health box with the whole reason and what to do, wrapped."""
    app = make_app(fault_lab)
    assert snap_compare(app, press=["2", "slash", *"WEB01", "enter", "enter"], terminal_size=(80, 24),
                        run_before=settle)


def test_events_with_codes_snapshot(snap_compare, fault_lab):
    app = make_app(fault_lab)
    assert snap_compare(app, press=["6"], terminal_size=(80, 24), run_before=settle)
