"""The lab clock in the app is honest (issue 11, point 1): paced by a manual wall clock that the
tests move, so nothing sleeps and nothing depends on how fast this machine is.

- a slice is at most the speed's worth of one refresh interval (FRAME) of lab time;
- pause stops lab time: the piece of the slice in flight ends (PIECE lab seconds at most), then
  no more lab time passes, and the clock shown is the clock stored;
- an action asked for while the clock runs is applied before any more of the clock's work: at
  the lab time on the screen, or at the end of the piece in flight;
- a machine that cannot keep up says "behind" and the rate it achieves, and does not jump ahead.
"""

from __future__ import annotations

import asyncio
import threading

from tui.app import FRAME, PIECE

from tests.conftest import step2

from .helpers import ManualWall, keys, make_app, settle

SPEED = 600
SLICE = int(SPEED * FRAME)  # lab seconds per refresh at 600x


def clock_text(app) -> str:
    return str(app.query_one("#bar-clock").render())


async def running_app(lab, pilot_size=(80, 24)):
    wall = ManualWall()
    app = make_app(lab, clock_running=True, speed=SPEED, wall=wall)
    return app, wall


async def test_lab_time_moves_one_refresh_at_a_time_and_pause_stops_it(lab):
    app, wall = await running_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        wall.advance(FRAME)
        await settle(pilot)
        start = lab.now
        seen = []
        for _ in range(8):
            wall.advance(FRAME)
            await settle(pilot)
            seen.append(lab.now)
            assert app.state.now == lab.now  # the clock shown is the clock stored
            assert lab.now.__class__ is int
        steps = [b - a for a, b in zip([start] + seen, seen)]
        assert all(0 < s <= SLICE for s in steps), steps  # never more than a refresh's worth
        assert sum(steps) >= 7 * SLICE  # ... and at the speed asked for
        # two seconds at 600x: the real rate is known and it is not behind
        assert app.rate is not None and app.rate >= 0.8 * SPEED
        assert "behind" not in clock_text(app)

        await keys(pilot, "p")
        stopped = lab.now
        assert not app.clock_running and "PAUSED" in clock_text(app)
        for _ in range(5):
            wall.advance(10)  # however long real time goes on
            await settle(pilot)
        assert lab.now == stopped == app.state.now


async def test_pause_during_a_slice_stops_it_at_the_end_of_the_piece_in_flight(lab):
    app, wall = await running_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        wall.advance(FRAME)
        await settle(pilot)
        before = lab.now
        # the next slice blocks inside lab.run until the test lets it go: p arrives mid-slice
        entered, go = threading.Event(), threading.Event()
        run = lab.run

        def slow_run(seconds):
            entered.set()
            assert go.wait(10)
            return run(seconds)

        lab.run = slow_run
        try:
            wall.advance(FRAME)
            assert await asyncio.to_thread(entered.wait, 10)
            await pilot.press("p")  # handled by the UI while the engine thread is in the slice
            assert not app.clock_running
            go.set()
            await settle(pilot)
        finally:
            lab.run = run
        assert lab.now == before + PIECE  # the piece in flight ended, not the whole slice ...
        assert app.state.now == lab.now and "PAUSED" in clock_text(app)
        wall.advance(60)
        await settle(pilot)
        assert lab.now == before + PIECE  # ... and no more lab time passed


async def test_a_machine_that_cannot_keep_up_says_behind_and_does_not_jump(lab):
    app, wall = await running_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        wall.advance(FRAME)
        await settle(pilot)
        for _ in range(8):  # two seconds in step
            wall.advance(FRAME)
            await settle(pilot)
        before = lab.now
        wall.advance(5.0)  # five real seconds pass in one refresh (a stalled machine)
        await settle(pilot)
        assert 0 < lab.now - before <= SLICE  # no 50-minute jump to catch up
        assert app.state.now == lab.now
        assert "behind" in clock_text(app) and f"{int(app.rate)}x" in clock_text(app)
        for _ in range(9):  # keeping up again for two seconds: no longer behind
            wall.advance(FRAME)
            await settle(pilot)
        assert "behind" not in clock_text(app)


async def test_an_action_is_applied_before_the_next_slice_at_the_time_shown(lab):
    step2(lab)
    app, wall = await running_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        wall.advance(FRAME)
        await settle(pilot)
        wall.advance(FRAME)
        await settle(pilot)
        shown = app.state.now
        await keys(pilot, "2", "slash", "W", "E", "B", "0", "1", "enter", "e")
        await keys(pilot, "ctrl+s")  # enable protection while the clock runs
        call = app.last_applied
        assert call is not None and call.label == "Enable protection"
        assert call.shown == call.applied == shown  # no slice between the key and the command
        job = next(j for j in lab.jobs() if j["target"] == "WEB01")
        assert job["started"] == shown
        # asked for while a slice is being computed: applied when the piece in flight ends
        entered, go = threading.Event(), threading.Event()
        run = lab.run

        def slow_once(seconds):
            lab.run = run
            entered.set()
            assert go.wait(10)
            return run(seconds)

        lab.run = slow_once
        wall.advance(FRAME)
        assert await asyncio.to_thread(entered.wait, 10)
        app.engine_call("Start VM", lambda l: l.vm_power("IDLE01", "start"))
        wall.advance(FRAME)  # the next slice is owed already
        go.set()
        await settle(pilot)
        call = app.last_applied
        assert call.label == "Start VM" and call.shown == shown and call.applied == shown + PIECE
        assert lab.now == shown + PIECE + SLICE  # the rest of the slice is owed, not lost
        assert lab.vm_row("IDLE01")["power"] == "running"


async def test_speed_changes_take_effect_at_the_next_refresh(lab):
    app, wall = await running_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        wall.advance(FRAME)
        await settle(pilot)
        await keys(pilot, "minus")  # 60x
        assert app.speed == 60
        before = lab.now
        for _ in range(4):
            wall.advance(FRAME)
            await settle(pilot)
        assert lab.now - before == 60  # one real second at 60x
