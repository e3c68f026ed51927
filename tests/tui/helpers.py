"""Helpers for the TUI tests: apps with a paused clock, keys that wait for the engine worker."""

from __future__ import annotations

from engine import Lab
from tui.app import SrlabApp


def make_app(lab: Lab, **kw) -> SrlabApp:
    """An app for tests: clock paused, no polling, no animation, no blinking cursor."""
    kw.setdefault("clock_running", False)
    kw.setdefault("poll", None)
    kw.setdefault("animations", False)
    return SrlabApp(lab, **kw)


async def settle(pilot) -> None:
    """Wait until every engine call started so far has finished and its result is shown."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def keys(pilot, *k: str) -> None:
    """Press keys one by one, letting the engine worker finish after each."""
    for key in k:
        await pilot.press(key)
        await settle(pilot)


async def type_text(pilot, text: str) -> None:
    await pilot.press(*[{" ": "space", "/": "slash", "-": "minus"}.get(c, c) for c in text])
    await pilot.pause()


async def filter_to(pilot, text: str) -> None:
    """k9s-style: `/`, type, enter: the cursor lands on the first matching row."""
    await keys(pilot, "slash")
    await type_text(pilot, text)
    await keys(pilot, "enter")
