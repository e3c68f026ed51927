"""--observer / --readonly: everything visible, no action changes the lab."""

from __future__ import annotations

from textual.screen import ModalScreen

from engine import Lab

from .helpers import filter_to, keys, make_app, settle

ACTION_KEYS = ["r", "i", "c", "C", "m", "u", "l", "e", "s", "o", "d", "x", "a", "w", "ctrl+d", "space", "enter",
               "t", "T", "p", "plus", "minus"]


def fingerprint(lab) -> tuple:
    st = lab.status()
    return (
        lab.now,
        [(v["name"], v["power"], v["protection"], v["writes"]) for v in st["vms"]],
        [(j["id"], j["state"]) for j in lab.jobs()],
        [e["id"] for e in lab.events(1000)],
        lab.resources(),
    )


async def test_observer_cannot_change_anything(lab):
    lab.run_until_done([lab.register_server("SC01")])
    before = fingerprint(lab)
    app = make_app(lab, observer=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        bar = app.query_one("#bar-clock").render()
        assert "OBSERVER" in str(bar)
        rows = {"2": ["WEB01"], "3": ["SC01", "FrontEnd"]}
        for panel in "1234567":
            await keys(pilot, panel)
            for row in rows.get(panel, [None]):
                if row:
                    await filter_to(pilot, row)
                for key in ACTION_KEYS:
                    await pilot.press(key)
                    await pilot.pause()
                    assert not isinstance(app.screen, ModalScreen), f"{key} opened {app.screen} on panel {panel}"
                    assert not app.clock_running
                await keys(pilot, "escape")
        await settle(pilot)
        # everything is still visible
        await keys(pilot, "3")
        assert app.query_one("#resources-table").row_count > 5
        assert app.last_refusal and "observer" in app.last_refusal
    assert fingerprint(lab) == before


async def test_observer_engine_calls_are_refused_even_when_asked_directly(lab):
    app = make_app(lab, observer=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        errors = []
        app.engine_call("register", lambda l: l.register_server("SC01"), on_error=errors.append)
        await settle(pilot)
        assert errors and "observer" in errors[0].message
    assert lab.jobs() == []


async def test_a_second_srlab_on_the_same_lab_opens_as_observer(lab):
    first = Lab.open(lab.path)
    try:
        assert first.acquire_clock() is True
        app = make_app(lab)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.observer
            assert "another srlab" in app.observer_why
            now = lab.now
            await keys(pilot, "t", "T")
            assert lab.now == now
            # an action says why, naming the other process rather than a flag it was not given
            await keys(pilot, "3", "r")
            assert "another srlab process" in app.last_refusal and "--observer" not in app.last_refusal
            assert lab.jobs() == []
    finally:
        first.close()
