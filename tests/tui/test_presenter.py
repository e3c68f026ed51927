"""The app a presenter can trust (issue 11): keys in bursts act as if typed slowly; dialogs and
lists behave as k9s / lazygit users expect; `:` runs the command line's own commands on the
app's lab; the CLI's proof (verify, export, each point's last transaction, run for a duration)
is in the app."""

from __future__ import annotations

import subprocess
from pathlib import Path

from textual.widgets import Button

from engine import Lab
from tui.dialogs import (CommandOutputScreen, ConfirmDialog, ExportDialog, LinkDialog, ProtectDialog,
                         RunForDialog, VmDetailScreen)

from tests.conftest import step2

from .helpers import ManualWall, burst, filter_to, keys, make_app, settle, type_text


def bar(app) -> str:
    return str(app.query_one("#bar-clock").render())


# ---- 2. keys never go astray ------------------------------------------------------------------


async def test_the_readmes_bursts_act_as_if_typed_slowly(sample_lab):
    app = make_app(sample_lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        res = app.query_one("#resources-table")
        # STEP 2 over a slow link: "/SC01 enter r enter" in one read registers SC01
        burst(app, "3", "slash", "SC01", "enter", "r", "enter")
        await settle(pilot)
        assert res.filter_text == "SC01" and app.focused is res
        assert [j["name"] for j in app.state.jobs] == ["SC01 (Register server)"]
        assert not isinstance(app.screen, ConfirmDialog)
        burst(app, "t")
        await settle(pilot)
        # "3 / H V 0 1 Enter i": enter leaves the filter, i acts on the panel (install the agent)
        burst(app, "3", "escape", "slash", "H", "V", "0", "1", "enter", "i")
        await settle(pilot)
        assert res.filter_text == "HV01"
        assert isinstance(app.screen, ConfirmDialog) and "HV01" in app.screen.lines[0].plain
        burst(app, "enter", "t")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmDialog)
        assert any(h["agent_installed"] for h in app.state.resources["hosts"])
        # "2 / MYSQL Enter 4": the filter is MYSQL, and 4 opens Jobs
        burst(app, "2", "slash", "MYSQL", "enter", "4")
        await settle(pilot)
        assert app.query_one("#items").filter_text == "MYSQL"
        assert app.query_one("#panels").current == "jobs"
        # a dialog opened by a key in a burst gets the keys after it: run for 45 minutes
        now = app.state.now
        burst(app, "ctrl+r", "45m", "enter", "3")
        await settle(pilot)
        assert app.state.now == now + 45 * 60 and app.query_one("#panels").current == "resources"


async def test_a_burst_into_a_form_lands_in_its_first_field(lab):
    step2(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        burst(app, "2", "slash", "WEB01", "enter", "e", "WEBAZ", "enter")
        await settle(pilot)
        assert not isinstance(app.screen, ProtectDialog)
        web = next(v for v in lab.status()["vms"] if v["name"] == "WEB01")
        assert web["target_name"] == "WEBAZ"


# ---- 4. dialogs and lists as k9s / lazygit users expect ----------------------------------------


async def test_dangerous_confirmations_start_on_cancel(lab):
    step2(lab)
    lab.run_until_done(lab.protect(["WEB01"]))
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        for key in ("ctrl+d", "x"):  # disable protection, turn off
            await keys(pilot, key)
            dialog = app.screen
            assert isinstance(dialog, ConfirmDialog) and dialog.danger
            assert isinstance(app.focused, Button) and app.focused.id == "cancel"
            await keys(pilot, "enter")  # one enter cancels
            assert not isinstance(app.screen, ConfirmDialog)
        web = next(v for v in lab.status()["vms"] if v["name"] == "WEB01")
        assert web["protection"] != "not protected" and web["power"] == "running"
        # shift+tab, enter does it
        await keys(pilot, "x", "shift+tab")
        assert app.focused.id == "ok"
        await keys(pilot, "enter")
        assert lab.vm_row("WEB01")["power"] == "off"
        # a harmless one starts on OK
        await keys(pilot, "o")
        assert app.focused.id == "ok" and not app.screen.danger
        await keys(pilot, "escape")


async def test_space_marks_without_moving_and_home_end_g_G(lab):
    step2(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        table = app.query_one("#items")
        await keys(pilot, "down")
        key = table.cursor_key
        assert key == "vm:WEB01"
        await keys(pilot, "space")
        assert table.cursor_key == key and table.get_cell(key, "mark").plain == "●"
        for k, row in (("G", -1), ("g", 0), ("end", -1), ("home", 0)):
            await keys(pilot, k)
            assert table.cursor_row == (table.row_count - 1 if row < 0 else 0), k


async def test_the_cursor_stays_on_its_row_across_resizes_and_refreshes(lab):
    step2(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "IDLE01")
        await keys(pilot, "escape")  # the filter goes, the cursor stays on IDLE01
        table = app.query_one("#items")
        assert table.cursor_key == "vm:IDLE01" and table.row_count == 3
        for size in ((160, 45), (80, 24), (120, 40)):
            await pilot.resize_terminal(*size)
            await settle(pilot)
            assert table.cursor_key == "vm:IDLE01", size
        await keys(pilot, "t")
        assert table.cursor_key == "vm:IDLE01"


async def test_wide_terminals_share_their_width_and_short_tables_leave_room(lab):
    step2(lab)
    app = make_app(lab)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        table = app.query_one("#items")
        widths = {k.value: c.width for k, c in table.columns.items()}
        used = sum(widths.values()) + 2 * table.cell_padding * len(widths)
        assert used >= table.scrollable_content_region.width - 2  # no free columns left over
        assert widths["failover"] > 15 and widths["name"] > 18
        pane = app.query_one("#item-detail")
        await keys(pilot, "down")
        # the details show every line they have, not 3-8 lines under empty rows
        lines = len(str(pane.render()).splitlines())
        assert lines >= 8 and pane.size.height == lines


async def test_the_header_is_on_every_screen(lab):
    step2(lab)
    lab.run_until_done(lab.protect(["WEB01"]))
    lab.run(1800)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        for open_keys in (["enter"], ["s"], ["question_mark"], ["ctrl+r"]):
            await keys(pilot, *open_keys)
            bars = [str(b.render()) for b in app.screen.query(".bar-clock")]
            assert bars and "PAUSED" in bars[0] and "2026-01-05" in bars[0], open_keys
            await keys(pilot, "escape")


async def test_jobs_open_on_the_job_just_started_and_events_on_the_newest(lab):
    step2(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "4", "down", "down")
        old = app.query_one("#jobs-table").cursor_key
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        await keys(pilot, "e", "ctrl+s")
        new = max(j["id"] for j in app.state.jobs)
        await keys(pilot, "4")
        assert app.query_one("#jobs-table").cursor_key == f"job:{new}" != old
        await keys(pilot, "6", "down", "1", "6")
        events = app.query_one("#events-table")
        assert events.cursor_row == 0


async def test_an_observer_notices_the_clock_holder_has_gone_and_takes_over(lab):
    first = Lab.open(lab.path)
    assert first.acquire_clock()
    wall = ManualWall()
    app = make_app(lab, poll=1.0, wall=wall)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.observer and "OBSERVER" in bar(app)
        wall.advance(1.0)
        await settle(pilot)
        assert not app.holder_gone
        # the presenter's srlab goes (its process is gone; the lock file still names it)
        first.close()
        gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
        (Path(lab.path) / "clock.lock").write_text(gone)
        wall.advance(1.0)
        await settle(pilot)
        assert app.holder_gone and "p takes over" in bar(app)
        await keys(pilot, "p")
        assert not app.observer and "OBSERVER" not in bar(app) and "PAUSED" in bar(app)
        now = lab.now
        await keys(pilot, "t")
        assert lab.now == now + 900


# ---- the : command line -----------------------------------------------------------------------


async def command(pilot, line: str):
    await keys(pilot, "colon")
    await type_text(pilot, line)
    await keys(pilot, "enter")
    return pilot.app.screen


async def test_colon_runs_the_cli_commands_on_the_apps_lab(lab):
    step2(lab)
    lab.run_until_done(lab.protect(["WEB01"]))
    lab.run(1800)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = await command(pilot, "failover WEB01 --kind test")
        assert isinstance(screen, CommandOutputScreen) and screen.request.code == 0
        # as srlab failover --no-wait prints it: in the app, the app's clock runs the job
        assert "(Test failover): in progress" in screen.request.out
        await keys(pilot, "escape")
        job = max(lab.jobs(), key=lambda j: j["id"])
        assert job["name"].startswith("Test failover") or "Test failover" in job["name"]
        assert job["state"] in ("in progress", "waiting for action")
        # the app's state follows: Jobs opens on the job the command started
        await keys(pilot, "4")
        assert app.query_one("#jobs-table").cursor_key == f"job:{job['id']}"
        # refused by the lab's rules: exit 1 and the CLI's own words
        screen = await command(pilot, "failover WEB01 --kind test")
        assert screen.request.code == 1 and screen.request.err.startswith("srlab: ")
        assert app.last_refusal.startswith("srlab: ")
        await keys(pilot, "escape")
        # bad input: exit 2
        screen = await command(pilot, "failover WEB01 --kind sideways")
        assert screen.request.code == 2 and "sideways" in screen.request.err
        await keys(pilot, "escape")
        screen = await command(pilot, "status")
        assert screen.request.code == 0 and "WEB01" in screen.request.out
        await keys(pilot, "escape")
        screen = await command(pilot, "init --site x.toml")
        assert screen.request.code == 2 and "quit the app first" in screen.request.err
        await keys(pilot, "escape")
        # the lab is still the app's, open and holding its clock
        await keys(pilot, "t")
        assert app.state.now == lab.now


async def test_colon_in_an_observer_reads_but_does_not_change(lab):
    app = make_app(lab, observer=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = await command(pilot, "resources")
        assert screen.request.code == 0 and "SC01" in screen.request.out
        await keys(pilot, "escape")
        await command(pilot, "server register SC01")
        assert not isinstance(app.screen, CommandOutputScreen)
        assert "observer" in app.last_refusal
    assert lab.jobs() == []


# ---- 5. the CLI's proof in the app ------------------------------------------------------------


async def test_verify_and_export_a_point_and_each_points_last_transaction(lab, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    step2(lab)
    lab.run_until_done(lab.protect(["WEB01"]))
    lab.run(1800)
    app = make_app(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        await keys(pilot, "v")  # verify the latest point: the details say so
        detail = str(app.query_one("#item-detail").render())
        assert "Verified" in detail and "identical" in detail and "NOT" not in detail
        await keys(pilot, "enter")
        assert isinstance(app.screen, VmDetailScreen)
        points = app.screen.query_one("#vm-points")
        newest = max(lab.points("WEB01"), key=lambda p: p["time"])
        assert points.get_cell(f"point:{newest['id']}", "tx").plain == str(newest["last_transaction"])
        await keys(pilot, "end")  # the oldest point
        oldest = points.cursor_key.removeprefix("point:")
        await keys(pilot, "v")
        assert f"point {oldest}" in str(app.screen.query_one("#vm-proof").render())
        await keys(pilot, "e")
        assert isinstance(app.screen, ExportDialog)
        await keys(pilot, "enter")
        assert isinstance(app.screen, VmDetailScreen)
        files = sorted(p.name for p in (tmp_path / f"export-WEB01-{oldest}").iterdir())
        assert files == ["WEB01-data.vhd", "WEB01.vhd"]
        assert "Exported" in str(app.screen.query_one("#vm-proof").render())


async def test_run_for_a_chosen_duration(lab):
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        start = lab.now
        await keys(pilot, "ctrl+r")
        assert isinstance(app.screen, RunForDialog)
        await type_text(pilot, "soon")
        await keys(pilot, "enter")
        assert isinstance(app.screen, RunForDialog) and "bad duration" in app.screen.error.plain
        await keys(pilot, "ctrl+a", "ctrl+k")
        await type_text(pilot, "1h30m")
        await keys(pilot, "enter")
        assert not isinstance(app.screen, RunForDialog)
        assert lab.now == start + 5400 == app.state.now


async def test_malformed_numbers_are_refused_before_the_engine(lab):
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "3")
        await filter_to(pilot, "link")
        for text in ("inf", "1e309", "9" * 400, "nan", "-5"):
            await keys(pilot, "l")
            assert isinstance(app.screen, LinkDialog)
            box = app.screen.query_one("#mbps")
            box.value = text
            await keys(pilot, "ctrl+s")
            assert isinstance(app.screen, LinkDialog), text
            assert "bandwidth must be a number of Mbps" in app.screen.error.plain, text
            await keys(pilot, "escape")
        # in range for the app, out of range for the engine: the engine's message, with its range
        await keys(pilot, "l")
        app.screen.query_one("#mbps").value = "99999999"
        await keys(pilot, "ctrl+s")
        assert isinstance(app.screen, LinkDialog) and "bandwidth" in app.screen.error.plain
        await keys(pilot, "escape")
    assert lab.resources()["links"][0]["mbps"] == 100
