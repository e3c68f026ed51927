"""Failover in the app, by keyboard: every operation is an action on the protected item (a key,
a palette entry, greyed with the rules table's reason when not allowed), the failover dialog
shows the direction, every retained point and the options, a job waiting for action is completed
with a note, and a failover job's report shows on Jobs. The lab clock is frozen: time moves only
with `t`, in the engine worker."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Checkbox, Input, OptionList, Select, Static

from engine import Failover, JobState, Lab, LabError, Protection
from tui.dialogs import ChangePointDialog, CompleteDialog, ConfirmDialog, FailoverDialog, HelpScreen

from tests.conftest import SMALL_SITE, step2

from .helpers import filter_to, keys, make_app, settle, type_text


def build(where, **policy) -> Lab:
    """The small site after STEP 2 with WEB01 and IDLE01 protected for two hours."""
    (where / "small.toml").write_text(SMALL_SITE)
    lab = Lab.create(where / "lab", where / "small.toml")
    step2(lab, retention_h=1, app_consistent_h=1, **policy)
    lab.protect(["WEB01", "IDLE01"])
    lab.run(2 * 3600)
    return lab


@pytest.fixture
def protected_lab(tmp_path):
    lab = build(tmp_path)
    yield lab
    lab.close()


def vm(lab: Lab, name: str) -> dict:
    return next(v for v in lab.status()["vms"] if v["name"] == name)


def newest_job(lab: Lab) -> dict:
    return lab.job(lab.jobs(limit=1)[0]["id"])


async def test_a_failover_life_through_keys(protected_lab):
    """Test failover, complete test with a note, planned failover, change recovery point, commit,
    failback (sync during failover only), commit, reprotect: each by its key."""
    lab = protected_lab
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")

        # f: the test failover dialog, with the direction, the kinds and every retained point
        await keys(pilot, "f")
        dialog = app.screen
        assert isinstance(dialog, FailoverDialog) and dialog.kind == "test"
        direction = dialog.query_one("#direction", Static).content.plain
        assert "OnPremise Cloud → Microsoft Azure (Japan East)" in direction
        table = dialog.query_one("#points")
        points = lab.points("WEB01")
        assert set(table.row_keys) >= {str(p["id"]) for p in points}
        for p in points:
            row = [c.plain for c in table.get_row(str(p["id"]))]
            assert row[2] == p["kind"] and row[3] == str(p["last_transaction"]) and p["time_text"][5:] == row[1]
        assert table.cursor_key == "latest" and app.focused is table
        assert not dialog.query_one("#shutdown-row").display  # options of other kinds stay hidden
        await keys(pilot, "enter")  # enter on the point list confirms, as in every dialog
        assert not isinstance(app.screen, FailoverDialog)
        assert vm(lab, "WEB01")["failover_state"] == Failover.TEST
        test_job = newest_job(lab)
        assert test_job["kind"] == "test_failover"

        # the job comes to wait for Complete test; the VM's details say so, and show the test VM
        await keys(pilot, "t")
        assert lab.job(test_job["id"])["state"] == JobState.WAITING
        detail = app.query_one("#item-detail", Static).content.plain
        assert "Recovered   test VM" in detail and f"job {test_job['id']} waits for action: Complete test" in detail

        # Jobs: the cursor follows the newest job; a completes it with a note
        await keys(pilot, "4")
        jobs = app.query_one("#jobs")
        assert jobs.selected_job()["id"] == test_job["id"]
        await keys(pilot, "a")
        assert isinstance(app.screen, CompleteDialog)
        assert app.screen.step == "Complete test"
        await type_text(pilot, "app answers on 443")
        await keys(pilot, "enter")
        await keys(pilot, "t")
        done = lab.job(test_job["id"])
        assert done["state"] == JobState.SUCCEEDED
        # the failover report shows under the steps, in the engine's words, with the note
        report = app.query_one("#job-report", Static)
        assert report.display
        assert report.content.plain.split("\n") == lab.report_lines(done["report"])
        assert "note: app answers on 443" in report.content.plain

        # F: planned failover; no point to choose (the latest data is synchronized)
        await keys(pilot, "2", "F")
        dialog = app.screen
        assert isinstance(dialog, FailoverDialog) and dialog.kind == "planned"
        assert not dialog.query_one("#points").display and dialog.query_one("#point-note").display
        assert app.focused is dialog.query_one("#ok", Button)
        await keys(pilot, "enter")
        await keys(pilot, "t")
        assert vm(lab, "WEB01")["failover_state"] == Failover.COMMIT_PENDING
        assert vm(lab, "WEB01")["active_location"] == "Microsoft Azure"
        detail = app.query_one("#item-detail", Static).content.plain
        assert "Recovered   failover VM WEB01" in detail
        planned = lab.job(lab.jobs(limit=1)[0]["id"])
        assert planned["kind"] == "planned_failover" and planned["state"] == JobState.SUCCEEDED

        # P: change recovery point: the point in use is marked and under the cursor
        in_use = vm(lab, "WEB01")["recovered"][0]["point"]
        await keys(pilot, "P")
        dialog = app.screen
        assert isinstance(dialog, ChangePointDialog)
        table = dialog.query_one("#points")
        assert table.cursor_key == str(in_use)
        assert "in use" in table.get_row(str(in_use))[0].plain
        await keys(pilot, "down")
        older = table.cursor_key
        await keys(pilot, "enter")
        await keys(pilot, "t")
        assert str(vm(lab, "WEB01")["recovered"][0]["point"]) == older

        # C: commit
        await keys(pilot, "C")
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "enter", "t")
        assert vm(lab, "WEB01")["failover_state"] == Failover.COMMITTED

        # F again: now a failback; the kinds not allowed are greyed with the engine's reasons
        await keys(pilot, "F")
        dialog = app.screen
        assert isinstance(dialog, FailoverDialog) and dialog.back
        assert "Microsoft Azure → OnPremise Cloud" in dialog.query_one("#direction", Static).content.plain
        kinds = dialog.query_one("#kinds", OptionList)
        for kind in ("test", "unplanned"):
            option = kinds.get_option(kind)
            assert option.disabled
            assert lab.allowed(f"{kind}_failover", "WEB01") in option.prompt.plain
        assert not kinds.get_option("planned").disabled
        assert dialog.query_one("#sync-row").display and not dialog.query_one("#network-row").display
        await keys(pilot, "shift+tab")  # OK -> the sync option
        assert app.focused is dialog.query_one("#sync", Select)
        await keys(pilot, "enter", "down", "enter")
        assert dialog.query_one("#sync", Select).value == "during"
        await keys(pilot, "ctrl+s")
        await keys(pilot, "t")
        failback = newest_job(lab)
        assert failback["kind"] == "failback_during" and failback["state"] == JobState.SUCCEEDED
        assert vm(lab, "WEB01")["failover_state"] == Failover.COMMIT_PENDING

        # C commits the failback, R reverse replicates: initial replication starts over
        await keys(pilot, "C", "enter", "t")
        assert vm(lab, "WEB01")["failover_state"] == Failover.REVERSE_PENDING
        await keys(pilot, "R")
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "enter", "t")
        assert vm(lab, "WEB01")["protection"] in (Protection.INITIAL, Protection.FINALIZING, Protection.PROTECTED)


async def test_a_greyed_failover_action_gives_the_rules_tables_reason(protected_lab):
    lab = protected_lab
    reason = lab.allowed("commit", "WEB01")
    assert reason and "commit" in reason
    jobs_before = len(lab.jobs())
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        keybar = app.query_one("#keybar")
        assert ("C", "Commit", False) in keybar.groups()
        assert ("f", "Test", True) in keybar.groups()
        shown = str(keybar.render())  # at 80x24 the keys that work now are all there
        assert "f Test" in shown and "F Planned" in shown and "U Unplanned" in shown

        # pressing it anyway says why, in the engine's words; nothing opens, nothing changes
        await keys(pilot, "C")
        assert not isinstance(app.screen, ConfirmDialog)
        assert app.last_refusal == reason
        assert len(lab.jobs()) == jobs_before

        # ? and the command palette say it too
        await keys(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen) and reason in app.screen.text.plain
        await keys(pilot, "escape")
        palette = {t: h for t, h, _ in app.palette_commands()}
        assert palette["Commit failover"].endswith("not now: " + reason)
        for title in ("Test failover", "Planned failover / failback", "Unplanned failover", "Change recovery point",
                      "Reverse replicate (reprotect)"):
            assert title in palette

        # while a test failover runs, the planned one is greyed with its reason
        await keys(pilot, "f", "enter")
        why = lab.allowed("planned_failover", "WEB01")
        assert why and "test failover running" in why
        await keys(pilot, "F")
        assert not isinstance(app.screen, FailoverDialog)
        assert app.last_refusal == why


async def test_unplanned_failover_from_a_chosen_point_in_an_isolated_network(protected_lab):
    lab = protected_lab
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        await keys(pilot, "U")
        dialog = app.screen
        assert isinstance(dialog, FailoverDialog) and dialog.kind == "unplanned"
        assert dialog.query_one("#shutdown-row").display
        table = dialog.query_one("#points")
        await keys(pilot, "down", "down", "down")
        chosen = table.cursor_key
        assert chosen.isdigit()
        # the options: an isolated network, no shutdown of the source
        await keys(pilot, "tab")
        assert app.focused is dialog.query_one("#network", Select)
        await keys(pilot, "enter", "down", "enter")
        assert dialog.query_one("#network", Select).value == "=none"
        assert dialog.query_one("#shutdown-sync", Checkbox).value is False
        await keys(pilot, "ctrl+s")
        await keys(pilot, "t")
        job = newest_job(lab)
        assert job["kind"] == "unplanned_failover" and job["state"] == JobState.SUCCEEDED
        assert str(job["report"]["point"]) == chosen
        recovered = vm(lab, "WEB01")["recovered"][0]
        assert str(recovered["point"]) == chosen and "isolated" in recovered["network"]


async def test_the_kind_can_be_changed_in_the_dialog(protected_lab):
    app = make_app(protected_lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "IDLE01")
        await keys(pilot, "f")
        dialog = app.screen
        await keys(pilot, "shift+tab")
        assert app.focused is dialog.query_one("#kinds", OptionList)
        await keys(pilot, "down", "down")
        assert dialog.kind == "unplanned"
        assert dialog.query_one("#shutdown-row").display and dialog.query_one("#points").display
        assert str(dialog.query_one("#ok", Button).label) == "Fail over"
        assert "Unplanned failover of IDLE01" in str(dialog.query_one("#dialog").border_title)
        await keys(pilot, "up")
        assert dialog.kind == "planned" and not dialog.query_one("#points").display
        await keys(pilot, "escape")
        assert not isinstance(app.screen, FailoverDialog)
        assert vm(protected_lab, "IDLE01")["failover_state"] == Failover.READY


async def test_an_encrypted_replica_asks_for_the_key_and_a_refusal_stays_in_the_dialog(tmp_path):
    lab = build(tmp_path, encrypt=True)
    try:
        key = next(s["key_file"] for s in lab.resources()["servers"] if s["name"] == "SC01")
        app = make_app(lab)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await keys(pilot, "2")
            await filter_to(pilot, "WEB01")
            await keys(pilot, "f")
            dialog = app.screen
            assert dialog.query_one("#key-row").display
            # no key: the engine refuses; its words appear in the dialog, which stays open
            await keys(pilot, "ctrl+s")
            assert app.screen is dialog
            with pytest.raises(LabError) as refused:
                lab.failover(["WEB01"], "test")
            assert refused.value.message in dialog.error.plain
            assert vm(lab, "WEB01")["failover_state"] == Failover.READY
            # the key as Resources shows it (relative to the lab folder) is found
            dialog.query_one("#key-file", Input).focus()
            await type_text(pilot, key)
            await keys(pilot, "ctrl+s")
            assert not isinstance(app.screen, FailoverDialog)
            assert vm(lab, "WEB01")["failover_state"] == Failover.TEST
    finally:
        lab.close()
