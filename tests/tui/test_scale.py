"""The app on a big lab (issue 15, "Scale"): a refresh reads and shows only what changed.

- the engine notes what changed since the last read (engine.changes); the app reads and judges
  again only those VMs, and gets the same state as a read of everything;
- a VM that did not change keeps its very status dict and its very row: the table touches no
  cell of it; a refresh with nothing changed touches no cell at all;
- a hidden panel catches up when it is shown: after its first paint (on a 1,000-VM lab the catch-up
  was most of a panel switch), or before the next key if that comes first;
- a table draws again only the lines whose row changed: not on a panel switch or a focus change
  (DataTable would draw every line again), and what it keeps looks as DataTable draws it;
- the collector's full passes leave alone what the app made before the lab was judged (on a
  1,000-VM lab a pass over it took 30-55 ms in the middle of a key), and the app runs them
  itself between keys; the collector is as it was after the exit;
- a row that changes far from the view gets its new cells when it comes near it;
- the VM detail screen is built once and shown again on the next VM, as a new one would show it;
- `t` moves the clock on the screen at once, before the engine has done the work.
"""

from __future__ import annotations

import gc

from textual.app import App
from textual.geometry import Region

from engine import changes
from tui.state import collect, fmt_time
from tui.widgets import Column, LabTable

from tests.conftest import step2

from .helpers import burst, filter_to, keys, make_app, settle


def configure(lab) -> None:
    step2(lab, retention_h=1, app_consistent_h=1)


def same_state(a, b) -> None:
    """Two reads of the lab show the same lab (the parts a change-only read may reuse)."""
    assert a.status["vms"] == b.status["vms"]
    assert a.allowed == b.allowed
    assert a.points == b.points and a.networks == b.networks
    assert a.jobs == b.jobs and a.job_details == b.job_details
    assert a.events == b.events


def test_a_read_of_what_changed_equals_a_read_of_everything(lab):
    configure(lab)
    last = collect(lab)
    changes.take_lab(lab)  # (the first take says: everything)
    steps = [
        lambda: lab.run_until_done(lab.protect(["WEB01"])),  # one VM: protected, its points
        lambda: lab.run(900),  # lab time: replication cycles, points, retention
        lambda: lab.vm_power("IDLE01", "start"),  # one VM's power
        lambda: lab.set_link(*next((x["source"], x["target"]) for x in lab.resources()["links"]), mbps=5),
        lambda: lab.run(300),
    ]
    for step in steps:
        step()
        read = collect(lab, last=last, changes=changes.take_lab(lab))
        same_state(read, collect(lab))
        last = read


def test_only_changed_vms_are_judged_again(lab):
    configure(lab)
    last = collect(lab)
    changes.take_lab(lab)
    assert last.allowed[("vm_start", "IDLE01")] is None  # (it is off)
    lab.vm_power("IDLE01", "start")
    seen = changes.take_lab(lab)
    assert seen.names == {"IDLE01"} and not seen.everything
    read = collect(lab, last=last, changes=seen)
    assert read.allowed[("vm_start", "IDLE01")] is not None  # judged again: it runs now
    web = next(v for v in read.status["vms"] if v["name"] == "WEB01")
    assert web is next(v for v in last.status["vms"] if v["name"] == "WEB01")  # the very same dict


async def test_a_refresh_touches_only_the_cells_that_changed(lab):
    configure(lab)
    lab.run_until_done(lab.protect(["WEB01"]))
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        table = app.query_one("#items")
        updates, rebuilds = table.cell_updates, table.rebuilds
        app.refresh_state()  # nothing changed in the lab
        await settle(pilot)
        assert table.cell_updates == updates and table.rebuilds == rebuilds
        idle = table.get_cell("vm:IDLE01", "status")
        size = "L" if table.get_cell("vm:WEB01", "size").plain != "L" else "M"
        app.engine_call("size", lambda lab: lab.set_target("WEB01", size=size), quiet=True)
        await settle(pilot)
        assert table.cell_updates == updates + 1  # WEB01's size: that cell only
        assert table.get_cell("vm:WEB01", "size").plain == size
        assert table.rebuilds == rebuilds
        assert table.get_cell("vm:IDLE01", "status") is idle


async def test_a_hidden_panel_catches_up_when_shown(lab):
    configure(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        jobs = app.query_one("#jobs-table")
        before = jobs.row_keys
        job = []
        app.engine_call("protect", lambda lab: lab.protect(["WEB01"]), on_done=job.extend, quiet=True)
        await settle(pilot)
        assert jobs.row_keys == before  # hidden: it did not follow
        await keys(pilot, "4")
        assert f"job:{job[0]}" in jobs.row_keys and len(jobs.row_keys) == len(app.state.jobs)


async def test_a_panel_is_painted_first_and_catches_up_before_the_next_key(lab):
    configure(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "4", "2")
        jobs = app.query_one("#jobs-table")
        started = []
        for vm in ("WEB01", "IDLE01"):
            app.engine_call("protect", lambda lab, vm=vm: lab.protect([vm]), on_done=started.extend, quiet=True)
            await settle(pilot)
            app.action_show_panel("jobs")  # what the key does
            assert f"job:{started[-1]}" not in jobs.row_keys  # the panel as it was, painted first
            if vm == "WEB01":
                await pilot.pause()  # the paint: then it catches up, on the newest job (Jobs.opened)
            else:
                burst(app, "slash")  # a key before the paint: it acts on the panel caught up
                await settle(pilot)
            assert jobs.row_keys[0] == f"job:{started[-1]}" and jobs.cursor_row == 0
            await keys(pilot, "escape", "2")


def drawn(table) -> list:
    """The table's lines as the screen gets them."""
    return table.render_lines(Region(0, 0, table.size.width, table.size.height))


async def test_a_table_draws_again_only_the_lines_that_changed(lab):
    configure(lab)
    lab.run_until_done(lab.protect(["WEB01"]))
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        table = app.query_one("#items")
        await keys(pilot, "3", "2", "down")  # lines for the focused table, the cursor on a row
        lines, count = drawn(table), table.lines_drawn
        await keys(pilot, "3", "2")  # hidden, blurred, shown and focused again: nothing to draw
        assert drawn(table) == lines and table.lines_drawn == count
        size = "L" if table.get_cell("vm:WEB01", "size").plain != "L" else "M"
        app.engine_call("size", lambda lab: lab.set_target("WEB01", size=size), quiet=True)
        await settle(pilot)
        await keys(pilot, "down")
        now = drawn(table)
        assert 0 < table.lines_drawn - count <= 3  # WEB01's row, and the rows the cursor left and moved to
        assert any(size in "".join(s.text for s in line) for line in now)
        # what it keeps is what DataTable draws from scratch (its caches dropped, ours too)
        table._lines.clear()
        table.notify_style_update()
        assert drawn(table) == now


async def test_the_app_runs_the_collectors_full_passes_itself(lab):
    configure(lab)
    app = make_app(lab)
    threshold = gc.get_threshold()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.state.judged and gc.get_freeze_count() > 0
        assert gc.get_threshold()[2] > 10**6  # (gc.collect() runs them: _collect_garbage)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold


async def test_a_row_far_from_the_view_gets_its_new_cells_when_it_comes_near():
    class Table(App):
        def compose(self):
            yield LabTable([Column("name", "Name", 10), Column("n", "N", 6)])

    app = Table()
    async with app.run_test(size=(40, 20)) as pilot:
        table = app.query_one(LabTable)
        names = [f"row {i}" for i in range(400)]
        table.set_rows((name, (name, "old")) for name in names)
        await pilot.pause()
        updates = table.cell_updates
        table.set_rows((name, (name, "new")) for name in names)
        far = [n for n in names if table.get_cell(n, "n").plain == "old"]
        assert far and far[-1] == "row 399" and table.cell_updates - updates == 400 - len(far)
        table.action_last_row()
        await pilot.pause()
        assert table.get_cell("row 399", "n").plain == "new"
        table.set_filter("new")  # the filter reads every row's cells as given
        assert len(table.row_keys) == 400
        table.set_filter("")
        for row in range(0, 400, 10):
            table.move_cursor(row=row)
            await pilot.pause()
        assert all(table.get_cell(n, "n").plain == "new" for n in names)
        assert table.cell_updates - updates == 400


async def test_the_vm_detail_screen_is_kept_and_shows_the_next_vm_as_a_new_one_would(lab):
    configure(lab)
    lab.run_until_done(lab.protect(["WEB01", "IDLE01"]))
    lab.run(1800)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")

        async def details(vm: str) -> str:
            await filter_to(pilot, vm)
            await keys(pilot, "enter")
            assert app.screen.vm == vm and app.screen.query_one("#vm-summary").border_title == vm
            return app.export_screenshot()

        first = await details("WEB01")  # a new screen
        screen = app.screen
        await keys(pilot, "escape", "escape")
        await details("IDLE01")
        assert app.screen is screen
        await keys(pilot, "escape", "escape")
        await details("WEB01")
        await keys(pilot, "down", "down", "tab", "escape", "escape")  # its cursor and focus moved
        assert await details("WEB01") == first and app.screen is screen
        points = app.screen.query_one("#vm-points")
        assert app.focused is points and points.cursor_row == 0
        assert points.row_count == len(lab.points("WEB01"))


async def test_t_moves_the_clock_on_the_screen_before_the_work_is_done(lab):
    configure(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        start = lab.now
        clock = app.query_one("#bar-clock")
        with app._lock:  # the engine thread is busy: it cannot start the run yet
            await pilot.press("t")
            await pilot.pause()
            assert fmt_time(start + 900) in str(clock.render()) and "⏩" in str(clock.render())
            assert lab.now == start
            await pilot.press("t")  # a second t goes on from there
            await pilot.pause()
            assert fmt_time(start + 1800) in str(clock.render())
        await settle(pilot)
        assert lab.now == app.state.now == start + 1800
        assert "⏩" not in str(clock.render()) and fmt_time(start + 1800) in str(clock.render())


async def test_the_first_paint_shows_the_lab_before_what_is_allowed(lab):
    configure(lab)
    app = make_app(lab)
    seen = []
    apply = app.apply_state

    def record(state) -> None:
        apply(state)
        seen.append((state.judged, [v["name"] for v in state.status["vms"]],
                     app.panel("protected").disabled_reason("vm_start")))

    app.apply_state = record
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
    names = [vm.name for vm in lab.site.vms]
    # first the lab to show, its keys that act greyed until judged; then what is allowed
    assert seen[0] == (False, names, "reading the lab: a moment")
    assert seen[1][0] is True and seen[1][2] != "reading the lab: a moment"


async def test_keys_move_the_table_while_the_engine_is_busy(lab):
    configure(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        table = app.query_one("#items")
        row = table.cursor_row
        with app._lock:  # the engine thread is inside a long call
            await pilot.press("t")
            await pilot.press("down")
            await pilot.pause()
            assert table.cursor_row == row + 1
            await pilot.press("4")
            await pilot.pause()
            assert app.query_one("#panels").current == "jobs"
        await settle(pilot)


async def test_a_key_in_flight_holds_the_engine_between_vms_unless_it_asks_the_engine(lab):
    """On a big lab the engine thread's pure Python took half of Python from every key: between
    VMs of a slice it now waits while a key is handled, but never for a key that asked the engine
    for something (it would wait for itself)."""
    configure(lab)
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert lab.between_vms == app._hold_for_key
        assert app._keys_quiet.is_set()  # no key: the engine goes on
        app._key_busy = True
        assert not app._keys_quiet.is_set()  # a key in flight: the engine waits between VMs
        app.engine_call("look", lambda lab: None, mutates=False, quiet=True)
        assert app._keys_quiet.is_set()  # ... unless the key asked it for something
        app._key_busy = True
        app._key_busy = False
        assert app._keys_quiet.is_set()
        await settle(pilot)
        app._key_busy = True
    assert app._keys_quiet.is_set()  # the app gone, nothing holds the lab's engine
