"""Recovery plans in the app, by keyboard: create a plan in the editor, move a VM to another
group, add a manual action, fail the plan over (test, planned, failback) with the plan failover
dialog, complete its manual action with a note and watch the job's progress group by group. The
lab clock is frozen: lab time moves only with `t` / `T`, in the engine thread."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Input, OptionList, Select, SelectionList, Static

from engine import Failover, JobState, Lab
from tui.dialogs import CompleteDialog, ConfirmDialog
from tui.plan_dialogs import PlanActionDialog, PlanCreateDialog, PlanFailoverDialog, PlanVmsDialog

from tests.conftest import SMALL_SITE, shared_folder, step2

from .helpers import keys, make_app, settle, type_text

H = 3600


def build(where) -> Lab:
    """The small site after STEP 2, WEB01 and IDLE01 protected and running for an hour."""
    (where / "small.toml").write_text(SMALL_SITE)
    lab = Lab.create(where / "lab", where / "small.toml")
    step2(lab, retention_h=1, app_consistent_h=1)
    lab.run_until_done(lab.protect(["WEB01", "IDLE01"]))
    lab.vm_power("IDLE01", "start")
    lab.run(H)
    return lab


def with_plan(lab: Lab) -> Lab:
    """Plan App: IDLE01 (the "database") in group 1, a manual action after it, WEB01 in group 2."""
    lab.plan_create("App", "OnPremise Cloud", "Japan East", ["WEB01", "IDLE01"], rto_target=30 * 60)
    lab.plan_add_group("App")
    lab.plan_move("App", "WEB01", 2)
    lab.plan_add_action("App", 1, "after", manual="Check the database is consistent")
    return lab


@pytest.fixture
def protected_lab(tmp_path):
    lab = build(tmp_path)
    yield lab
    lab.close()


@pytest.fixture
def plan_lab(tmp_path):
    lab = with_plan(build(tmp_path))
    yield lab
    lab.close()


def progress(app) -> str:
    return app.query_one("#plan-progress", Static).content.plain


def plan_job(lab: Lab) -> dict:
    return next(j for j in lab.jobs() if j["kind"].startswith("plan_"))


async def test_create_a_plan_edit_it_and_run_its_test_failover_by_keys(protected_lab):
    lab = protected_lab
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "5")
        assert "No recovery plans yet" in progress(app)

        # n: a new plan from the protected VMs of the cloud (all chosen, all in group 1)
        await keys(pilot, "n")
        dialog = app.screen
        assert isinstance(dialog, PlanCreateDialog)
        assert app.focused is dialog.query_one("#plan-name", Input)
        assert set(dialog.query_one("#vms", SelectionList).selected) == {"WEB01", "IDLE01"}
        await type_text(pilot, "App")
        await keys(pilot, "tab", "tab", "tab")
        assert app.focused is dialog.query_one("#rto", Input)
        await type_text(pilot, "30m")
        await keys(pilot, "enter")
        assert not isinstance(app.screen, PlanCreateDialog)
        plan = lab.plan("App")
        assert (plan["source"], plan["target"], plan["rto_target"]) == ("OnPremise Cloud", "Japan East", 1800)
        assert [g["vms"] for g in plan["groups"]] == [["IDLE01", "WEB01"]]

        # the editor has the focus: group 1 and its VMs
        panel = app.query_one("#plans")
        groups = panel.groups_table
        assert app.focused is groups
        assert groups.row_keys == ["group:1", "vm:IDLE01", "vm:WEB01"]

        # shift+down on WEB01: it moves to a new group 2 (failed over after group 1)
        await keys(pilot, "down", "down")
        assert groups.cursor_key == "vm:WEB01"
        await keys(pilot, "shift+down")
        assert [g["vms"] for g in lab.plan("App")["groups"]] == [["IDLE01"], ["WEB01"]]
        assert groups.row_keys == ["group:1", "vm:IDLE01", "group:2", "vm:WEB01"]
        assert groups.cursor_key == "vm:WEB01"  # the cursor stays on the VM it moved

        # m on IDLE01: a manual action after group 1
        await keys(pilot, "up", "up")
        assert groups.cursor_key == "vm:IDLE01"
        await keys(pilot, "m")
        dialog = app.screen
        assert isinstance(dialog, PlanActionDialog)
        assert dialog.query_one("#group", Select).value == 1 and dialog.query_one("#phase", Select).value == "after"
        await type_text(pilot, "Check the database is consistent")
        await keys(pilot, "enter")
        assert lab.plan("App")["groups"][0]["after"] == [
            {"id": 1, "kind": "manual", "text": "Check the database is consistent"}]
        assert "action:1" in groups.row_keys

        # f: the plan's test failover dialog: direction, kinds, the order, the dry run's RTO
        await keys(pilot, "f")
        dialog = app.screen
        assert isinstance(dialog, PlanFailoverDialog) and dialog.kind == "test"
        direction = dialog.query_one("#direction", Static).content.plain
        assert "OnPremise Cloud → Microsoft Azure (Japan East)" in direction
        order = dialog.query_one("#order", Static).content.plain
        assert "1: IDLE01, manual action → 2: WEB01" in order
        check = lab.plan_check("App", "test")
        estimate = dialog.query_one("#estimate", Static).content.plain
        assert f"RTO about {check['rto_seconds'] // 60}m" in estimate and "target 30m" in estimate
        assert dialog.query_one("#point-row").display and not dialog.query_one("#shutdown-row").display
        assert app.focused is dialog.query_one("#ok", Button)
        await keys(pilot, "enter")
        job = plan_job(lab)
        assert job["kind"] == "plan_failover" and job["target"] == "App"

        # the job runs group 1, then waits at the manual action; the progress pane says so
        await keys(pilot, "t")
        assert lab.job(job["id"])["state"] == JobState.WAITING
        text = progress(app)
        assert text.startswith(JobState.WAITING.value) and "a: complete" in text
        assert "✓ Group 1 · ready, RTO" in text
        assert "⏸ manual: Check the database is consistent" in text
        assert "· Group 2" in text and "· WEB01" in text  # group 2 has not started
        assert panel.plans_table.get_row("plan:App")[-1].plain == f"test: {JobState.WAITING.value}"

        # a: complete the manual action with a note; group 2 runs, then the job waits for Complete test
        await keys(pilot, "a")
        assert isinstance(app.screen, CompleteDialog)
        assert app.screen.step == "Group 1 manual action: Check the database is consistent"
        await type_text(pilot, "DBCC CHECKDB clean")
        await keys(pilot, "enter", "t")
        text = progress(app)
        assert "✓ manual: Check the database is consistent" in text and "✓ Group 2 · ready, RTO" in text
        assert "⏸ Complete test" in text
        assert "⏸ WEB01 · Complete test" in text  # each VM's own job, and the step it is at
        await keys(pilot, "a")
        assert app.screen.step == "Complete test"
        await type_text(pilot, "app answers")
        await keys(pilot, "enter", "t")
        done = lab.job(job["id"])
        assert done["state"] == JobState.SUCCEEDED
        assert [a["note"] for a in done["report"]["manual_actions"]] == ["DBCC CHECKDB clean"]
        text = progress(app)
        assert text.startswith(JobState.SUCCEEDED.value) and "✓ Clean up the test VMs" in text
        assert f"RTO {done['report']['rto_seconds'] // 60}m" in text and "target 30m 00s: within" in text
        for vm in ("WEB01", "IDLE01"):
            assert next(v for v in lab.status()["vms"] if v["name"] == vm)["failover_state"] == Failover.READY


async def test_planned_failover_commit_failback_and_reprotect_of_a_plan(plan_lab):
    lab = plan_lab
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "5")

        # F: planned failover: no point to choose; shut down in reverse order, then group by group
        await keys(pilot, "F")
        dialog = app.screen
        assert isinstance(dialog, PlanFailoverDialog) and dialog.kind == "planned" and not dialog.back
        assert not dialog.query_one("#point-row").display and dialog.query_one("#point-note").display
        await keys(pilot, "enter", "t")
        job = plan_job(lab)
        assert "✓ Shut down, reverse order: 2, 1" in progress(app)
        await keys(pilot, "a")
        await type_text(pilot, "ok")
        await keys(pilot, "enter", "t")
        assert lab.job(job["id"])["state"] == JobState.SUCCEEDED
        states = {v["name"]: v for v in lab.status()["vms"]}
        assert {states[v]["failover_state"] for v in ("WEB01", "IDLE01")} == {Failover.COMMIT_PENDING}
        assert all(g["vms"][vm]["transactions_lost"] == 0 for g in lab.job(job["id"])["report"]["groups"].values()
                   for vm in g["vms"])

        # C: commit the plan (a confirmation), then F is its failback, with the sync option
        await keys(pilot, "C")
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "enter", "t")
        assert plan_job(lab)["kind"] == "plan_commit" and plan_job(lab)["state"] == JobState.SUCCEEDED
        await keys(pilot, "F")
        dialog = app.screen
        assert isinstance(dialog, PlanFailoverDialog) and dialog.back and dialog.kind == "planned"
        direction = dialog.query_one("#direction", Static).content.plain
        assert "Microsoft Azure (Japan East) → OnPremise Cloud" in direction
        kinds = dialog.query_one("#kinds", OptionList)
        for kind in ("test", "unplanned"):  # greyed, with the rules table's reason
            assert kinds.get_option(kind).disabled
            assert lab.allowed(f"plan_{kind}", "App") in kinds.get_option(kind).prompt.plain
        assert dialog.query_one("#sync-row").display and not dialog.query_one("#point-row").display
        dialog.query_one("#sync", Select).value = "during"
        await keys(pilot, "ctrl+s")
        back = plan_job(lab)
        assert back["id"] != job["id"]
        await keys(pilot, "t")
        await keys(pilot, "a")
        await type_text(pilot, "back home")
        await keys(pilot, "enter", "t")
        assert lab.job(back["id"])["state"] == JobState.SUCCEEDED
        assert "failback: " + JobState.SUCCEEDED.value == panel_last(app)

        # C, then R: reverse replication of every VM of the plan
        await keys(pilot, "C", "enter", "t")
        states = {v["name"]: v for v in lab.status()["vms"]}
        assert {states[v]["failover_state"] for v in ("WEB01", "IDLE01")} == {Failover.REVERSE_PENDING}
        await keys(pilot, "R")
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "enter", "t")
        assert plan_job(lab)["kind"] == "plan_reprotect" and plan_job(lab)["state"] == JobState.SUCCEEDED


def panel_last(app) -> str:
    return app.query_one("#plans").plans_table.get_row("plan:App")[-1].plain


async def test_plan_keys_are_greyed_with_the_engines_reason(plan_lab):
    lab = plan_lab
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "5")
        keybar = app.query_one("#keybar")
        assert ("f", "Test", True) in keybar.groups() and ("C", "Commit", False) in keybar.groups()

        # C now: the engine's reason, nothing opens, nothing starts
        reason = lab.allowed("plan_commit", "App")
        assert reason and "commit" in reason
        await keys(pilot, "C")
        assert not isinstance(app.screen, ConfirmDialog)
        assert app.last_refusal == reason and not any(j["kind"].startswith("plan_") for j in lab.jobs())

        # the palette lists the plan's actions, and why not now
        palette = {t: h for t, h, _ in app.palette_commands()}
        assert palette["Plan commit"].endswith("not now: " + reason)
        for title in ("New recovery plan", "Plan test failover", "Plan planned failover / failback",
                      "Plan unplanned failover", "Add VMs to plan", "Add group to plan", "Add manual action / script",
                      "Move VM to the next group", "Complete plan's manual action / test", "Delete recovery plan"):
            assert title in palette

        # moving a VM works in the editor only; group 1 has no group before it
        await keys(pilot, "shift+up")
        assert "put the cursor on a VM" in app.last_refusal
        await keys(pilot, "enter", "down")
        assert app.query_one("#plans").groups_table.cursor_key == "vm:IDLE01"
        await keys(pilot, "shift+up")
        assert app.last_refusal == "IDLE01 is in group 1, the first"
        assert [g["vms"] for g in lab.plan("App")["groups"]] == [["IDLE01"], ["WEB01"]]

        # v: no VM of the cloud is left to add; x takes a VM out, v puts it back (into group 2)
        await keys(pilot, "v")
        assert "is in the plan" in app.last_refusal
        await keys(pilot, "x")
        assert [g["vms"] for g in lab.plan("App")["groups"]] == [[], ["WEB01"]]
        await keys(pilot, "x")  # the cursor is on a group row now: nothing to remove
        assert lab.plan("App")["groups"][1]["vms"] == ["WEB01"]
        await keys(pilot, "v")
        dialog = app.screen
        assert isinstance(dialog, PlanVmsDialog)
        assert [o.value for o in dialog.query_one("#vms", SelectionList).options] == ["IDLE01"]
        await keys(pilot, "space")
        dialog.query_one("#group", Select).value = 2
        await keys(pilot, "ctrl+s")
        assert [g["vms"] for g in lab.plan("App")["groups"]] == [[], ["IDLE01", "WEB01"]]

        # N adds a group; ctrl+d deletes the plan after a confirmation (its VMs stay protected)
        await keys(pilot, "escape", "N")
        assert len(lab.plan("App")["groups"]) == 3
        await keys(pilot, "ctrl+d")
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "ctrl+s")
        assert lab.plans() == []
        assert "No recovery plans yet" in progress(app)


async def test_a_failing_script_stops_the_job_and_r_resumes_it_after_the_fix(tmp_path):
    lab = build(tmp_path)
    try:
        lab.plan_create("App", "OnPremise Cloud", "Japan East", ["WEB01", "IDLE01"])
        script = tmp_path / "dns.sh"
        script.write_text("#!/bin/sh\necho 'DNS zone not found'\nexit 3\n")
        script.chmod(0o755)
        lab.plan_add_action("App", 1, "after", script=str(script))
        app = make_app(lab)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await keys(pilot, "5", "U")
            dialog = app.screen
            assert isinstance(dialog, PlanFailoverDialog) and dialog.kind == "unplanned"
            assert dialog.query_one("#shutdown-row").display
            dialog.query_one("#point", Select).value = "latest-app"
            await keys(pilot, "ctrl+s", "t")
            job = plan_job(lab)
            assert job["state"] == JobState.FAILED
            text = progress(app)
            assert "✗ script: dns.sh" in text and "DNS zone not found" in text and "r resumes" in text
            script.write_text("#!/bin/sh\necho 'DNS updated'\n")
            await keys(pilot, "r")
            assert isinstance(app.screen, ConfirmDialog)
            await keys(pilot, "enter", "t")
            done = lab.job(job["id"])
            assert done["state"] == JobState.SUCCEEDED
            assert done["report"]["scripts"][-1]["exit"] == 0
            assert all(v["point_kind"] == "app-consistent" for g in done["report"]["groups"].values()
                       for v in g["vms"].values())
    finally:
        lab.close()


# ---- snapshots (80x24; update after a deliberate change: pytest tests/tui/test_plans.py --snapshot-update) ----


@pytest.fixture(scope="module")
def drill_lab(tmp_path_factory):
    """Plan App with its test failover waiting at the manual action after group 1."""
    with shared_folder(tmp_path_factory, "drill") as d:
        lab = with_plan(build(d))
        lab.plan_start("App", "test")
        lab.run(15 * 60)
        yield lab
        lab.close()


@pytest.fixture(scope="module")
def ready_lab(tmp_path_factory):
    """Plan App, its VMs Ready: every failover kind is offered."""
    with shared_folder(tmp_path_factory, "ready") as d:
        lab = with_plan(build(d))
        yield lab
        lab.close()


def test_plans_panel_snapshot(snap_compare, drill_lab):
    """The plan, its groups with their VMs and manual action, and its test failover's progress:
    group 1 ready, waiting for the manual action."""
    assert snap_compare(make_app(drill_lab), press=["5"], terminal_size=(80, 24), run_before=settle)


def test_plan_failover_dialog_snapshot(snap_compare, ready_lab):
    """U on the plan: direction, kinds, the groups' order, the dry run's RTO, the recovery point
    (latest, latest processed, latest app-consistent) and the shutdown-and-sync option."""
    assert snap_compare(make_app(ready_lab), press=["5", "U"], terminal_size=(80, 24), run_before=settle)


async def test_groups_reorder_and_an_empty_one_goes_by_keys(plan_lab):
    lab = plan_lab
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "5", "enter")  # into the editor, on group 1
        await keys(pilot, "right_square_bracket")  # group 1 (IDLE01 and its action) fails over later
        await settle(pilot)
        groups = lab.plan("App")["groups"]
        assert [g["vms"] for g in groups] == [["WEB01"], ["IDLE01"]]
        assert groups[1]["after"][0]["text"] == "Check the database is consistent"
        await keys(pilot, "N")  # an empty group 3, then remove it again
        await settle(pilot)
        assert len(lab.plan("App")["groups"]) == 3
        await keys(pilot, "end", "X")
        await settle(pilot)
        assert len(lab.plan("App")["groups"]) == 2
