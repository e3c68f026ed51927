"""The app's conventions: panels by key, diffing tables, / filter, esc, space marks, the clock,
the command palette, remappable keys, themes, 80x24."""

from __future__ import annotations

from textual.command import CommandPalette

from tui.app import SPEEDS
from tui.dialogs import ConfirmDialog, HelpScreen, ProtectDialog

from tests.conftest import step2

from .helpers import burst, filter_to, keys, make_app, settle, type_text


def configure(lab) -> None:
    step2(lab, retention_h=1, app_consistent_h=1)


async def test_panels_by_key_and_esc_goes_back(lab):
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        switcher = app.query_one("#panels")
        for key, panel in zip("1234567", ["dashboard", "protected", "resources", "jobs", "plans", "events",
                                           "faults"]):
            await keys(pilot, key)
            assert switcher.current == panel
        await keys(pilot, "escape")
        assert switcher.current == "events"
        await keys(pilot, "escape")
        assert switcher.current == "plans"
        # with no plan yet, the plans panel explains what plans are and how to make one
        await keys(pilot, "5")
        text = app.query_one("#plan-progress").content.plain
        assert "recovery plan" in text.lower() and "n creates one" in text


async def test_tables_update_by_diffing_cells_not_rebuilding(lab):
    configure(lab)
    lab.protect(["WEB01"])
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        table = app.query_one("#items")
        keys_before = table.row_keys
        name_cell = table.get_cell("vm:WEB01", "name")
        idle_status = table.get_cell("vm:IDLE01", "status")
        updates = table.cell_updates
        rebuilds = table.rebuilds
        await keys(pilot, "t")  # 15 minutes: initial replication moves, RPO appears
        assert table.row_keys == keys_before
        assert table.cell_updates > updates
        assert table.rebuilds == rebuilds
        # cells that did not change are the very same objects: not re-set, not rebuilt
        assert table.get_cell("vm:WEB01", "name") is name_cell
        assert table.get_cell("vm:IDLE01", "status") is idle_status
        assert table.get_cell("vm:WEB01", "status").plain != "not protected"


async def test_filter_and_escape(lab):
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "3")
        table = app.query_one("#resources-table")
        total = table.row_count
        await keys(pilot, "slash")
        await type_text(pilot, "storage")
        assert table.row_count == 2
        assert "/storage" in str(table.border_title)
        await keys(pilot, "enter")
        assert app.focused is table and table.row_count == 2
        await keys(pilot, "escape")
        assert table.row_count == total
        # esc while typing clears too
        await keys(pilot, "slash")
        await type_text(pilot, "HV01")
        assert table.row_count == 1
        await keys(pilot, "escape")
        assert table.row_count == total and app.focused is table


async def test_keys_arriving_in_one_burst_act_in_order(lab):
    app = make_app(lab, clock_running=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        burst(app, "p", "3", "slash", "S", "C", "0", "1")
        await settle(pilot)
        table = app.query_one("#resources-table")
        assert not app.clock_running
        assert app.query_one("#panels").current == "resources"  # "1" was typed, not a panel switch
        assert table.filter_text == "SC01"
        await keys(pilot, "enter")
        assert app.focused is table and "SC01" in table.cursor_key
        # "4" then "2" in one burst: both panel switches happen, in order
        burst(app, "4", "2")
        await settle(pilot)
        assert app.query_one("#panels").current == "protected" and app.focused is app.query_one("#items")
        # the global keys are text inside a field: "q" does not quit, "1" does not switch
        await keys(pilot, "slash")
        await type_text(pilot, "q1/t")
        assert app.is_running and app.query_one("#items").filter_text == "q1/t"


async def test_space_marks_rows_for_bulk_enable_protection(lab):
    configure(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        table = app.query_one("#items")
        await filter_to(pilot, "WEB01")
        await keys(pilot, "space", "escape")
        await filter_to(pilot, "IDLE01")
        await keys(pilot, "space", "escape")
        assert table.get_cell("vm:WEB01", "mark").plain == "●"
        assert table.get_cell("vm:IDLE01", "mark").plain == "●"
        await keys(pilot, "e")
        dialog = app.screen
        assert isinstance(dialog, ProtectDialog) and dialog.vms == ["WEB01", "IDLE01"]
        await keys(pilot, "enter")
        names = {j["target"] for j in app.state.jobs if "Enable protection" in j["name"]}
        assert names == {"WEB01", "IDLE01"}
        assert table.get_cell("vm:WEB01", "mark").plain.strip() == ""
        assert {v["name"]: v["protection"] != "not protected" for v in lab.status()["vms"]} == {
            "WEB01": True, "IDLE01": True}


async def test_clock_keys(lab):
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        start = lab.now
        assert not app.clock_running
        assert "PAUSED" in str(app.query_one("#bar-clock").render())
        await keys(pilot, "t")
        assert lab.now == start + 900 and app.state.now == lab.now
        await keys(pilot, "T")
        assert lab.now == start + 900 + 3600
        assert "10:15:00" in str(app.query_one("#bar-clock").render())
        assert app.speed == 60
        await keys(pilot, "plus")
        assert app.speed == 600
        await keys(pilot, "minus", "minus", "minus", "minus")
        assert app.speed == SPEEDS[0] == 1
        assert "1x" in str(app.query_one("#bar-clock").render())
        # p resumes and pauses (the running clock is not left on: lab time stays deterministic)
        await pilot.press("p")
        assert app.clock_running
        await pilot.press("p")
        assert not app.clock_running
        await settle(pilot)


async def test_running_clock_advances_lab_time_in_the_worker(lab):
    app = make_app(lab, clock_running=True, speed=600)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        start = app.state.now
        for _ in range(40):
            await pilot.pause(0.1)
            if app.state.now > start:
                break
        await keys(pilot, "p")
        await settle(pilot)
        assert app.state.now > start
        assert lab.now == app.state.now


async def test_command_palette_runs_actions(lab):
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        start = lab.now
        titles = [t for t, _, _ in app.palette_commands()]
        for wanted in ("Register server", "Install agent", "Configure cloud protection", "Map network",
                       "Unmap network", "Set link", "Enable protection", "Set target size / name",
                       "Start VM", "Shut down VM", "Turn off VM", "Mark / unmark VM", "Advance 15 minutes",
                       "Advance 1 hour", "Pause the lab clock", "Clock speed 600x", "Go to Jobs", "Quit"):
            assert wanted in titles, wanted
        await keys(pilot, "ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await type_text(pilot, "Advance 15 minutes")
        await pilot.pause(0.3)
        await keys(pilot, "enter")
        await settle(pilot)
        assert lab.now == start + 900
        # a panel action from the palette switches to its panel and opens its dialog
        await keys(pilot, "ctrl+p")
        await type_text(pilot, "Register server")
        await pilot.pause(0.3)
        await keys(pilot, "enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        assert app.query_one("#panels").current == "resources"
        await keys(pilot, "escape")
        assert not isinstance(app.screen, ConfirmDialog)
        assert lab.jobs() == []


async def test_keys_can_be_remapped_by_binding_id(lab):
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.set_keymap({"clock.advance_15m": "f9", "panel.jobs": "j", "protected.protect": "P"})
        start = lab.now
        await keys(pilot, "f9")
        assert lab.now == start + 900
        await keys(pilot, "j")
        assert app.query_one("#panels").current == "jobs"
        await keys(pilot, "2")
        assert ("P", "Protect", False) in app.query_one("#keybar").groups()


async def test_help_lists_the_panels_keys(lab):
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "3", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text.plain
        for words in ("Register server", "Install agent", "Configure cloud protection", "Map network",
                      "advance lab time", "command palette"):
            assert words in text
        await keys(pilot, "escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_light_and_dark_themes(lab):
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == "textual-dark"
        await keys(pilot, "ctrl+t")
        assert app.theme == "textual-light"
        assert app.status_colors["ok"] == app.get_css_variables()["success"]
        await keys(pilot, "ctrl+t")
        assert app.theme == "textual-dark"


async def test_every_panel_fits_80x24_with_its_keys_visible(lab):
    configure(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key in "123456":
            await keys(pilot, key)
            keybar = app.query_one("#keybar")
            assert keybar.region.bottom == 24 and keybar.region.height <= 2
            shown = str(keybar.render())
            # every key that works now is there; a greyed one gives way when two lines are full
            # (Protected items has more keys than that), and `?` lists it with its reason
            for k, label, enabled in keybar.groups():
                assert f"{k} {label}" in shown or not enabled, (key, k, label)
            assert app.query_one("#bar-clock").region.right <= 80


def test_keymap_from_the_environment():
    from tui.app import parse_keymap

    assert parse_keymap("clock.advance_15m=f9; panel.jobs=j,J") == {"clock.advance_15m": "f9", "panel.jobs": "j,J"}
    assert parse_keymap("") == {} and parse_keymap("nonsense") == {}


async def test_vm_details_open_and_close_repeatedly(lab):
    configure(lab)
    lab.run_until_done(lab.protect(["WEB01"]))
    lab.run(1800)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        for _ in range(3):
            await keys(pilot, "enter")
            assert type(app.screen).__name__ == "VmDetailScreen"
            assert app.screen.query_one("#vm-points").row_count == len(lab.points("WEB01"))
            await keys(pilot, "t")  # the details follow the lab while open
            assert app.screen.query_one("#vm-points").row_count == len(lab.points("WEB01"))
            await keys(pilot, "escape")
            await pilot.pause(0.1)
            assert type(app.screen).__name__ == "Screen"
        # a panel key from the details closes them too
        await keys(pilot, "enter", "4")
        assert type(app.screen).__name__ == "Screen" and app.query_one("#panels").current == "jobs"
