"""Helpers for the TUI tests: apps with a paused clock, keys that wait for the engine thread,
and a manual wall clock that paces a running lab clock without sleeping."""

from __future__ import annotations

import threading

from textual import events

from engine import Lab, changes
from tui.app import SrlabApp
from tui.cli import run_in_app


class ManualWall:
    """The wall clock a running lab clock is paced by, moved by the test: `advance(0.25)` is a
    quarter of a real second as far as the app knows, at once, with no sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.app: SrlabApp | None = None

    def monotonic(self) -> float:
        return self.now

    def wait(self, cond: threading.Condition, timeout: float) -> None:
        cond.wait(0.05)  # real time stands still here: only advance() (or a call) wakes the engine

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.app is not None:
            self.app.wake_engine()


def make_app(lab: Lab, **kw) -> SrlabApp:
    """An app for tests: clock paused, no polling, no animation, no blinking cursor; the `:`
    command line runs the CLI's commands and reads follow the engine's changes as `srlab` does."""
    kw.setdefault("clock_running", False)
    kw.setdefault("poll", None)
    kw.setdefault("animations", False)
    kw.setdefault("commands", run_in_app)
    kw.setdefault("changes", changes.take_lab)  # as srlab tui: a read reads only what changed
    app = SrlabApp(lab, **kw)
    if isinstance(kw.get("wall"), ManualWall):
        kw["wall"].app = app
    return app


async def settle(pilot) -> None:
    """Wait until every key pressed so far has taken effect, and every engine call they asked
    for has finished and shows."""
    app = pilot.app
    for _ in range(20):
        await pilot.pause()
        await app.wait_engine_idle()
        await pilot.pause()
        if app.engine_idle() and app.keys_idle():
            return


async def keys(pilot, *k: str) -> None:
    """Press keys one by one, letting the engine worker finish after each."""
    for key in k:
        await pilot.press(key)
        await settle(pilot)


async def type_text(pilot, text: str) -> None:
    await pilot.press(*[{" ": "space", "/": "slash", "-": "minus", ":": "colon"}.get(c, c) for c in text])
    await pilot.pause()


async def filter_to(pilot, text: str) -> None:
    """k9s-style: `/`, type, enter: the cursor lands on the first matching row."""
    await keys(pilot, "slash")
    await type_text(pilot, text)
    await keys(pilot, "enter")


CHARS = {"slash": "/", "enter": "\r", "space": " ", "colon": ":", "minus": "-", "escape": "\x1b", "tab": "\t"}


def burst(app, *keys_: str) -> None:
    """Keys that arrive in one read, as over a laggy SSH link or from a paste: all queued at once,
    as the terminal driver does, nothing awaited between them. Plain text may be given as one
    string ("SC01" is four keys)."""
    for key in keys_:
        for k in ([key] if key in CHARS or len(key) == 1 or "+" in key else list(key)):
            app.post_message(events.Key(k, CHARS.get(k, k if len(k) == 1 else None)))
