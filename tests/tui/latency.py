"""Measure the app's lab clock at 600x with three protected VMs (README, "Lab time"):

    .venv/bin/python -m tests.tui.latency

Not a test (it runs on the real clock, for about a minute): it builds the sample lab (seed 004)
in a temporary folder, protects MYWSV01, MYSQL01 and MYBSD01, runs an hour, opens the app
headless at 80x24 with the clock running at 600x, and prints
- the rate the clock achieves and the largest step of the clock between two screen updates;
- pause latency: real time from `p` until lab time has stopped and the screen shows the stored
  time, and how much lab time passed after the time on the screen;
- keypress-to-effect: real time from Set link's ctrl+s until the new bandwidth is on the screen,
  and how far after the time on the screen it was applied.

With a big lab (issue 15, "Scale"), on a copy of it:

    .venv/bin/python -m tests.tui.latency --lab /tmp/app1000/lab

opens the app at 120x40 on a copy of the lab (cp -a --sparse=always, so the lab is not changed)
and prints the time from the start to the first paint and to a filled Protected items table;
median / largest latency of 20 keys that refresh the screen (down in the table, enter on a VM
and esc, 3 and 2 to switch panels), with the clock paused and running at 60x; and the time from
`t` until the clock on the screen shows +15 minutes and until the work is done and shown.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from textual import events

from engine import Lab, changes
from tests.conftest import SAMPLES, step2
from tui.app import SrlabApp
from tui.cli import run_in_app

TRIES = 15


def build_lab(where: Path) -> Lab:
    lab = Lab.create(where / "lab", SAMPLES / "hyperv-to-azure.toml")
    step2(lab, retention_h=2, app_consistent_h=1)
    lab.run_until_done(lab.protect(["MYWSV01", "MYSQL01", "MYBSD01"]))
    lab.run(3600)
    return lab


def key(app: SrlabApp, name: str, char: str | None = None) -> None:
    """A key as the terminal sends it (posted, nothing awaited)."""
    app.post_message(events.Key(name, char if char is not None else (name if len(name) == 1 else None)))


async def until(cond, timeout: float = 60) -> float:
    start = time.perf_counter()
    while not cond():
        if time.perf_counter() - start > timeout:
            raise TimeoutError
        await asyncio.sleep(0.002)
    return time.perf_counter() - start


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.0f} ms, at most {max(values) * 1000:.0f} ms"


async def measure(lab: Lab) -> None:
    app = SrlabApp(lab, clock_running=True, speed=600, poll=None, animations=False, commands=run_in_app)
    shown: list[tuple[float, int]] = []  # (real time, lab time) of every state the screen took
    apply = app.apply_state

    def record(state) -> None:
        shown.append((time.perf_counter(), state.now))
        apply(state)

    app.apply_state = record
    async with app.run_test(size=(80, 24)):
        await until(lambda: app.state.loaded)
        key(app, "2")
        await asyncio.sleep(1)
        shown.clear()
        start, lab_start = time.perf_counter(), lab.now
        await asyncio.sleep(20)
        steps = [b[1] - a[1] for a, b in zip(shown, shown[1:])]
        print(f"clock: {(lab.now - lab_start) / (time.perf_counter() - start):.0f} lab seconds per second "
              f"(600x asked; the top line says {app.rate:.0f}x); at most {max(steps)} lab seconds between two "
              f"screen updates")

        pause, after = [], []
        for i in range(TRIES):
            await asyncio.sleep(0.5 + (i % 5) * 0.07)
            on_screen = app.state.now
            t = time.perf_counter()
            key(app, "p")
            await until(lambda: not app.clock_running)
            await until(app.engine_idle)
            pause.append(time.perf_counter() - t)
            stopped = lab.now
            after.append(stopped - on_screen)
            await asyncio.sleep(0.5)
            assert lab.now == stopped == app.state.now, "lab time moved while paused"
            key(app, "p")
        print(f"pause: lab time stopped and shown {ms(pause)} after the key; "
              f"{statistics.median(after):.0f} lab seconds (at most {max(after)}) after the time on the screen")

        key(app, "3")
        key(app, "slash", "/")
        for c in "link":
            key(app, c)
        key(app, "enter", "\r")
        await asyncio.sleep(0.5)
        effect, lag = [], []
        for i in range(TRIES):
            await asyncio.sleep(0.4 + (i % 5) * 0.05)
            mbps = 50 + i
            key(app, "l")
            await until(lambda: app.focused is not None and app.focused.id == "mbps")
            app.focused.value = str(mbps)
            t = time.perf_counter()
            key(app, "ctrl+s")
            await until(lambda: any(link["mbps"] == mbps for link in app.state.resources.get("links", [])))
            effect.append(time.perf_counter() - t)
            lag.append(app.last_applied.applied - app.last_applied.shown)
            await until(lambda: type(app.screen).__name__ != "LinkDialog")
        print(f"keypress to effect (Set link: ctrl+s to the new bandwidth on the screen): {ms(effect)}; applied "
              f"{statistics.median(lag):.0f} lab seconds (at most {max(lag)}) after the time on the screen")
        key(app, "p")


# ---- a big lab (issue 15) ----------------------------------------------------------------------

KEYS = 20


async def key_latency(app: SrlabApp, what: str) -> None:
    """KEYS keys that refresh the screen, each timed from the key to its effect, with the key
    handled through (keys_idle) and the event loop free again."""
    table = app.panel("protected").table
    times: list[float] = []
    kinds: dict[str, list[float]] = {}
    for i in range(KEYS):
        n = len(times)
        kind = ("down", "down", "detail", "panel")[i % 4]
        if kind == "down":
            row = table.cursor_row
            t = time.perf_counter()
            key(app, "down")
            await until(lambda: table.cursor_row != row and app.keys_idle())
        elif kind == "detail":
            t = time.perf_counter()
            key(app, "enter", "\r")
            await until(lambda: type(app.screen).__name__ == "VmDetailScreen" and app.keys_idle())
            times.append(time.perf_counter() - t)
            await asyncio.sleep(0.1)
            t = time.perf_counter()
            key(app, "escape", "\x1b")
            await until(lambda: len(app.screen_stack) == 1 and app.keys_idle())
        else:
            t = time.perf_counter()
            key(app, "3")
            await until(lambda: app._current == "resources" and app.keys_idle())
            times.append(time.perf_counter() - t)
            await asyncio.sleep(0.1)
            t = time.perf_counter()
            key(app, "2")
            await until(lambda: app._current == "protected" and app.keys_idle())
        await asyncio.sleep(0)  # the key's repaint
        times.append(time.perf_counter() - t)
        kinds.setdefault(kind, []).extend(times[n:])
        await asyncio.sleep(0.1 + (i % 5) * 0.03)
    each = "; ".join(f"{k} {statistics.median(v) * 1000:.0f}/{max(v) * 1000:.0f}" for k, v in kinds.items())
    print(f"  keys ({what}): {ms(times)} ({len(times)} keys; median/most ms: {each})")


async def measure_scale(lab: Lab) -> None:
    start = time.perf_counter()
    app = SrlabApp(lab, clock_running=False, poll=None, animations=False, commands=run_in_app,
                   changes=changes.take_lab)
    painted: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.call_after_refresh(lambda: painted.append(time.perf_counter()))
        key(app, "2")
        table = app.panel("protected").table
        n = len(lab.site.vms)
        await until(lambda: table.row_count >= n)
        filled = time.perf_counter()
        first = painted[0] - start if painted else float("nan")
        print(f"{n} VMs: first paint {first:.2f} s after the app was made; the protected items table filled "
              f"{filled - start - first:.2f} s after the first paint")
        await until(lambda: app.engine_idle() and app.keys_idle())
        await asyncio.sleep(0.5)
        await key_latency(app, "clock paused")

        on_screen = app.state.now
        target = on_screen + 900
        clock = app.query_one("#bar-clock")
        from tui.state import fmt_time
        runs: list[float] = []  # the engine's own time in lab.run (the rest is the app's)
        run = lab.run

        def timed(seconds: int):
            start = time.perf_counter()
            try:
                return run(seconds)
            finally:
                runs.append(time.perf_counter() - start)

        lab.run = timed
        t = time.perf_counter()
        key(app, "t")
        await until(lambda: fmt_time(target) in str(clock.content), timeout=600)
        shown = time.perf_counter() - t
        await until(lambda: app.state.now == target and app.engine_idle() and app.keys_idle(), timeout=600)
        done = time.perf_counter() - t
        lab.run = run
        print(f"  t (+15 min): the clock on the screen shows +15 min {shown * 1000:.0f} ms after the key; "
              f"the work is done and shown after {done:.2f} s, {sum(runs):.2f} s of it in lab.run")

        key(app, "p")  # the clock runs at 60x
        await asyncio.sleep(2)
        await key_latency(app, "clock running at 60x")
        key(app, "p")
        await until(lambda: app.engine_idle(), timeout=600)
        await pilot.pause()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", help="measure the app on a copy of this (big) lab instead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.lab:
            copy = Path(tmp) / "lab"
            subprocess.run(["cp", "-a", "--sparse=always", str(args.lab), str(copy)], check=True)
            lab = Lab.open(copy)
            try:
                asyncio.run(measure_scale(lab))
            finally:
                lab.close()
                shutil.rmtree(copy, ignore_errors=True)
            return
        lab = build_lab(Path(tmp))
        try:
            asyncio.run(measure(lab))
        finally:
            lab.close()


if __name__ == "__main__":
    main()
